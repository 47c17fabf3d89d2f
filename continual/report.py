"""``train.py report RUN...``: compare runs of one task stream, as the paper does.

RL (reward matrices): the normalised accumulated reward of Figure 7 -- each task's evaluation
score divided by the maximum score the fine-tuning run reached on that task (over its whole
evaluation history), summed over the tasks learned so far -- after each task (table) and over
training (plot, from the periodic evaluations); from greedy evaluations (the paper's) and from
sampled-action ones (``*_sampled``), and each game's raw score over training; stability and
plasticity (eq. 15-16) of the finished runs' reward matrices; and the
training games' raw scores (TensorBoard ``train/episode_return``, weighted by
``train/episodes``) per window of environment steps of each task: the learning curves.

Supervised (accuracy matrices): average accuracy, plasticity P and stability S (eq. 15-16,
the fine-tuning run as A*), backward transfer, regularisation memory relative to EWC
(Figure 6: regularisation state, which includes the stored model, plus the model being
trained), with mean and spread over runs of the same method (seeds); plots of Figures 3-6.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import metrics
from .runfolder import RunError, RunFolder, write_json


def load_runs(paths) -> list[dict]:
    runs = []
    for p in paths:
        p = Path(p)
        f = p / "results.json" if p.is_dir() else p
        if not f.exists() and (f.parent / "config.json").exists():
            print(f"note: {p} is left out: the run has not written results yet (it does at its "
                  f"first checkpoint)")
            continue
        if not f.exists():
            raise RunError(f"{p}: no results.json (is it a run folder of train.py?)")
        res = json.loads(f.read_text())
        cfg_path = f.parent / "config.json"
        res["_config"] = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        res["_path"] = str(f.parent)
        res["_label"] = f.parent.name
        if res.get("status") == "running" and not RunFolder(f.parent).in_use():
            res["status"] = "stopped (no process holds it; --resume continues it)"
        runs.append(res)
    if not runs:
        raise RunError("report needs at least one run folder")
    streams = {tuple(r["tasks"]) for r in runs}
    if len(streams) > 1:
        raise RunError("report compares runs of one task stream; got streams "
                       + " | ".join(",".join(s) for s in streams))
    return runs


def _method(r: dict) -> str:
    return r.get("regularizer") or r["_config"].get("regularizer", "?")


def _finetune(runs: list[dict]) -> list[dict]:
    ft = [r for r in runs if _method(r) == "finetune"]
    if not ft:
        raise RunError("the report needs a fine-tuning run of the same stream among the runs "
                       "(train.py ... --regularizer finetune): it is the reference of Figure 7 "
                       "and of plasticity (eq. 15)")
    return ft


# --- RL ----------------------------------------------------------------------------------
# score key of the evaluations -> its reward matrix, its Figure 7 keys in report.json
VARIANTS = {"score": ("reward_matrix", ""), "score_sampled": ("reward_matrix_sampled", "_sampled")}


def finetune_max_rewards(ft: dict, n_tasks: int, key: str = "score") -> list[float]:
    """Fine-tuning's best evaluation score per task (over its periodic evaluations and its
    reward matrix): the reference of Figure 7. -inf where it has none (yet)."""
    best = [-np.inf] * n_tasks
    for c in ft.get("eval_curve", []):
        for j, v in enumerate(c.get(key, [])):
            best[j] = max(best[j], v)
    for i, row in enumerate(ft.get(VARIANTS[key][0]) or []):
        for j, v in enumerate(row):
            best[j] = max(best[j], v)
    return best


def _progress(r: dict) -> str:
    status = r.get("status", "?")
    done, tasks = r.get("tasks_completed", len(r.get("reward_matrix", []))), r["tasks"]
    where = f"task {done + 1}/{len(tasks)} ({tasks[done]})" if done < len(tasks) else \
        f"{len(tasks)}/{len(tasks)} tasks"
    return f"{status}, {where}, step {r.get('global_step', 0):,}"


def _nar_curve(r: dict, key: str, ref: list[float]) -> list[dict]:
    return [{"step": c["step"],
             "value": float(sum(metrics.normalised(v, ref[j]) for j, v in enumerate(c[key])))}
            for c in r.get("eval_curve", []) if key in c]


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


def _rl_summary(rep: dict) -> dict:
    """Per method, mean and std over its runs (seeds) of Figure 7 after each task; a column
    averages the runs that have reached that task (their number is in ``n``)."""
    out = {}
    for method in dict.fromkeys(rr["method"] for rr in rep["runs"]):
        rows = [rr for rr in rep["runs"] if rr["method"] == method]
        sm = {"runs": [rr["label"] for rr in rows]}
        for suffix in ("", "_sampled"):
            cols = [[rr[f"normalised_accumulated_reward{suffix}"][i] for rr in rows
                     if len(rr[f"normalised_accumulated_reward{suffix}"]) > i]
                    for i in range(len(rep["tasks"]))]
            cols = [c for c in cols if c]
            sm[f"normalised_accumulated_reward{suffix}"] = [float(np.mean(c)) for c in cols]
            sm[f"normalised_accumulated_reward{suffix}_std"] = [float(np.std(c)) for c in cols]
            if not suffix:
                sm["n"] = [len(c) for c in cols]
        out[method] = sm
    return out


def rl_plasticity_stability(R, ft_matrices: list) -> dict:
    """Eq. 15-16 on a complete reward matrix (raw scores; the paper gives them for accuracies
    only). S = mean_j R[T-1][j] / max_{i>=j} R[i][j]; P = mean_i R[i][i] / R*[i][i], R* = the
    fine-tuning runs' task-end scores (mean over those that finished the task). A ratio to a
    non-positive score means nothing, so either is None where one of its denominators is <= 0
    (e.g. Boxing, whose scores can be negative) and P is None while a fine-tuning diagonal
    entry is missing."""
    T = len(R)
    best = [max(R[i][j] for i in range(j, T)) for j in range(T)]
    S = metrics.stability(R) if all(b > 0 for b in best) else None
    ref = mean_diagonal(ft_matrices, T)
    P = metrics.plasticity(R, ref) if all(np.isfinite(r[-1]) and r[-1] > 0 for r in ref) \
        else None
    return {"stability": S, "plasticity": P}


def mean_diagonal(matrices: list, n_tasks: int) -> list[list[float]]:
    """A* of eq. 15 from several runs' matrices: entry i is the mean of A[i][i] over the runs
    that have finished task i (NaN where none has), as rows [0, ..., 0, A*[i][i]]."""
    diag = []
    for i in range(n_tasks):
        vals = [M[i][i] for M in matrices if len(M) > i]
        diag.append(float(np.mean(vals)) if vals else float("nan"))
    return [[0.0] * i + [d] for i, d in enumerate(diag)]


TRAINING_WINDOW = 200_000      # env steps per window of the training-score table


def load_scalars(run_path: str, tags: list[str] | None = None) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of a run's TensorBoard scalars (all tags if ``tags`` is None).
    A resumed run's events after its checkpoint were re-done: TensorBoard keeps the re-done ones."""
    tb = Path(run_path) / "tb"
    if not tb.is_dir():
        return {}
    import logging
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    log = logging.getLogger("tensorboard")
    level = log.level
    log.setLevel(logging.ERROR)    # a resumed run's purge of the steps after its checkpoint is
    try:                           # expected, not the "out of order event" it warns about
        ea.Reload()
    finally:
        log.setLevel(level)
    have = ea.Tags().get("scalars", [])
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in have
            if tags is None or t in tags}


