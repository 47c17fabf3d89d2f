"""PPO on a game stream (``envs/streams.py``), as a ``Learner`` (``agents/base.py``); CleanRL's
ppo_atari.py.

One unit = one PPO iteration, read top to bottom in ``train_unit``: a rollout of num_envs x
num_steps env steps, GAE(lambda), then update_epochs passes in num_minibatches shuffled
minibatches (clipped surrogate and value losses, entropy bonus, per-minibatch advantage
normalisation, gradient-norm clipping, Adam eps 1e-5, lr annealed to 0 within each task).
Truncation counts as termination. Hyperparameters: ``agents/config.py``; presets: each stream's.

Continual learning: one actor and one critic head per game and a fresh Adam per task, as the
published code. The regularizer's hooks run around every minibatch step
(``agents.base.minibatch_step``) and epoch. Importance data for ``reg.end_task``: a fresh
rollout of the task's final policy with the actions it sampled; loss_fn = -mean log pi(a|s),
so EWC's per-sample Fisher is a Monte-Carlo estimate of the policy's Fisher and AGS-CL's Omega
the trunk's mean activation on the same observations.

Exact resume: all randomness comes from a generator re-seeded from (seed, task, unit) at every
unit, and the training games run on across checkpoints (``envs/replay.py`` rebuilds them). The
global RNGs are never used.

Diagnostics (``agents.base.GameLearner``): ``record_video`` films one evaluation game, and
``dormant_units`` measures the trunk's dormant units on ``DORMANT_OBS`` observations of the
last rollout, spread evenly over its steps and games.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from envs import streams
from envs.common import derive_seed
from envs.replay import ReplayableTrainEnv
from regularizers.base import Regularizer

from .atari_net import ARCHS, ActorCritic
from .minatar_net import MinAtarActorCritic
from .base import DORMANT_OBS, dormant_units, initial_weights, minibatch_step, \
    plasticity_metrics
from .config import PPOConfig, native_bf16, resolve_bf16

# The networks a stream may name (its NETWORKS, PPOConfig.arch): (actions per task, config,
# the stream's net_options) -> a multi-head actor-critic
NETWORKS = {
    **{arch: (lambda sizes, cfg, arch=arch, **kw: ActorCritic(
        sizes, arch=arch, channels_last=cfg.channels_last, **kw)) for arch in ARCHS},
    "minatar": lambda sizes, cfg, **kw: MinAtarActorCritic(sizes, **kw),
}

# the per-minibatch statistics of an update (train_unit reports their means, "loss" aside)
STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "grad_norm",
         "penalty", "loss")


def gae(rewards, values, dones, next_value, next_done, gamma: float, lam: float):
    """Generalised advantage estimation over a (T, N) rollout; ``dones[t]`` = the episode
    ended before step t. Returns (advantages, returns = advantages + values)."""
    # step t's successor: step t + 1, or after the last step the state the rollout stopped in
    nonterminal = 1.0 - torch.cat([dones[1:], next_done[None]])
    next_values = torch.cat([values[1:], next_value[None]])
    delta = rewards + gamma * next_values * nonterminal - values     # every step at once
    decay = gamma * lam * nonterminal
    adv = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        lastgaelam = delta[t] + decay[t] * lastgaelam
        adv[t] = lastgaelam
    return adv, adv + values


def ppo_losses(logits, newvalue, actions, old_logprob, old_value, adv, returns, clip: float,
               norm_adv: bool = True, clip_vloss: bool = True) -> dict[str, torch.Tensor]:
    """PPO's clipped surrogate policy loss, (clipped) value loss and entropy of a minibatch,
    with the approximate KL and the clipped fraction as diagnostics."""
    logp_all = F.log_softmax(logits.float(), dim=-1)
    newlogprob = logp_all.gather(1, actions[:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    logratio = newlogprob - old_logprob
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
    if norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
    newvalue = newvalue.float()
    if clip_vloss:
        v_unclipped = (newvalue - returns) ** 2
        v_clipped = old_value + torch.clamp(newvalue - old_value, -clip, clip)
        v_loss = 0.5 * torch.max(v_unclipped, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((newvalue - returns) ** 2).mean()
    return dict(policy_loss=pg_loss, value_loss=v_loss, entropy=entropy, approx_kl=approx_kl,
                clipfrac=clipfrac)


class PPOLearner:
    """PPO over a stream of games (``env``: a name in ``envs.streams.STREAMS``); one multi-head
    actor-critic for all (``NETWORKS[config.arch]``, one of the stream's NETWORKS).
    ``env_options``: keyword arguments of the stream's env constructors (MinAtar: sticky);
    ``net_options``: of its network's (MinAtar: ``hidden``, the fc width)."""

    matrix_key = "reward_matrix"

    def __init__(self, config: PPOConfig, games: list[str] | str, device: str = "cpu",
                 env_threads: int = 0, env: str = "atari", env_options: dict | None = None,
                 net_options: dict | None = None):
        # 'auto' as the run config resolves it for config.json (a run's config arrives
        # resolved; a learner made directly, as the tests and benches do, resolves here)
        config = dataclasses.replace(config.validate(), bf16=resolve_bf16(config.bf16, device))
        if config.bf16 and torch.device(device).type == "cpu" and not native_bf16():
            warnings.warn("bf16 autocast on a CPU without native bf16 (AVX512-BF16, AMX): "
                          "emulated, many times slower than float32. A run recorded with "
                          "bf16 keeps it on resume; start a new run with --bf16 false for "
                          "speed here", stacklevel=2)
        self.config = config
        stream = streams.get(env)
        if config.arch not in stream.NETWORKS:
            raise ValueError(f"arch={config.arch!r} does not fit the {env} stream: it runs "
                             f"{', '.join(map(repr, stream.NETWORKS))}")
        if config.arch not in NETWORKS:
            raise ValueError(f"arch={config.arch!r}: no such network; agents/ppo.py's NETWORKS "
                             f"has {', '.join(NETWORKS)}")
        self.env, self.stream, self.env_options = env, stream, dict(env_options or {})
        self.obs_shape = tuple(self.stream.OBS_SHAPE)
        self.task_names = self.stream.parse_games(games)
        self.device = torch.device(device)
        self.env_threads = int(env_threads)            # ALE threads; 0 = min(num_envs, cores)
        sizes = [self.stream.num_actions(g) for g in self.task_names]
        with torch.random.fork_rng(devices=[]):        # leave the global RNG alone
            torch.manual_seed(derive_seed(config.seed, "model-init"))
            model = NETWORKS[config.arch](sizes, config, **(net_options or {}))
            self.model = model.to(self.device)
        # the initial weights (deterministic in the seed, so a resumed run rebuilds them)
        self._theta_0 = initial_weights(self.model)
        self.optimizer: torch.optim.Optimizer | None = None
        self.task: int | None = None
        self.envs: ReplayableTrainEnv | None = None
        self._fresh_games = True              # the next unit starts a new segment of games
        self._next_obs = self._next_done = None
        self._eval_envs: dict[tuple, Any] = {}
        self._dormant_obs: torch.Tensor | None = None    # the batch dormant_units reads
        self.counters = {"env_steps": 0, "train_time": 0.0, "time_env": 0.0,
                         "time_inference": 0.0, "time_update": 0.0, "units": 0}

    # --- sizes and the task lifecycle ------------------------------------------------------
    def units_per_task(self, task: int) -> int:
        return max(1, self.config.steps_per_task // self.config.batch_size)

    def steps_per_unit(self, task: int) -> int:
        return self.config.batch_size

    def begin_task(self, task: int) -> None:
        self._check_task(task)
        self.task, self._fresh_games = task, True
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr,
                                          eps=self.config.adam_eps)

    def end_task(self, task: int) -> None:
        self._fresh_games = True

    # --- one PPO iteration -----------------------------------------------------------------
    def train_unit(self, task: int, unit: int, reg=None) -> dict[str, float]:
        if self.optimizer is None or self.task != task:
            raise RuntimeError(f"train_unit(task={task}) before begin_task({task})")
        reg = Regularizer(self.model) if reg is None else reg
        cfg, t_start = self.config, time.perf_counter()
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "unit", task, unit))
        envs = self._envs(task)
        if self._fresh_games or envs.segment_full:       # a new segment of games
            self._next_obs = envs.reset(seed=derive_seed(cfg.seed, "train-envs", task, unit))
            self._next_done = np.zeros(cfg.num_envs, dtype=bool)
            self._fresh_games = False
        lr = cfg.lr * (1.0 - unit / self.units_per_task(task)) if cfg.anneal_lr else cfg.lr
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()

        # 1. rollout: num_steps steps of every game with the current policy
        roll = self._rollout(task, gen)
        # 2. GAE(lambda) advantages and returns
        t_upd = time.perf_counter()
        adv, returns = gae(roll["rewards"], roll["values"], roll["dones"], roll["next_value"],
                           roll["next_done"], cfg.gamma, cfg.gae_lambda)
        # 3. update: update_epochs passes in num_minibatches shuffled minibatches
        out = self._update(task, unit, roll, adv, returns, gen, reg, lr)
        t_end = time.perf_counter()

        dt, c = t_end - t_start, self.counters
        for k, v in (("env_steps", cfg.batch_size), ("train_time", dt),
                     ("time_env", roll["time_env"]), ("time_inference", roll["time_inference"]),
                     ("time_update", t_end - t_upd), ("units", 1)):
            c[k] += v
        out.update(lr=lr, sps=cfg.batch_size / dt, time_env=roll["time_env"],
                   time_inference=roll["time_inference"], time_update=t_end - t_upd,
                   time_total=dt)
        finished = envs.pop_finished()
        if finished:
            out["episode_return"] = float(np.mean([r for r, _ in finished]))
            out["episode_length"] = float(np.mean([n for _, n in finished]))
            out["episodes"] = float(len(finished))
        return out

    def _autocast(self):
        if not self.config.bf16:        # even a disabled autocast costs microseconds a call
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @torch.inference_mode()
    def _policy_step(self, obs: torch.Tensor, task: int, gen: torch.Generator):
        with self._autocast():
            logits, value = self.model(obs, task)
        logp_all = F.log_softmax(logits.float(), dim=-1).cpu()
        # a ~ pi: torch.multinomial(probs, 1)'s own draw (an exponential race, argmax p / E
        # with E ~ Exp(1)), without its input checks, which cost more than the draw
        probs = logp_all.exp()
        action = (probs / torch.empty_like(probs).exponential_(generator=gen)).argmax(-1)
        return action, logp_all.gather(1, action[:, None]).squeeze(1), value.float().cpu()

    def _rollout(self, task: int, gen: torch.Generator) -> dict[str, Any]:
        T, N = self.config.num_steps, self.config.num_envs
        obs = torch.empty((T, N, *self.obs_shape), dtype=torch.uint8, device=self.device)
        actions = torch.empty((T, N), dtype=torch.long)
        logprobs, values = torch.empty((T, N)), torch.empty((T, N))
        # the env's outputs stay numpy until the rollout ends (one conversion, not T)
        rewards, dones = np.empty((T, N), dtype=np.float32), np.empty((T, N), dtype=bool)
        time_env = time_inf = 0.0
        for t in range(T):
            t0 = time.perf_counter()
            obs[t].copy_(torch.from_numpy(self._next_obs))
            dones[t] = self._next_done
            actions[t], logprobs[t], values[t] = self._policy_step(obs[t], task, gen)
            t1 = time.perf_counter()
            self._next_obs, rewards[t], self._next_done, _ = self.envs.step(actions[t].numpy())
            time_inf += t1 - t0
            time_env += time.perf_counter() - t1
        t0 = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            next_value = self.model(torch.from_numpy(self._next_obs).to(self.device),
                                    task)[1].float().cpu()
        time_inf += time.perf_counter() - t0
        flat = obs.reshape(T * N, *self.obs_shape)
        pick = torch.linspace(0, T * N - 1, min(DORMANT_OBS, T * N)).long().to(flat.device)
        self._dormant_obs = flat[pick]
        return dict(obs=obs, actions=actions, logprobs=logprobs, values=values,
                    rewards=torch.from_numpy(rewards), dones=torch.from_numpy(dones).float(),
                    next_value=next_value,
                    next_done=torch.from_numpy(self._next_done).float(),
                    time_env=time_env, time_inference=time_inf)

    def _update(self, task, unit, roll, adv, returns, gen, reg, lr) -> dict[str, float]:
        cfg, dev = self.config, self.device
        B, mb = cfg.batch_size, cfg.minibatch_size
        b_obs = roll["obs"].reshape(B, *self.obs_shape)
        b_actions, b_logprobs, b_values = (roll[k].reshape(B).to(dev)
                                           for k in ("actions", "logprobs", "values"))
        b_adv, b_returns = adv.reshape(B).to(dev), returns.reshape(B).to(dev)
        params = [p for p in self.model.parameters() if p.requires_grad]
        # Statistics stay on the device and are read once per epoch (a read per minibatch
        # would make the CPU wait for the GPU at every step).
        rows = torch.empty((cfg.update_epochs * cfg.num_minibatches, len(STATS)), device=dev)
        zero = torch.zeros((), device=dev)
        n = 0
        for epoch in range(cfg.update_epochs):
            reg.begin_epoch(cfg.num_minibatches)
            perm = torch.randperm(B, generator=gen).to(dev)
            first = n
            for i in range(cfg.num_minibatches):
                idx = perm[i * mb:(i + 1) * mb]
                # index_select: the rows b_obs[idx] would give, without advanced indexing's
                # slow path for a 4-d uint8 tensor
                mb_obs = b_obs.index_select(0, idx)
                with self._autocast():
                    logits, newvalue = self.model(mb_obs, task)
                s = ppo_losses(logits, newvalue, b_actions[idx], b_logprobs[idx], b_values[idx],
                               b_adv[idx], b_returns[idx], cfg.clip_coef, cfg.norm_adv,
                               cfg.clip_vloss)
                task_loss = s["policy_loss"] - cfg.ent_coef * s["entropy"] \
                    + cfg.vf_coef * s["value_loss"]
                loss, penalty, grad_norm = minibatch_step(
                    task_loss, reg, self.optimizer, params, lr, cfg.max_grad_norm, task=task,
                    inputs=mb_obs, outputs=(logits, newvalue))
                rows[n] = torch.stack([s["policy_loss"].detach(), s["value_loss"].detach(),
                                       s["entropy"].detach(), s["approx_kl"], s["clipfrac"],
                                       grad_norm.detach().float(),
                                       (zero + penalty).detach().float(), loss.detach()])
                n += 1
            epoch_rows = rows[first:n].cpu()                # the epoch's one wait for the device
            self._check_finite(epoch_rows, task, unit, epoch)
            reg.after_epoch(lr)
            if cfg.target_kl is not None and \
                    float(epoch_rows[-1, STATS.index("approx_kl")]) > cfg.target_kl:
                break
        means = rows[:n].double().mean(0).tolist()
        out = {k: means[j] for j, k in enumerate(STATS) if k != "loss"}
        y_pred, y_true = roll["values"].reshape(-1), returns.reshape(-1)
        var_y = y_true.var().item()
        out["explained_variance"] = float("nan") if var_y == 0 else \
            1.0 - (y_true - y_pred).var().item() / var_y
        return out

    def _check_finite(self, epoch_rows: torch.Tensor, task: int, unit: int, epoch: int) -> None:
        """A non-finite loss or gradient norm stops the run, naming the first minibatch it
        happened in (the trainer keeps the last good checkpoint)."""
        bad = ~torch.isfinite(epoch_rows[:, [STATS.index("loss"), STATS.index("grad_norm")]]).all(1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            r = dict(zip(STATS, epoch_rows[i].tolist()))
            raise FloatingPointError(
                f"PPO loss is {r['loss']} (gradient norm {r['grad_norm']}) on task {task} "
                f"({self.task_names[task]}), unit {unit}, epoch {epoch}, minibatch {i}: policy "
                f"loss {r['policy_loss']}, value loss {r['value_loss']}, entropy "
                f"{r['entropy']}, regularizer penalty {r['penalty']}")

    # --- importance data and evaluation ----------------------------------------------------
    def importance_data(self, task: int):
        """Batches (obs uint8, actions) of a fresh rollout of the final policy, and
        loss_fn(model, batch) = -mean log pi_task(a | s)."""
        self._check_task(task)
        cfg = self.config
        steps = cfg.importance_steps or cfg.batch_size
        n_env = min(cfg.num_envs, steps)
        seed = derive_seed(cfg.seed, "importance", task)
        reuse = self.envs is not None and self.envs.game == self.task_names[task] \
            and self.envs.num_envs == n_env
        env = self.envs if reuse else self._train_env(self.task_names[task], n_env)
        self._fresh_games = True              # training (if any) restarts its games afterwards
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "importance-actions", task))
        obs_l, act_l = [], []
        was_training = self.model.training
        self.model.eval()
        try:
            o = env.reset(seed=seed)
            for _ in range(-(-steps // n_env)):
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
        obs, actions = torch.cat(obs_l)[:steps], torch.cat(act_l)[:steps]
        bs = cfg.importance_batch_size
        batches = [(obs[i:i + bs], actions[i:i + bs]) for i in range(0, steps, bs)]

        def loss_fn(model, batch: tuple) -> torch.Tensor:
            return F.cross_entropy(model(batch[0], task)[0].float(), batch[1])

        return batches, loss_fn

    def policy_fn(self, task: int):
        """obs (uint8 numpy) -> logits, for the stream's ``evaluate``."""
        def fn(obs: np.ndarray) -> torch.Tensor:
            with torch.inference_mode(), self._autocast():
                return self.model(torch.from_numpy(obs).to(self.device), task)[0].float().cpu()
        return fn

    def eval_seed(self, task: int) -> int:
        """The seed of the run's evaluations of task ``task`` (game i: this + i)."""
        return derive_seed(self.config.seed, "eval", task)

    def play(self, task: int, episodes: int | None = None, seed: int | None = None,
             greedy: bool = True, max_steps: int | None = None,
             video=None) -> tuple[float, list[float]]:
        """(mean, scores) of ``episodes`` full games of task ``task``'s game with the current
        policy (the stream's ``evaluate``): greedy or sampled actions, game i seeded
        ``seed + i``, cut after ``max_steps`` agent steps; ``video``: one MP4 path per game.
        Defaults: eval_episodes, eval_max_steps and ``eval_seed(task)``, i.e. the run's own
        evaluation games."""
        self._check_task(task)
        cfg, game = self.config, self.task_names[task]
        episodes = cfg.eval_episodes if episodes is None else int(episodes)
        max_steps = cfg.eval_max_steps if max_steps is None else int(max_steps)
        seed = self.eval_seed(task) if seed is None else int(seed)
        key = (game, episodes, max_steps)
        keep = (episodes, max_steps) == (cfg.eval_episodes, cfg.eval_max_steps)
        env = self._eval_envs.get(key)
        if env is None:     # the evaluations' envs are kept (re-seeded at each call)
            env = self.stream.make_eval_env(game, episodes, max_steps, self.env_threads,
                                            **self.env_options)
            if keep:
                self._eval_envs[key] = env
        was_training = self.model.training
        self.model.eval()
        try:
            return self.stream.evaluate(self.policy_fn(task), game, episodes, seed,
                                        greedy=greedy, max_steps=max_steps, env=env,
                                        video=video)
        finally:
            self.model.train(was_training)
            if not keep:
                env.close()

    def evaluate(self, task: int) -> dict[str, float]:
        """Mean raw score of ``eval_episodes`` full games: greedy actions ('score', the paper's
        protocol) and, if ``eval_sampled``, sampled actions ('score_sampled')."""
        out = {"score": self.play(task, greedy=True)[0]}
        if self.config.eval_sampled:
            out["score_sampled"] = self.play(task, greedy=False)[0]
        return out

    def record_video(self, task: int, path, seed: int | None = None) -> float:
        """One greedy evaluation game of task ``task`` filmed to the MP4 ``path`` (seed
        default: the evaluations', so it is their first game); returns its score."""
        return self.play(task, episodes=1, seed=seed, greedy=True, video=[path])[0]

    def dormant_units(self, task: int, reg=None) -> dict | None:
        """``agents.base.dormant_units`` of the trunk on the last rollout's observations (None
        before the first rollout); G0 counted where ``reg`` has AGS-CL's
        ``unimportant_nodes`` (Omega == 0: the nodes its sparsity term acts on)."""
        if self._dormant_obs is None:
            return None
        g0 = reg.unimportant_nodes() if hasattr(reg, "unimportant_nodes") else None
        was_training = self.model.training
        self.model.eval()
        try:
            out = dormant_units(self.model, self._dormant_obs, task, unimportant=g0)
        finally:
            self.model.train(was_training)
        out["observations"] = int(self._dormant_obs.shape[0])
        return out

    def plasticity_metrics(self, task: int) -> dict | None:
        """``agents.base.plasticity_metrics`` of the trunk on ``dormant_units``' batch."""
        if self._dormant_obs is None:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            return plasticity_metrics(self.model, self._dormant_obs, task, self._theta_0)
        finally:
            self.model.train(was_training)

    # --- results and persistence -----------------------------------------------------------
    def extra_results(self) -> dict[str, Any]:
        c, tt = self.counters, self.counters["train_time"]
        return {"sps": c["env_steps"] / tt if tt else 0.0, "env_steps": int(c["env_steps"]),
                "time_split": {k: c[k] / tt if tt else 0.0
                               for k in ("time_env", "time_inference", "time_update")},
                "torch_threads": torch.get_num_threads(), "ppo_config": self.config.to_dict()}

    def state_dict(self) -> dict:
        """Model, optimizer, counters and the running games (None at a task boundary, where the
        next unit starts new ones anyway)."""
        games = None if self._fresh_games or self.envs is None else self.envs.state_dict()
        return {"model": self.model.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "task": self.task, "counters": dict(self.counters),
                "task_names": list(self.task_names), "env_segment": games}

    def load_state_dict(self, state: dict) -> None:
        if list(state["task_names"]) != list(self.task_names):
            raise ValueError(f"PPO state is for games {state['task_names']}, this learner "
                             f"has {self.task_names}")
        self.model.load_state_dict(state["model"])
        self.task = state["task"]
        if state["optimizer"] is not None:
            if self.optimizer is None:
                self.begin_task(self.task)
            self.optimizer.load_state_dict(state["optimizer"])
        self.counters.update(state["counters"])
        games = state["env_segment"]
        self._fresh_games = games is None
        if games is not None:                 # rebuild the running games exactly
            self._next_obs, self._next_done = self._envs(self.task).load_state_dict(games)

    def _envs(self, task: int) -> ReplayableTrainEnv:
        """The task's training envs (created at its first unit, closed when the game changes)."""
        game = self.task_names[task]
        if self.envs is None or self.envs.game != game:
            if self.envs is not None:
                self.envs.close()
            self.envs = self._train_env(game, self.config.num_envs)
        return self.envs

    def _train_env(self, game: str, num_envs: int) -> ReplayableTrainEnv:
        return ReplayableTrainEnv(self.stream.make_train_env(
            game, num_envs, 0, self.env_threads, **self.env_options))

    def close(self) -> None:
        """Release every emulator (training and cached evaluation envs)."""
        for env in [self.envs, *self._eval_envs.values()]:
            if env is not None:
                env.close()
        self.envs, self._eval_envs, self._fresh_games = None, {}, True

    def _check_task(self, task: int) -> None:
        if not 0 <= task < len(self.task_names):
            raise ValueError(f"task {task} is not in this stream of {len(self.task_names)} "
                             f"games ({', '.join(self.task_names)})")
