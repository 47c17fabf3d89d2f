"""The measured ceilings of PPO's speed on a game stream, beside the learner's SPS, in one
process: every speed target is a ratio to these ceilings, measured in the same run.

    python bench/ceilings.py                                   # Atari, cpu preset, 2 threads
    python bench/ceilings.py --stream minatar                  # MinAtar, minatar preset, 1 thread
    python bench/ceilings.py --stream minatar --json runs/ceilings_minatar.json
    python bench/ceilings.py --updates 2 --inference-calls 20 --update-repeats 1   # a smoke run
    python bench/ceilings.py --stream minatar --bf16           # per-op times and learner in bf16

Prints, all at the same torch thread count (default: 2 on Atari, 1 on MinAtar):

1. the machine (``atari_sps.machine``), the load average before and after (on a shared box
   every number here is noisy: make the measurements that go into docs/RESULTS.md on an idle
   one);
2. the float32 GEMM rate (``torch.mm``, GFLOP/s, best of a few repeats): each layer's forward
   as one GEMM at the minibatch size (a convolution as its im2col GEMM: M = batch x output
   pixels, K = input channels x kernel area, N = output channels) and a large square one;
3. the network's FLOPs, counted from the shapes its Conv2d and Linear layers see in a forward
   on one task (the trunk, that task's actor and critic; 2 FLOPs per multiply-add, biases,
   ReLUs, the losses and Adam not counted): forward per observation, and the update per
   sample = forward + weight gradients (as many FLOPs as the forward, every layer) + input
   gradients (as many, every layer but the first, whose input is the observation and needs
   none): a little under the usual 3 x forward, which is printed beside it;
4. per-op times with the learner's own model, preset and code: one rollout inference
   (``PPOLearner._policy_step``) on num_envs observations (median of many), one step of the
   learner's vector env with random actions (median over a rollout's steps), GAE, and the
   learner's whole update of one unit (``PPOLearner._update``, every epoch and minibatch:
   forward, losses, backward, gradient clipping, Adam) on a rollout of real observations,
   divided by its minibatch steps;
5. the ceilings in env steps per second, per PPO unit of num_envs x num_steps env steps:
   compute-only (the unit's rollout inferences + GAE + update, from the per-op times); the
   FLOP bound (the unit's FLOPs at the large GEMM's rate), also with the env's measured time
   per step added; an estimate with each layer's FLOPs at its own minibatch GEMM's rate (not a
   bound: the backward's GEMMs have other shapes, and inference runs on num_envs
   observations); the measured pieces with the env stepped serially (env + compute, as the
   learner steps it) and with perfect overlap (max(env, compute): the learner would have to
   pipeline, since each inference waits for the env's observations), and that overlap with
   the env and the compute sharing the cores (each piece's CPU time over all the process's
   threads, summed and spread over the cores the process may use: the bound of any overlap
   on a box whose cores the compute already fills). Both overlaps hide the env behind the
   update too, which PPO can only do by pipelining rollout and update (the rollout then acts
   with a policy one update old: another algorithm). Exact PPO can hide the env only behind
   the rollout's own inferences (env halves: one half steps while the other's actions are
   computed), so its ceiling is the rollout at max(env, inference, their CPU time over the
   cores) plus GAE and the update;
6. the learner's SPS on fine-tuning in the same process (``atari_sps.ppo_sps``: the second task
   of a two-game stream, the first unit a warm-up left out), its time split, and the split the
   per-op times predict;
7. the ratios learner SPS / each ceiling.

Sets OMP_WAIT_POLICY=PASSIVE unless it is already set (see bench/atari_sps.py).
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# (atari_sps puts the project on sys.path and sets OMP_WAIT_POLICY before it imports torch)
from atari_sps import (finish, loadavg, machine, ppo_sps, second_task_learner,  # noqa: E402
                       summarise)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


# --- FLOPs -------------------------------------------------------------------------------------
def layer_shapes(model: nn.Module, obs: torch.Tensor, task: int) -> list[dict]:
    """The Conv2d and Linear layers a forward of ``model(obs, task)`` runs, in call order, each
    as one GEMM per observation: ``m`` rows (output pixels; 1 for a Linear), ``k`` (input
    channels x kernel area, or input features), ``n`` (output channels or features);
    ``macs`` = m x k x n multiply-adds; ``input_grad``: whether the backward computes the
    gradient of the layer's input (False for the first layer, whose input is the data)."""
    rows: list[dict] = []

    def hook(name):
        def fn(mod, inputs, out):
            x, b = inputs[0], out.shape[0]
            if isinstance(mod, nn.Conv2d):
                kh, kw = mod.kernel_size
                m, k = out[0, 0].numel(), mod.in_channels // mod.groups * kh * kw
                n = mod.out_channels
            else:
                m, k, n = out[..., 0].numel() // b, mod.in_features, mod.out_features
            rows.append({"name": name, "kind": type(mod).__name__, "m": m, "k": k, "n": n,
                         "macs": m * k * n, "input_grad": bool(x.requires_grad)})
        return fn

    handles = [mod.register_forward_hook(hook(name)) for name, mod in model.named_modules()
               if isinstance(mod, (nn.Conv2d, nn.Linear))]
    try:
        with torch.enable_grad():
            model(obs, task)
    finally:
        for h in handles:
            h.remove()
    return rows