def training_returns(run_path: str) -> list[tuple[int, float, float]]:
    """(step, mean raw score, games) of the training games that ended in each PPO unit, from the
    run's TensorBoard events (``train/episode_return``, ``train/episodes``); [] if none."""
    sc = load_scalars(run_path, ["train/episode_return", "train/episodes"])
    if "train/episode_return" not in sc:
        return []
    games = dict(sc.get("train/episodes", []))
    ret = dict(sc["train/episode_return"])                                  # a step once
    return [(s, ret[s], games.get(s, 1.0)) for s in sorted(ret)]


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


def rl_report(runs: list[dict], out: Path | None, window: int = TRAINING_WINDOW) -> dict:
    """Figure 7 for runs of one stream, from greedy evaluations (the paper's protocol) and,
    where the runs have them, from sampled-action evaluations (each normalised by fine-tuning's
    best score of the same kind). Runs still in training are reported as far as they got
    (their last periodic evaluation is listed; a task fine-tuning has not reached yet has no
    reference, so its normalised reward is NaN). With several fine-tuning runs (seeds), a
    task's reference is the maximum reward any of them obtained."""
    tasks = runs[0]["tasks"]
    fts = _finetune(runs)
    rep = {"tasks": tasks, "finetune_runs": [ft["_path"] for ft in fts]}
    refs = {}
    for key, (_, suffix) in VARIANTS.items():
        # several fine-tuning runs (seeds): the maximum any of them obtained
        ref = np.max([finetune_max_rewards(ft, len(tasks), key) for ft in fts], 0).tolist()
        refs[key] = ref
        rep[f"finetune_max_reward{suffix}"] = [v if np.isfinite(v) else None for v in ref]
    bad = [tasks[j] for j, v in enumerate(refs["score"]) if np.isfinite(v) and v <= 0]
    if bad:
        print(f"warning: fine-tuning's best score is <= 0 on {', '.join(bad)}; the normalised "
              f"reward of those tasks is not meaningful (divided by a non-positive number)")
    rep["runs"] = []
    for r in runs:
        rr = {"run": r["_path"], "label": r["_label"], "method": _method(r),
              "status": r.get("status"), "global_step": r.get("global_step"),
              "progress": _progress(r)}
        for key, (matrix, suffix) in VARIANTS.items():
            R = r.get(matrix) or []
            rr[matrix] = R
            rr[f"normalised_accumulated_reward{suffix}"] = \
                metrics.normalised_accumulated_reward(R, refs[key]) if R else []
            rr[f"normalised_accumulated_reward{suffix}_curve"] = _nar_curve(r, key, refs[key])
        for key, (matrix, suffix) in VARIANTS.items():
            R = rr[matrix]
            ps = rl_plasticity_stability(R, [ft.get(matrix) or [] for ft in fts]) \
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
    rep["summary"] = _rl_summary(rep)
    lines = _nar_table(rep, "", "Figure 7, greedy actions: the paper's protocol")
    if any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
        lines += [""] + _nar_table(rep, "_sampled", "sampled actions")
    if any(rr["stability"] is not None or rr["plasticity"] is not None for rr in rep["runs"]):
        lines.append("\nstability S and plasticity P of the finished runs (eq. 16 and 15 on the "
                     "raw-score reward matrices; P's reference: fine-tuning's task-end scores):")
        fmt = lambda v: f"{v:>10.3f}" if v is not None else f"{'-':>10}"
        lines.append(f"{'run':<28}{'method':<12}{'S greedy':>10}{'P greedy':>10}"
                     f"{'S sampled':>10}{'P sampled':>10}")
        for rr in rep["runs"]:
            lines.append(f"{rr['label'][:27]:<28}{rr['method'][:11]:<12}" + "".join(
                fmt(rr.get(k)) for k in ("stability", "plasticity", "stability_sampled",
                                         "plasticity_sampled")))
    lines.append("\nprogress and last evaluation (greedy / sampled raw scores, tasks seen so far):")
    for rr in rep["runs"]:
        line = f"  {rr['label'][:27]:<28}{rr['progress']}"
        if rr["eval_curve"]:
            c, v = rr["eval_curve"][-1], rr["normalised_accumulated_reward_curve"][-1]["value"]
            g = " ".join(f"{x:.0f}" for x in c.get("score", []))
            smp = " ".join(f"{x:.0f}" for x in c.get("score_sampled", []))
            line += f"; at step {c['step']:,}: {g}" + (f" / {smp}" if smp else "") + (
                f" (normalised accumulated {v:.3f})" if np.isfinite(v) else
                " (normalised accumulated: n/a until fine-tuning has a positive score on "
                "every game seen)")
        lines.append(line)
    if any(rr["training_windows"] for rr in rep["runs"]):
        lines.append(f"\ntraining games: mean raw score per {window:,} env steps of each task "
                     f"(games that ended in the window; the last window may be partial):")
        for rr in rep["runs"]:
            for i, name in enumerate(tasks):
                ws = [w for w in rr["training_windows"] if w["task"] == i]
                if ws:
                    vals = ", ".join("-" if w["mean_return"] is None else
                                     f"{w['mean_return']:.0f}" for w in ws)
                    lines.append(f"  {rr['label'][:27]:<28}{name:<14}{vals}")
    for rr in rep["runs"]:
        for matrix, what in (("reward_matrix", "greedy"), ("reward_matrix_sampled", "sampled")):
            if matrix == "reward_matrix_sampled" and not rr[matrix]:
                continue
            lines.append(f"\n{rr['label']} ({rr['method']}) reward matrix ({what}, raw score):")
            for i, row in enumerate(rr[matrix]):
                lines.append(f"  after {tasks[i]:<14}" + "".join(f"{v:>10.1f}" for v in row))
            if not rr[matrix]:
                lines.append("  (no task finished yet)")
    rep["table"] = "\n".join(lines)
    if out is not None:
        _plot_rl(rep, out)
        _plot_scores_per_game(rep, out)
        if any(rr["training_returns"] for rr in rep["runs"]):
            _plot_training_scores(rep, out)
    return rep


