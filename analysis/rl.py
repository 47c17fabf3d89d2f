"""The RL report (reward matrices) as a plain dict: ``rl_report`` (its text table is
``text.format_rl``).

Figure 7's normalised accumulated reward -- each task's evaluation score divided by the
maximum score the fine-tuning run reached on that task (over its whole evaluation history;
``reference_window`` > 1: its best mean of that many consecutive evaluations), summed over the
tasks learned so far -- after each task (table) and over training (plot, from the periodic
evaluations); from greedy evaluations (the paper's protocol) and from sampled-action ones
(``*_sampled``). A game on which that reference is not positive (Boxing's scores can be
negative) has no ratio and is left out of the sum ("figure7_left_out"). Beside it, per game,
the human-normalised score (score - random) / (human - random) of the Atari literature (random
and human scores: the stream's ``SCORES``, envs/) and the random-normalised score (score - random) /
(fine-tuning's best - random) (``metrics.random_normalised``); stability S and plasticity P
(eq. 16 and 15) of the finished runs' reward matrices; forgetting per task (the drop from its
best score after it was learned to its final one, raw and normalised) and Continual World's
forward transfer per task (its evaluation curve during its own training against single-task
runs from scratch, or fine-tuning's where none is given); and the training games' raw scores
(TensorBoard ``train/episode_return``, weighted by ``train/episodes``) per window of
environment steps of each task: the learning curves.

Runs are pooled into groups (``grouping.group_runs``: a method and its hyperparameters; seeds
pooled, different hyperparameters never): per group, the aggregate over games and seeds as
rliable computes it (Agarwal et al., NeurIPS 2021) -- the IQM and the mean of the normalised
scores of all complete runs x games, with stratified bootstrap 95% CIs -- and Figure 7, S, P,
forgetting and forward transfer averaged over its seeds with bootstrap CIs. A game's
normalised score is the final reward-matrix row's score over fine-tuning's best score on that
game (Figure 7's normalisation); a game on which that reference is not positive cannot be
normalised and is left out of the aggregate (the report names it). The human- and
random-normalised scores have their own aggregates.
"""
from __future__ import annotations

import numpy as np

from envs import streams

from . import bootstrap, grouping, metrics
from .tensorboard_events import training_returns

TRAINING_WINDOW = 200_000      # env steps per window of the training-score table
REFERENCE_WINDOW = 1           # Figure 7's reference: fine-tuning's best single evaluation

# AGS-CL's per-layer capacity diagnosis (regularizers/agscl.py), results keys "<key>/<layer>"
CAPACITY_KEYS = ("g0_start", "g0_end", "g0_used", "important_moved", "drift", "freeze_threshold")

# score key of the evaluations -> its reward matrix, its Figure 7 keys in the report
VARIANTS = {"score": ("reward_matrix", ""), "score_sampled": ("reward_matrix_sampled", "_sampled")}

CI_NOTE = (f"95% percentile bootstrap, {bootstrap.BOOTSTRAP_RESAMPLES} resamples, "
           f"np.random.default_rng(0); IQM and mean of normalised scores: stratified (runs "
           f"resampled with replacement within each game, independently per game; rliable's); "
           f"the other metrics: over the group's seeds; null with one run (n = 1: no interval)")


def finetune_max_rewards(ft: dict, n_tasks: int, key: str = "score",
                         window: int = REFERENCE_WINDOW) -> list[float]:
    """Fine-tuning's reference of Figure 7 per task: the best mean of ``window`` consecutive
    evaluations of the task (``metrics.best_running_mean``). window 1, the paper's: its best
    single evaluation, over its periodic evaluation curve and its reward matrix. window > 1:
    over the curve's evaluations of the task in step order (they include the task-end ones;
    the matrix's column where the curve has none). -inf where it has none (yet), or fewer
    than ``window``."""
    curve = sorted(ft.get("eval_curve", []), key=lambda c: c["step"])
    matrix = ft.get(VARIANTS[key][0]) or []
    best = []
    for j in range(n_tasks):
        in_curve = [c[key][j] for c in curve if len(c.get(key, [])) > j]
        in_matrix = [row[j] for row in matrix if len(row) > j]
        seq = in_curve + in_matrix if window == 1 else (in_curve or in_matrix)
        best.append(metrics.best_running_mean(seq, window))
    return best


