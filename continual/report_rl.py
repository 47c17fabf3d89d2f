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

Runs are pooled into groups (``metrics.group_runs``: a method and its hyperparameters; seeds
pooled, different hyperparameters never): per group, the aggregate over games and seeds as
rliable computes it (Agarwal et al., NeurIPS 2021) -- the IQM and the mean of the normalised
scores of all complete runs x games, with stratified bootstrap 95% CIs -- and Figure 7, S and
P averaged over its seeds with bootstrap CIs. A game's normalised score is the final
reward-matrix row's score over fine-tuning's best score on that game (Figure 7's
normalisation); a game on which that reference is not positive cannot be normalised and is
left out of the aggregate (the report names it).
"""
from __future__ import annotations

import numpy as np

from . import metrics
from .tensorboard_events import training_returns

TRAINING_WINDOW = 200_000      # env steps per window of the training-score table

# score key of the evaluations -> its reward matrix, its Figure 7 keys in the report
VARIANTS = {"score": ("reward_matrix", ""), "score_sampled": ("reward_matrix_sampled", "_sampled")}

CI_NOTE = (f"95% percentile bootstrap, {metrics.BOOTSTRAP_RESAMPLES} resamples, "
           f"np.random.default_rng(0); IQM and mean of normalised scores: stratified (runs "
           f"resampled with replacement within each game, independently per game; rliable's); "
           f"the other metrics: over the group's seeds; null with one run (n = 1: no interval)")


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
    """Per group (its label; ``runs`` as in the report), mean and std over its runs (seeds) of
    Figure 7 after each task; a column averages the runs that have reached that task (their
    number is in ``n``)."""
    out = {}
    for group in dict.fromkeys(rr.get("group", rr["method"]) for rr in runs):
        rows = [rr for rr in runs if rr.get("group", rr["method"]) == group]
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
        out[group] = sm
    return out


def aggregate_games(tasks: list[str], ref: list[float]) -> tuple[list[int], dict[str, str]]:
    """The games that enter the aggregate (indices) and those left out with the reason: a
    game whose reference (fine-tuning's best score) is missing or not positive has no
    normalised score (a ratio to it would be NaN or flip its sign)."""
    keep, left_out = [], {}
    for j, (t, v) in enumerate(zip(tasks, ref)):
        if v is None or not np.isfinite(v):
            left_out[t] = "fine-tuning has no score on it yet"
        elif v <= 0:
            left_out[t] = f"fine-tuning's best score {v:.4g} is not positive"
        else:
            keep.append(j)
    return keep, left_out


def group_metrics(rows: list[dict], refs: dict, keeps: dict, n_tasks: int,
                  n_resamples: int = metrics.BOOTSTRAP_RESAMPLES) -> dict:
    """One group's estimates. ``rows``: its runs as in the report; ``refs`` / ``keeps``: per
    evaluation kind ("score", "score_sampled"), fine-tuning's best score per game and the
    games in the aggregate. For greedy and, where its runs have them, sampled evaluations:
    "iqm" and "mean_normalised_score" (``metrics.aggregate_scores`` over its complete runs x
    kept games), those "normalised_scores" (complete runs x kept games), Figure 7 after each
    task, S and P, each {"mean", "ci95", "n"} over its seeds."""
    out = {}
    for key, (matrix, suffix) in VARIANTS.items():
        if suffix and not any(rr[matrix] for rr in rows):
            continue
        ref, keep = refs[key], keeps[key]
        done = [rr for rr in rows if len(rr[matrix]) == n_tasks]
        scores = [[rr[matrix][-1][j] / ref[j] for j in keep] for rr in done]
        agg = metrics.aggregate_scores(scores if keep else np.zeros((len(done), 0)),
                                       n_resamples)
        out[f"iqm{suffix}"] = agg["iqm"]
        out[f"mean_normalised_score{suffix}"] = agg["mean"]
        out[f"normalised_scores{suffix}"] = scores
        nar = f"normalised_accumulated_reward{suffix}"
        out[nar] = [metrics.mean_ci([rr[nar][i] for rr in rows if len(rr[nar]) > i],
                                    n_resamples)
                    for i in range(n_tasks) if any(len(rr[nar]) > i for rr in rows)]
        for m in ("stability", "plasticity"):
            out[f"{m}{suffix}"] = metrics.mean_ci([rr[f"{m}{suffix}"] for rr in rows],
                                                  n_resamples)
    return out


def groups(runs: list[dict], rep_runs: list[dict], refs: dict, tasks: list[str],
           n_resamples: int = metrics.BOOTSTRAP_RESAMPLES) -> list[dict]:
    """The report's groups: {"method", "label", "hyperparameters", "varied", "runs" (paths),
    "complete_runs" (those with a full greedy reward matrix: the ones in the aggregate),
    ...``group_metrics``}. ``runs`` as ``report.load_runs`` gives them, ``rep_runs`` the
    report's per-run entries in the same order (their "group", the label, is set here)."""
    keeps = {key: aggregate_games(tasks, refs[key])[0] for key in VARIANTS}
    out = []
    for g in metrics.group_runs([(r["_method"], r["_config"]) for r in runs]):
        rows = [rep_runs[i] for i in g["members"]]
        for rr in rows:
            rr["group"] = g["label"]
        out.append({"method": g["method"], "label": g["label"],
                    "hyperparameters": g["hyperparameters"], "varied": g["varied"],
                    "runs": [rr["run"] for rr in rows],
                    "complete_runs": [rr["run"] for rr in rows
                                      if len(rr["reward_matrix"]) == len(tasks)],
                    **group_metrics(rows, refs, keeps, len(tasks), n_resamples)})
    return out


