"""The continual MinAtar stream: the 5 miniature Atari games of MinAtar (Young & Tian, 2019;
the ``minatar`` package) as a task stream in the shape of ``envs.atari``.

* **Games and order.** ``GAMES`` = Asterix, Breakout, Freeway, Seaquest, SpaceInvaders: the
  MinAtar paper's (alphabetical) order, fixed; ``--games`` selects a subset and its order.
* **Observations.** MinAtar's state is a 10x10 grid of boolean channels, 4 to 10 of them
  depending on the game (Seaquest has the most, 10). Every game's state is put channels-first
  into one shape, uint8 (10, 10, 10): the game's own channels first, in MinAtar's order, then
  zero channels up to 10. One trunk thus reads every game; a channel index means different
  objects in different games, as a pixel does in the Atari stream.
* **Actions.** Each game keeps its minimal action set (``NUM_ACTIONS``), the size of its head;
  head action i is the game's i-th minimal action.
* **Dynamics.** Sticky actions with probability ``sticky`` (MinAtar's standard 0.1, settable)
  and difficulty ramping on, as MinAtar's defaults. Rewards are MinAtar's raw ones (0 or 1 per
  step, Seaquest's surfacing bonus more), not clipped. A training game still running after
  ``MAX_EPISODE_STEPS`` agent steps is cut there (MinAtar has no time limit; the cut counts as
  termination, as in the Atari stream).
* **Determinism.** Sub-env i of a reset with seed s draws everything (its game's randomness and
  its sticky actions) from ``numpy.random.RandomState(s + i)``, MinAtar's own seeding, so two
  envs with one seed and the same actions play identical games; ``envs.replay`` relies on it.

The N games of a training env are stepped in a Python loop (MinAtar is plain Python, about
20-70 us per step here), and a finished game is reset in the same step (the observation
returned with ``game_over`` is already the next game's first), as the Atari stream's
``SAME_STEP`` autoreset. Evaluation (``evaluate``) plays full games on separate envs with a cap,
greedy or sampled actions from its own generator, as ``envs.atari.evaluate``; with ``video``
it films each game, the grid drawn by ``render`` (a fixed colour per channel, scaled up).

This module imports nothing from ``agents``, ``regularizers`` or ``continual``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import names
from .common import to_numpy

GAMES: tuple[str, ...] = ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
_MODULES = {"Asterix": "asterix", "Breakout": "breakout", "Freeway": "freeway",
            "Seaquest": "seaquest", "SpaceInvaders": "space_invaders"}
# Minimal action set sizes and channel counts (tests check them against the package).
NUM_ACTIONS: dict[str, int] = {"Asterix": 5, "Breakout": 3, "Freeway": 3, "Seaquest": 6,
                               "SpaceInvaders": 4}
GAME_CHANNELS: dict[str, int] = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10,
                                 "SpaceInvaders": 6}
CHANNELS = 10
OBS_SHAPE = (CHANNELS, 10, 10)
STICKY = 0.1
MAX_EPISODE_STEPS = 10_000
# Videos: background black, then one colour per channel (matplotlib's tab10); a cell shows the
# highest-numbered channel that is on, as MinAtar's own display does. Each cell is 20x20 pixels.
PALETTE = np.array([(0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                    (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127),
                    (188, 189, 34), (23, 190, 207)], dtype=np.uint8)
VIDEO_SCALE = 20
VIDEO_FPS = 10

# --- the stream's entry (envs/streams.py) ---------------------------------------------------
HELP = "continual PPO over the MinAtar stream (5 miniature Atari games, minutes on a CPU)"
NETWORKS = ("minatar",)               # agents/minatar_net.py: the MinAtar paper's network
PRESETS: dict[str, dict] = {
    # The MinAtar network, and the PPO constants of Pgx's MinAtar PPO example (after
    # PureJaxRL: lr 3e-4, clip 0.2, entropy 0.01, 3 epochs, no channels-last) with CleanRL's
    # CPU-sized batch of 8 games x 128 steps in 4 minibatches.
    "minatar": dict(arch="minatar", lr=3e-4, clip_coef=0.2, update_epochs=3,
                    channels_last=False, steps_per_task=500_000, eval_max_steps=10_000),
    # a few seconds per game, for tests and smoke runs
    "minatar_tiny": dict(arch="minatar", num_envs=2, num_steps=16, update_epochs=1,
                         num_minibatches=2, channels_last=False, steps_per_task=64,
                         eval_episodes=2, eval_max_steps=50, importance_steps=32),
}
DEFAULT_PRESET = "minatar"
ENV_THREADS = False                   # the games step in Python, in the learner's thread


@dataclass
class Options:
    sticky: float = field(default=STICKY, metadata={
        "help": "probability that a game repeats the previous action (MinAtar's sticky "
                "actions; its standard is 0.1)"})
    fc_width: int = field(default=128, metadata={
        "help": "units of the MinAtar network's fc layer (the MinAtar paper's 128): the "
                "trunk's capacity"})

    def __post_init__(self):
        if isinstance(self.sticky, bool) or not isinstance(self.sticky, (int, float)) \
                or not 0.0 <= self.sticky <= 1.0:
            raise ValueError(f"sticky={self.sticky!r} must be a probability in [0, 1]")
        self.sticky = float(self.sticky)
        if isinstance(self.fc_width, bool) or not isinstance(self.fc_width, int) \
                or self.fc_width < 1:
            raise ValueError(f"fc_width={self.fc_width!r} must be an integer >= 1")

    def env_options(self) -> dict:
        return {"sticky": self.sticky}

    def net_options(self) -> dict:
        return {"hidden": self.fc_width}


# MinAtar publishes no random or human scores. These were measured here, for the stream's
# evaluation protocol (sticky actions 0.1, full games capped at 10k agent steps), and hold for
# that protocol only. "random": `python experiments/minatar_random.py`, the uniform-random
# policy's mean over 100 full games per game. "constant": the best constant action's score
# (`python experiments/minatar_random.py --constant`, 100 full games per action), a floor as
# real as the random one: a game a constant action plays well (Freeway: always "up") measures
# no capacity.
SCORES = {"random": {"Asterix": 0.59, "Breakout": 0.48, "Freeway": 0.38, "Seaquest": 0.12,
                     "SpaceInvaders": 4.24},
          "constant": {"Asterix": 0.67, "Breakout": 0.55, "Freeway": 15.97, "Seaquest": 0.0,
                       "SpaceInvaders": 3.0}}
SCORES_SOURCE = ("measured here, not published: the uniform-random policy's mean over 100 full "
                 "games per game, sticky actions 0.1, capped at 10k steps "
                 "(experiments/minatar_random.py); MinAtar publishes no human scores")
SCORES_PROTOCOL = {"sticky": 0.1, "eval_max_steps": 10_000}
NO_SCORES = ("MinAtar (Young & Tian 2019) publishes no human or random scores, and the "
             "random scores measured here (experiments/minatar_random.py) hold only for "
             "sticky actions 0.1 and a 10k-step cap: no human- or random-normalised scores")


def canonical_game(name: str) -> str:
    """Canonical spelling of a stream game; case, '_' and '-' are ignored."""
    return names.canonical(name, GAMES, "MinAtar game")


def parse_games(spec: str | Sequence[str] | None) -> list[str]:
    """'Breakout,Freeway' (or a list) -> the games in that order; None -> the whole stream."""
    return names.parse(spec, GAMES, "MinAtar game")


def num_actions(game: str) -> int:
    return NUM_ACTIONS[canonical_game(game)]


def _game(game: str, sticky: float):
    from minatar import Environment
    return Environment(_MODULES[canonical_game(game)], sticky_action_prob=float(sticky))


class MinAtarEnv:
    """N games of one MinAtar game; ``reset(seed)`` -> obs uint8 (N, 10, 10, 10);
    ``step(actions)`` -> (obs, reward float32, done, game_over) with ``done == game_over``
    (a game over or the ``max_steps`` cut; the game has been reset). ``pop_finished()``: the
    (return, length) of the games finished since the last call."""

    def __init__(self, game: str, num_envs: int, seed: int = 0, sticky: float = STICKY,
                 max_steps: int = MAX_EPISODE_STEPS):
        self.game = canonical_game(game)
        self.num_envs, self.seed, self.max_steps = int(num_envs), int(seed), int(max_steps)
        if not 0.0 <= float(sticky) <= 1.0:
            raise ValueError(f"sticky={sticky!r}: the sticky-action probability must be in "
                             f"[0, 1] (MinAtar's standard: {STICKY})")
        self.games = [_game(self.game, sticky) for _ in range(self.num_envs)]
        self.actions = np.asarray(self.games[0].minimal_action_set(), dtype=np.int64)
        self.num_actions = len(self.actions)
        self._obs = np.zeros((self.num_envs, *OBS_SHAPE), dtype=np.uint8)
        self._finished: list[tuple[float, int]] = []
        # each game's running return and length (Python numbers: the step loop is Python)
        self._ret, self._len = [0.0] * self.num_envs, [0] * self.num_envs

    def _write_obs(self, i: int) -> None:
        s = self.games[i].state()                              # (10, 10, c) bool
        # channels first; the zero channels past the game's c stay as __init__ made them
        self._obs[i, :s.shape[2]] = s.transpose(2, 0, 1)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Every game restarts, sub-env i seeded with ``seed + i`` (default: the last seed)."""
        if seed is not None:
            self.seed = int(seed)
        for i, g in enumerate(self.games):
            g.seed(self.seed + i)
            g.last_action = 0
            g.reset()
            self._write_obs(i)
        self._ret, self._len = [0.0] * self.num_envs, [0] * self.num_envs
        return self._obs.copy()

    def step(self, actions: np.ndarray):
        acts = self.actions[np.asarray(actions, dtype=np.int64)].tolist()
        rew = np.zeros(self.num_envs, dtype=np.float32)
        done = np.zeros(self.num_envs, dtype=bool)
        for i, g in enumerate(self.games):
            r, terminal = g.act(acts[i])
            rew[i] = r
            self._ret[i] += r
            self._len[i] += 1
            if terminal or self._len[i] >= self.max_steps:
                done[i] = True
                self._finished.append((float(self._ret[i]), int(self._len[i])))
                self._ret[i], self._len[i] = 0.0, 0
                g.last_action = 0
                g.reset()
            self._write_obs(i)
        return self._obs.copy(), rew, done, done.copy()

    def pop_finished(self) -> list[tuple[float, int]]:
        out, self._finished = self._finished, []
        return out

    def close(self) -> None:
        self.games = []


