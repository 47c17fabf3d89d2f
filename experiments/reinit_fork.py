"""Does the published (I.2) rule change a task? A fork of a saved AGS-CL run at a task start.

The paper's (I.2) rule re-initialises only the G0 nodes whose weights are exactly 0; the
published code's re-initialises a fraction rho of all of G0 (``reinit_from='unimportant'``).
In the 1M-step Atari run every G0 node was a dead ReLU with weights, so the paper's rule
revived none (docs/RESULTS.md). This script loads the run's task-end checkpoint,
and from the same state trains the next game for ``--units`` PPO iterations twice: as the run
did ('zero_norm': nothing revived) and after re-initialising every G0 node as the published
code would have ('unimportant', rho = 1). Both use the same rollout seeds, and each ends with
AGS-CL's end of task (Omega, (I.1), (I.2) by its rule) and a full-game evaluation of every game
seen. It prints, per variant: the scores, how many G0 nodes became important (Omega > 0), and
AGS-CL's task metrics. The run folder is only read. One seed: the scores are one sample each.

    python experiments/reinit_fork.py runs/atari-1m/agscl --checkpoint task1.pt --units 195 \\
        --variant zero_norm        # and, in parallel, --variant unimportant
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grad_split import load_next_task  # noqa: E402


def fork(run: Path, checkpoint: str, units: int, variant: str) -> dict:
    learner, reg, task, conf = load_next_task(run, checkpoint)
    g0_before = [om == 0 for om in reg.omega]
    revived = 0
    if variant == "unimportant":                  # (I.2) as the published code did it
        reg.reinit_from, reg.rho = "unimportant", 1.0
        revived = reg.reinitialise(g0_before)
        reg.set_anchor()                          # theta_hat after the re-initialisation
    elif variant != "zero_norm":
        raise SystemExit(f"--variant {variant!r}: choose zero_norm or unimportant")
    t0 = time.time()
    for unit in range(units):
        learner.train_unit(task, unit, reg)
        if (unit + 1) % 25 == 0:
            print(f"  {variant}: unit {unit + 1}/{units}, {time.time() - t0:.0f} s", flush=True)
    learner.end_task(task)
    reg.end_task(task, *learner.importance_data(task))
    became_important = sum(int((b & (om > 0)).sum()) for b, om in zip(g0_before, reg.omega))
    scores = {conf.games[t]: learner.evaluate(t) for t in range(task + 1)}
    learner.close()
    return {"run": str(run), "checkpoint": checkpoint, "task": task,
            "game": conf.games[task], "units": units,
            "env_steps": units * learner.config.batch_size, "variant": variant,
            "g0_nodes_before": sum(int(b.sum()) for b in g0_before),
            "revived_at_start": revived, "g0_nodes_now_important": became_important,
            "task_metrics": reg.task_metrics(), "scores": scores}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--checkpoint", default="task1.pt")
    ap.add_argument("--units", type=int, default=195, help="PPO iterations of the next game")
    ap.add_argument("--variant", required=True, choices=("zero_norm", "unimportant"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the result as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = fork(Path(args.run), args.checkpoint, args.units, args.variant)
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