def reference_rule(window: int) -> str:
    """Figure 7's reference in words."""
    return "fine-tuning's best score" if window == 1 else \
        f"fine-tuning's best mean of {window} consecutive evaluations"


def benchmark(runs: list[dict]) -> str:
    """The stream's benchmark: its runs' command (a name in ``envs.streams.STREAMS``)."""
    return runs[0]["_config"]["command"]


def reference_scores(bench: str, tasks: list[str], protocol: dict | None = None) -> dict:
    """The reference scores of the stream's games (its module's ``SCORES``): {"benchmark",
    "source", "random": {game: score}, "human": {game: score}, ["constant"], "note"} (empty
    where none is known). Given only where ``protocol`` (``eval_protocol`` of the runs) is the
    one the stream's scores hold for (its ``SCORES_PROTOCOL``; None: any)."""
    stream = streams.STREAMS.get(bench)
    scores = getattr(stream, "SCORES", None) or {}
    wanted = getattr(stream, "SCORES_PROTOCOL", None)
    if not scores or wanted is not None and protocol != wanted:
        note = getattr(stream, "NO_SCORES", "") or \
            f"no published random or human scores are known for {bench}"
        return {"benchmark": bench, "source": None, "random": {}, "human": {}, "note": note}
    rand, human = scores.get("random", {}), scores.get("human", {})
    out = {"benchmark": bench, "source": stream.SCORES_SOURCE,
           "random": {t: rand[t] for t in tasks if t in rand},
           "human": {t: human[t] for t in tasks if t in human and t in rand}}
    if "constant" in scores:
        out["constant"] = {t: scores["constant"][t] for t in tasks if t in scores["constant"]}
    missing = [t for t in tasks if t not in rand]
    out["note"] = f"no published scores for {', '.join(missing)}" if missing else None
    return out


def eval_protocol(runs: list[dict]) -> dict | None:
    """The runs' shared settings that the stream's reference scores hold for (its
    ``SCORES_PROTOCOL``'s keys: a top-level config key or one of "ppo"); None where they
    differ or the stream names none."""
    wanted = getattr(streams.STREAMS.get(benchmark(runs)), "SCORES_PROTOCOL", None)
    if wanted is None:
        return None
    ps = [{k: r["_config"].get(k, (r["_config"].get("ppo") or {}).get(k)) for k in wanted}
          for r in runs]
    return ps[0] if all(p == ps[0] for p in ps) else None


def normalised_matrices(R, tasks: list[str], scores: dict, ref: list[float]):
    """A reward matrix human-normalised ((score - random) / (human - random)) and
    random-normalised ((score - random) / (ref - random), ref = Figure 7's), entry by entry;
    None where the game has no published score or (random) its reference is not above random
    play."""
    rand, human = scores["random"], scores["human"]
    hn = [[metrics.human_normalised(v, rand[tasks[j]], human[tasks[j]])
           if tasks[j] in human else None for j, v in enumerate(row)] for row in R]
    rn = [[_finite(metrics.random_normalised(v, rand[tasks[j]], ref[j]))
           if tasks[j] in rand else None for j, v in enumerate(row)] for row in R]
    return hn, rn


def _finite(v):
    return float(v) if v is not None and np.isfinite(v) else None


def _with_mean(values) -> dict:
    """{"per_task", "mean": over the tasks that have a value (None if none has)}."""
    xs = [v for v in values if v is not None]
    return {"per_task": values, "mean": float(np.mean(xs)) if xs else None}


