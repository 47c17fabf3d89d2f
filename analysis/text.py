"""The reports' text tables, made from the report dicts alone: ``format_rl`` (of the dict
``rl.rl_report`` makes) and ``format_supervised`` (``supervised.supervised_report``'s)."""
from __future__ import annotations

import numpy as np

from .bootstrap import interval_text
from .rl import CI_NOTE as RL_CI_NOTE
from .rl import REFERENCE_WINDOW, reference_rule
from .supervised import CI_METRICS, FWT_REFERENCE
from .supervised import CI_NOTE as SUPERVISED_CI_NOTE

CELL = 26                     # a "mean [lo, hi]" cell of the tables


# --- the RL report ---------------------------------------------------------------------------
def _group(rr: dict) -> str:
    return rr.get("group", rr["method"])


def _width(rep: dict) -> int:
    """The group column: 12 wide, wider for long group labels."""
    return max([12] + [len(_group(rr)) + 1 for rr in rep["runs"]])



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
            cells.append(f"{interval_text(est, None if v is None else v['ci95']):>{CELL}}")
        n, k = len(g["runs"]), len(g["complete_runs"])
        lines.append(f"{g['label']:<{w}}{(f'{k}/{n}' if k < n else str(n)):>6}" + "".join(cells))
    lines.append(f"[lo, hi]: {rep.get('confidence_intervals', RL_CI_NOTE)}; [-]: one run, no "
                 f"interval; k/n: only k of the group's n runs have finished every task (IQM, "
                 f"mean, Fig. 7 final, S and P are over those)")
    return lines


def _nar_table(rep: dict, suffix: str, what: str) -> list[str]:
    tasks = rep["tasks"]
    w = _width(rep)
    ref = ", ".join(f"{t} {m:.4g}" for t, m in zip(tasks, rep[f"finetune_max_reward{suffix}"])
                    if m is not None)
    rule = (rep.get("figure7_reference") or {}).get("rule", reference_rule(REFERENCE_WINDOW))
    lines = [f"normalised accumulated reward after each task ({what}; reference: {rule} per "
             f"task = {ref or 'none yet'})"]
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
    left = rep.get(f"figure7_left_out{suffix}") or {}
    if left:
        lines.append("left out of the sum (no ratio to a non-positive reference; see its "
                     "random-normalised score): " + "; ".join(f"{t} ({why})"
                                                              for t, why in left.items()))
    return lines


def _cells(values, fmt: str = ".3f", width: int = 12) -> str:
    return "".join(f"{'-':>{width}}" if v is None or not np.isfinite(v) else
                   f"{v:>{width}{fmt}}" for v in values)


def _normalised_scores_table(rep: dict, suffix: str, what: str) -> list[str]:
    """Per group: the human- and random-normalised final scores of its complete runs, IQM and
    mean [95% CI] over runs x games, and the mean over seeds per game."""
    sc = rep.get("reference_scores") or {}
    lines = [f"normalised scores per game ({what}; final reward-matrix row of the complete "
             f"runs, mean over seeds per game):"]
    if not sc.get("random"):
        return lines + [f"  {sc.get('note') or 'no published random or human scores'}"]
    lines.append(f"  random and human scores: {sc['source']}"
                 + (f"; {sc['note']}" if sc.get("note") else ""))
    if sc.get("constant"):
        lines.append("  best constant action's score (a game it plays as well as a trained "
                     "policy measures no capacity): "
                     + ", ".join(f"{t} {v:g}" for t, v in sc["constant"].items()))
    w = max([20] + [len(g["label"]) + 2 for g in rep["groups"]])
    for kind, formula in (("human", "(score - random) / (human - random)"),
                          ("random", "(score - random) / (fine-tuning's best - random)")):
        games = next((g[f"{kind}_normalised{suffix}"]["games"] for g in rep["groups"]
                      if f"{kind}_normalised{suffix}" in g), [])
        lines.append(f"{kind}-normalised {formula}" + ("" if games else ": no game has one"))
        if not games:
            continue
        head = f"{'group':<{w}}{'runs':>6}{'IQM [95% CI]':>{CELL}}{'mean [95% CI]':>{CELL}}" + \
            "".join(f"{t[:11]:>12}" for t in games)
        lines += [head, "-" * len(head)]
        for g in rep["groups"]:
            a = g.get(f"{kind}_normalised{suffix}")
            if a is None:           # a group with no evaluation of this kind yet
                lines.append(f"{g['label']:<{w}}{0:>6}")
                continue
            lines.append(f"{g['label']:<{w}}{len(a['scores']):>6}"
                         f"{interval_text(a['iqm']['iqm'], a['iqm']['ci95']):>{CELL}}"
                         f"{interval_text(a['mean']['mean'], a['mean']['ci95']):>{CELL}}"
                         + _cells([e["mean"] for e in a["per_game"]]))
    return lines


