"""PPO on the Atari task stream, as a ``Learner`` (see ``agents/base.py``).

One unit = one PPO iteration: a rollout of ``num_envs * num_steps`` env steps with the current
policy, then ``update_epochs`` passes over it in ``num_minibatches`` shuffled minibatches.
The algorithm follows CleanRL's ``ppo_atari.py``: GAE(lambda), clipped surrogate policy loss,
clipped value loss, per-minibatch advantage normalisation, entropy bonus, global gradient-norm
clipping, Adam with eps 1e-5, learning rate annealed linearly to 0 *within each task*
(lr_unit = lr * (1 - unit / units_per_task)). Truncation is treated as termination.

Choices specific to continual learning (documented here, as the brief asks):

* **Fresh Adam per task.** ``begin_task`` creates a new optimizer (the published code did the
  same; the previous game's moment estimates would otherwise push the shared trunk). Only the
  trunk and the current game's head receive gradients; other heads have ``grad=None`` and are
  left untouched by Adam.
* **Regularizer hooks, per minibatch:** ``loss = ppo_loss + reg.penalty()``; ``backward``;
  ``reg.before_step()`` (the raw gradients, as the interface promises: SI's and RWALK's
  path integrals need the unclipped task gradient); ``clip_grad_norm_``; ``optimizer.step()``; ``reg.after_step(lr)`` (AGS-CL's proximal step with step size = the
  current annealed lr). ``reg.begin_epoch(num_minibatches)`` before and ``reg.after_epoch(lr)``
  after every PPO epoch.
* **Importance data** (``importance_data``): observations of a fresh rollout of
  ``importance_steps`` env steps (default: one rollout's worth) collected with the task's
  *final* policy on seeded training envs, with the actions that policy sampled. ``loss_fn`` is
  the negative mean log-likelihood of those actions, -mean log pi(a|s), so EWC's (per-sample,
  ``fisher_batch=1``) Fisher is the Fisher of the policy estimated with actions sampled from it
  (a Monte-Carlo estimate of the true Fisher of pi, since a ~ pi(.|s)); AGS-CL's Omega is the trunk's mean activation on the
  same observations. A fresh rollout rather than the last training buffer: it reflects the
  final weights, it is the same whether or not the run was interrupted, and checkpoints need
  not carry a rollout buffer (230 MB with the paper preset).
* **Reproducibility.** All learner randomness (action sampling, minibatch order) comes from a
  ``torch.Generator`` re-seeded from (seed, task, unit) at the start of every unit; the model
  is initialised from its own seed; the training games start at each task start, and again
  every ``ENV_SEGMENT_STEPS`` agent steps per env, from seeds derived from (seed, task, unit),
  and run on across checkpoints. A checkpoint stores the segment's seed and the actions sent
  since (uint8, <= 100 KB for the cpu preset); a resumed run resets the envs with that seed and
  replays the actions, which rebuilds the games exactly (ALE is deterministic given both;
  tested), so it repeats the uninterrupted run bit for bit. (Until 2026-11-26 every checkpoint
  ended the games instead: with a checkpoint every 10 units, about a third of the training
  steps were in games cut before their end, and no game ran past 1280 agent steps. Runs
  checkpointed by that code keep its behaviour when resumed, so that each stays one run.) A
  re-seeded ALE reset reloads the ROM, so re-seeding keeps the emulators (tested). The global
  torch/numpy RNGs are never used here.

Speed (2-core AVX2 machine; ``bench/atari_sps.py``): observations are stored as uint8; the
update runs channels-last activations (model); the rollout runs under ``torch.inference_mode``;
a segment restart re-seeds the emulators instead of re-creating them; evaluation envs are
cached per game. On a CPU shared with other jobs, export ``OMP_WAIT_POLICY=PASSIVE`` before
torch is imported: libgomp's default spin-waiting made 2-thread inference 50x and the update 3x
slower as soon as another process used a core. ``bf16=True`` autocasts the forward passes to
bfloat16, for CPUs with BF16 instructions and GPUs (off by default: this AVX2 CPU has no BF16
and ran it 10x slower). Tried and dropped (no gain or slower): overlapping env stepping of
one half of the envs with inference of the other half (no gain: both already use both cores),
1-thread inference, space-to-depth for conv1 (no gain once channels-last).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.atari import derive_seed, evaluate as evaluate_games, make_eval_env, make_train_env, \
    num_actions, parse_games
from regularizers.base import Regularizer

from .atari_net import ARCHS, ActorCritic


@dataclass
class PPOConfig:
    """Every PPO hyperparameter in one place. ``PPOConfig.preset('cpu' | 'paper', **overrides)``."""
    preset: str = "cpu"
    # rollout
    num_envs: int = 8
    num_steps: int = 128
    # optimisation
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.1
    clip_vloss: bool = True
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    target_kl: float | None = None
    # task length
    steps_per_task: int = 1_000_000
    # network
    arch: str = "nature"
    seed: int = 1
    # evaluation (separate full-game envs, raw score)
    eval_episodes: int = 10
    eval_max_steps: int = 27_000          # agent steps = 108k frames, the usual cap
    eval_sampled: bool = True             # also report the sampled-action score
    # end-of-task importance data (Omega / Fisher)
    importance_steps: int = 0             # 0 = one rollout (num_envs * num_steps)
    importance_batch_size: int = 32       # batches of the importance data (memory per pass;
                                          # EWC's per-sample Fisher does not depend on it)
    # speed / machine
    device: str = "cpu"
    torch_threads: int = 0                # 0 = leave torch's setting alone
    env_threads: int = 0                  # ALE worker threads; 0 = min(num_envs, cores)
    channels_last: bool = True
    # bf16 autocast of the model's forward passes in rollouts, updates and evaluation (losses,
    # optimizer, regularizers and importance data stay float32). Worth it only where the CPU has
    # BF16 instructions (AVX-512-BF16, AMX) or on a GPU; on AVX2 it was 10x slower.
    bf16: bool = False

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        return tuple(PRESETS)

    @classmethod
    def from_preset(cls, name: str = "cpu", **overrides) -> "PPOConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown PPO preset {name!r}; choose one of: {', '.join(PRESETS)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"PPOConfig has no field {', '.join(unknown)}; fields: "
                             f"{', '.join(sorted(names))}")
        cfg = cls(**{**PRESETS[name], "preset": name, **overrides})
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "PPOConfig":
        def need(ok: bool, what: str):
            if not ok:
                raise ValueError(f"bad PPO config: {what}")
        for k in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "steps_per_task",
                  "eval_episodes", "eval_max_steps", "importance_batch_size"):
            v = getattr(self, k)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                 f"{k}={v!r} must be an integer >= 1")
        for k in ("importance_steps", "torch_threads", "env_threads"):
            v = getattr(self, k)
            need(isinstance(v, int) and v >= 0, f"{k}={v!r} must be an integer >= 0")
        need(self.batch_size % self.num_minibatches == 0,
             f"num_envs * num_steps = {self.batch_size} must be divisible by num_minibatches="
             f"{self.num_minibatches}")
        need(self.minibatch_size >= 2, f"minibatch size {self.minibatch_size} must be >= 2")
        for k, lo, hi in (("learning_rate", 0, None), ("adam_eps", 0, None),
                          ("clip_coef", 0, None), ("max_grad_norm", 0, None)):
            v = float(getattr(self, k))
            need(math.isfinite(v) and v > lo, f"{k}={getattr(self, k)!r} must be > {lo}")
        for k in ("gamma", "gae_lambda"):
            v = float(getattr(self, k))
            need(0 <= v <= 1, f"{k}={getattr(self, k)!r} must be in [0, 1]")
        for k in ("vf_coef", "ent_coef"):
            v = float(getattr(self, k))
            need(math.isfinite(v) and v >= 0, f"{k}={getattr(self, k)!r} must be >= 0")
        need(self.target_kl is None or float(self.target_kl) > 0,
             f"target_kl={self.target_kl!r} must be None or > 0")
        for k in ("bf16", "channels_last", "anneal_lr", "clip_vloss", "norm_adv", "eval_sampled"):
            v = getattr(self, k)
            need(isinstance(v, bool), f"{k}={v!r} must be true or false")
        need(self.arch in ARCHS, f"arch={self.arch!r} must be one of {', '.join(ARCHS)}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            need(False, f"device={self.device!r} is not a torch device")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    # CleanRL ppo_atari.py, sized for a 2-core CPU.
    "cpu": dict(num_envs=8, num_steps=128, update_epochs=4, num_minibatches=4,
                learning_rate=2.5e-4, adam_eps=1e-5, clip_coef=0.1, vf_coef=0.5, ent_coef=0.01,
                gamma=0.99, gae_lambda=0.95, max_grad_norm=0.5, steps_per_task=1_000_000,
                # games capped at 10k agent steps (40k frames, ~11 min of play) to bound the
                # evaluation time on a CPU: long games (VideoPinball, CrazyClimber, a greedy
                # policy that stalls) score lower than under the usual 27k cap of `paper`
                eval_episodes=10, eval_max_steps=10_000),
    # The published AGS-CL RL setup (reference facts, section "Reinforcement learning").
    "paper": dict(num_envs=128, num_steps=64, update_epochs=10, num_minibatches=64,
                  learning_rate=3e-4, adam_eps=1e-5, clip_coef=0.2, vf_coef=0.5, ent_coef=0.0,
                  gamma=0.99, gae_lambda=0.95, max_grad_norm=0.5, steps_per_task=5_000_000,
                  eval_episodes=10, eval_max_steps=27_000),
}


# Emulator restarts: the training games run on across checkpoints; every ENV_SEGMENT_STEPS agent
# steps per env (and at each task start) all games end and restart from seeds derived from
# (seed, task, unit). A resumed run replays the actions since the last restart to rebuild the
# games exactly, so the segment bounds the replay (<= 12,800 x num_envs env steps: ~1 min for
# the cpu preset) while cutting few games (~1 in 15 of a 800-step game).
ENV_SEGMENT_STEPS = 12_800


# the per-minibatch statistics of an update (train_unit reports their means, "loss" aside)
_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "grad_norm",
          "penalty", "loss")


# Fields added after runs existed, with the value those runs had: a run config records them only
# when they differ from it, so that older runs still resume (their config has no such key).
LATER_FIELDS: dict[str, Any] = {"bf16": False}


class PPOLearner:
    """PPO learner over a stream of Atari games; one multi-head ``ActorCritic`` for all."""

    matrix_key = "reward_matrix"

    def __init__(self, config: PPOConfig, games: list[str] | str):
        self.config = config.validate()
        self.task_names = parse_games(games)
        self.num_actions = [num_actions(g) for g in self.task_names]
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.device = torch.device(config.device)
        with torch.random.fork_rng(devices=[]):              # leave the global RNG alone
            torch.manual_seed(derive_seed(config.seed, "model-init"))
            self.model = ActorCritic(self.num_actions, arch=config.arch,
                                     channels_last=config.channels_last).to(self.device)
        self.optimizer: torch.optim.Optimizer | None = None
        self.task: int | None = None
        self.envs = None                      # AtariTrainEnv, created lazily in train_unit
        self._envs_game: str | None = None
        self._reseed = True                   # (re)seed self.envs at the next train_unit
        self._eval_envs: dict[tuple, Any] = {}
        self._next_obs: np.ndarray | None = None
        self._next_done: np.ndarray | None = None
        # the current env segment: its reset seed and every action sent since (for the replay)
        self._seg_seed: int | None = None
        self._seg_actions: list[np.ndarray] = []
        self._replay: tuple[int, np.ndarray] | None = None
        self._legacy_restarts = False       # runs checkpointed by older code: see load_state_dict
        self.counters: dict[str, float] = {"env_steps": 0, "train_time": 0.0, "time_env": 0.0,
                                           "time_inference": 0.0, "time_update": 0.0,
                                           "units": 0}

    # --- protocol: sizes -------------------------------------------------------------------
    def units_per_task(self, task: int) -> int:
        return max(1, self.config.steps_per_task // self.config.batch_size)

    def steps_per_unit(self, task: int) -> int:
        return self.config.batch_size

    # --- task lifecycle --------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.config.learning_rate,
                                eps=self.config.adam_eps)

    def begin_task(self, task: int) -> None:
        self._check_task(task)
        self._reseed = True
        self._replay = None
        self.task = task
        self.optimizer = self._make_optimizer()

    def end_task(self, task: int) -> None:
        self._reseed = True

    def checkpoint_boundary(self) -> None:
        """Nothing happens to the games in progress: a run resumed from this checkpoint
        rebuilds them by replaying the segment's actions (``load_state_dict``). Runs
        checkpointed by older code, which ended the games here, keep doing so."""
        if self._legacy_restarts:
            self._reseed = True
            self._next_obs = self._next_done = None

    def checkpoint_anywhere(self) -> bool:
        return not self._legacy_restarts

    def close(self) -> None:
        """Release every emulator (training and cached evaluation envs)."""
        if self.envs is not None:
            self.envs.close()
        for env in self._eval_envs.values():
            env.close()
        self.envs, self._envs_game, self._eval_envs = None, None, {}
        self._reseed = True
        self._next_obs = self._next_done = None

    def _check_task(self, task: int) -> None:
        if not 0 <= task < len(self.task_names):
            raise ValueError(f"task {task} is not in this stream of {len(self.task_names)} "
                             f"games ({', '.join(self.task_names)})")

    def _open_envs(self, task: int, unit: int, seed: int | None = None) -> None:
        """Create the task's training envs if needed and reset them with ``seed`` (default:
        derived from (seed, task, unit)): a new segment of games."""
        cfg = self.config
        game = self.task_names[task]
        if seed is None:
            seed = derive_seed(cfg.seed, "train-envs", task, unit)
        if self.envs is None or self._envs_game != game:
            if self.envs is not None:
                self.envs.close()
            self.envs = make_train_env(game, cfg.num_envs, seed, num_threads=cfg.env_threads)
            self._envs_game = game
        self._next_obs = self.envs.reset(seed=seed)
        self._next_done = np.zeros(cfg.num_envs, dtype=bool)
        self._reseed = False
        self._seg_seed, self._seg_actions = seed, []

    def _replay_segment(self, task: int) -> None:
        """Rebuild the games a checkpoint interrupted: reset the envs with the segment's seed and
        send the recorded actions again (ALE is deterministic given both)."""
        seed, actions = self._replay
        self._replay = None
        self._open_envs(task, -1, seed=seed)
        for a in actions:
            self._next_obs, _, self._next_done, _ = self.envs.step(a.astype(np.int64))
        self.envs.pop_finished()            # those games were logged before the interruption
        self._seg_actions = list(actions)

    # --- one PPO iteration -----------------------------------------------------------------
    def train_unit(self, task: int, unit: int, reg: Any = None) -> dict[str, float]:
        if self.optimizer is None or self.task != task:
            raise RuntimeError(f"train_unit(task={task}) before begin_task({task})")
        reg = reg if reg is not None else Regularizer(self.model)
        cfg = self.config
        t_start = time.perf_counter()
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "unit", task, unit))
        if self._replay is not None:
            self._replay_segment(task)
        if (self._reseed or self.envs is None or self._envs_game != self.task_names[task]
                or len(self._seg_actions) >= ENV_SEGMENT_STEPS):
            self._open_envs(task, unit)
        units = self.units_per_task(task)
        lr = cfg.learning_rate * (1.0 - unit / units) if cfg.anneal_lr else cfg.learning_rate
        for g in self.optimizer.param_groups:
            g["lr"] = lr

        self.model.train()
        roll = self._rollout(task, gen)
        t_upd = time.perf_counter()
        stats = self._update(task, unit, roll, gen, reg, lr)
        t_end = time.perf_counter()

        steps = cfg.batch_size
        dt = t_end - t_start
        time_update = t_end - t_upd
        c = self.counters
        c["env_steps"] += steps
        c["train_time"] += dt
        c["time_env"] += roll["time_env"]
        c["time_inference"] += roll["time_inference"]
        c["time_update"] += time_update
        c["units"] += 1
        out = dict(stats)
        out.update(lr=lr, sps=steps / dt, time_env=roll["time_env"],
                   time_inference=roll["time_inference"], time_update=time_update,
                   time_total=dt)
        finished = self.envs.pop_finished()
        if finished:
            out["episode_return"] = float(np.mean([r for r, _ in finished]))
            out["episode_length"] = float(np.mean([n for _, n in finished]))
            out["episodes"] = float(len(finished))
        return out

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    @torch.inference_mode()
    def _policy_step(self, obs: torch.Tensor, task: int, gen: torch.Generator):
        with self._autocast():
            logits, value = self.model(obs, task)
        logp_all = F.log_softmax(logits.float(), dim=-1).cpu()
        action = torch.multinomial(logp_all.exp(), 1, generator=gen).squeeze(1)
        logprob = logp_all.gather(1, action[:, None]).squeeze(1)
        return action, logprob, value.float().cpu()

    def _rollout(self, task: int, gen: torch.Generator) -> dict[str, Any]:
        cfg = self.config
        T, N = cfg.num_steps, cfg.num_envs
        dev = self.device
        obs = torch.empty((T, N, 4, 84, 84), dtype=torch.uint8, device=dev)
        actions = torch.empty((T, N), dtype=torch.long)
        logprobs = torch.empty((T, N))
        values = torch.empty((T, N))
        rewards = torch.empty((T, N))
        dones = torch.empty((T, N))
        time_env = time_inf = 0.0
        env = self.envs
        for t in range(T):
            t0 = time.perf_counter()
            x = obs[t]
            x.copy_(torch.from_numpy(self._next_obs))
            dones[t] = torch.from_numpy(self._next_done)
            a, lp, v = self._policy_step(x, task, gen)
            actions[t] = a
            logprobs[t] = lp
            values[t] = v
            t1 = time.perf_counter()
            o, r, d, _ = env.step(a.numpy())
            self._seg_actions.append(a.numpy().astype(np.uint8))
            rewards[t] = torch.from_numpy(r)
            self._next_obs, self._next_done = o, d
            time_inf += t1 - t0
            time_env += time.perf_counter() - t1
        t0 = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            next_value = self.model(torch.from_numpy(self._next_obs).to(dev), task)[1].float().cpu()
        next_done = torch.from_numpy(self._next_done).float()
        time_inf += time.perf_counter() - t0
        return dict(obs=obs, actions=actions, logprobs=logprobs, values=values,
                    rewards=rewards, dones=dones, next_value=next_value, next_done=next_done,
                    time_env=time_env, time_inference=time_inf)

    def _gae(self, roll: dict) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        rewards, values, dones = roll["rewards"], roll["values"], roll["dones"]
        T = rewards.shape[0]
        adv = torch.zeros_like(rewards)
        lastgaelam = torch.zeros_like(rewards[0])
        for t in reversed(range(T)):
            if t == T - 1:
                nonterminal = 1.0 - roll["next_done"]
                next_values = roll["next_value"]
            else:
                nonterminal = 1.0 - dones[t + 1]
                next_values = values[t + 1]
            delta = rewards[t] + cfg.gamma * next_values * nonterminal - values[t]
            lastgaelam = delta + cfg.gamma * cfg.gae_lambda * nonterminal * lastgaelam
            adv[t] = lastgaelam
        return adv, adv + values

    def _update(self, task: int, unit: int, roll: dict, gen: torch.Generator, reg: Any,
                lr: float) -> dict[str, float]:
        cfg = self.config
        dev = self.device
        adv, returns = self._gae(roll)
        B, mb = cfg.batch_size, cfg.minibatch_size
        b_obs = roll["obs"].reshape(B, 4, 84, 84)
        b_actions = roll["actions"].reshape(B).to(dev)
        b_logprobs = roll["logprobs"].reshape(B).to(dev)
        b_adv = adv.reshape(B).to(dev)
        b_returns = returns.reshape(B).to(dev)
        b_values = roll["values"].reshape(B).to(dev)
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = cfg.clip_coef
        # Each minibatch's statistics stay on the device and are read once per epoch: reading
        # them per minibatch (.item()) would make the CPU wait for the GPU 9 times a minibatch.
        rows = torch.empty((cfg.update_epochs * cfg.num_minibatches, len(_STATS)), device=dev)
        zero = torch.zeros((), device=dev)
        n = 0
        for epoch in range(cfg.update_epochs):
            reg.begin_epoch(cfg.num_minibatches)
            perm = torch.randperm(B, generator=gen).to(dev)
            first = n
            for i in range(cfg.num_minibatches):
                idx = perm[i * mb:(i + 1) * mb]
                with self._autocast():
                    logits, newvalue = self.model(b_obs[idx], task)
                logp_all = F.log_softmax(logits.float(), dim=-1)
                newlogprob = logp_all.gather(1, b_actions[idx, None]).squeeze(1)
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
                logratio = newlogprob - b_logprobs[idx]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
                mb_adv = b_adv[idx]
                if cfg.norm_adv:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
                newvalue = newvalue.float()
                if cfg.clip_vloss:
                    v_unclipped = (newvalue - b_returns[idx]) ** 2
                    v_clipped = b_values[idx] + torch.clamp(newvalue - b_values[idx], -clip, clip)
                    v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - b_returns[idx]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[idx]) ** 2).mean()
                penalty = reg.penalty()
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss + penalty
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                reg.before_step()            # raw gradients (SI/RWALK path integrals, HAT)
                grad_norm = nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()
                reg.after_step(lr)
                rows[n] = torch.stack([pg_loss.detach(), v_loss.detach(), entropy.detach(),
                                       approx_kl, clipfrac, grad_norm.detach().float(),
                                       (zero + penalty).detach().float(), loss.detach()])
                n += 1
            epoch_rows = rows[first:n].cpu()                # the epoch's one wait for the device
            self._check_finite(epoch_rows, task, unit, epoch)
            reg.after_epoch(lr)
            last_kl = float(epoch_rows[-1, _STATS.index("approx_kl")])
            if cfg.target_kl is not None and last_kl > cfg.target_kl:
                break
        means = rows[:n].double().mean(0).tolist()
        out = {k: means[j] for j, k in enumerate(_STATS) if k != "loss"}
        y_pred, y_true = roll["values"].reshape(-1), returns.reshape(-1)
        var_y = y_true.var().item()
        out["explained_variance"] = float("nan") if var_y == 0 else \
            1.0 - (y_true - y_pred).var().item() / var_y
        return out

    def _check_finite(self, epoch_rows: torch.Tensor, task: int, unit: int, epoch: int) -> None:
        """A non-finite loss or gradient norm in the epoch stops the run, naming the first
        minibatch it happened in (the parameters are lost with the unit: the trainer keeps the
        last good checkpoint)."""
        L, G = _STATS.index("loss"), _STATS.index("grad_norm")
        bad = ~torch.isfinite(epoch_rows[:, [L, G]]).all(1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            r = dict(zip(_STATS, epoch_rows[i].tolist()))
            raise FloatingPointError(
                f"PPO loss is {r['loss']} (gradient norm {r['grad_norm']}) on task {task} "
                f"({self.task_names[task]}), unit {unit}, epoch {epoch}, minibatch {i}: policy "
                f"loss {r['policy_loss']}, value loss {r['value_loss']}, entropy "
                f"{r['entropy']}, regularizer penalty {r['penalty']}")

    # --- importance data, evaluation -------------------------------------------------------
    def importance_data(self, task: int):
        """Batches (obs uint8, actions) of a fresh rollout of the final policy; see the module
        docstring. loss_fn(model, batch) = -mean log pi_task(a | s)."""
        self._check_task(task)
        cfg = self.config
        steps = cfg.importance_steps or cfg.batch_size
        n_env = min(cfg.num_envs, steps)
        T = -(-steps // n_env)
        game, seed = self.task_names[task], derive_seed(cfg.seed, "importance", task)
        reuse = self.envs is not None and self._envs_game == game and self.envs.num_envs == n_env
        env = self.envs if reuse else make_train_env(game, n_env, seed,
                                                     num_threads=cfg.env_threads)
        self._reseed = True                   # training (if any) restarts its games afterwards
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "importance-actions", task))
        obs_l, act_l = [], []
        was_training = self.model.training
        self.model.eval()
        try:
            o = env.reset(seed=seed)
            for _ in range(T):
                x = torch.from_numpy(o).to(self.device)
                a, _, _ = self._policy_step(x, task, gen)
                obs_l.append(x.clone())
                act_l.append(a.to(self.device))
                o = env.step(a.numpy())[0]
            env.pop_finished()
        finally:
            if not reuse:
                env.close()
            self.model.train(was_training)
        obs = torch.cat(obs_l)[:steps]
        actions = torch.cat(act_l)[:steps]
        bs = cfg.importance_batch_size
        batches = [(obs[i:i + bs], actions[i:i + bs]) for i in range(0, steps, bs)]

        def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
            logits, _ = model(batch[0], task)
            return F.cross_entropy(logits.float(), batch[1])

        return batches, loss_fn

    def policy_fn(self, task: int):
        """obs (uint8 numpy) -> logits, for ``envs.atari.evaluate``."""
        def fn(obs: np.ndarray) -> torch.Tensor:
            with torch.inference_mode(), self._autocast():
                return self.model(torch.from_numpy(obs).to(self.device), task)[0].float().cpu()
        return fn

    def evaluate(self, task: int) -> dict[str, float]:
        """Mean raw score over ``eval_episodes`` full games: greedy actions ('score', the
        paper's protocol) and, if ``eval_sampled``, sampled actions ('score_sampled')."""
        self._check_task(task)
        cfg = self.config
        game = self.task_names[task]
        seed = derive_seed(cfg.seed, "eval", task)
        key = (game, cfg.eval_episodes, cfg.eval_max_steps)
        if key not in self._eval_envs:        # kept for later evaluations (re-seeded each time)
            self._eval_envs[key] = make_eval_env(game, cfg.eval_episodes, cfg.eval_max_steps,
                                                 cfg.env_threads)
        env = self._eval_envs[key]
        was_training = self.model.training
        self.model.eval()
        try:
            out = {"score": evaluate_games(self.policy_fn(task), game, cfg.eval_episodes, seed,
                                           greedy=True, max_steps=cfg.eval_max_steps,
                                           env=env)[0]}
            if cfg.eval_sampled:
                out["score_sampled"] = evaluate_games(
                    self.policy_fn(task), game, cfg.eval_episodes, seed, greedy=False,
                    max_steps=cfg.eval_max_steps, env=env)[0]
        finally:
            self.model.train(was_training)
        return out

    # --- results & persistence -------------------------------------------------------------
    def extra_results(self) -> dict[str, Any]:
        c = self.counters
        tt = c["train_time"]
        return {"sps": c["env_steps"] / tt if tt else 0.0,
                "env_steps": int(c["env_steps"]),
                "time_split": {k: c[k] / tt if tt else 0.0
                               for k in ("time_env", "time_inference", "time_update")},
                "torch_threads": torch.get_num_threads(),
                "ppo_config": self.config.to_dict()}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "task": self.task,
                "counters": dict(self.counters),
                "task_names": list(self.task_names),
                "env_segment": self._segment_state(),
                "legacy_restarts": self._legacy_restarts}

    def _segment_state(self) -> dict | None:
        """The running games, as (seed, actions since the reset); None if the next unit starts
        new games anyway (task boundary, fresh learner)."""
        if self._replay is not None:            # loaded, not replayed yet: pass it on
            seed, acts = self._replay
            return {"game": self.task_names[self.task], "seed": seed, "actions": acts}
        if self._reseed or self.envs is None or self._seg_seed is None or self._legacy_restarts:
            return None
        acts = np.stack(self._seg_actions) if self._seg_actions else \
            np.zeros((0, self.config.num_envs), np.uint8)
        return {"game": self._envs_game, "seed": int(self._seg_seed), "actions": acts}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("task_names", self.task_names)) != list(self.task_names):
            raise ValueError(f"PPO state is for games {state.get('task_names')}, this learner "
                             f"has {self.task_names}")
        self.model.load_state_dict(state["model"])
        self._reseed = True
        # A checkpoint of older code ("env_segment" missing) was a point where that run ended
        # its games; the run keeps that behaviour so that it stays one consistent run.
        self._legacy_restarts = bool(state.get("legacy_restarts", "env_segment" not in state))
        seg = state.get("env_segment")
        self._replay = None if seg is None else (int(seg["seed"]), np.asarray(seg["actions"]))
        self.task = state.get("task", self.task)
        if state.get("optimizer") is not None:
            if self.optimizer is None:
                self.optimizer = self._make_optimizer()
            self.optimizer.load_state_dict(state["optimizer"])
        self.counters.update(state.get("counters", {}))