def _plot_rl(rep: dict, out: Path) -> None:
    """Figure 7 over training: greedy (solid, the paper's) and sampled (dashed) evaluations."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, rr in enumerate(rep["runs"]):
        for suffix, ls, what in (("", "-", "greedy"), ("_sampled", "--", "sampled")):
            pts = [p for p in rr[f"normalised_accumulated_reward{suffix}_curve"]
                   if np.isfinite(p["value"])]
            if pts:
                # earlier runs drawn wider: a run that coincides with another stays visible
                ax.plot([p["step"] for p in pts], [p["value"] for p in pts], ls, marker=".",
                        color=colours[k % len(colours)], lw=max(0.8, 2.6 - 0.6 * k),
                        label=f"{rr['label']} ({rr['method']}, {what})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("normalised accumulated reward")
    ax.set_title("Accumulated performance (Figure 7)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "normalised_accumulated_reward.png", dpi=130)
    plt.close(fig)


def _plot_scores_per_game(rep: dict, out: Path) -> None:
    """One panel per game: every run's raw evaluation score over training (greedy solid,
    sampled dashed), task boundaries dotted -- where forgetting shows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = rep["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False,
                             sharex=True)
    ends = sorted({c["step"] for rr in rep["runs"] for c in rr["eval_curve"]
                   if c.get("task_end")})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (ax, name) in enumerate(zip(axes[0], tasks)):
        for k, rr in enumerate(rep["runs"]):
            col = colours[k % len(colours)]
            for key, ls in (("score", "-"), ("score_sampled", "--")):
                pts = [(c["step"], c[key][j]) for c in rr["eval_curve"]
                       if len(c.get(key, [])) > j]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, ls, color=col, marker=".", ms=3, lw=max(0.7, 2.0 - 0.5 * k),
                            label=f"{rr['label']}" if key == "score" else None)
        for e in ends:
            ax.axvline(e, color="grey", lw=0.6, ls=":")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("environment steps")
        if j == 0:
            ax.set_ylabel("raw score (greedy -, sampled --)")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scores_per_game.png", dpi=120)
    plt.close(fig)