def _forgetting_transfer_table(rep: dict, suffix: str, what: str) -> list[str]:
    """Per group: mean forgetting (raw, normalised) and forward transfer [95% CI] over its
    seeds; per run: forgetting and forward transfer per game."""
    tasks = rep["tasks"]
    refs = rep.get("forward_transfer_reference") or {}
    kinds = set(refs.values())
    ref_text = next(iter(kinds)) if len(kinds) == 1 else \
        "; ".join(f"{t}: {v}" for t, v in refs.items())
    lines = [f"forgetting and forward transfer ({what}):",
             "  forgetting of task j = its best score after it was learned minus its final "
             "one, max_{i>=j} R[i][j] - R[T-1][j], tasks but the last; normalised: over "
             "Figure 7's reference of the game",
             "  forward transfer FT_j = (AUC_j - AUC_ref_j) / (1 - AUC_ref_j) (Continual World) "
             "of the evaluation curve during task j's own training, scores scaled to [0, 1] "
             "by the lowest and highest of the compared curves",
             f"  reference of FT: {ref_text or 'none'}"]
    w = max([20] + [len(g["label"]) + 2 for g in rep["groups"]])
    # the mean of raw forgetting would add up games of other scales: per game below only
    head = f"{'group':<{w}}{'runs':>6}" + "".join(
        f"{c:>{CELL + 2}}" for c in ("forgetting, normalised [CI]",
                                     "forgetting, human-norm. [CI]", "FT [95% CI]"))
    lines += [head, "-" * len(head)]
    for g in rep["groups"]:
        if f"forgetting{suffix}" not in g:       # a group with no evaluation of this kind yet
            lines.append(f"{g['label']:<{w}}{0:>6}")
            continue
        f, ft = g[f"forgetting{suffix}"], g[f"forward_transfer{suffix}"]
        lines.append(f"{g['label']:<{w}}{len(g['runs']):>6}" + "".join(
            f"{interval_text(e['mean'], e['ci95']):>{CELL + 2}}"
            for e in (f["normalised"]["mean"], f["human_normalised"]["mean"], ft["mean"])))
    lines.append(f"{'run':<28}{'':<6}" + "".join(f"{t[:11]:>12}" for t in tasks))
    for rr in rep["runs"]:
        f, ft = rr[f"forgetting{suffix}"], rr[f"forward_transfer{suffix}"]
        if f["per_task"] is not None:
            lines.append(f"{rr['label'][:27]:<28}{'forg.':<6}"
                         + _cells(f["per_task"] + [None], ".4g"))
            lines.append(f"{'':<28}{'norm.':<6}" + _cells(f["normalised"]["per_task"] + [None]))
        lines.append(f"{rr['label'][:27] if f['per_task'] is None else '':<28}{'FT':<6}"
                     + _cells(ft["per_task"]))
    why = {t: w for rr in rep["runs"] for t, w in rr[f"forward_transfer{suffix}"][
        "why_missing"].items() if w != "the run has not finished this task"}
    if why:
        lines.append("  no FT: " + "; ".join(f"{t}: {w}" for t, w in why.items()))
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
    each task per run (greedy, then sampled) with the games its sum leaves out, the human- and
    random-normalised scores and forgetting and forward transfer per group and game, S and P
    where any run has them, each run's progress and last evaluation, the training-score
    windows, and the reward matrices."""
    lines = []
    if rep.get("groups"):
        lines += _groups_table(rep, "", "greedy actions: the paper's protocol")
        if any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
            lines += [""] + _groups_table(rep, "_sampled", "sampled actions")
        lines.append("")
    lines += _nar_table(rep, "", "Figure 7, greedy actions: the paper's protocol")
    if any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
        lines += [""] + _nar_table(rep, "_sampled", "sampled actions")
    if rep.get("groups") and "reference_scores" in rep:
        for suffix, what in (("", "greedy"), ("_sampled", "sampled")):
            if suffix and not any(rr["reward_matrix_sampled"] for rr in rep["runs"]):
                continue
            lines += [""] + _normalised_scores_table(rep, suffix, what)
            lines += [""] + _forgetting_transfer_table(rep, suffix, what)
    if any(rr["stability"] is not None or rr["plasticity"] is not None for rr in rep["runs"]):
        lines += _stability_plasticity_table(rep)
    lines += _progress_lines(rep)
    if any(rr["training_windows"] for rr in rep["runs"]):
        lines += _training_window_lines(rep)
    lines += _reward_matrix_lines(rep)
    return "\n".join(lines)

# --- the supervised report -------------------------------------------------------------------
# summary key -> column heading of the table
COLUMNS = [("average_accuracy", "avg acc"), ("plasticity", "P"), ("stability", "S"),
           ("bwt", "BWT"), ("relative_memory", "mem/EWC"),
           ("time_relative_to_finetune", "time/FT")]


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
                cells.append(f"{interval_text(v, sm.get(k + '_ci95')):>{CELL}}")
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
        ci = rep.get("confidence_intervals", SUPERVISED_CI_NOTE)
        lines.append(f"(groups: runs of one method and hyperparameters, seeds pooled; [lo, hi]: "
                     f"{ci}; [-]: one run, no interval)")
    if rep.get("groups") and "forgetting" in rep["groups"][0]:
        lines += [""] + _supervised_forgetting_transfer_lines(rep)
    return "\n".join(lines)


def _supervised_forgetting_transfer_lines(rep: dict) -> list[str]:
    """Per group: forgetting and forward transfer [95% CI] over its seeds, with their
    definitions and why forward transfer is missing where it is."""
    gs = rep["groups"]
    w = max([20] + [len(g["label"]) + 2 for g in gs])
    lines = ["forgetting (Mammoth: mean over tasks but the last of max_{i>=j} A[i][j] - "
             "A[T-1][j]; Avalanche's A[j][j] - A[T-1][j] is -BWT) and forward transfer "
             "(Mammoth, Avalanche: mean over j >= 1 of A[j-1][j] - the random-init model's "
             "accuracy on task j)",
             f"  FWT reference: {rep.get('forward_transfer_reference', FWT_REFERENCE)}"]
    head = f"{'group':<{w}}{'runs':>5}{'forgetting [95% CI]':>{CELL}}{'FWT [95% CI]':>{CELL}}"
    lines += [head, "-" * len(head)]
    for g in gs:
        f, t = g["forgetting"]["mean"], g["forward_transfer"]["mean"]
        lines.append(f"{g['label']:<{w}}{len(g['runs']):>5}"
                     f"{interval_text(f['mean'], f['ci95']):>{CELL}}"
                     f"{interval_text(t['mean'], t['ci95']):>{CELL}}")
    why = {r["forward_transfer"]["why_missing"] for r in rep["runs"]} - {None}
    if why:
        lines.append("  no FWT: " + "; ".join(sorted(why)))
    return lines
