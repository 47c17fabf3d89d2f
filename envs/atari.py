"""The Atari task stream on ale-py's threaded C++ vector environment.

Training environments (``make_train_env``) use the standard DQN/PPO preprocessing done in C++
by ``ale_py.vector_env.AtariVectorEnv``: no-op reset (up to 30), frame skip 4 with max-pool over
the last two frames, 84x84 grayscale, a 4-frame stack, FIRE on reset, sticky actions off
(``repeat_action_probability=0``, the NoFrameskip-v4 setting of the published code), the
minimal action set of each game. Two things are done here rather than in C++, on purpose:

* **Episodic life.** In ale-py 0.12.1 ``episodic_life=True`` makes the vector env *reset the
  whole game* after every lost life (measured: DemonAttack's lives never drop below 4), which is
  not the usual EpisodicLife wrapper (end the episode for bootstrapping, keep playing the same
  game). We therefore run with ``life_loss_info=True``: a lost life reports ``terminated`` (our
  ``done``, used to cut GAE) while the game goes on, and the C++ env only resets on a real game
  over or the 108k-frame limit. Differences from the Python wrapper: no FIRE press and no
  frame-stack clearing after a lost life (the agent has FIRE in its action set).
* **Reward clipping.** The env returns raw rewards; ``AtariTrainEnv.step`` clips them to
  [-1, 1] for learning and accumulates the raw ones, so the logged episode returns are raw
  full-game scores (summed over all lives).

Autoreset is ``SAME_STEP``: when a game ends, the observation returned with it is already the
first one of the next game (the terminal observation is never needed: truncation is treated as
termination, as CleanRL does), so no transition has to be masked; after a lost life it is simply
the next frame. Checked: per-game raw returns are identical to ``NEXT_STEP`` with its reset
steps skipped.

Evaluation (``evaluate``) runs separate environments: full games (no life-loss termination, no
reward clipping), one seeded episode per sub-environment, an episode cap, greedy or sampled
actions from its own ``numpy`` generator (the global torch/numpy RNGs are never touched).
``evaluate(..., video=paths)`` also films each game: ALE's 210x160 RGB screen, one frame per
agent step, from a twin emulator with RGB output (``make_eval_env(..., screen=True)``) that
plays the same seeded games with the same actions, so the agent's observations stay exactly
the eval env's.

This module imports nothing from ``agents``, ``regularizers`` or ``continual``.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import names
from .common import to_numpy

GAMES: tuple[str, ...] = ("StarGunner", "Boxing", "VideoPinball", "CrazyClimber", "Gopher",
                          "Robotank", "DemonAttack", "NameThisGame")
# Minimal action set sizes (tests check them against the real ROMs).
NUM_ACTIONS: dict[str, int] = {"StarGunner": 18, "Boxing": 18, "VideoPinball": 9,
                               "CrazyClimber": 9, "Gopher": 8, "Robotank": 18,
                               "DemonAttack": 6, "NameThisGame": 6}
FRAMESKIP = 4
OBS_SHAPE = (4, 84, 84)
MAX_EPISODE_FRAMES = 108_000          # 30 minutes of play, the usual ALE cap
SCREEN = (210, 160)                   # ALE's RGB screen (height, width), filmed by evaluate
VIDEO_FPS = 60 / FRAMESKIP            # one frame per agent step: real time

# --- the stream's entry (envs/streams.py) ---------------------------------------------------
HELP = "continual PPO over the Atari stream"
NETWORKS = ("nature", "wide")         # agents/atari_net.py's trunks
PRESETS: dict[str, dict] = {
    # CleanRL's ppo_atari.py sized for a 2-core CPU: PPOConfig's defaults
    "cpu": {},
    # The published AGS-CL RL setup (Jung et al., NeurIPS 2020: its Atari experiments)
    "paper": dict(num_envs=128, num_steps=64, update_epochs=10, num_minibatches=64,
                  lr=3e-4, clip_coef=0.2, ent_coef=0.0, steps_per_task=5_000_000,
                  eval_max_steps=27_000),
}
DEFAULT_PRESET = "cpu"
ENV_THREADS = True                    # ALE's emulator threads


@dataclass
class Options:
    """The Atari stream has no run options of its own."""

    def env_options(self) -> dict:
        return {}

    def net_options(self) -> dict:
        return {}


# Random and human scores of the stream's games: Mnih et al. 2015 (DQN, Nature 518, 529-533),
# Extended Data Table 2, columns "Random play" and "Human" (no-op starts of up to 30 no-ops, as
# this stream's evaluation), to one decimal as transcribed in seungjaeryanlee/rldb
# (rldb/db/paper__dqn/algo__random/entries.py, algo__human/entries.py). Not the table of
# Agent57 (Badia et al. 2020) and DQN Zoo, whose human column (from Wang et al. 2016) differs
# on 6 of these 8 games (e.g. Boxing 12.1, NameThisGame 8049.0); its random column agrees.
_RANDOM_HUMAN = {          # game: (random, human)
    "StarGunner": (664.0, 10250.0), "Boxing": (0.1, 4.3), "VideoPinball": (16256.9, 17297.6),
    "CrazyClimber": (10780.5, 35410.5), "Gopher": (257.6, 2321.0), "Robotank": (2.2, 11.9),
    "DemonAttack": (152.1, 3401.3), "NameThisGame": (2292.3, 4076.2)}
SCORES = {"random": {g: r for g, (r, _) in _RANDOM_HUMAN.items()},
          "human": {g: h for g, (_, h) in _RANDOM_HUMAN.items()}}
SCORES_SOURCE = ("Mnih et al. 2015 (Nature), Extended Data Table 2: 'Random play' and 'Human' "
                 "columns")
SCORES_PROTOCOL = None
NO_SCORES = ""


def _rom_id(game: str) -> str:
    """'StarGunner' -> 'star_gunner' (ale-py's ROM names)."""
    out = []
    for i, ch in enumerate(game):
        if ch.isupper() and i > 0:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def canonical_game(name: str) -> str:
    """Canonical spelling of a stream game; case, '_' and '-' are ignored."""
    return names.canonical(name, GAMES, "game")


def parse_games(spec: str | Sequence[str] | None) -> list[str]:
    """'Boxing,Gopher' (or a list) -> the games in that order; None -> the whole stream."""
    return names.parse(spec, GAMES, "game")


def default_env_threads(num_envs: int) -> int:
    return max(1, min(num_envs, os.cpu_count() or 1))


@functools.lru_cache(maxsize=None)
def num_actions(game: str) -> int:
    """Size of the game's minimal action set, read from the ROM (once per game and process:
    a learner asks for every game of its stream)."""
    import ale_py
    from ale_py import roms
    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.loadROM(roms.get_rom_path(_rom_id(canonical_game(game))))
    return len(ale.getMinimalActionSet())


def _vector_env(game: str, num_envs: int, num_threads: int, life_loss: bool,
                max_frames: int, screen: bool = False):
    """The stream's ALE vector env. ``screen``: the same emulation (seeding, no-ops, frame
    skip, FIRE reset, episode cap) returning the last raw RGB screen (N, 1, 210, 160, 3) of
    each step instead of the agent's observation; image options do not touch the emulator,
    so with one seed and the same actions it plays the same games (checked in the tests)."""
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium.vector import AutoresetMode
    image = dict(img_height=SCREEN[0], img_width=SCREEN[1], grayscale=False, stack_num=1,
                 maxpool=False) if screen else \
        dict(img_height=84, img_width=84, grayscale=True, stack_num=4, maxpool=True)
    return AtariVectorEnv(
        _rom_id(canonical_game(game)), num_envs,
        num_threads=num_threads or default_env_threads(num_envs),
        autoreset_mode=AutoresetMode.SAME_STEP,
        max_num_frames_per_episode=max_frames, repeat_action_probability=0.0,
        frameskip=FRAMESKIP, noop_max=30, use_fire_reset=True,
        episodic_life=False, life_loss_info=life_loss, reward_clipping=False, **image)


class AtariTrainEnv:
    """N copies of one game for training; see the module docstring for the semantics.

    ``reset()`` -> obs; ``step(actions)`` -> (obs, clipped_reward, done, game_over):
    obs uint8 (N, 4, 84, 84); clipped_reward float32 (N,); done bool (N,) = life lost, game
    over or time limit (cut the return there); game_over bool (N,) = a full game ended (the
    env has reset it). Finished games' raw returns and lengths: ``pop_finished()``.
    """

    def __init__(self, game: str, num_envs: int, seed: int, num_threads: int = 0,
                 clip_rewards: bool = True):
        self.game = canonical_game(game)
        self.num_envs = int(num_envs)
        self.seed = int(seed)
        self.clip_rewards = clip_rewards
        self.env = _vector_env(self.game, self.num_envs, num_threads, life_loss=True,
                               max_frames=MAX_EPISODE_FRAMES)
        self.num_actions = int(self.env.single_action_space.n)
        self._finished: list[tuple[float, int]] = []
        self._lives = self._efn = None

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every game, seeding sub-env i with ``seed + i`` (default: the seed given at
        construction). A re-seeded env continues exactly as a new env with that seed would
        (ALE reloads the ROM on a seeded reset; checked in the tests), and costs ~1/3 of
        creating one."""
        if seed is not None:
            self.seed = int(seed)
        obs, info = self.env.reset(seed=self.seed)
        self._lives = info["lives"].copy()
        self._efn = info["episode_frame_number"].copy()
        self._ret = np.zeros(self.num_envs, dtype=np.float64)
        self._len = np.zeros(self.num_envs, dtype=np.int64)
        return obs

    def step(self, actions: np.ndarray):
        obs, r, te, tr, info = self.env.step(np.ascontiguousarray(actions, dtype=np.int64))
        raw = r.astype(np.float64)
        self._ret += raw
        self._len += 1
        lives, efn = info["lives"], info["episode_frame_number"]
        done = te | tr
        # A lost life with the game going on: lives dropped but stay > 0 and the episode frame
        # counter advanced by exactly one frame-skip (a game over resets it).
        life_only = te & ~tr & (lives < self._lives) & (lives > 0) & (efn == self._efn + FRAMESKIP)
        game_over = done & ~life_only
        if game_over.any():
            for i in np.flatnonzero(game_over):
                self._finished.append((float(self._ret[i]), int(self._len[i])))
            self._ret[game_over] = 0.0
            self._len[game_over] = 0
        self._lives, self._efn = lives.copy(), efn.copy()
        rew = np.clip(raw, -1.0, 1.0) if self.clip_rewards else raw
        return obs, rew.astype(np.float32), done, game_over

    def pop_finished(self) -> list[tuple[float, int]]:
        """(raw return, length in agent steps) of every game finished since the last call."""
        out, self._finished = self._finished, []
        return out

    def close(self) -> None:
        env, self.env = getattr(self, "env", None), None
        if env is not None:
            env.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def make_train_env(game: str, num_envs: int, seed: int, num_threads: int = 0) -> AtariTrainEnv:
    """Training envs for ``game``; sub-env i is seeded with ``seed + i`` at ``reset()``."""
    return AtariTrainEnv(game, num_envs, seed, num_threads=num_threads)


def make_eval_env(game: str, episodes: int, max_steps: int, num_threads: int = 0,
                  screen: bool = False):
    """Full-game envs for ``evaluate`` (reusable across calls: every call re-seeds them);
    ``screen``: their RGB twin, for videos."""
    return _vector_env(game, int(episodes), num_threads, life_loss=False,
                       max_frames=int(max_steps) * FRAMESKIP, screen=screen)


def evaluate(policy_fn: Callable[[np.ndarray], object], game: str, episodes: int = 10,
             seed: int = 0, greedy: bool = True, max_steps: int = MAX_EPISODE_FRAMES // FRAMESKIP,
             num_threads: int = 0, env=None, video=None) -> tuple[float, list[float]]:
    """Mean raw score of ``episodes`` full games, and the list of scores.

    ``policy_fn(obs)`` maps uint8 observations (n, 4, 84, 84) to action logits (n, A), a torch
    tensor or an array; it is only called on the games still running. Game i runs on its own
    sub-environment, reset with seed ``seed + i``; a game still running after ``max_steps``
    agent steps is cut there and scored as it stands. ``greedy``: argmax actions (the paper's
    protocol); otherwise actions are sampled from softmax(logits) with a numpy generator seeded
    by ``seed`` (Gumbel-max), so the global RNGs are left alone and results are reproducible.
    ``env``: envs from ``make_eval_env(game, episodes, max_steps)`` to reuse (not closed here);
    by default they are created and closed inside. ``video``: one MP4 path per game; game i's
    RGB screen is filmed there (one frame per agent step, from the reset to the last step
    before its end), from a twin emulator playing the same games (``make_eval_env(...,
    screen=True)``).
    """
    from .video import EpisodeVideos, check_paths
    episodes, max_steps = int(episodes), int(max_steps)
    if episodes < 1 or max_steps < 1:
        raise ValueError(f"evaluate needs episodes >= 1 and max_steps >= 1, got {episodes}, "
                         f"{max_steps}")
    paths = check_paths(video, episodes)
    own = env is None
    if own:
        env = make_eval_env(game, episodes, max_steps, num_threads)
    elif env.num_envs != episodes:
        raise ValueError(f"evaluate: the env has {env.num_envs} games, {episodes} requested")
    screens = videos = None
    rng = np.random.default_rng([int(seed), 0x5EED])
    try:
        obs, _ = env.reset(seed=int(seed))
        scores = np.zeros(episodes, dtype=np.float64)
        active = np.ones(episodes, dtype=bool)
        actions = np.zeros(episodes, dtype=np.int64)
        if paths:
            screens = make_eval_env(game, episodes, max_steps, num_threads, screen=True)
            videos = EpisodeVideos(paths, VIDEO_FPS)
            videos.add_active(screens.reset(seed=int(seed))[0][:, 0], active)
        for _ in range(max_steps):
            idx = np.flatnonzero(active)
            logits = to_numpy(policy_fn(obs[idx]))
            if not greedy:
                logits = logits + rng.gumbel(size=logits.shape)
            actions[:] = 0
            actions[idx] = logits.argmax(axis=1)
            obs, r, te, tr, info = env.step(actions)
            scores[active] += r[active]
            active &= ~(te | tr)
            if screens is not None:       # an ended game's frame is already the next game's
                rgb, r2, te2, tr2, info2 = screens.step(actions)
                if not (np.array_equal(r, r2) and np.array_equal(te | tr, te2 | tr2) and
                        np.array_equal(info["frame_number"], info2["frame_number"])):
                    raise RuntimeError(f"{game}: the filmed twin emulator left the evaluated "
                                       f"games (another reward, end or frame count)")
                videos.add_active(rgb[:, 0], active)
            if not active.any():
                break
    finally:
        if own:
            env.close()
        if screens is not None:
            screens.close()
        if videos is not None:
            videos.close()
    return float(scores.mean()), [float(s) for s in scores]
