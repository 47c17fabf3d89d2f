"""Cost of the regularizer hooks on the Atari trunk, relative to one PPO minibatch update.

    python bench/agscl_after_step.py [--batch 256] [--repeats 30] [--arch nature]

One "update" = forward + PPO-shaped loss + backward + grad clipping + Adam step on a
256-sample minibatch of uint8 (4, 84, 84) frames through the Nature CNN actor-critic. Against
it: AGS-CL's ``after_step`` (proximal step eq. 11-13 + hard freeze) in the first task (every
node in G0) and in a later task (about half the nodes important, hard freeze active), and
EWC's ``penalty`` + backward overhead. Medians over ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import regularizers  # noqa: E402
from agents.atari_net import ActorCritic  # noqa: E402


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_time(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--arch", default="nature")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ActorCritic([18, 18], arch=args.arch)
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4, eps=1e-5)
    x = torch.randint(0, 256, (args.batch, 4, 84, 84), dtype=torch.uint8)
    a = torch.randint(0, 18, (args.batch,))
    ret = torch.randn(args.batch)

    def update(reg=None, task=0):
        logits, v = model(x, task)
        loss = F.cross_entropy(logits, a) + 0.5 * (v - ret).pow(2).mean()
        if reg is not None:
            loss = loss + reg.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if reg is not None:
            reg.before_step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if reg is not None:
            reg.after_step(2.5e-4)

    t_update = median_time(update, args.repeats)
    t_adam = median_time(opt.step, args.repeats)

    ags = regularizers.make("agscl", model, mu=0.1, lam=100.0)
    t_prox_first = median_time(lambda: ags.after_step(2.5e-4), args.repeats)
    # a later task: Omega > 0 on about half of each layer's nodes -> both prox branches and
    # the hard-freeze mask are active
    g = torch.Generator().manual_seed(0)
    ags.omega = [torch.rand(o.shape, generator=g) * (torch.rand(o.shape, generator=g) < 0.5)
                 for o in ags.omega]
    ags.begin_task(1)
    t_prox_later = median_time(lambda: ags.after_step(2.5e-4), args.repeats)
    t_update_ags = median_time(lambda: update(ags, 1), args.repeats)

    ewc = regularizers.make("ewc", model, lam=5000.0)
    batches = [(x[:64], a[:64])]
    ewc.end_task(0, batches, lambda m, b: F.cross_entropy(m(b[0], 0)[0], b[1]))
    t_update_ewc = median_time(lambda: update(ewc, 1), args.repeats)

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads, Python {platform.python_version()}")
    print(f"command: python bench/agscl_after_step.py {' '.join(argv or sys.argv[1:])}".rstrip())
    print(f"minibatch {args.batch}, arch {args.arch}, median of {args.repeats}")
    print(f"  full update (fwd+bwd+clip+Adam)      {t_update * 1e3:8.2f} ms")
    print(f"  Adam step alone                      {t_adam * 1e3:8.2f} ms")
    print(f"  AGS-CL after_step, task 1 (all G0)   {t_prox_first * 1e3:8.2f} ms  "
          f"= {100 * t_prox_first / t_update:5.1f}% of an update, "
          f"{100 * t_prox_first / t_adam:5.1f}% of an Adam step")
    print(f"  AGS-CL after_step, later task        {t_prox_later * 1e3:8.2f} ms  "
          f"= {100 * t_prox_later / t_update:5.1f}% of an update, "
          f"{100 * t_prox_later / t_adam:5.1f}% of an Adam step")
    print(f"  update with AGS-CL hooks             {t_update_ags * 1e3:8.2f} ms  "
          f"({100 * (t_update_ags / t_update - 1):+5.1f}%)")
    print(f"  update with EWC penalty              {t_update_ewc * 1e3:8.2f} ms  "
          f"({100 * (t_update_ewc / t_update - 1):+5.1f}%)")


if __name__ == "__main__":
    main()