def run_forgetting(R, tasks: list[str], ref: list[float], scores: dict) -> dict:
    """Forgetting of one run (``metrics.forgetting_matrix``, ``metrics.forgetting``):
    {"matrix": F[i][j] after each finished task, "per_task" (tasks but the last, complete runs
    only), "mean", "normalised" (over Figure 7's reference: a fraction of fine-tuning's best;
    None where it is not positive) and "human_normalised" (over human - random), each with
    "per_task" and "mean"}."""
    T = len(tasks)
    out = {"matrix": metrics.forgetting_matrix(R) if R else [], "per_task": None,
           "mean": None, "normalised": {"per_task": None, "mean": None},
           "human_normalised": {"per_task": None, "mean": None}}
    if len(R) < T or T < 2:
        return out
    raw = metrics.forgetting(R)
    human, rand = scores["human"], scores["random"]
    out.update(_with_mean(raw))
    out["normalised"] = _with_mean([f / ref[j] if np.isfinite(ref[j]) and ref[j] > 0 else None
                                    for j, f in enumerate(raw)])
    out["human_normalised"] = _with_mean([f / (human[tasks[j]] - rand[tasks[j]])
                                          if tasks[j] in human else None
                                          for j, f in enumerate(raw)])
    return out


def tasks_finished(r: dict) -> int:
    """How many tasks a run has finished: its task-end evaluations."""
    return sum(1 for c in r.get("eval_curve", []) if c.get("task_end"))


def task_curve(r: dict, key: str, j: int) -> list[tuple[int, float]]:
    """The run's evaluation curve of task j during task j's own training: [(steps since the
    task started, score)], from its evaluations in the task's span (``task_spans``)."""
    spans = task_spans(r)
    if j >= len(spans):
        return []
    lo, hi = spans[j]
    return [(c["step"] - lo, c[key][j]) for c in sorted(r.get("eval_curve", []),
                                                        key=lambda c: c["step"])
            if lo < c["step"] <= hi and len(c.get(key, [])) > j]


def run_forward_transfer(r: dict, key: str, tasks: list[str], references: list) -> dict:
    """Continual World's forward transfer of one run per task
    (``metrics.continual_world_forward_transfer``): its evaluation curve during task j's
    training against the reference runs' curves of that game over as many steps
    (``references[j]``: [(run, its task index of the game)]). {"per_task", "mean" (over the
    tasks that have one, once the run has finished every task), "auc", "auc_reference",
    "why_missing": {game: why}}."""
    per, aucs, auc_refs, why = [], [], [], {}
    spans, done = task_spans(r), tasks_finished(r)
    for j, game in enumerate(tasks):
        res = None
        if j >= done:
            why[game] = "the run has not finished this task"
        else:
            steps = spans[j][1] - spans[j][0]
            curves, short = [], []
            for ref, k in references[j]:
                ref_spans = task_spans(ref)
                trained = ref_spans[k][1] - ref_spans[k][0] if k < len(ref_spans) else 0
                pts = [(s, v) for s, v in task_curve(ref, key, k) if s <= steps]
                if trained < steps or not pts:
                    short.append(f"{ref['_label']} ({trained:,} steps)")
                else:
                    curves.append(pts)
            mine = task_curve(r, key, j)
            if not mine:
                why[game] = "no evaluation during its training"
            elif not curves:
                why[game] = (f"no reference has trained this game for the run's {steps:,} "
                             f"steps: {', '.join(short) or 'none'}")
            else:
                res = metrics.continual_world_forward_transfer(mine, curves)
                if res["ft"] is None:
                    why[game] = res["why"]
        per.append(res["ft"] if res else None)
        aucs.append(res["auc"] if res else None)
        auc_refs.append(res["auc_reference"] if res else None)
    mean = _with_mean(per)["mean"] if done == len(tasks) else None
    return {"per_task": per, "mean": mean, "auc": aucs, "auc_reference": auc_refs,
            "why_missing": why}


def forward_transfer_references(tasks: list[str], fts: list[dict], single: list[dict]):
    """Per task: the reference runs of forward transfer, [(run, its task index of the game)],
    and their description: the single-task runs of that game where any is given (Continual
    World's reference: training from scratch), else the fine-tuning runs' same task."""
    refs, labels = [], {}
    for j, game in enumerate(tasks):
        mine = [s for s in single if s["tasks"] == [game]]
        if mine:
            refs.append([(s, 0) for s in mine])
            labels[game] = "single-task run(s) from scratch: " + ", ".join(s["_path"]
                                                                          for s in mine)
        else:
            refs.append([(ft, j) for ft in fts])
            labels[game] = "fine-tuning (no single-task run of this game given): transfer " \
                           "relative to fine-tuning, not to learning from scratch"
    return refs, labels


