"""Speed of the PPO pipeline on a game stream: raw vector-env SPS (the ceiling) and PPO
training SPS.

    python bench/atari_sps.py                       # Boxing, cpu preset, fine-tuning
    python bench/atari_sps.py --game Gopher --updates 6 --num-envs 8 --regularizer agscl
    python bench/atari_sps.py --device cuda --preset paper          # on a GPU machine (128 envs)
    python bench/atari_sps.py --stream minatar --regularizer finetune,agscl,ewc   # MinAtar

Prints the machine (CPU model, cores, load average before/after: the box may be shared with
other jobs, which makes every number here noisy; compare runs made back to back), the exact
command, raw env SPS with random actions, and per PPO unit (one rollout of num_envs x 128 steps
+ 4 epochs x 4 minibatches) the SPS and the split of its time into env stepping, rollout
inference and the update. PPO is timed on the second task of a two-game stream (Gopher, then
--game; on MinAtar, Asterix then --game), after the regularizer's ``end_task`` on the first, so that EWC's penalty and AGS-CL's
proximal step and freeze masks are really at work. The first unit (env start-up, allocator
warm-up) is reported but left out of the summary.

Sets OMP_WAIT_POLICY=PASSIVE unless it is already set (see agents/ppo.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# libgomp's default spin-waiting makes torch's 2 OpenMP threads collapse (measured 10-50x slower
# inference, 3x slower updates) as soon as another process busies one of the 2 cores; passive
# waiting removes that. It must be set before torch is imported (export it to compare).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        flags = next((l for l in Path("/proc/cpuinfo").read_text().splitlines()
                      if l.startswith("flags")), "")
        simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
    except OSError:
        simd = []
    import ale_py
    return {"cpu": model, "cores": os.cpu_count(), "simd": simd,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(), "torch": torch.__version__,
            "ale_py": ale_py.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def raw_env_sps(stream: str, game: str, num_envs: int, steps: int,
                repeats: int) -> list[float]:
    from envs.streams import STREAMS
    env = STREAMS[stream].make_train_env(game, num_envs, seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    out = []
    try:
        for _ in range(repeats):
            acts = rng.integers(0, env.num_actions, (steps, num_envs))
            t = time.perf_counter()
            for a in acts:
                env.step(a)
            out.append(steps * num_envs / (time.perf_counter() - t))
    finally:
        env.close()
    return out


def second_task_learner(args, regularizer: str):
    """A learner on the second task of a 2-game stream, after ``reg.end_task`` on the first
    (so EWC's penalty and AGS-CL's proximal targets and freeze masks are active)."""
    import regularizers
    from agents.config import PPOConfig
    from agents.ppo import PPOLearner
    from envs.streams import STREAMS
    stream = STREAMS[args.stream]
    layout = {} if args.channels_last is None else {"channels_last": args.channels_last}
    cfg = PPOConfig.from_preset(args.preset, num_envs=args.num_envs, bf16=args.bf16, **layout)
    game = stream.canonical_game(args.game)
    first = {"atari": ("Gopher", "Boxing"), "minatar": ("Asterix", "Breakout")}[args.stream]
    first = first[0] if game != first[0] else first[1]
    learner = PPOLearner(cfg, [first, game], device=args.device, env_threads=args.env_threads,
                         env=args.stream)
    eager = regularizer.endswith("-eager")   # e.g. agscl-eager: AGS-CL without its CUDA graph
    reg = regularizers.make(regularizer.removesuffix("-eager"), learner.model)
    if eager:
        reg.use_cuda_graph = False
    learner.begin_task(0)
    reg.begin_task(0)
    learner.end_task(0)
    reg.end_task(0, *learner.importance_data(0))
    learner.begin_task(1)
    reg.begin_task(1)
    return learner, reg


def ppo_sps(args) -> dict[str, list[dict]]:
    """Units of each regularizer, interleaved (unit u of every method before unit u + 1), so
    that a shared machine's load changes hit them alike."""
    names = [r.strip() for r in args.regularizer.split(",") if r.strip()]
    runs = {n: second_task_learner(args, n) for n in names}
    rows: dict[str, list[dict]] = {n: [] for n in names}
    for unit in range(args.updates):
        for n, (learner, reg) in runs.items():
            out = learner.train_unit(1, unit, reg)
            rows[n].append(out)
            print(f"  {n:11s} unit {unit}: {out['sps']:6.1f} SPS  env {out['time_env']:.2f}s  "
                  f"inference {out['time_inference']:.2f}s  update {out['time_update']:.2f}s  "
                  f"(total {out['time_total']:.2f}s)", flush=True)
    if args.profile:
        profile_unit(args, *next(iter(runs.values())), unit=args.updates)
    for learner, _ in runs.values():
        learner.close()
    return rows


