"""Training games that survive a checkpoint: a training env (``AtariTrainEnv`` or
``MinAtarEnv``) that logs every action since its last seeded reset, so that a resumed run can
rebuild the running games exactly.

ALE and MinAtar are deterministic given the reset seed and the actions, so ``load_state_dict`` (reset with
the segment's seed, send the logged actions again) puts every emulator where it was. The
caller starts a new *segment* (``reset(seed)``) at each task start and whenever
``segment_full`` says the log has reached ``segment_steps`` agent steps per env: that bounds
the replay (12,800 x num_envs env steps: about a minute for the cpu preset) while cutting few
games (about 1 in 15 of an 800-step game). The log is uint8 (<= 100 KB for the cpu preset).

Same interface as the env it wraps: ``reset``, ``step``, ``pop_finished``, ``close``.
"""
from __future__ import annotations

import numpy as np

SEGMENT_STEPS = 12_800


class ReplayableTrainEnv:
    """``env``: a training env with ``game``, ``num_envs``, ``reset(seed)``, ``step(actions)``
    -> (obs, reward, done, game_over), ``pop_finished()`` and ``close()``."""

    def __init__(self, env, segment_steps: int | None = None):
        self.env = env
        self.game, self.num_envs = self.env.game, self.env.num_envs
        self.segment_steps = int(segment_steps or SEGMENT_STEPS)
        self.seed: int | None = None
        self._actions: list[np.ndarray] = []

    @property
    def segment_full(self) -> bool:
        return len(self._actions) >= self.segment_steps

    def reset(self, seed: int) -> np.ndarray:
        """A new segment: every game restarts, sub-env i seeded with ``seed + i``."""
        self.seed, self._actions = int(seed), []
        return self.env.reset(seed=self.seed)

    def step(self, actions: np.ndarray):
        """-> (obs, clipped_reward, done, game_over), as ``AtariTrainEnv.step``."""
        out = self.env.step(actions)
        self._actions.append(np.asarray(actions).astype(np.uint8))
        return out

    def pop_finished(self) -> list[tuple[float, int]]:
        return self.env.pop_finished()

    def state_dict(self) -> dict:
        acts = np.stack(self._actions) if self._actions else \
            np.zeros((0, self.num_envs), np.uint8)
        return {"game": self.game, "seed": self.seed, "actions": acts}

    def load_state_dict(self, state: dict) -> tuple[np.ndarray, np.ndarray]:
        """Rebuild the games of ``state``; returns the (obs, done) they stand at. The games
        finished during the replay were logged before the checkpoint and are dropped."""
        if state["game"] != self.game:
            raise ValueError(f"env state is for {state['game']}, these envs play {self.game}")
        obs, done = self.env.reset(seed=int(state["seed"])), np.zeros(self.num_envs, bool)
        for a in np.asarray(state["actions"]):
            obs, _, done, _ = self.env.step(a.astype(np.int64))
        self.env.pop_finished()
        self.seed, self._actions = int(state["seed"]), list(np.asarray(state["actions"]))
        return obs, done

    def close(self) -> None:
        self.env.close()
