"""The task streams: Atari games as RL environments (atari.py; replay.py for training games that
survive a checkpoint) and, in vision/, the supervised streams: data sets split into tasks, with
their loaders. Imports nothing from agents/, regularizers/, continual/."""
from .atari import (GAMES, NUM_ACTIONS, AtariTrainEnv, canonical_game, derive_seed, evaluate,
                    make_eval_env, make_train_env, num_actions, parse_games)

__all__ = ["GAMES", "NUM_ACTIONS", "AtariTrainEnv", "canonical_game", "derive_seed", "evaluate",
           "make_eval_env", "make_train_env", "num_actions", "parse_games"]