def progress(r: dict) -> str:
    """"<status>, task i/T (<game>), step N": how far a run has got."""
    status = r.get("status", "?")
    done, tasks = r.get("tasks_completed", len(r.get("reward_matrix", []))), r["tasks"]
    where = f"task {done + 1}/{len(tasks)} ({tasks[done]})" if done < len(tasks) else \
        f"{len(tasks)}/{len(tasks)} tasks"
    return f"{status}, {where}, step {r.get('global_step', 0):,}"


def nar_curve(r: dict, key: str, ref: list[float]) -> list[dict]:
    """Figure 7 over training: [{"step", "value"}] at each periodic evaluation."""
    return [{"step": c["step"], "value": metrics.figure7_sum(c[key], ref)}
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


def figure7_left_out(tasks: list[str], ref: list[float]) -> dict[str, str]:
    """The games left out of Figure 7's sum, with the reason: fine-tuning's best score on them
    is not positive (``metrics.figure7_sum``)."""
    return {t: f"fine-tuning's best score {v:.4g} is not positive"
            for t, v in zip(tasks, ref) if np.isfinite(v) and v <= 0}


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


def _per_task_ci(lists, n: int, n_resamples: int) -> list[dict]:
    """Per task, ``bootstrap.mean_ci`` over the runs' values (lists of None where a run has
    none)."""
    return [bootstrap.mean_ci([x[j] for x in lists if x is not None and len(x) > j],
                            n_resamples) for j in range(n)]


def _normalised_aggregate(done: list[dict], matrix: str, games: list[tuple[int, str]],
                          n_resamples: int) -> dict:
    """rliable's aggregate of one normalisation's final scores: {"games", "iqm", "mean"
    (``bootstrap.aggregate_scores`` over complete runs x ``games``), "scores", "per_game"
    (``bootstrap.mean_ci`` over the runs per game)}."""
    scores = [[rr[matrix][-1][j] for j, _ in games] for rr in done]
    agg = bootstrap.aggregate_scores(scores if games else np.zeros((len(done), 0)), n_resamples)
    return {"games": [g for _, g in games], "iqm": agg["iqm"], "mean": agg["mean"],
            "scores": scores,
            "per_game": [bootstrap.mean_ci([s[k] for s in scores], n_resamples)
                         for k in range(len(games))]}


def group_metrics(rows: list[dict], refs: dict, keeps: dict, n_tasks: int,
                  norm_games: dict | None = None,
                  n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES) -> dict:
    """One group's estimates. ``rows``: its runs as in the report; ``refs`` / ``keeps``: per
    evaluation kind ("score", "score_sampled"), fine-tuning's best score per game and the
    games in the aggregate; ``norm_games``: per (kind, "human" or "random") the games
    [(index, name)] with that normalised score. For greedy and, where its runs have them,
    sampled evaluations: "iqm" and "mean_normalised_score" (``bootstrap.aggregate_scores`` over
    its complete runs x kept games), those "normalised_scores" (complete runs x kept games)
    and "normalised_scores_per_game" (their mean over seeds per kept game); Figure 7 after
    each task, S and P, each {"mean", "ci95", "n"} over its seeds; "human_normalised" and
    "random_normalised" (``_normalised_aggregate``); "forgetting" ({"mean", "per_task"}, and
    so for "normalised" and "human_normalised") and "forward_transfer" ({"mean",
    "per_task"}), each ``mean_ci`` over its seeds."""
    out = {}
    for key, (matrix, suffix) in VARIANTS.items():
        if suffix and not any(rr[matrix] for rr in rows):
            continue
        ref, keep = refs[key], keeps[key]
        done = [rr for rr in rows if len(rr[matrix]) == n_tasks]
        scores = [[rr[matrix][-1][j] / ref[j] for j in keep] for rr in done]
        agg = bootstrap.aggregate_scores(scores if keep else np.zeros((len(done), 0)),
                                       n_resamples)
        out[f"iqm{suffix}"] = agg["iqm"]
        out[f"mean_normalised_score{suffix}"] = agg["mean"]
        out[f"normalised_scores{suffix}"] = scores
        out[f"normalised_scores_per_game{suffix}"] = [
            bootstrap.mean_ci([s[k] for s in scores], n_resamples) for k in range(len(keep))]
        nar = f"normalised_accumulated_reward{suffix}"
        out[nar] = [bootstrap.mean_ci([rr[nar][i] for rr in rows if len(rr[nar]) > i],
                                    n_resamples)
                    for i in range(n_tasks) if any(len(rr[nar]) > i for rr in rows)]
        for m in ("stability", "plasticity"):
            out[f"{m}{suffix}"] = bootstrap.mean_ci([rr[f"{m}{suffix}"] for rr in rows],
                                                  n_resamples)
        for kind in ("human", "random"):
            out[f"{kind}_normalised{suffix}"] = _normalised_aggregate(
                done, f"{kind}_normalised_matrix{suffix}",
                (norm_games or {}).get((key, kind), []), n_resamples)
        fg = [rr[f"forgetting{suffix}"] for rr in rows]
        out[f"forgetting{suffix}"] = {
            "mean": bootstrap.mean_ci([f["mean"] for f in fg], n_resamples),
            "per_task": _per_task_ci([f["per_task"] for f in fg], n_tasks - 1, n_resamples),
            **{part: {"mean": bootstrap.mean_ci([f[part]["mean"] for f in fg], n_resamples),
                      "per_task": _per_task_ci([f[part]["per_task"] for f in fg],
                                               n_tasks - 1, n_resamples)}
               for part in ("normalised", "human_normalised")}}
        ft = [rr[f"forward_transfer{suffix}"] for rr in rows]
        out[f"forward_transfer{suffix}"] = {
            "mean": bootstrap.mean_ci([f["mean"] for f in ft], n_resamples),
            "per_task": _per_task_ci([f["per_task"] for f in ft], n_tasks, n_resamples)}
    return out


def normalised_games(tasks: list[str], scores: dict, refs: dict) -> dict:
    """Per (evaluation kind, "human" / "random"): the games [(index, name)] with that
    normalised score: a published human score; a published random score below Figure 7's
    reference."""
    out = {}
    for key in VARIANTS:
        out[(key, "human")] = [(j, t) for j, t in enumerate(tasks) if t in scores["human"]]
        out[(key, "random")] = [(j, t) for j, t in enumerate(tasks) if t in scores["random"]
                                and np.isfinite(refs[key][j])
                                and refs[key][j] > scores["random"][t]]
    return out


def groups(runs: list[dict], rep_runs: list[dict], refs: dict, tasks: list[str],
           norm_games: dict | None = None,
           n_resamples: int = bootstrap.BOOTSTRAP_RESAMPLES) -> list[dict]:
    """The report's groups: {"method", "label", "hyperparameters", "varied", "runs" (paths),
    "complete_runs" (those with a full greedy reward matrix: the ones in the aggregate),
    ...``group_metrics``}. ``runs`` as ``report.load_runs`` gives them, ``rep_runs`` the
    report's per-run entries in the same order (their "group", the label, is set here)."""
    keeps = {key: aggregate_games(tasks, refs[key])[0] for key in VARIANTS}
    out = []
    for g in grouping.group_runs([(r["_method"], r["_config"]) for r in runs]):
        rows = [rep_runs[i] for i in g["members"]]
        for rr in rows:
            rr["group"] = g["label"]
        out.append({"method": g["method"], "label": g["label"],
                    "hyperparameters": g["hyperparameters"], "varied": g["varied"],
                    "runs": [rr["run"] for rr in rows],
                    "complete_runs": [rr["run"] for rr in rows
                                      if len(rr["reward_matrix"]) == len(tasks)],
                    **group_metrics(rows, refs, keeps, len(tasks), norm_games, n_resamples)})
    return out


def rl_report(runs: list[dict], window: int = TRAINING_WINDOW,
              reference_window: int = REFERENCE_WINDOW, single: list[dict] = ()) -> dict:
    """The report of runs of one stream, as ``report.load_runs`` gives them (one or more of them
    fine-tuning): Figure 7 from greedy evaluations and, where the runs have them, from
    sampled-action ones (each normalised by fine-tuning's best score of the same kind, or its
    best mean of ``reference_window`` consecutive evaluations). Runs still in training are
    reported as far as they got (a task fine-tuning has not reached yet has no reference, so
    its normalised reward is NaN). With several fine-tuning runs (seeds), a task's reference is
    the maximum reward any of them obtained. ``single``: single-task runs from scratch (one
    game of the stream each, loaded as the runs), forward transfer's reference; fine-tuning
    where a game has none. Runs are grouped by method and hyperparameters (``groups``;
    "summary" and the runs' "group" use the group labels); "aggregate_games" /
    "aggregate_left_out" say which games the groups' IQM and mean cover, "figure7_left_out"
    which games Figure 7's sum leaves out."""
    tasks = runs[0]["tasks"]
    fts = [r for r in runs if r["_method"] == "finetune"]
    scores = reference_scores(benchmark(runs), tasks, eval_protocol(runs))
    rep = {"tasks": tasks, "finetune_runs": [ft["_path"] for ft in fts],
           "figure7_reference": {"window": reference_window,
                                 "rule": reference_rule(reference_window)},
           "reference_scores": scores, "single_task_runs": [s["_path"] for s in single]}
    refs = {}
    for key, (_, suffix) in VARIANTS.items():
        ref = np.max([finetune_max_rewards(ft, len(tasks), key, reference_window)
                      for ft in fts], 0).tolist()
        refs[key] = ref
        rep[f"finetune_max_reward{suffix}"] = [v if np.isfinite(v) else None for v in ref]
    ft_refs, rep["forward_transfer_reference"] = forward_transfer_references(tasks, fts,
                                                                             list(single))
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
            rr[f"human_normalised_matrix{suffix}"], rr[f"random_normalised_matrix{suffix}"] = \
                normalised_matrices(R, tasks, scores, refs[key])
            rr[f"forgetting{suffix}"] = run_forgetting(R, tasks, refs[key], scores)
            rr[f"forward_transfer{suffix}"] = run_forward_transfer(r, key, tasks, ft_refs)
        for key, (matrix, suffix) in VARIANTS.items():
            R = rr[matrix]
            ps = metrics.rl_plasticity_stability(R, [ft.get(matrix) or [] for ft in fts]) \
                if R and len(R) == len(tasks) else {"stability": None, "plasticity": None}
            rr[f"stability{suffix}"], rr[f"plasticity{suffix}"] = ps["stability"], ps["plasticity"]
        rr["eval_curve"] = [{k: c[k] for k in ("step", "task_end", "score", "score_sampled")
                             if k in c} for c in r.get("eval_curve", [])]
        rr["sps"] = r.get("sps")
        rr["regularizer_memory_bytes"] = r.get("regularizer_memory_bytes")
        rr["capacity"] = {k: v for k, v in r.items() if k.split("/")[0] in CAPACITY_KEYS}
        rr["plasticity_measures"] = r.get("plasticity") or []
        rr["task_spans"] = task_spans(r)
        rr["training_returns"] = training_returns(r["_path"])
        rr["training_windows"] = training_windows(rr["training_returns"], rr["task_spans"],
                                                  tasks, window)
        rep["runs"].append(rr)
    rep["training_window"] = window
    rep["groups"] = groups(runs, rep["runs"], refs, tasks, normalised_games(tasks, scores, refs))
    rep["lam_sweeps"] = grouping.lam_sweeps(rep["groups"])     # Figure 5 of a lam sweep
    for key, (matrix, suffix) in VARIANTS.items():
        if suffix and not any(rr[matrix] for rr in rep["runs"]):
            continue
        keep, left_out = aggregate_games(tasks, refs[key])
        rep[f"aggregate_games{suffix}"] = [tasks[j] for j in keep]
        rep[f"aggregate_left_out{suffix}"] = left_out
        rep[f"figure7_left_out{suffix}"] = figure7_left_out(tasks, refs[key])
    rep["confidence_intervals"] = CI_NOTE
    rep["summary"] = summary(rep["runs"], len(tasks))
    return rep


def nonpositive_references(rep: dict) -> list[str]:
    """The tasks on which fine-tuning's best greedy score is <= 0: their Figure 7 term divides
    by a non-positive number and means nothing."""
    return [t for t, v in zip(rep["tasks"], rep["finetune_max_reward"])
            if v is not None and v <= 0]