def render(obs: np.ndarray, scale: int = VIDEO_SCALE) -> np.ndarray:
    """One observation (CHANNELS, 10, 10) -> an RGB picture (10 * scale, 10 * scale, 3) uint8:
    each cell the ``PALETTE`` colour of its highest-numbered channel that is on (black if none),
    ``scale`` x ``scale`` pixels per cell (nearest)."""
    obs = np.asarray(obs)
    if obs.shape != OBS_SHAPE:
        raise ValueError(f"render takes one observation of shape {OBS_SHAPE}, got {obs.shape}")
    on = obs.astype(bool) * np.arange(1, CHANNELS + 1)[:, None, None]
    rgb = PALETTE[on.max(axis=0)]                                   # (10, 10, 3)
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def make_train_env(game: str, num_envs: int, seed: int = 0, num_threads: int = 0,
                   sticky: float = STICKY) -> MinAtarEnv:
    """Training games (``num_threads`` is accepted for the Atari stream's signature; MinAtar
    steps in this thread)."""
    return MinAtarEnv(game, num_envs, seed, sticky=sticky)


def make_eval_env(game: str, episodes: int, max_steps: int, num_threads: int = 0,
                  sticky: float = STICKY) -> MinAtarEnv:
    return MinAtarEnv(game, episodes, 0, sticky=sticky, max_steps=max_steps)