def rl_report(runs: list[dict], window: int = TRAINING_WINDOW) -> dict:
    """The report of runs of one stream, as ``report.load_runs`` gives them (one or more of them
    fine-tuning): Figure 7 from greedy evaluations and, where the runs have them, from
    sampled-action ones (each normalised by fine-tuning's best score of the same kind). Runs
    still in training are reported as far as they got (a task fine-tuning has not reached yet
    has no reference, so its normalised reward is NaN). With several fine-tuning runs (seeds),
    a task's reference is the maximum reward any of them obtained. Runs are grouped by method
    and hyperparameters (``groups``; "summary" and the runs' "group" use the group labels);
    "aggregate_games" / "aggregate_left_out" say which games the groups' IQM and mean
    cover."""
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
    rep["groups"] = groups(runs, rep["runs"], refs, tasks)
    for key, (matrix, suffix) in VARIANTS.items():
        if suffix and not any(rr[matrix] for rr in rep["runs"]):
            continue
        keep, left_out = aggregate_games(tasks, refs[key])
        rep[f"aggregate_games{suffix}"] = [tasks[j] for j in keep]
        rep[f"aggregate_left_out{suffix}"] = left_out
    rep["confidence_intervals"] = CI_NOTE
    rep["summary"] = summary(rep["runs"], len(tasks))
    return rep


def nonpositive_references(rep: dict) -> list[str]:
    """The tasks on which fine-tuning's best greedy score is <= 0: their Figure 7 term divides
    by a non-positive number and means nothing."""
    return [t for t, v in zip(rep["tasks"], rep["finetune_max_reward"])
            if v is not None and v <= 0]


# --- the text table --------------------------------------------------------------------------
def _group(rr: dict) -> str:
    return rr.get("group", rr["method"])


def _width(rep: dict) -> int:
    """The group column: 12 wide, wider for long group labels."""
    return max([12] + [len(_group(rr)) + 1 for rr in rep["runs"]])


CELL = 26


def _groups_table(rep: dict, suffix: str, what: str) -> list[str]:
    """One row per group: runs (k/n where only k are complete), IQM and mean of the
    normalised scores, Figure 7 after the last task, S and P, each "mean [lo, hi]"."""
    gs = rep["groups"]
    w = max([20] + [len(g["label"]) + 2 for g in gs])
    games = ", ".join(rep.get(f"aggregate_games{suffix}", [])) or "none"
    lines = [f"groups ({what}): runs grouped by method and hyperparameters (all of "
             f"config.json but the seed and the machine part), seeds pooled",
             f"IQM and mean: of the normalised scores (final score / fine-tuning's best score "
             f"on the game) of complete runs x games: {games}"]
    left = rep.get(f"aggregate_left_out{suffix}") or {}
    if left:
        lines.append("left out of IQM and mean: " + "; ".join(f"{t} ({why})"
                                                                for t, why in left.items()))
    cols = [("iqm", "IQM"), ("mean_normalised_score", "mean"),
            ("normalised_accumulated_reward", "Fig. 7 final"), ("stability", "S"),
            ("plasticity", "P")]
    head = f"{'group':<{w}}{'runs':>6}" + "".join(f"{c + ' [95% CI]':>{CELL}}" for _, c in cols)
    lines += [head, "-" * len(head)]
    T = len(rep["tasks"])
    for g in gs:
        cells = []
        for key, _ in cols:
            v = g.get(key + suffix)
            if key == "normalised_accumulated_reward":
                v = v[T - 1] if v and len(v) == T else None
            est = None if v is None else v.get("iqm", v.get("mean"))
            cells.append(f"{metrics.interval_text(est, None if v is None else v['ci95']):>{CELL}}")
        n, k = len(g["runs"]), len(g["complete_runs"])
        lines.append(f"{g['label']:<{w}}{(f'{k}/{n}' if k < n else str(n)):>6}" + "".join(cells))
    lines.append(f"[lo, hi]: {rep.get('confidence_intervals', CI_NOTE)}; [-]: one run, no "
                 f"interval; k/n: only k of the group's n runs have finished every task (IQM, "
                 f"mean, Fig. 7 final, S and P are over those)")
    return lines


