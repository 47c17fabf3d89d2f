"""Environments of the task streams. Imports nothing from agents/, regularizers/, continual/."""
from .atari import (GAMES, NUM_ACTIONS, AtariTrainEnv, canonical_game, derive_seed, evaluate,
                    make_eval_env, make_train_env, num_actions, parse_games)

__all__ = ["GAMES", "NUM_ACTIONS", "AtariTrainEnv", "canonical_game", "derive_seed", "evaluate",
           "make_eval_env", "make_train_env", "num_actions", "parse_games"]
