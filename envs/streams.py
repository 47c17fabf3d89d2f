"""The game streams: what a stream of games must provide (``GameStream``) and the registry
(``STREAMS``) that ``train.py``, the run configs, the PPO learner, ``train.py evaluate`` and the
RL report read. A new stream is one module with these names and one line in ``STREAMS``; its
command (``train.py <name>``), ``--help``, studies, evaluation and report come with it
(``tests/test_game_stream.py`` defines a toy stream and runs it through all of them).

Imports nothing from ``agents``, ``regularizers`` or ``continual``.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np

from . import atari, minatar


class GameStream(Protocol):
    """A stream of games, one task per game, as a module (``envs/atari.py``,
    ``envs/minatar.py``) or any object with these attributes."""

    HELP: str                       # one line: the command's help in `train.py --help`
    GAMES: tuple[str, ...]          # the whole stream, in its default order
    OBS_SHAPE: tuple[int, ...]      # one observation, uint8
    # the networks (PPOConfig.arch, built by agents/ppo.py's NETWORKS) that read OBS_SHAPE
    NETWORKS: tuple[str, ...]
    # PPO presets {name: PPOConfig fields it changes} (names unique over every stream), and
    # the one a run starts from; the default preset names the default network ("arch")
    PRESETS: dict[str, dict[str, Any]]
    DEFAULT_PRESET: str
    ENV_THREADS: bool               # whether the env constructors use num_threads
    # The stream's own run options: a dataclass whose fields (with metadata["help"]) become the
    # command's flags and config.json keys, with env_options() (keyword arguments of the env
    # constructors and evaluate) and net_options() (of the network)
    Options: type
    # Reference scores {"random" | "human" | "constant": {game: score}} ({} where none), where
    # they come from, the run settings they hold for ({config key: value}: a top-level key or
    # one of "ppo"; None: any), and why a report has none where they do not apply
    SCORES: dict[str, dict[str, float]]
    SCORES_SOURCE: str | None
    SCORES_PROTOCOL: dict[str, Any] | None
    NO_SCORES: str

    def canonical_game(self, name: str) -> str: ...

    def parse_games(self, spec: str | Sequence[str] | None) -> list[str]: ...

    def num_actions(self, game: str) -> int: ...

    def make_train_env(self, game: str, num_envs: int, seed: int = 0, num_threads: int = 0,
                       **options):
        """N training games: ``reset(seed)`` -> obs; ``step(actions)`` -> (obs, reward, done,
        game_over); ``pop_finished()`` -> [(return, length)]; ``close()``; ``game``,
        ``num_envs``. Sub-env i of ``reset(seed)`` seeded ``seed + i`` and deterministic given
        the seed and the actions (``envs/replay.py`` rebuilds running games from them)."""

    def make_eval_env(self, game: str, episodes: int, max_steps: int, num_threads: int = 0,
                      **options):
        """Full-game envs for ``evaluate``, reusable (every call re-seeds them)."""

    def evaluate(self, policy_fn: Callable[[np.ndarray], Any], game: str, episodes: int = 10,
                 seed: int = 0, greedy: bool = True, max_steps: int = ...,
                 num_threads: int = 0, env=None, video=None,
                 **options) -> tuple[float, list[float]]:
        """(mean, scores) of ``episodes`` full games, game i seeded ``seed + i``, cut after
        ``max_steps`` agent steps; greedy or sampled (from a generator seeded by ``seed``)
        actions; ``video``: one MP4 path per game."""


STREAMS: dict[str, GameStream] = {"atari": atari, "minatar": minatar}


def get(name: str) -> GameStream:
    """The stream of that name, or an error listing the streams."""
    if name not in STREAMS:
        raise ValueError(f"unknown game stream {name!r}; choose one of: {', '.join(STREAMS)}")
    return STREAMS[name]


def presets() -> dict[str, dict[str, Any]]:
    """Every stream's PPO presets, by name."""
    return {k: v for s in STREAMS.values() for k, v in s.PRESETS.items()}


def stream_of_preset(preset: str) -> str | None:
    """The stream whose PPO preset ``preset`` is (None if none is)."""
    return next((n for n, s in STREAMS.items() if preset in s.PRESETS), None)


def networks() -> tuple[str, ...]:
    """Every stream's networks."""
    return tuple(dict.fromkeys(a for s in STREAMS.values() for a in s.NETWORKS))
