"""The RL report (reward matrices): computation (``rl_report``, a plain dict) and its text
table (``format_rl``), each usable alone.

Figure 7's normalised accumulated reward -- each task's evaluation score divided by the
maximum score the fine-tuning run reached on that task (over its whole evaluation history),
summed over the tasks learned so far -- after each task (table) and over training (plot, from
the periodic evaluations); from greedy evaluations (the paper's protocol) and from
sampled-action ones (``*_sampled``); stability S and plasticity P (eq. 16 and 15) of the
finished runs' reward matrices; and the training games' raw scores (TensorBoard
``train/episode_return``, weighted by ``train/episodes``) per window of environment steps of
each task: the learning curves.
"""
from __future__ import annotations

import numpy as np

from . import metrics
from .tensorboard_events import training_returns

TRAINING_WINDOW = 200_000      # env steps per window of the training-score table

# score key of the evaluations -> its reward matrix, its Figure 7 keys in the report
VARIANTS = {"score": ("reward_matrix", ""), "score_sampled": ("reward_matrix_sampled", "_sampled")}


def finetune_max_rewards(ft: dict, n_tasks: int, key: str = "score") -> list[float]:
    """Fine-tuning's best evaluation score per task (over its periodic evaluations and its
    reward matrix): the reference of Figure 7. -inf where it has none (yet)."""
    best = [-np.inf] * n_tasks
    for c in ft.get("eval_curve", []):
        for j, v in enumerate(c.get(key, [])):
            best[j] = max(best[j], v)
    for row in ft.get(VARIANTS[key][0]) or []:
        for j, v in enumerate(row):
            best[j] = max(best[j], v)
    return best


def progress(r: dict) -> str:
    """"<status>, task i/T (<game>), step N": how far a run has got."""
    status = r.get("status", "?")
    done, tasks = r.get("tasks_completed", len(r.get("reward_matrix", []))), r["tasks"]
    where = f"task {done + 1}/{len(tasks)} ({tasks[done]})" if done < len(tasks) else \
        f"{len(tasks)}/{len(tasks)} tasks"
    return f"{status}, {where}, step {r.get('global_step', 0):,}"


def nar_curve(r: dict, key: str, ref: list[float]) -> list[dict]:
    """Figure 7 over training: [{"step", "value"}] at each periodic evaluation."""
    return [{"step": c["step"],
             "value": float(sum(metrics.normalised(v, ref[j]) for j, v in enumerate(c[key])))}
            for c in r.get("eval_curve", []) if key in c]


def task_spans(r: dict) -> list[tuple[int, int]]:
    """(first step, last step) of each task a run has started: tasks end at the steps of its
    task-end evaluations; the current task runs to the last step trained."""
    ends = [c["step"] for c in r.get("eval_curve", []) if c.get("task_end")]
    spans = list(zip([0] + ends, ends))
    if len(ends) < len(r["tasks"]) and (r.get("global_step") or 0) > (ends[-1] if ends else 0):
        spans.append((ends[-1] if ends else 0, int(r["global_step"])))
    return spans


def training_windows(points, spans, tasks, window: int = TRAINING_WINDOW) -> list[dict]:
    """Mean raw score of the training games that ended in each ``window`` env steps of each
    task (a unit's point at step s covers the steps (s - unit, s]), weighted by games."""
    out = []
    for i, (lo, hi) in enumerate(spans):
        for a in range(lo, hi, window):
            b = min(a + window, hi)
            sel = [(v, g) for s, v, g in points if a < s <= b and g > 0]
            n = sum(g for _, g in sel)
            out.append({"task": i, "game": tasks[i], "from_step": a - lo, "to_step": b - lo,
                        "mean_return": (sum(v * g for v, g in sel) / n) if n else None,
                        "games": int(round(n))})
    return out


def summary(runs: list[dict], n_tasks: int) -> dict:
    """Per method, mean and std over its runs (seeds; ``runs`` as in the report) of Figure 7
    after each task; a column averages the runs that have reached that task (their number is
    in ``n``)."""
    out = {}
    for method in dict.fromkeys(rr["method"] for rr in runs):
        rows = [rr for rr in runs if rr["method"] == method]
        sm = {"runs": [rr["label"] for rr in rows]}
        for suffix in ("", "_sampled"):
            cols = [[rr[f"normalised_accumulated_reward{suffix}"][i] for rr in rows
                     if len(rr[f"normalised_accumulated_reward{suffix}"]) > i]
                    for i in range(n_tasks)]
            cols = [c for c in cols if c]
            sm[f"normalised_accumulated_reward{suffix}"] = [float(np.mean(c)) for c in cols]
            sm[f"normalised_accumulated_reward{suffix}_std"] = [float(np.std(c)) for c in cols]
            if not suffix:
                sm["n"] = [len(c) for c in cols]
        out[method] = sm
    return out