def network_flops(model: nn.Module, obs: torch.Tensor, task: int) -> dict:
    """FLOPs per observation (2 per multiply-add) of a forward on ``task`` and of the update
    (forward + weight gradients + the input gradients of every layer but the first)."""
    layers = layer_shapes(model, obs, task)
    fwd = sum(2 * r["macs"] for r in layers)
    upd = sum(2 * r["macs"] * (2 + r["input_grad"]) for r in layers)
    return {"layers": layers, "forward": fwd, "update": upd, "update_3x": 3 * fwd}


# --- timing helpers ----------------------------------------------------------------------------
def best_time(fn, repeats: int, min_time: float = 0.02) -> float:
    """Best over ``repeats`` of the mean time of one ``fn()`` in a loop of >= min_time s."""
    fn()
    t = time.perf_counter()
    fn()
    loops = max(1, int(min_time / max(time.perf_counter() - t, 1e-9)))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - t) / loops)
    return best


def gemm_gflops(m: int, k: int, n: int, repeats: int) -> float:
    """float32 ``torch.mm`` of (m, k) x (k, n): GFLOP/s, best of ``repeats``."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    out = torch.empty(m, n)
    return 2 * m * k * n / best_time(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


# --- the per-op times with the learner's model, env and code ----------------------------------
def per_op_times(args) -> dict:
    """Per-op times of a learner set up as atari_sps's (task 2 of 2, fine-tuning)."""
    from agents.ppo import gae
    learner, reg = second_task_learner(args, "finetune")
    cfg, task, model = learner.config, 1, learner.model
    T, N = cfg.num_steps, cfg.num_envs
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    out: dict = {}
    try:
        # env: one rollout's worth of vector-env steps with random actions (real observations)
        envs = learner._envs(task)
        A = learner.stream.num_actions(learner.task_names[task])
        o = envs.reset(seed=0)
        obs = torch.empty((T, N, *learner.obs_shape), dtype=torch.uint8)
        t_env, cpu_env = [], 0.0
        for t in range(T):
            obs[t].copy_(torch.from_numpy(o))
            a = rng.integers(0, A, N)
            c0, t0 = time.process_time(), time.perf_counter()
            o = envs.step(a)[0]
            t_env.append(time.perf_counter() - t0)
            cpu_env += time.process_time() - c0
        out["env_step_ms"] = median_ms(t_env)
        out["env_step_mean_ms"] = 1e3 * statistics.fmean(t_env)
        # CPU time of all the process's threads (ALE's C++ pool included): what an overlap
        # would have to share the cores with; the mean, as the env's wall time above (any
        # spin-waiting of the pool counts as work here)
        out["env_step_cpu_ms"] = 1e3 * cpu_env / T

        # rollout inference: the learner's policy step on num_envs observations
        model.train()
        t_inf, cpu_inf = [], []
        for i in range(args.inference_calls + 5):
            x = obs[i % T]
            c0, t0 = time.process_time(), time.perf_counter()
            learner._policy_step(x, task, gen)
            t_inf.append(time.perf_counter() - t0)
            cpu_inf.append(time.process_time() - c0)
        out["inference_ms"] = median_ms(t_inf[5:])
        out["inference_cpu_ms"] = median_ms(cpu_inf[5:])     # the median, as the wall time
        out["inference_calls"] = args.inference_calls

        # a synthetic rollout on the real observations: the policy's own log-probs and values
        with torch.inference_mode():
            logits, values = model(obs.reshape(T * N, *learner.obs_shape), task)
        actions = torch.from_numpy(rng.integers(0, A, (T, N)))
        logp = torch.log_softmax(logits, -1).gather(1, actions.reshape(-1, 1)).reshape(T, N)
        roll = {"obs": obs, "actions": actions, "logprobs": logp.clone(),
                "values": values.reshape(T, N).clone(),
                "rewards": torch.from_numpy(rng.random((T, N), dtype=np.float32)),
                "dones": torch.from_numpy(rng.random((T, N)) < 0.01).float(),
                "next_value": torch.zeros(N), "next_done": torch.zeros(N)}
        t_gae = []
        for _ in range(5):
            t0 = time.perf_counter()
            adv, returns = gae(roll["rewards"], roll["values"], roll["dones"],
                               roll["next_value"], roll["next_done"], cfg.gamma, cfg.gae_lambda)
            t_gae.append(time.perf_counter() - t0)
        out["gae_ms"] = median_ms(t_gae)

        # the learner's update of one unit (first call: a warm-up, left out)
        t_upd, cpu_upd = [], []
        for r in range(args.update_repeats + 1):
            c0, t0 = time.process_time(), time.perf_counter()
            learner._update(task, r, roll, adv, returns, gen, reg, cfg.lr)
            t_upd.append(time.perf_counter() - t0)
            cpu_upd.append(time.process_time() - c0)
        out["update_unit_ms"] = median_ms(t_upd[1:])
        out["update_unit_cpu_ms"] = median_ms(cpu_upd[1:])
        out["update_unit_all_ms"] = [1e3 * t for t in t_upd]
        out["minibatch_steps"] = cfg.update_epochs * cfg.num_minibatches
        out["minibatch_size"] = cfg.minibatch_size
        out["minibatch_step_ms"] = out["update_unit_ms"] / out["minibatch_steps"]
        out["config"] = {k: getattr(cfg, k) for k in (
            "num_envs", "num_steps", "update_epochs", "num_minibatches", "batch_size",
            "minibatch_size", "channels_last", "arch", "bf16")}
        out["game"], out["num_actions"] = learner.task_names[task], A
        out["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count()
        out["flops"] = network_flops(model, obs[0, :2], task)
    finally:
        learner.close()
    return out


# --- the ceilings ------------------------------------------------------------------------------
def ceilings(ops: dict, gemm: dict) -> dict:
    """Env steps per second of each ceiling, from the per-op times (ms), the FLOP counts and
    the GEMM rates (GFLOP/s). Per unit: num_steps + 1 inferences (the last for the bootstrap
    value), one GAE, update_epochs x num_minibatches minibatch steps; the update sees every
    sample once per epoch."""
    c, fl = ops["config"], ops["flops"]
    T, N, B, E = c["num_steps"], c["num_envs"], c["batch_size"], c["update_epochs"]
    n_inf = T + 1
    compute_s = (n_inf * ops["inference_ms"] + ops["gae_ms"] + ops["update_unit_ms"]) / 1e3
    env_s = T * ops["env_step_mean_ms"] / 1e3      # the mean: a throughput (resets included)
    # FLOPs per env step: the inferences' share, and E passes of the update over each sample
    inf_flops = fl["forward"] * n_inf / T
    upd_flops = E * fl["update"]
    per_step = inf_flops + upd_flops
    rate = gemm["square_gflops"] * 1e9
    # at each layer's own (minibatch-shaped) rate
    layer_s = sum(2 * r["macs"] * (n_inf / T + E * (2 + r["input_grad"])) / (g * 1e9)
                  for r, g in zip(fl["layers"], gemm["layers_gflops"]))
    env_per_step = ops["env_step_mean_ms"] / 1e3 / N
    # CPU seconds per unit (all threads): overlapped work still shares the cores, so no
    # overlap is faster than the unit's CPU time spread over every core
    cores = ops["cores"]
    compute_cpu_s = (n_inf * ops["inference_cpu_ms"] + ops["gae_ms"]
                     + ops["update_unit_cpu_ms"]) / 1e3
    env_cpu_s = T * ops["env_step_cpu_ms"] / 1e3
    # exact PPO: each inference waits for its env step, so the env can hide only behind the
    # rollout's inferences (on other envs' observations), never behind the update
    inf_s, inf_cpu_s = n_inf * ops["inference_ms"] / 1e3, n_inf * ops["inference_cpu_ms"] / 1e3
    rollout_s = max(env_s, inf_s, (env_cpu_s + inf_cpu_s) / cores)
    rest_s = ops["gae_ms"] / 1e3 + ops["update_unit_ms"] / 1e3
    return {
        "unit": {"env_steps": B, "inferences": n_inf, "minibatch_steps": ops["minibatch_steps"],
                 "inference_s": n_inf * ops["inference_ms"] / 1e3, "gae_s": ops["gae_ms"] / 1e3,
                 "update_s": ops["update_unit_ms"] / 1e3, "compute_s": compute_s,
                 "env_s": env_s, "compute_cpu_s": compute_cpu_s, "env_cpu_s": env_cpu_s,
                 "cores": cores},
        "flops_per_env_step": {"inference": inf_flops, "update": upd_flops, "total": per_step},
        "compute_only": B / compute_s,
        "flop_bound": rate / per_step,
        "flop_estimate_layer_rates": 1 / layer_s,
        "flop_bound_with_env": 1 / (per_step / rate + env_per_step),
        "env_only": B / env_s,
        "serial": B / (env_s + compute_s),
        "overlap": B / max(env_s, compute_s),
        "overlap_on_cores": B / max(env_s, compute_s, (env_cpu_s + compute_cpu_s) / cores),
        "overlap_rollout": B / (rollout_s + rest_s),
    }


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v}: must be a whole number >= 1")
    return v


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stream", default="atari", choices=("atari", "minatar"))
    p.add_argument("--game", default=None, help="default: Boxing (Atari), Breakout (MinAtar)")
    p.add_argument("--preset", default=None, help="default: cpu (Atari), minatar (MinAtar)")
    p.add_argument("--num-envs", type=int, default=None, help="default: the preset's")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="default: 2 (Atari), 1 (MinAtar)")
    p.add_argument("--env-threads", type=int, default=0, help="ALE threads (0: the learner's)")
    p.add_argument("--updates", type=_positive, default=6,
                   help="PPO units of the learner to time (first = warm-up)")
    p.add_argument("--inference-calls", type=_positive, default=200,
                   help="rollout inferences timed (median)")
    p.add_argument("--update-repeats", type=_positive, default=3,
                   help="whole updates of one unit timed (median; after one warm-up)")
    p.add_argument("--gemm-repeats", type=_positive, default=5)
    p.add_argument("--square", type=_positive, default=2048, help="size of the square GEMM")
    p.add_argument("--bf16", action="store_true",
                   help="per-op times and the learner with bf16 autocast (the GEMM rates and "
                        "FLOP bounds stay float32's); default: float32, whatever the CPU")
    p.add_argument("--json", type=str, default=None, help="also write the results here")
    args = p.parse_args(argv)
    minatar = args.stream == "minatar"
    args.game = args.game or ("Breakout" if minatar else "Boxing")
    args.preset = args.preset or ("minatar" if minatar else "cpu")
    args.torch_threads = args.torch_threads or (1 if minatar else 2)
    # what atari_sps's second_task_learner and ppo_sps read: a CPU learner with the preset's layout
    args.device, args.channels_last = "cpu", None
    args.regularizer, args.profile = "finetune", 0
    torch.set_num_threads(args.torch_threads)
    if args.num_envs is None:
        from agents.config import PPOConfig
        args.num_envs = PPOConfig.from_preset(args.preset).num_envs

    info = machine()
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    res = {"command": cmd, "machine": info, "load_before": loadavg(), "args": vars(args)}
    print(f"command: {cmd}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, SIMD {'/'.join(info['simd'])} "
          f"(torch: {info['torch_cpu_capability']}), torch {info['torch']}, ale-py "
          f"{info['ale_py']}; {info['torch_threads']} torch threads, OMP_WAIT_POLICY="
          f"{info['omp_wait_policy']}")
    print(f"load average before: {res['load_before']}  (a shared box makes every number noisy)")

    ops = per_op_times(args)
    c, fl = ops["config"], ops["flops"]
    mb = c["minibatch_size"]
    print(f"\n{args.stream} stream, {args.preset} preset ({c['arch']} network, channels_last "
          f"{c['channels_last']}, {'bf16 autocast' if c['bf16'] else 'float32'}), "
          f"{ops['game']} ({ops['num_actions']} actions), task 2 of 2; "
          f"a unit = {c['num_envs']} envs x {c['num_steps']} steps = {c['batch_size']} env "
          f"steps, {c['num_steps'] + 1} inferences, {c['update_epochs']} epochs x "
          f"{c['num_minibatches']} minibatches of {mb} = {ops['minibatch_steps']} minibatch "
          f"steps")

    print(f"\nnetwork FLOPs (2 per multiply-add; layers a forward on one task runs, i.e. the "
          f"trunk + that task's actor and critic):")
    for r in fl["layers"]:
        print(f"  {r['name']:16s} {r['kind']:6s} GEMM per obs {r['m']:4d} x {r['k']:5d} x "
              f"{r['n']:4d}: {2 * r['macs'] / 1e6:8.3f} MFLOP forward"
              + ("" if r["input_grad"] else "  (input is the data: no input gradient)"))
    print(f"  forward: {fl['forward'] / 1e6:.3f} MFLOP per observation; update: "
          f"{fl['update'] / 1e6:.3f} MFLOP per sample (forward + weight grads + input grads "
          f"but the first layer's; 3 x forward would be {fl['update_3x'] / 1e6:.3f})")

    gemm = {"layers_gflops": [], "square": args.square}
    print(f"\nfloat32 GEMM rate (torch.mm, {args.torch_threads} threads, best of "
          f"{args.gemm_repeats}), each layer's forward as one GEMM at the minibatch size {mb}:")
    for r in fl["layers"]:
        g = gemm_gflops(mb * r["m"], r["k"], r["n"], args.gemm_repeats)
        gemm["layers_gflops"].append(g)
        print(f"  {r['name']:16s} {mb * r['m']:7d} x {r['k']:5d} x {r['n']:4d}: "
              f"{g:6.1f} GFLOP/s")
    big = max(range(len(fl["layers"])), key=lambda i: fl["layers"][i]["macs"])
    gemm["largest_layer"] = fl["layers"][big]["name"]
    gemm["largest_layer_gflops"] = gemm["layers_gflops"][big]
    gemm["square_gflops"] = gemm_gflops(args.square, args.square, args.square,
                                        args.gemm_repeats)
    print(f"  square {args.square}^3: {gemm['square_gflops']:.1f} GFLOP/s  (the rate of the "
          f"FLOP bound); largest layer ({gemm['largest_layer']}): "
          f"{gemm['largest_layer_gflops']:.1f} GFLOP/s")
    res.update(per_op=ops, gemm=gemm)

    print(f"\nper-op times (the learner's model and code, {args.torch_threads} threads):")
    print(f"  rollout inference on {c['num_envs']} obs (PPOLearner._policy_step): "
          f"{ops['inference_ms']:.3f} ms (median of {ops['inference_calls']}); "
          f"{fl['forward'] * c['num_envs'] / ops['inference_ms'] / 1e6:.1f} GFLOP/s")
    print(f"  update of one unit (PPOLearner._update): {ops['update_unit_ms']:.1f} ms (median "
          f"of {args.update_repeats}; all: "
          f"{', '.join(f'{t:.0f}' for t in ops['update_unit_all_ms'])}, the first a warm-up) "
          f"= {ops['minibatch_step_ms']:.2f} ms per minibatch step of {mb} samples; "
          f"{fl['update'] * mb / ops['minibatch_step_ms'] / 1e6:.1f} GFLOP/s")
    print(f"  GAE of one unit: {ops['gae_ms']:.2f} ms")
    print(f"  vector env step, {c['num_envs']} envs, random actions: {ops['env_step_ms']:.3f} ms "
          f"(median of {c['num_steps']}; mean {ops['env_step_mean_ms']:.3f}) = "
          f"{ops['env_step_ms'] / c['num_envs'] * 1e3:.1f} us per env step")
    print(f"  CPU time (all threads; {ops['cores']} cores): inference "
          f"{ops['inference_cpu_ms']:.3f} ms, update of one unit {ops['update_unit_cpu_ms']:.1f}"
          f" ms, env step {ops['env_step_cpu_ms']:.3f} ms (mean)")

    ceil = ceilings(ops, gemm)
    u, fs = ceil["unit"], ceil["flops_per_env_step"]
    res["ceilings"] = ceil
    print(f"\nceilings, env steps per second (SPS); per unit of {u['env_steps']} env steps: "
          f"inference {u['inference_s']:.3f} s + GAE {u['gae_s']:.3f} s + update "
          f"{u['update_s']:.3f} s = compute {u['compute_s']:.3f} s; env {u['env_s']:.3f} s; CPU "
          f"time compute {u['compute_cpu_s']:.3f} s, env {u['env_cpu_s']:.3f} s; "
          f"{fs['total'] / 1e6:.1f} MFLOP per env step (inference {fs['inference'] / 1e6:.2f},"
          f" update {fs['update'] / 1e6:.1f})")
    rows = [("compute_only", "compute only (measured inference + GAE + update)"),
            ("flop_bound", f"FLOP bound at the square GEMM's {gemm['square_gflops']:.0f} "
                           f"GFLOP/s"),
            ("flop_estimate_layer_rates",
             "FLOP time at each layer's minibatch GEMM rate (estimate)"),
            ("flop_bound_with_env", "FLOP bound (square GEMM) + the env's time"),
            ("env_only", "env stepping only"),
            ("serial", "measured pieces, env stepped serially"),
            ("overlap", "measured pieces, env overlapped (pipelined: policy lag)"),
            ("overlap_on_cores", f"the same, sharing the {u['cores']} cores (CPU time)"),
            ("overlap_rollout", "env behind the rollout's inference only (exact PPO)")]
    for k, text in rows:
        print(f"  {text:58s} {ceil[k]:9.0f} SPS")

    print(f"\nthe learner ({args.preset} preset, fine-tuning, {args.updates} units, the first a "
          f"warm-up):")
    sm = summarise(ppo_sps(args)["finetune"])
    res["learner"] = sm
    sp, tot = sm["time_split"], u["env_s"] + u["compute_s"]
    print(f"learner SPS (units 1..{args.updates - 1}): overall {sm['sps_overall']:.0f}, median "
          f"{sm['sps_median']:.0f}, best {sm['sps_best']:.0f}; time split env "
          f"{sp['time_env']:.0%}, inference {sp['time_inference']:.0%}, update "
          f"{sp['time_update']:.0%} (update includes GAE); the per-op times predict env "
          f"{u['env_s'] / tot:.0%}, inference {u['inference_s'] / tot:.0%}, update "
          f"{(u['gae_s'] + u['update_s']) / tot:.0%}")
    res["ratios"] = {k: sm["sps_overall"] / ceil[k] for k, _ in rows}
    print("learner SPS (overall) / ceiling:")
    for k, text in rows:
        print(f"  {text:58s} {res['ratios'][k]:6.1%}")

    return finish(res, args.json)


if __name__ == "__main__":
    main()