def profile_unit(args, learner, reg, unit: int) -> None:
    """One more unit of the first regularizer under torch.profiler: the operators with the most
    host (CPU) time. Host activity only: with CUDA activity as well, the profiler hung on the
    lent H200 machine (2026-11-26, torch 2.11.0+cu130), and with the learner on a GPU this is
    untested."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        learner.train_unit(1, unit, reg)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile))


def summarise(rows: list[dict]) -> dict:
    steady = rows[1:] or rows
    tot = sum(r["time_total"] for r in steady)
    return {"units": [{k: r[k] for k in ("sps", "time_env", "time_inference", "time_update",
                                          "time_total")} for r in rows],
            "sps_median": statistics.median(r["sps"] for r in steady),
            "sps_best": max(r["sps"] for r in steady),
            "sps_overall": sum(r["sps"] * r["time_total"] for r in steady) / tot,
            "time_split": {k: sum(r[k] for r in steady) / tot
                           for k in ("time_env", "time_inference", "time_update")}}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stream", default="atari", choices=("atari", "minatar"))
    p.add_argument("--game", default=None, help="default: Boxing (Atari), Breakout (MinAtar)")
    p.add_argument("--updates", type=int, default=6, help="PPO units to time (first = warm-up)")
    p.add_argument("--num-envs", type=int, default=None, help="default: the preset's")
    p.add_argument("--preset", default=None, help="default: cpu (Atari), minatar (MinAtar)")
    p.add_argument("--regularizer", default="finetune",
                   help="one name or a comma list, e.g. finetune,agscl,ewc (timed interleaved); "
                        "agscl-eager is AGS-CL without its CUDA graph (same on a CPU)")
    p.add_argument("--raw-steps", type=int, default=500, help="vector-env steps per raw repeat")
    p.add_argument("--repeats", type=int, default=3, help="raw env repeats")
    p.add_argument("--torch-threads", type=int, default=0)
    p.add_argument("--env-threads", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device of the learner, e.g. cuda")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of the forward passes")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="default: the preset's")
    p.add_argument("--skip-raw", action="store_true")
    p.add_argument("--profile", type=int, default=0, metavar="ROWS",
                   help="profile one more unit of the first regularizer (host time, CPU learner); "
                        "print the top ROWS ops")
    p.add_argument("--json", type=str, default=None, help="also write the results here")
    args = p.parse_args(argv)
    minatar = args.stream == "minatar"
    args.game = args.game or ("Breakout" if minatar else "Boxing")
    args.preset = args.preset or ("minatar" if minatar else "cpu")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.num_envs is None:
        from agents.config import PPOConfig
        args.num_envs = PPOConfig.from_preset(args.preset).num_envs

    info = machine()
    cmd = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    print(f"command: {cmd}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, SIMD {'/'.join(info['simd'])} "
          f"(torch: {info['torch_cpu_capability']}), torch {info['torch']} "
          f"({info['torch_threads']} threads, OMP_WAIT_POLICY={info['omp_wait_policy']}), "
          f"ale-py {info['ale_py']}" + (f", GPU {info['gpu']}" if info["gpu"] else ""))
    print(f"load average before: {loadavg()}  (shared machine: numbers are noisy)")
    res = {"command": cmd, "machine": info, "load_before": loadavg(), "args": vars(args)}

    if not args.skip_raw:
        raw = raw_env_sps(args.stream, args.game, args.num_envs, args.raw_steps, args.repeats)
        res["raw_env_sps"] = raw
        print(f"raw vector env, {args.num_envs} envs, random actions: "
              f"median {statistics.median(raw):.0f} SPS, best {max(raw):.0f} "
              f"({', '.join(f'{x:.0f}' for x in raw)})")

    print(f"PPO ({args.preset} preset, {args.num_envs} envs, channels_last "
          f"{args.channels_last}, device {args.device}{', bf16' if args.bf16 else ''}) on "
          f"{args.game}, task 2 of 2 (after the first game's end_task):")
    res["ppo"] = {}
    base = None
    for name, rows in ppo_sps(args).items():
        sm = summarise(rows)
        res["ppo"][name] = sm
        base = base or sm["sps_overall"]
        sp = sm["time_split"]
        print(f"PPO {name}: SPS (units 1..{len(rows) - 1}) median {sm['sps_median']:.0f}, best "
              f"{sm['sps_best']:.0f}, overall {sm['sps_overall']:.0f} "
              f"({sm['sps_overall'] / base:.0%} of {args.regularizer.split(',')[0]}); time "
              f"split: env {sp['time_env']:.0%}, inference {sp['time_inference']:.0%}, update "
              f"{sp['time_update']:.0%}")
    return finish(res, args.json)


def finish(res: dict, json_path: str | None) -> dict:
    """A bench run's last lines: the load average after it, and its results as JSON."""
    res["load_after"] = loadavg()
    print(f"load average after: {res['load_after']}")
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