def rl_report(runs: list[dict], window: int = TRAINING_WINDOW) -> dict:
    """The report of runs of one stream, as ``report.load_runs`` gives them (one or more of them
    fine-tuning): Figure 7 from greedy evaluations and, where the runs have them, from
    sampled-action ones (each normalised by fine-tuning's best score of the same kind). Runs
    still in training are reported as far as they got (a task fine-tuning has not reached yet
    has no reference, so its normalised reward is NaN). With several fine-tuning runs (seeds),
    a task's reference is the maximum reward any of them obtained."""
    tasks = runs[0]["tasks"]
    fts = [r for r in runs if r["_method"] == "finetune"]
    rep = {"tasks": tasks, "finetune_runs": [ft["_path"] for ft in fts]}
    refs = {}
    for key, (_, suffix) in VARIANTS.items():
        ref = np.max([finetune_max_rewards(ft, len(tasks), key) for ft in fts], 0).tolist()
        refs[key] = ref
        rep[f"finetune_max_reward{suffix}"] = [v if np.isfinite(v) else None for v in ref]
    rep["runs"] = []
    for r in runs:
        rr = {"run": r["_path"], "label": r["_label"], "method": r["_method"],
              "status": r.get("status"), "global_step": r.get("global_step"),
              "progress": progress(r)}
        for key, (matrix, suffix) in VARIANTS.items():
            R = r.get(matrix) or []
            rr[matrix] = R
            rr[f"normalised_accumulated_reward{suffix}"] = \
                metrics.normalised_accumulated_reward(R, refs[key]) if R else []
            rr[f"normalised_accumulated_reward{suffix}_curve"] = nar_curve(r, key, refs[key])
        for key, (matrix, suffix) in VARIANTS.items():
            R = rr[matrix]
            ps = metrics.rl_plasticity_stability(R, [ft.get(matrix) or [] for ft in fts]) \
                if R and len(R) == len(tasks) else {"stability": None, "plasticity": None}
            rr[f"stability{suffix}"], rr[f"plasticity{suffix}"] = ps["stability"], ps["plasticity"]
        rr["eval_curve"] = [{k: c[k] for k in ("step", "task_end", "score", "score_sampled")
                             if k in c} for c in r.get("eval_curve", [])]
        rr["sps"] = r.get("sps")
        rr["regularizer_memory_bytes"] = r.get("regularizer_memory_bytes")
        rr["task_spans"] = task_spans(r)
        rr["training_returns"] = training_returns(r["_path"])
        rr["training_windows"] = training_windows(rr["training_returns"], rr["task_spans"],
                                                  tasks, window)
        rep["runs"].append(rr)
    rep["training_window"] = window
    rep["summary"] = summary(rep["runs"], len(tasks))
    return rep


def nonpositive_references(rep: dict) -> list[str]:
    """The tasks on which fine-tuning's best greedy score is <= 0: their Figure 7 term divides
    by a non-positive number and means nothing."""
    return [t for t, v in zip(rep["tasks"], rep["finetune_max_reward"])
            if v is not None and v <= 0]


# --- the text table --------------------------------------------------------------------------
def _nar_table(rep: dict, suffix: str, what: str) -> list[str]:
    tasks = rep["tasks"]
    ref = ", ".join(f"{t} {m:.4g}" for t, m in zip(tasks, rep[f"finetune_max_reward{suffix}"])
                    if m is not None)
    lines = [f"normalised accumulated reward after each task ({what}; reference: fine-tuning's "
             f"best score per task = {ref or 'none yet'})"]
    head = f"{'run':<28}{'method':<12}" + "".join(f"{t[:11]:>12}" for t in tasks)
    lines += [head, "-" * len(head)]
    for rr in rep["runs"]:
        lines.append(f"{rr['label'][:27]:<28}{rr['method'][:11]:<12}" + "".join(
            f"{v:>12.3f}" for v in rr[f"normalised_accumulated_reward{suffix}"]))
    for method, sm in rep["summary"].items():
        if max(sm["n"], default=0) > 1:
            mean, std = sm[f"normalised_accumulated_reward{suffix}"], \
                sm[f"normalised_accumulated_reward{suffix}_std"]
            lines.append(f"{'mean +- std (seeds)':<28}{method[:11]:<12}" + "".join(
                f"{f'{m:.2f}+-{d:.2f}':>12}" for m, d in zip(mean, std)))
    return lines