def _nar_table(rep: dict, suffix: str, what: str) -> list[str]:
    tasks = rep["tasks"]
    w = _width(rep)
    ref = ", ".join(f"{t} {m:.4g}" for t, m in zip(tasks, rep[f"finetune_max_reward{suffix}"])
                    if m is not None)
    lines = [f"normalised accumulated reward after each task ({what}; reference: fine-tuning's "
             f"best score per task = {ref or 'none yet'})"]
    head = f"{'run':<28}{'method':<{w}}" + "".join(f"{t[:11]:>12}" for t in tasks)
    lines += [head, "-" * len(head)]
    for rr in rep["runs"]:
        lines.append(f"{rr['label'][:27]:<28}{_group(rr):<{w}}" + "".join(
            f"{v:>12.3f}" for v in rr[f"normalised_accumulated_reward{suffix}"]))
    for group, sm in rep["summary"].items():
        if max(sm["n"], default=0) > 1:
            mean, std = sm[f"normalised_accumulated_reward{suffix}"], \
                sm[f"normalised_accumulated_reward{suffix}_std"]
            lines.append(f"{'mean +- std (seeds)':<28}{group:<{w}}" + "".join(
                f"{f'{m:.2f}+-{d:.2f}':>12}" for m, d in zip(mean, std)))
    return lines


def _stability_plasticity_table(rep: dict) -> list[str]:
    fmt = lambda v: f"{v:>10.3f}" if v is not None else f"{'-':>10}"
    w = _width(rep)
    lines = ["\nstability S and plasticity P of the finished runs (eq. 16 and 15 on the "
             "raw-score reward matrices; P's reference: fine-tuning's task-end scores):",
             f"{'run':<28}{'method':<{w}}{'S greedy':>10}{'P greedy':>10}"
             f"{'S sampled':>10}{'P sampled':>10}"]
    for rr in rep["runs"]:
        lines.append(f"{rr['label'][:27]:<28}{_group(rr):<{w}}" + "".join(
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
            lines.append(f"\n{rr['label']} ({_group(rr)}) reward matrix ({what}, raw score):")
            for i, row in enumerate(rr[matrix]):
                lines.append(f"  after {rep['tasks'][i]:<14}" + "".join(f"{v:>10.1f}" for v in row))
            if not rr[matrix]:
                lines.append("  (no task finished yet)")
    return lines


def format_rl(rep: dict) -> str:
    """The text table of a report ``rl_report`` made: the groups with their estimates and 95%
    CIs (greedy, then sampled where there is any; where the report has groups), Figure 7 after
    each task per run (greedy, then sampled), S and P where any run has them, each run's
    progress and last evaluation, the training-score windows, and the reward matrices."""
    lines = []
    if rep.get("groups"):
        lines += _groups_table(rep, "", "greedy actions: the paper's protocol")
        if any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
            lines += [""] + _groups_table(rep, "_sampled", "sampled actions")
        lines.append("")
    lines += _nar_table(rep, "", "Figure 7, greedy actions: the paper's protocol")
    if any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
        lines += [""] + _nar_table(rep, "_sampled", "sampled actions")
    if any(rr["stability"] is not None or rr["plasticity"] is not None for rr in rep["runs"]):
        lines += _stability_plasticity_table(rep)
    lines += _progress_lines(rep)
    if any(rr["training_windows"] for rr in rep["runs"]):
        lines += _training_window_lines(rep)
    lines += _reward_matrix_lines(rep)
    return "\n".join(lines)
