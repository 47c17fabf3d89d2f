"""The supervised report (accuracy matrices) as a plain dict: ``supervised_report`` (its
text table is ``text.format_supervised``).

Per run: average accuracy, plasticity P and stability S (eq. 15-16, the fine-tuning run as
A*), backward transfer, forgetting (Mammoth's, ``metrics.forgetting``) and forward transfer
(Mammoth's and Avalanche's, ``metrics.forward_transfer_before``: the accuracy on a task
before its training minus a random-init model's, here chance level 1/classes),
regularisation memory relative to EWC (Figure 6: regularisation state, which includes the
stored model, plus the model being trained), time per task. Runs are pooled into groups
(``grouping.group_runs``: a method and its hyperparameters, seeds pooled, different
hyperparameters never): per group the mean and std over its seeds ("summary", keyed by the
group's label) and, in "groups", average accuracy, P, S, BWT, forgetting and forward transfer
with percentile-bootstrap 95% CIs over its seeds; "lam_sweeps": Figure 5 over lam.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import bootstrap, grouping, metrics

# the metrics that average over seeds with a bootstrap CI in "groups" (and "*_ci95" in summary)
CI_METRICS = ("average_accuracy", "plasticity", "stability", "bwt")
CI_NOTE = (f"95% percentile bootstrap over the group's seeds, {bootstrap.BOOTSTRAP_RESAMPLES} "
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


FWT_REFERENCE = ("the untrained model's accuracy on each task (results.json before_training."
                 "random_init), as Mammoth and Avalanche subtract; chance level 1/classes for "
                 "runs without it")
NO_FWT = ("task j was not evaluated before its training (results.json has no before_training: "
          "a run made before the trainer recorded it)")


def chance_levels(r: dict, n_tasks: int) -> list[float | None]:
    """1/classes per task, from results.json's stream description; None where unknown."""
    tasks = ((r.get("stream") or {}).get("tasks")) or []
    return [1.0 / tasks[j]["num_classes"] if j < len(tasks) and tasks[j].get("num_classes")
            else None for j in range(n_tasks)]


def run_forgetting(A, n_tasks: int) -> dict:
    """{"matrix": ``metrics.forgetting_matrix``, "per_task": ``metrics.forgetting`` (tasks but
    the last; None until the run is complete), "mean": Mammoth's forgetting}."""
    complete = len(A) == n_tasks and n_tasks > 1
    per = metrics.forgetting(A) if complete else None
    return {"matrix": metrics.forgetting_matrix(A) if A else [], "per_task": per,
            "mean": float(np.mean(per)) if per else None}


def run_forward_transfer(r: dict, n_tasks: int) -> dict:
    """{"per_task": ``metrics.forward_transfer_before`` against chance level (entry 0 None),
    "mean" over j >= 1 (Mammoth's and Avalanche's; None unless every such task has one),
    "reference" (its description), "reference_values", "why_missing" (None if every task
    j >= 1 has one)}."""
    A, chance = r["accuracy_matrix"], chance_levels(r, n_tasks)
    before = r.get("before_training")
    if before:      # the trainer's record: A[j-1][j] and the untrained model's scores
        A = [list(row) + ([before["score"][i + 1]] if i + 1 < n_tasks and
                          before["score"][i + 1] is not None else []) for i, row in enumerate(A)]
        chance = before["random_init"]
    per = metrics.forward_transfer_before(A, chance)
    per += [None] * (n_tasks - len(per))            # tasks not reached yet
    xs = [v for v in per[1:] if v is not None]
    why = None
    if len(xs) < n_tasks - 1:
        if not any(len(A[j - 1]) > j for j in range(1, len(A))):
            why = NO_FWT
        elif all(c is None for c in chance):
            why = "results.json has no class counts (stream.tasks[].num_classes)"
        else:
            why = "some tasks were not evaluated before their training, not reached yet or " \
                  "have no class count"
    return {"per_task": per, "mean": float(np.mean(xs)) if xs and not why else None,
            "reference": FWT_REFERENCE, "reference_values": chance, "why_missing": why}


def supervised_report(runs: list[dict]) -> dict:
    """The report of runs of one stream, as ``report.load_runs`` gives them (one or more of them
    fine-tuning): {"tasks", "runs": per-run metrics, "summary": per method}. A run that
    has not finished every task has None for the metrics of the whole matrix."""
    tasks = runs[0]["tasks"]
    ft_runs = [r for r in runs if r["_method"] == "finetune"]
    ewc_mem = [r["regularizer_memory_bytes"] + r.get("model_bytes", 0)
               for r in runs if r["_method"].startswith("ewc")]
    grouped = grouping.group_runs([(r["_method"], r["_config"]) for r in runs])
    label = {i: g["label"] for g in grouped for i in g["members"]}
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
            "forgetting": run_forgetting(A, len(tasks)),
            "forward_transfer": run_forward_transfer(r, len(tasks)),
            "regularizer_memory_bytes": r["regularizer_memory_bytes"],
            "relative_memory": mem / ewc_mem[0] if ewc_mem and ewc_mem[0] else None,
            "sparsity": r.get("sparsity"), "used_capacity": r.get("used_capacity"),
            "seconds_per_task": float(np.mean(r["task_seconds"])) if r.get("task_seconds") else None,
        })
    gs = [{"method": g["method"], "label": g["label"], "hyperparameters": g["hyperparameters"],
           "varied": g["varied"], "runs": [per_run[i]["run"] for i in g["members"]],
           "complete_runs": [per_run[i]["run"] for i in g["members"]
                             if per_run[i]["average_accuracy"] is not None],
           **group_metrics([per_run[i] for i in g["members"]])} for g in grouped]
    sm = summary(per_run)
    for g in gs:
        for k in CI_METRICS:
            sm[g["label"]][k + "_ci95"] = g[k]["ci95"]
    return {"tasks": tasks, "runs": per_run, "groups": gs, "confidence_intervals": CI_NOTE,
            "forward_transfer_reference": FWT_REFERENCE, "lam_sweeps": grouping.lam_sweeps(gs),
            "summary": sm}


def group_metrics(prs: list[dict], n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES) -> dict:
    """One group's average accuracy, P (eq. 15), S (eq. 16) and BWT over its complete runs
    (seeds), each {"mean", "ci95": percentile bootstrap [lo, hi] of the mean, None with one
    run, "n"}, its average-accuracy curve (Figure 3) per tasks learned, likewise, and its
    "forgetting" and "forward_transfer": {"mean", "per_task"} of such estimates."""
    out = {k: bootstrap.mean_ci([p[k] for p in prs], n_resamples) for k in CI_METRICS}
    T = max((len(p["average_accuracy_curve"]) for p in prs), default=0)
    n_tasks = len(prs[0]["forward_transfer"]["per_task"])
    for k, n in (("forgetting", n_tasks - 1), ("forward_transfer", n_tasks)):
        lists = [p[k]["per_task"] for p in prs]
        out[k] = {"mean": bootstrap.mean_ci([p[k]["mean"] for p in prs], n_resamples),
                  "per_task": [bootstrap.mean_ci([x[j] for x in lists if x is not None],
                                               n_resamples) for j in range(n)]}
    out["average_accuracy_curve"] = [
        bootstrap.mean_ci([p["average_accuracy_curve"][i] for p in prs
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