def evaluate(policy_fn: Callable[[np.ndarray], object], game: str, episodes: int = 10,
             seed: int = 0, greedy: bool = True, max_steps: int = MAX_EPISODE_STEPS,
             num_threads: int = 0, env: MinAtarEnv | None = None,
             sticky: float = STICKY, video=None) -> tuple[float, list[float]]:
    """Mean score of ``episodes`` full games, and the list of scores, as
    ``envs.atari.evaluate``: game i on sub-env i seeded ``seed + i``, cut after ``max_steps``
    agent steps, greedy (argmax) or sampled (Gumbel-max from a generator seeded by ``seed``).
    ``video``: one MP4 path per game, where game i is filmed (``render`` of every observation
    from the reset to the last before its end)."""
    from .video import EpisodeVideos, check_paths
    episodes, max_steps = int(episodes), int(max_steps)
    if episodes < 1 or max_steps < 1:
        raise ValueError(f"evaluate needs episodes >= 1 and max_steps >= 1, got {episodes}, "
                         f"{max_steps}")
    paths = check_paths(video, episodes)
    if env is None:
        env = make_eval_env(game, episodes, max_steps, sticky=sticky)
    elif env.num_envs != episodes:
        raise ValueError(f"evaluate: the env has {env.num_envs} games, {episodes} requested")
    rng = np.random.default_rng([int(seed), 0x5EED])
    obs = env.reset(seed=int(seed))
    scores = np.zeros(episodes)
    active = np.ones(episodes, dtype=bool)
    actions = np.zeros(episodes, dtype=np.int64)
    videos = EpisodeVideos(paths, VIDEO_FPS) if paths else None

    def film():
        if videos is not None:
            for i in np.flatnonzero(active):
                videos.add(int(i), render(obs[i]))

    try:
        film()
        for _ in range(max_steps):
            idx = np.flatnonzero(active)
            logits = to_numpy(policy_fn(obs[idx]))
            if not greedy:
                logits = logits + rng.gumbel(size=logits.shape)
            actions[:] = 0
            actions[idx] = logits.argmax(axis=1)
            obs, r, done, _ = env.step(actions)
            scores[active] += r[active]
            active &= ~done
            film()                        # an ended game's observation is already the next's
            if not active.any():
                break
    finally:
        if videos is not None:
            videos.close()
    return float(scores.mean()), [float(s) for s in scores]
