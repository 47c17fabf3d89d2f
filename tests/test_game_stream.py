"""A new game stream is one object with the names of ``envs.streams.GameStream`` and one entry
in ``envs.streams.STREAMS``: the toy stream below, defined here and registered for these tests
only, gets its command (`train.py toy`, with `--help`), study specs, resume, `train.py
evaluate` and `train.py report` without a project file edited.

The toy games: a 10x10 grid with one lit cell per step (channel 0 of 10, so the MinAtar
network reads it); game "Left" pays ``reward_scale`` when the action says which half the cell
is in (0: left, 1: right), game "Right" when it says the opposite (its third action never
pays). A game lasts 20 steps; sub-env i of a reset with seed s draws from RandomState(s + i).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

import train
from continual import flags, runconfig
from envs import streams
from envs.common import to_numpy
from tests.tiny import kill_ppo_at

GAME_STEPS = 20


class ToyEnv:
    def __init__(self, game: str, num_envs: int, seed: int = 0, reward_scale: float = 1.0,
                 max_steps: int = GAME_STEPS):
        self.game, self.num_envs, self.seed = Toy.canonical_game(game), int(num_envs), int(seed)
        self.reward_scale, self.max_steps = float(reward_scale), int(max_steps)
        self._obs = np.zeros((self.num_envs, *Toy.OBS_SHAPE), dtype=np.uint8)
        self._col = np.zeros(self.num_envs, dtype=np.int64)
        self._ret, self._len = np.zeros(self.num_envs), np.zeros(self.num_envs, dtype=np.int64)
        self._finished: list[tuple[float, int]] = []
        self._rngs: list[np.random.RandomState] = []

    def _draw(self, i: int) -> None:
        row, col = self._rngs[i].randint(10, size=2)
        self._obs[i] = 0
        self._obs[i, 0, row, col] = 1
        self._col[i] = col

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.seed = self.seed if seed is None else int(seed)
        self._rngs = [np.random.RandomState(self.seed + i) for i in range(self.num_envs)]
        self._ret[:], self._len[:] = 0.0, 0
        for i in range(self.num_envs):
            self._draw(i)
        return self._obs.copy()

    def step(self, actions):
        right = (self._col >= 5).astype(np.int64)
        target = right if self.game == "Left" else 1 - right
        rew = ((np.asarray(actions) == target) * self.reward_scale).astype(np.float32)
        self._ret += rew
        self._len += 1
        done = self._len >= self.max_steps
        for i in np.flatnonzero(done):
            self._finished.append((float(self._ret[i]), int(self._len[i])))
            self._ret[i], self._len[i] = 0.0, 0
        for i in range(self.num_envs):
            self._draw(i)
        return self._obs.copy(), rew, done, done.copy()

    def pop_finished(self):
        out, self._finished = self._finished, []
        return out

    def close(self) -> None:
        pass


@dataclass
class ToyOptions:
    reward_scale: float = field(default=1.0, metadata={"help": "reward of a right answer"})

    def __post_init__(self):
        if not self.reward_scale > 0:
            raise ValueError(f"reward_scale={self.reward_scale!r} must be > 0")
        self.reward_scale = float(self.reward_scale)

    def env_options(self) -> dict:
        return {"reward_scale": self.reward_scale}

    def net_options(self) -> dict:
        return {}


class Toy:
    """The toy stream: every name ``envs.streams.GameStream`` asks for."""
    HELP = "continual PPO over the toy stream (tests/test_game_stream.py)"
    GAMES = ("Left", "Right")
    OBS_SHAPE = (10, 10, 10)
    NETWORKS = ("minatar",)
    PRESETS = {"toy_tiny": dict(arch="minatar", num_envs=2, num_steps=16, update_epochs=1,
                                num_minibatches=2, channels_last=False, steps_per_task=64,
                                eval_episodes=2, eval_max_steps=GAME_STEPS,
                                importance_steps=32)}
    DEFAULT_PRESET = "toy_tiny"
    ENV_THREADS = False
    Options = ToyOptions
    SCORES = {"random": {"Left": GAME_STEPS / 2, "Right": GAME_STEPS / 3}}
    SCORES_SOURCE = "the uniform-random policy's expected score"
    SCORES_PROTOCOL = {"reward_scale": 1.0, "eval_max_steps": GAME_STEPS}
    NO_SCORES = "the toy's random scores hold for reward_scale 1 and 20-step games only"

    @staticmethod
    def canonical_game(name: str) -> str:
        from envs import names
        return names.canonical(name, Toy.GAMES, "toy game")

    @staticmethod
    def parse_games(spec):
        from envs import names
        return names.parse(spec, Toy.GAMES, "toy game")

    @staticmethod
    def num_actions(game: str) -> int:
        return {"Left": 2, "Right": 3}[Toy.canonical_game(game)]

    @staticmethod
    def make_train_env(game, num_envs, seed=0, num_threads=0, reward_scale=1.0):
        return ToyEnv(game, num_envs, seed, reward_scale)

    @staticmethod
    def make_eval_env(game, episodes, max_steps, num_threads=0, reward_scale=1.0):
        return ToyEnv(game, episodes, 0, reward_scale, max_steps)

    @staticmethod
    def evaluate(policy_fn, game, episodes=10, seed=0, greedy=True, max_steps=GAME_STEPS,
                 num_threads=0, env=None, video=None, reward_scale=1.0):
        if video:
            raise ValueError("the toy stream films nothing")
        env = env or Toy.make_eval_env(game, episodes, max_steps, reward_scale=reward_scale)
        rng = np.random.default_rng([int(seed), 0x5EED])
        obs, scores = env.reset(seed=int(seed)), np.zeros(episodes)
        active = np.ones(episodes, dtype=bool)
        for _ in range(max_steps):
            logits = to_numpy(policy_fn(obs))
            if not greedy:
                logits = logits + rng.gumbel(size=logits.shape)
            obs, r, done, _ = env.step(logits.argmax(axis=1))
            scores[active] += r[active]
            active &= ~done
            if not active.any():
                break
        return float(scores.mean()), [float(s) for s in scores]


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(streams.STREAMS, "toy", Toy)        # the one registry line
    return Toy


ARGS = ["toy", "--no-progress", "--threads", "1", "--eval-every", "32", "--checkpoint-every",
        "1"]


def results(path):
    return json.loads((path / "results.json").read_text())


def test_toy_stream_has_its_command_help_config_and_study(toy, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["toy", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())      # argparse wraps the help
    assert "--reward-scale" in out and "toy_tiny" in out and "Left, Right" in out
    cfg = flags.resolve("toy", {"games": "right,left", "reward_scale": "2"})
    assert cfg.games == ["Right", "Left"] and cfg.env_options() == {"reward_scale": 2.0}
    assert cfg.ppo.preset == "toy_tiny" and cfg.regularizer_hparams["lam"] == 100.0
    assert runconfig.to_dict(runconfig.from_dict("toy", runconfig.to_dict(cfg))) == \
        runconfig.to_dict(cfg)
    with pytest.raises(ValueError, match="reward_scale"):
        flags.resolve("toy", {"reward_scale": "0"})
    with pytest.raises(ValueError, match="does not fit train.py toy"):
        flags.resolve("toy", {"preset": "cpu"})
    with pytest.raises(ValueError, match="drop --env-threads"):
        flags.resolve("toy", {"env_threads": "2"})
    import study
    spec = tmp_path / "toy.toml"
    spec.write_text(f'command = "toy"\nout = "{tmp_path / "s"}"\n[args]\nreward_scale = 2\n'
                    f'[grid]\nregularizer = ["finetune", "ewc"]\nseed = [1, 2]\n')
    assert len(study.load(spec).trials) == 4


@pytest.mark.slow
def test_toy_stream_trains_resumes_exactly_evaluates_and_reports(toy, tmp_path, monkeypatch):
    args = ARGS + ["--regularizer", "agscl"]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0
    full = results(tmp_path / "full")
    assert full["tasks"] == ["Left", "Right"] and len(full["reward_matrix"]) == 2

    revive = kill_ppo_at(monkeypatch, 1, 1)               # killed mid-task
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 130
    revive()
    assert train.main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    cut = results(tmp_path / "cut")
    assert cut["reward_matrix"] == full["reward_matrix"]
    assert [c["score"] for c in cut["eval_curve"]] == [c["score"] for c in full["eval_curve"]]
    assert cut["sparsity"] == full["sparsity"]

    # the finished run's last checkpoint scores its reward matrix's last row again
    assert train.main(["evaluate", str(tmp_path / "full")]) == 0
    ev = json.loads((tmp_path / "full" / "evaluation.json").read_text())
    assert [ev["games"][g]["greedy"]["mean"] for g in full["tasks"]] == full["reward_matrix"][-1]

    assert train.main(ARGS + ["--regularizer", "finetune", "--out", str(tmp_path / "ft")]) == 0
    assert train.main(["report", str(tmp_path / "ft"), str(tmp_path / "full"),
                       "--out", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["reference_scores"]["random"] == Toy.SCORES["random"]
    assert rep["reference_scores"]["source"] == Toy.SCORES_SOURCE
    assert [r["label"] for r in rep["runs"]] == ["ft", "full"]