def _plot_training_scores(rep: dict, out: Path, smooth: int = 25) -> None:
    """One panel per game: every run's training-game raw score over the steps of that task
    (the mean over a sliding window of ``smooth`` units, weighted by games)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = rep["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, rr in enumerate(rep["runs"]):
        pts = rr["training_returns"]
        for j, (lo, hi) in enumerate(rr["task_spans"]):
            seg = [(s, v, g) for s, v, g in pts if lo < s <= hi and g > 0]
            if not seg:
                continue
            xs, ys = [], []
            for m in range(len(seg)):
                win = seg[max(0, m - smooth + 1):m + 1]
                n = sum(g for _, _, g in win)
                xs.append(seg[m][0] - lo)
                ys.append(sum(v * g for _, v, g in win) / n)
            # dashes for later runs: identical curves (EWC's first task is fine-tuning's) stay visible
            axes[0][j].plot(xs, ys, color=colours[k % len(colours)], lw=1,
                            ls=("-", "--", ":", "-.")[k % 4],
                            label=rr["label"] if j == 0 else None)
    for j, name in enumerate(tasks):
        axes[0][j].set_title(name, fontsize=10)
        axes[0][j].set_xlabel("environment steps in this task")
    axes[0][0].set_ylabel("training games' raw score")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "training_scores.png", dpi=120)
    plt.close(fig)


# --- supervised ---------------------------------------------------------------------------
def _mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs))


def _seed(r: dict):
    return (r.get("classifier_config") or {}).get("seed", (r["_config"].get("classifier")
                                                          or {}).get("seed"))


def _plasticity_reference(ft_runs: list[dict], seed, n_tasks: int):
    """A* of eq. 15: the fine-tuning run(s) of the same seed (the seed fixes the class order
    and splits, so task j is the same task), else the mean over all fine-tuning runs; per
    diagonal entry over the runs that have reached it (NaN where none has)."""
    same = [r for r in ft_runs if seed is not None and _seed(r) == seed]
    use = same or ft_runs
    how = f"fine-tuning, seed {seed}" if same else f"mean of {len(use)} fine-tuning run(s)"
    return mean_diagonal([r["accuracy_matrix"] for r in use], n_tasks), how


def supervised_report(runs: list[dict], out: Path | None) -> dict:
    tasks = runs[0]["tasks"]
    ft_runs = _finetune(runs)
    ewc_mem = [r["regularizer_memory_bytes"] + r.get("model_bytes", 0)
               for r in runs if _method(r).startswith("ewc")]
    per_run = []
    for r in runs:
        A = r["accuracy_matrix"]
        complete = len(A) == len(tasks)
        ref, ref_from = _plasticity_reference(ft_runs, _seed(r), len(tasks))
        complete_ref = bool(np.all(np.isfinite(np.diag(metrics._square(ref)))))
        mem = r["regularizer_memory_bytes"] + r.get("model_bytes", 0)
        per_run.append({
            "run": r["_path"], "label": r["_label"], "method": _method(r),
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
    by_method = defaultdict(list)
    for pr in per_run:
        by_method[pr["method"]].append(pr)
    ft_time = _mean_std([p["seconds_per_task"] for p in by_method.get("finetune", [])])[0]
    summary = {}
    for m, prs in by_method.items():
        summary[m] = {"runs": len(prs),
                      "complete": sum(p["average_accuracy"] is not None for p in prs)}
        for k in ("average_accuracy", "plasticity", "stability", "bwt", "relative_memory",
                  "regularizer_memory_bytes", "seconds_per_task"):
            mean, std = _mean_std([p[k] for p in prs])
            summary[m][k] = mean
            summary[m][k + "_std"] = std
        if ft_time and summary[m]["seconds_per_task"]:
            summary[m]["time_relative_to_finetune"] = summary[m]["seconds_per_task"] / ft_time
    cols = [("average_accuracy", "avg acc"), ("plasticity", "P"), ("stability", "S"),
            ("bwt", "BWT"), ("relative_memory", "mem/EWC"),
            ("time_relative_to_finetune", "time/FT")]
    head = f"{'method':<20}{'runs':>5}" + "".join(f"{c[1]:>16}" for c in cols)
    lines = [head, "-" * len(head)]
    for m, sm in summary.items():
        cells = []
        for k, _ in cols:
            v, sd = sm.get(k), sm.get(k + "_std")
            cells.append(f"{'-':>16}" if v is None else
                         (f"{v:>9.3f} ± {sd:.3f}" if sd is not None and sm["runs"] > 1
                          else f"{v:>16.3f}"))
        n = f"{sm['complete']}/{sm['runs']}" if sm["complete"] < sm["runs"] else sm["runs"]
        lines.append(f"{m:<20}{n:>5}" + "".join(cells))
    if any(sm["complete"] < sm["runs"] for sm in summary.values()):
        lines.append("(k/n: only k of the method's n runs have finished every task; the means "
                     "are over those)")
    rep = {"tasks": tasks, "runs": per_run, "summary": summary, "table": "\n".join(lines)}
    if out is not None:
        _plot_supervised(rep, out)
    return rep


def _padded(rows: list[list]) -> np.ndarray:
    M = np.full((len(rows), max((len(r) for r in rows), default=0)), np.nan)
    for i, r in enumerate(rows):
        M[i, :len(r)] = [np.nan if v is None else v for v in r]
    return M


def _plot_supervised(rep: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by = defaultdict(list)
    for pr in rep["runs"]:
        by[pr["method"]].append(pr)
    # Figure 3: average accuracy over tasks
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, prs in by.items():
        curves = np.array([p["average_accuracy_curve"] for p in prs
                           if len(p["average_accuracy_curve"]) == len(rep["tasks"])])
        if len(curves):
            x = np.arange(1, curves.shape[1] + 1)
            ax.errorbar(x, curves.mean(0), yerr=curves.std(0), marker="o", capsize=3, label=m)
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("average accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig3_average_accuracy.png", dpi=130)
    plt.close(fig)
    # Figure 4: sparsity and used capacity (AGS-CL variants)
    agscl = {m: prs for m, prs in by.items() if prs[0]["sparsity"]}
    if agscl:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m, prs in agscl.items():
            # runs still training have fewer tasks: NaN-pad, average what exists per task
            sp, uc = (_padded([p[k] or [] for p in prs]) for k in ("sparsity", "used_capacity"))
            x = np.arange(1, sp.shape[1] + 1)
            ax.plot(x, np.nanmean(sp, 0), marker="o", label=f"{m} sparsity")
            ax.plot(x, np.nanmean(uc, 0), marker="s", ls="--", label=f"{m} used capacity")
        ax.set_xlabel("task")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "fig4_sparsity_capacity.png", dpi=130)
        plt.close(fig)
    # Figure 5: plasticity vs stability
    fig, ax = plt.subplots(figsize=(5, 4))
    for m, prs in by.items():
        pts = [(p["plasticity"], p["stability"]) for p in prs if p["plasticity"] is not None]
        if pts:
            ax.scatter(*zip(*pts), label=m)
    ax.set_xlabel("plasticity P (eq. 15)")
    ax.set_ylabel("stability S (eq. 16)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5_plasticity_stability.png", dpi=130)
    plt.close(fig)
    # Figure 6: memory
    mems = {m: np.mean([p["relative_memory"] for p in prs]) for m, prs in by.items()
            if prs[0]["relative_memory"] is not None}
    if mems:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(list(mems), list(mems.values()))
        ax.set_ylabel("memory relative to EWC")
        ax.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        fig.savefig(out / "fig6_memory.png", dpi=130)
        plt.close(fig)


def report(paths, out: str | None = None, window: int = TRAINING_WINDOW) -> dict:
    if not (isinstance(window, int) and window >= 1):
        raise RunError(f"window={window!r}: the training-score window must be a number of env "
                       f"steps >= 1")
    runs = load_runs(paths)
    out_dir = Path(out) if out else Path(runs[0]["_path"]).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # runs written before the trainer always listed its matrix: an Atari run's config says so
    if "reward_matrix" in runs[0] or runs[0]["_config"].get("command") == "atari":
        rep = rl_report(runs, out_dir, window)
    elif runs[0].get("accuracy_matrix"):
        rep = supervised_report(runs, out_dir)
    else:
        raise RunError(f"{runs[0]['_path']}: results.json has no accuracy matrix yet (a "
                       f"supervised report needs every run to have finished its first task)")
    write_json(out_dir / "report.json", _finite_or_null(rep))
    return rep


def _finite_or_null(o):
    """NaN/inf (a task fine-tuning has no positive score on yet) as null: strict JSON."""
    if isinstance(o, float):
        return o if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite_or_null(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_null(v) for v in o]
    return o
