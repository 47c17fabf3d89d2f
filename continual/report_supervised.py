"""The supervised report (accuracy matrices): computation (``supervised_report``, a plain
dict) and its text table (``format_supervised``), each usable alone.

Per run: average accuracy, plasticity P and stability S (eq. 15-16, the fine-tuning run as
A*), backward transfer, regularisation memory relative to EWC (Figure 6: regularisation state,
which includes the stored model, plus the model being trained), time per task. Runs are
pooled into groups (``metrics.group_runs``: a method and its hyperparameters, seeds pooled,
different hyperparameters never): per group the mean and std over its seeds ("summary",
keyed by the group's label) and, in "groups", average accuracy, P, S and BWT with
percentile-bootstrap 95% CIs over its seeds; "lam_sweeps": Figure 5 over lam.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import metrics

# summary key -> column heading of the table
COLUMNS = [("average_accuracy", "avg acc"), ("plasticity", "P"), ("stability", "S"),
           ("bwt", "BWT"), ("relative_memory", "mem/EWC"),
           ("time_relative_to_finetune", "time/FT")]
# the metrics that average over seeds with a bootstrap CI in "groups" (and "*_ci95" in summary)
CELL = 26                     # a "mean [lo, hi]" cell of the table
CI_METRICS = ("average_accuracy", "plasticity", "stability", "bwt")
CI_NOTE = (f"95% percentile bootstrap over the group's seeds, {metrics.BOOTSTRAP_RESAMPLES} "
           f"resamples, np.random.default_rng(0); null with one run (n = 1: no interval)")


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
    grouping = metrics.group_runs([(r["_method"], r["_config"]) for r in runs])
    label = {i: g["label"] for g in grouping for i in g["members"]}
    per_run = []
    for i, r in enumerate(runs):
        A = r["accuracy_matrix"]
        complete = len(A) == len(tasks)
        ref, ref_from = plasticity_reference(ft_runs, seed(r), len(tasks))
        complete_ref = bool(np.all(np.isfinite(np.diag(metrics.pad(ref, len(tasks))))))
        mem = r["regularizer_memory_bytes"] + r.get("model_bytes", 0)
        per_run.append({
            "run": r["_path"], "label": r["_label"], "method": r["_method"], "group": label[i],
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
    gs = [{"method": g["method"], "label": g["label"], "hyperparameters": g["hyperparameters"],
           "varied": g["varied"], "runs": [per_run[i]["run"] for i in g["members"]],
           "complete_runs": [per_run[i]["run"] for i in g["members"]
                             if per_run[i]["average_accuracy"] is not None],
           **group_metrics([per_run[i] for i in g["members"]])} for g in grouping]
    sm = summary(per_run)
    for g in gs:
        for k in CI_METRICS:
            sm[g["label"]][k + "_ci95"] = g[k]["ci95"]
    return {"tasks": tasks, "runs": per_run, "groups": gs, "confidence_intervals": CI_NOTE,
            "lam_sweeps": lam_sweeps(gs), "summary": sm}


def lam_sweeps(gs: list[dict]) -> dict:
    """Figure 5's plasticity-stability trade-off over lam (the paper fixes mu and varies lam
    for AGS-CL, varies lam for EWC): per method with more than one lam among the groups,
    {"points": [{"label", "lam", "plasticity", "stability"}] (sorted by lam; each a
    ``mean_ci`` over the group's seeds), "best": the label and lam of the point with the
    highest P + S (means; the paper marks the optimum lam), "criterion"}. Groups without P or
    S (no complete run) are no point."""
    out = {}
    for method in dict.fromkeys(g["method"] for g in gs):
        pts = [{"label": g["label"], "lam": g["hyperparameters"]["regularizer_hparams"]["lam"],
                "plasticity": g["plasticity"], "stability": g["stability"]}
               for g in gs if g["method"] == method
               and "lam" in (g["hyperparameters"].get("regularizer_hparams") or {})
               and g["plasticity"]["mean"] is not None and g["stability"]["mean"] is not None]
        if len({float(p["lam"]) for p in pts}) < 2:
            continue
        pts.sort(key=lambda p: float(p["lam"]))
        best = max(pts, key=lambda p: p["plasticity"]["mean"] + p["stability"]["mean"])
        out[method] = {"points": pts, "best": {"label": best["label"], "lam": best["lam"]},
                       "criterion": "highest P + S (means over seeds)"}
    return out


def group_metrics(prs: list[dict], n_resamples: int = metrics.BOOTSTRAP_RESAMPLES) -> dict:
    """One group's average accuracy, P (eq. 15), S (eq. 16) and BWT over its complete runs
    (seeds), each {"mean", "ci95": percentile bootstrap [lo, hi] of the mean, None with one
    run, "n"}, and its average-accuracy curve (Figure 3) per tasks learned, likewise."""
    out = {k: metrics.mean_ci([p[k] for p in prs], n_resamples) for k in CI_METRICS}
    T = max((len(p["average_accuracy_curve"]) for p in prs), default=0)
    out["average_accuracy_curve"] = [
        metrics.mean_ci([p["average_accuracy_curve"][i] for p in prs
                         if len(p["average_accuracy_curve"]) > i], n_resamples)
        for i in range(T)]
    return out


def summary(per_run: list[dict]) -> dict:
    """Per group (its label): its number of runs, how many are complete, and the mean and std
    (``*_std``) over them of each metric; time relative to fine-tuning's mean seconds per
    task."""
    by_group = defaultdict(list)
    for pr in per_run:
        by_group[pr.get("group", pr["method"])].append(pr)
    ft_time = mean_std([p["seconds_per_task"] for p in per_run if p["method"] == "finetune"])[0]
    out = {}
    for m, prs in by_group.items():
        out[m] = {"runs": len(prs), "complete": sum(p["average_accuracy"] is not None for p in prs)}
        for k in ("average_accuracy", "plasticity", "stability", "bwt", "relative_memory",
                  "regularizer_memory_bytes", "seconds_per_task"):
            out[m][k], out[m][k + "_std"] = mean_std([p[k] for p in prs])
        if ft_time and out[m]["seconds_per_task"]:
            out[m]["time_relative_to_finetune"] = out[m]["seconds_per_task"] / ft_time
    return out


def format_supervised(rep: dict) -> str:
    """The text table of a report ``supervised_report`` made: one row per group (method and
    hyperparameters; its label); "k/n" where only k of its n runs are complete. Where the
    summary has the groups' intervals (``*_ci95``), avg acc, P, S and BWT show "mean [lo, hi]"
    ("mean [-]" with one run: no interval); otherwise, and for memory and time, mean +- std
    over the runs where there are several."""
    w = max([20] + [len(m) + 2 for m in rep["summary"]])
    with_ci = any(k + "_ci95" in sm for sm in rep["summary"].values() for k in CI_METRICS)
    width = {k: (CELL if with_ci and k in CI_METRICS else 16) for k, _ in COLUMNS}
    head = f"{'group':<{w}}{'runs':>5}" + "".join(
        f"{(c + ' [95% CI]' if width[k] == CELL else c):>{width[k]}}" for k, c in COLUMNS)
    lines = [head, "-" * len(head)]
    for m, sm in rep["summary"].items():
        cells = []
        for k, _ in COLUMNS:
            v, sd = sm.get(k), sm.get(k + "_std")
            if width[k] == CELL:
                cells.append(f"{metrics.interval_text(v, sm.get(k + '_ci95')):>{CELL}}")
                continue
            cells.append(f"{'-':>16}" if v is None else
                         (f"{v:>9.3f} ± {sd:.3f}" if sd is not None and sm["runs"] > 1
                          else f"{v:>16.3f}"))
        n = f"{sm['complete']}/{sm['runs']}" if sm["complete"] < sm["runs"] else sm["runs"]
        lines.append(f"{m:<{w}}{n:>5}" + "".join(cells))
    if any(sm["complete"] < sm["runs"] for sm in rep["summary"].values()):
        lines.append("(k/n: only k of the group's n runs have finished every task; the means "
                     "are over those)")
    if with_ci:
        lines.append(f"(groups: runs of one method and hyperparameters, seeds pooled; [lo, hi]: "
                     f"{rep.get('confidence_intervals', CI_NOTE)}; [-]: one run, no interval)")
    return "\n".join(lines)
