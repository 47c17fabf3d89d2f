"""Time per training epoch of each method relative to fine-tuning (issue #4), on a supervised stream.

    python bench/vision_epoch_time.py --data-dir ../shared/data/omniglot
    python bench/vision_epoch_time.py --benchmark split_digits --methods finetune,agscl,ewc

Each method gets its own learner and regularizer, built exactly as `train.py vision` builds them
(published preset, the benchmark's recommended strengths). Each first learns task 1 for
``--warm-epochs`` epochs and runs its ``end_task`` (Fisher, Omega, path integrals, HAT masks), so
that the timed epochs on a later task (``--task``, default the second) pay for every hook a later task pays for: penalty, before_step,
after_step (AGS-CL's proximal step), after_epoch, plus the epoch's validation pass. The timed
epochs are interleaved — one epoch of every method per round — so that load changes on a shared
machine hit all methods alike; the summary is the median over rounds. ``end_task`` is timed
once per method and reported separately (it runs once per task, not per epoch).
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ALL = ("finetune", "ewc", "si", "mas", "rwalk", "hat", "agscl", "agscl_no_reinit",
       "agscl_no_randinit", "agscl_no_zeroinit")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--benchmark", default="omniglot")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--methods", default=",".join(ALL))
    p.add_argument("--task", type=int, default=1,
                   help="index of the timed task (>= 1; the warm-up task is task 0)")
    p.add_argument("--warm-epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import regularizers
    from agents.classifier import ClassifierLearner
    from agents.config import ClassifierConfig, strengths
    from envs.vision import make_stream
    from atari_sps import loadavg, machine  # noqa: E402  (this folder)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "finetune" not in methods:
        methods.insert(0, "finetune")
    stream = make_stream(args.benchmark, data_dir=args.data_dir, seed=args.seed)
    if not 1 <= args.task < len(stream):
        sys.exit(f"--task {args.task} is not in 1..{len(stream) - 1}: the {args.benchmark} stream "
                 f"has {len(stream)} task(s) and task 0 is the warm-up")
    T = args.task
    m = machine()
    print(f"command: python bench/vision_epoch_time.py {shlex.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({args.threads} threads)")
    print(f"stream: {args.benchmark}, timed task {T + 1} = {stream.names[T]} "
          f"({int(stream[T].y_train.shape[0])} training images)")
    print(f"load average before: {loadavg()}")

    learners, regs, end_task_s = {}, {}, {}
    for name in methods:
        torch.manual_seed(args.seed)
        cfg = ClassifierConfig.from_preset(args.benchmark, "published", hat=name == "hat",
                                           epochs=args.warm_epochs, seed=args.seed)
        hp = strengths(args.benchmark, name)
        L = ClassifierLearner(stream, cfg)
        reg = regularizers.make(name, L.model, **hp)
        L.begin_task(0)
        reg.begin_task(0)
        for u in range(args.warm_epochs):
            L.train_unit(0, u, reg)
        L.end_task(0)
        batches, loss_fn = L.importance_data(0)
        t0 = time.perf_counter()
        reg.end_task(0, batches, loss_fn)
        end_task_s[name] = time.perf_counter() - t0
        L.begin_task(T)
        reg.begin_task(T)
        learners[name], regs[name] = L, reg

    times: dict[str, list[float]] = {n: [] for n in methods}
    for r in range(args.rounds):
        for name in methods:
            out = learners[name].train_unit(T, r, regs[name])
            times[name].append(out["epoch_seconds"])
    ft = statistics.median(times["finetune"])
    rows = {}
    print(f"\nseconds per epoch on task {T + 1} (median of {args.rounds} interleaved rounds), "
          f"relative to fine-tuning; end_task once after task 1")
    print(f"{'method':20s} {'s/epoch':>8s} {'vs FT':>7s} {'min':>7s} {'max':>7s} {'end_task s':>11s}")
    for name in methods:
        med = statistics.median(times[name])
        rows[name] = {"seconds_per_epoch": med, "relative_to_finetune": med / ft,
                      "all": times[name], "end_task_seconds": end_task_s[name]}
        print(f"{name:20s} {med:8.3f} {med / ft:7.2f} {min(times[name]):7.3f} "
              f"{max(times[name]):7.3f} {end_task_s[name]:11.3f}")
    print(f"load average after: {loadavg()}")
    return rows


if __name__ == "__main__":
    main()