def _stability_plasticity_table(rep: dict) -> list[str]:
    fmt = lambda v: f"{v:>10.3f}" if v is not None else f"{'-':>10}"
    lines = ["\nstability S and plasticity P of the finished runs (eq. 16 and 15 on the "
             "raw-score reward matrices; P's reference: fine-tuning's task-end scores):",
             f"{'run':<28}{'method':<12}{'S greedy':>10}{'P greedy':>10}"
             f"{'S sampled':>10}{'P sampled':>10}"]
    for rr in rep["runs"]:
        lines.append(f"{rr['label'][:27]:<28}{rr['method'][:11]:<12}" + "".join(
            fmt(rr.get(k)) for k in ("stability", "plasticity", "stability_sampled",
                                     "plasticity_sampled")))
    return lines


def _progress_lines(rep: dict) -> list[str]:
    lines = ["\nprogress and last evaluation (greedy / sampled raw scores, tasks seen so far):"]
    for rr in rep["runs"]:
        line = f"  {rr['label'][:27]:<28}{rr['progress']}"
        if rr["eval_curve"]:
            c, v = rr["eval_curve"][-1], rr["normalised_accumulated_reward_curve"][-1]["value"]
            g = " ".join(f"{x:.0f}" for x in c.get("score", []))
            smp = " ".join(f"{x:.0f}" for x in c.get("score_sampled", []))
            line += f"; at step {c['step']:,}: {g}" + (f" / {smp}" if smp else "") + (
                f" (normalised accumulated {v:.3f})" if v is not None and np.isfinite(v) else
                " (normalised accumulated: n/a until fine-tuning has a positive score on "
                "every game seen)")
        lines.append(line)
    return lines


def _training_window_lines(rep: dict) -> list[str]:
    lines = [f"\ntraining games: mean raw score per {rep['training_window']:,} env steps of each "
             f"task (games that ended in the window; the last window may be partial):"]
    for rr in rep["runs"]:
        for i, name in enumerate(rep["tasks"]):
            ws = [w for w in rr["training_windows"] if w["task"] == i]
            if ws:
                vals = ", ".join("-" if w["mean_return"] is None else
                                 f"{w['mean_return']:.0f}" for w in ws)
                lines.append(f"  {rr['label'][:27]:<28}{name:<14}{vals}")
    return lines


def _reward_matrix_lines(rep: dict) -> list[str]:
    lines = []
    for rr in rep["runs"]:
        for matrix, what in (("reward_matrix", "greedy"), ("reward_matrix_sampled", "sampled")):
            if matrix == "reward_matrix_sampled" and not rr[matrix]:
                continue
            lines.append(f"\n{rr['label']} ({rr['method']}) reward matrix ({what}, raw score):")
            for i, row in enumerate(rr[matrix]):
                lines.append(f"  after {rep['tasks'][i]:<14}" + "".join(f"{v:>10.1f}" for v in row))
            if not rr[matrix]:
                lines.append("  (no task finished yet)")
    return lines


def format_rl(rep: dict) -> str:
    """The text table of a report ``rl_report`` made: Figure 7 after each task (greedy, then
    sampled where there is any), S and P where any run has them, each run's progress and last
    evaluation, the training-score windows, and the reward matrices."""
    lines = _nar_table(rep, "", "Figure 7, greedy actions: the paper's protocol")
    if any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
        lines += [""] + _nar_table(rep, "_sampled", "sampled actions")
    if any(rr["stability"] is not None or rr["plasticity"] is not None for rr in rep["runs"]):
        lines += _stability_plasticity_table(rep)
    lines += _progress_lines(rep)
    if any(rr["training_windows"] for rr in rep["runs"]):
        lines += _training_window_lines(rep)
    lines += _reward_matrix_lines(rep)
    return "\n".join(lines)
