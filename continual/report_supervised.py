"""The supervised report (accuracy matrices): computation (``supervised_report``, a plain
dict) and its text table (``format_supervised``), each usable alone.

Per run: average accuracy, plasticity P and stability S (eq. 15-16, the fine-tuning run as
A*), backward transfer, regularisation memory relative to EWC (Figure 6: regularisation state,
which includes the stored model, plus the model being trained), time per task; per method the
mean and spread over its runs (seeds).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import metrics

# summary key -> column heading of the table
COLUMNS = [("average_accuracy", "avg acc"), ("plasticity", "P"), ("stability", "S"),
           ("bwt", "BWT"), ("relative_memory", "mem/EWC"),
           ("time_relative_to_finetune", "time/FT")]


def mean_std(xs) -> tuple[float | None, float | None]:
    """Mean and std of the values that are not None; (None, None) if there are none."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs))


def seed(r: dict):
    """The run's classifier seed (it fixes the class order and splits), None if unknown."""
    return (r.get("classifier_config") or {}).get("seed", (r["_config"].get("classifier")
                                                         or {}).get("seed"))


def plasticity_reference(ft_runs: list[dict], run_seed, n_tasks: int):
    """A* of eq. 15 and where it comes from: the fine-tuning run(s) of the same seed (the seed
    fixes the class order and splits, so task j is the same task), else the mean over all
    fine-tuning runs; per diagonal entry over the runs that have reached it (NaN where none
    has)."""
    same = [r for r in ft_runs if run_seed is not None and seed(r) == run_seed]
    use = same or ft_runs
    how = f"fine-tuning, seed {run_seed}" if same else f"mean of {len(use)} fine-tuning run(s)"
    return metrics.mean_diagonal([r["accuracy_matrix"] for r in use], n_tasks), how


def supervised_report(runs: list[dict]) -> dict:
    """The report of runs of one stream, as ``report.load_runs`` gives them (one or more of them
    fine-tuning): {"tasks", "runs": per-run metrics, "summary": per method}. A run that
    has not finished every task has None for the metrics of the whole matrix."""
    tasks = runs[0]["tasks"]
    ft_runs = [r for r in runs if r["_method"] == "finetune"]
    ewc_mem = [r["regularizer_memory_bytes"] + r.get("model_bytes", 0)
               for r in runs if r["_method"].startswith("ewc")]
    per_run = []
    for r in runs:
        A = r["accuracy_matrix"]
        complete = len(A) == len(tasks)
        ref, ref_from = plasticity_reference(ft_runs, seed(r), len(tasks))
        complete_ref = bool(np.all(np.isfinite(np.diag(metrics.pad(ref, len(tasks))))))
        mem = r["regularizer_memory_bytes"] + r.get("model_bytes", 0)
        per_run.append({
            "run": r["_path"], "label": r["_label"], "method": r["_method"],
            "average_accuracy": metrics.average_accuracy(A) if complete else None,
            "average_accuracy_curve": metrics.average_accuracy_curve(A),
            "plasticity": metrics.plasticity(A, ref) if complete and complete_ref else None,
            "plasticity_reference": ref_from,
            "stability": metrics.stability(A) if complete else None,
            "bwt": metrics.backward_transfer(A) if complete else None,
            "regularizer_memory_bytes": r["regularizer_memory_bytes"],
            "relative_memory": mem / ewc_mem[0] if ewc_mem else None,
            "sparsity": r.get("sparsity"), "used_capacity": r.get("used_capacity"),
            "seconds_per_task": float(np.mean(r["task_seconds"])) if r.get("task_seconds") else None,
        })
    return {"tasks": tasks, "runs": per_run, "summary": summary(per_run)}


def summary(per_run: list[dict]) -> dict:
    """Per method: its number of runs, how many are complete, and the mean and std (``*_std``)
    over them of each metric; time relative to fine-tuning's mean seconds per task."""
    by_method = defaultdict(list)
    for pr in per_run:
        by_method[pr["method"]].append(pr)
    ft_time = mean_std([p["seconds_per_task"] for p in by_method.get("finetune", [])])[0]
    out = {}
    for m, prs in by_method.items():
        out[m] = {"runs": len(prs), "complete": sum(p["average_accuracy"] is not None for p in prs)}
        for k in ("average_accuracy", "plasticity", "stability", "bwt", "relative_memory",
                  "regularizer_memory_bytes", "seconds_per_task"):
            out[m][k], out[m][k + "_std"] = mean_std([p[k] for p in prs])
        if ft_time and out[m]["seconds_per_task"]:
            out[m]["time_relative_to_finetune"] = out[m]["seconds_per_task"] / ft_time
    return out


def format_supervised(rep: dict) -> str:
    """The text table of a report ``supervised_report`` made: one row per method, mean +- std
    over its runs where it has several; "k/n" where only k of its n runs are complete."""
    head = f"{'method':<20}{'runs':>5}" + "".join(f"{c[1]:>16}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for m, sm in rep["summary"].items():
        cells = []
        for k, _ in COLUMNS:
            v, sd = sm.get(k), sm.get(k + "_std")
            cells.append(f"{'-':>16}" if v is None else
                         (f"{v:>9.3f} ± {sd:.3f}" if sd is not None and sm["runs"] > 1
                          else f"{v:>16.3f}"))
        n = f"{sm['complete']}/{sm['runs']}" if sm["complete"] < sm["runs"] else sm["runs"]
        lines.append(f"{m:<20}{n:>5}" + "".join(cells))
    if any(sm["complete"] < sm["runs"] for sm in rep["summary"].values()):
        lines.append("(k/n: only k of the method's n runs have finished every task; the means "
                     "are over those)")
    return "\n".join(lines)
