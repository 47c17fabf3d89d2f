"""Where a PPO update's gradient norm comes from, at the start of a task of a saved run.

Loads a run's task-end checkpoint (``checkpoints/taskK.pt``: the model, the optimizer state is
left out, and the regularizer's state after task K), starts task K+1 as the trainer does
(``learner.begin_task``, ``reg.begin_task``) and trains ``--units`` PPO iterations of it,
recording before every gradient clip the squared norm of the gradient split into:

* ``head``: the current game's heads, also apart: ``head:actor`` and ``head:critic``;
* ``trunk``: the shared trunk; for AGS-CL split by its node partition during this task:
  ``trunk:important`` (rows of nodes with Omega > 0, which the prox pulls back to theta_hat
  after every step), ``trunk:cut`` (the weights from an Omega == 0 node into an Omega > 0
  node, held at 0 by the hard freeze after every step, so their gradient is never used), and
  ``trunk:free`` (rows of the G0 nodes, sparsified toward 0 by the prox);
* ``penalty`` (EWC, SI, MAS, RWALK): the norm of the penalty's own gradient, computed apart.

The run folder is only read. It prints the mean over minibatches of each part's norm and its
share of the total squared norm (the total is what ``clip_grad_norm_`` sees), and the mean
L2 norm of the trunk's output features h (what the heads read) over the update's minibatches:
a head's gradient is proportional to it.

    python experiments/grad_split.py runs/atari-1m/agscl --checkpoint task1.pt --units 3
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from continual import runconfig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (read only)")
    ap.add_argument("--checkpoint", default="task1.pt", help="a task-end checkpoint, taskK.pt")
    ap.add_argument("--units", type=int, default=3, help="PPO iterations to measure")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    for run in args.runs:
        split(Path(run), args.checkpoint, args.units)
    return 0


def load_next_task(run: Path, checkpoint: str):
    """(learner, regularizer, task, config) of a run at the start of the task after the
    task-end checkpoint ``checkpoint``, as the trainer starts it (fresh optimizer)."""
    config, learner, reg, trainer = runconfig.load(run, checkpoint,
                                                   machine={"threads": torch.get_num_threads()})
    task = trainer["task"]
    if task >= len(config.games):
        raise SystemExit(f"{run / 'checkpoints' / checkpoint} is the end of the stream: "
                         f"pick an earlier task-end checkpoint")
    learner.begin_task(task)
    reg.begin_task(task)
    return learner, reg, task, config


def split(run: Path, checkpoint: str, units: int) -> dict:
    """Print and return {part: {"norm": mean norm, "share": share of the squared total}},
    with "features" = the mean ||h||."""
    learner, reg, task, conf = load_next_task(run, checkpoint)
    model = learner.model
    head = model.heads[task]
    head_ids = {id(p) for p in head.parameters()}
    actor_ids = {id(p) for p in head.actor.parameters()}
    feature_norms = []

    def feature_hook(_module, _inp, out):         # fc's output before its (in-place) ReLU
        if torch.is_grad_enabled():                # the update's forward passes only
            feature_norms.append(float(out.detach().clamp(min=0).norm(dim=1).mean()))

    model.fc.register_forward_hook(feature_hook)
    layers = getattr(reg, "layers", None)
    sq = defaultdict(list)
    before = reg.before_step

    def record():
        parts = defaultdict(float)
        for p in model.parameters():
            if p.grad is not None:
                g2 = float(p.grad.pow(2).sum())
                parts["head" if id(p) in head_ids else "trunk"] += g2
                if id(p) in head_ids:
                    parts["head:actor" if id(p) in actor_ids else "head:critic"] += g2
        if layers is not None:                     # AGS-CL: its node partition of the trunk
            for L, om, keep in zip(layers, reg.omega, reg.freeze_masks()):
                imp = om > 0
                for p in L.group_params:
                    g2 = p.grad.pow(2).reshape(p.shape[0], -1).sum(1)
                    parts["trunk:free"] += float(g2[~imp].sum())
                    if p is L.module.weight and keep is not None:
                        cut = float(L.input_columns(p.grad).pow(2).mul(1 - keep).sum())
                        parts["trunk:cut"] += cut
                        parts["trunk:important"] += float(g2[imp].sum()) - cut
                    else:
                        parts["trunk:important"] += float(g2[imp].sum())
        pen = reg.penalty()
        if pen.requires_grad:                      # a quadratic penalty: its own gradient
            params = [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(pen, params, allow_unused=True)
            parts["penalty"] = float(sum(g.pow(2).sum() for g in grads if g is not None))
        parts["total"] = parts["head"] + parts["trunk"]
        for k, v in parts.items():
            sq[k].append(v)
        before()

    reg.before_step = record
    for unit in range(units):
        learner.train_unit(task, unit, reg)
    learner.close()

    n = len(sq["total"])
    mean_total_sq = sum(sq["total"]) / n
    print(f"{run} ({conf.regularizer}), start of task {task} ({conf.games[task]}), "
          f"{units} PPO iterations = {n} minibatches:")
    out = {}
    for k in ("total", "head", "head:actor", "head:critic", "trunk", "trunk:important",
              "trunk:cut", "trunk:free", "penalty"):
        if k in sq:
            norm = sum(v ** 0.5 for v in sq[k]) / n
            share = sum(sq[k]) / n / mean_total_sq
            out[k] = {"norm": norm, "share": share}
            print(f"  {k:<17} mean norm {norm:8.3f}   share of total squared norm {share:6.1%}")
    out["features"] = sum(feature_norms) / len(feature_norms)
    print(f"  features ||h||    mean {out['features']:8.3f}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
