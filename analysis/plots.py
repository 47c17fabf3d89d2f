"""All plots: one run's (written into its plots/ folder after every task, ``plot_run``) and the
report's (``plot_rl_report``: Figure 7, the raw and normalised scores, forgetting and forward
transfer; ``plot_supervised_report``: Figures 3-6, forgetting and forward transfer). The
report's group-level plots (a group: a method and its hyperparameters, seeds pooled) show
each group's mean with its 95% bootstrap CI as error bars; a group of one run has no
interval and shows no bar."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import bootstrap, metrics  # noqa: E402


def _save(fig, ax, path: Path, dpi: int = 130) -> None:
    """Legend (if anything is labelled), tight layout, write, close."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_matrix(rows, tasks, title, path: Path) -> None:
    M = metrics.pad(rows, len(tasks))
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(tasks), 1.0 + 0.6 * len(rows)))
    im = ax.imshow(M, cmap="viridis", aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            if not np.isnan(M[i, j]):
                ax.text(j, i, f"{M[i, j]:.3g}", ha="center", va="center", color="w", fontsize=7)
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [f"after {tasks[i]}" for i in range(len(rows))], fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_eval_curve(curve, tasks, key, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, name in enumerate(tasks):
        pts = [(c["step"], c[key][j]) for c in curve if key in c and len(c[key]) > j]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=".", label=name)
    for c in curve:
        if c.get("task_end"):
            ax.axvline(c["step"], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("training steps")
    ax.set_ylabel(key)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_run(res: dict, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = res["tasks"]
    for key in [k for k in res if k.endswith("_matrix") or "_matrix_" in k]:
        if res[key]:
            plot_matrix(res[key], tasks, key.replace("_", " "), out / f"{key}.png")
    curve = res.get("eval_curve") or []
    keys = sorted({k for c in curve for k in c if k.startswith("score")})
    for key in keys:
        plot_eval_curve(curve, tasks, key, out / f"eval_curve_{key}.png")
    if res.get("sparsity"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        x = np.arange(1, len(res["sparsity"]) + 1)
        ax.plot(x, res["sparsity"], marker="o", label="sparsity |G0|/|G|")
        ax.plot(x, res["used_capacity"], marker="s", label="used capacity")
        ax.set_xlabel("task")
        ax.set_ylim(0, 1)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "sparsity_capacity.png", dpi=120)
        plt.close(fig)


# --- report plots (train.py report) ------------------------------------------------------
def _colours() -> list[str]:
    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def plot_normalised_accumulated_reward(rep: dict, out: Path) -> None:
    """Figure 7 over training: greedy (solid, the paper's) and sampled (dashed) evaluations."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = _colours()
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
    _save(fig, ax, out / "normalised_accumulated_reward.png")


def _per_game(rep: dict, draw, ylabel: str, path: Path) -> None:
    """One panel per game of the stream, ``draw(ax, j)`` filling game j's, task boundaries
    dotted, the y label on the first panel and its legend."""
    tasks = rep["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.7 * len(tasks), 3.5), squeeze=False,
                             sharex=True)
    ends = sorted({c["step"] for rr in rep["runs"] for c in rr["eval_curve"]
                   if c.get("task_end")})
    for j, (ax, name) in enumerate(zip(axes[0], tasks)):
        draw(ax, j)
        for e in ends:
            ax.axvline(e, color="grey", lw=0.6, ls=":")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("environment steps")
    axes[0][0].set_ylabel(ylabel)
    _save(fig, axes[0][0], path, dpi=120)


def plot_scores_per_game(rep: dict, out: Path) -> None:
    """One panel per game: every run's raw evaluation score over training (greedy solid,
    sampled dashed), task boundaries dotted -- where forgetting shows."""
    colours = _colours()

    def draw(ax, j):
        for k, rr in enumerate(rep["runs"]):
            col = colours[k % len(colours)]
            for key, ls in (("score", "-"), ("score_sampled", "--")):
                pts = [(c["step"], c[key][j]) for c in rr["eval_curve"]
                       if len(c.get(key, [])) > j]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, ls, color=col, marker=".", ms=3, lw=max(0.7, 2.0 - 0.5 * k),
                            label=f"{rr['label']}" if key == "score" else None)

    _per_game(rep, draw, "raw score (greedy -, sampled --)", out / "scores_per_game.png")


def _band(ax, xs, ests, colour, ls="-", label=None, alpha=0.18) -> None:
    """A line of means with its 95% CI as a shaded band (no band where there is none)."""
    mean = np.array([np.nan if e["mean"] is None else e["mean"] for e in ests], dtype=float)
    lo = np.array([m if e["ci95"] is None else e["ci95"][0] for m, e in zip(mean, ests)])
    hi = np.array([m if e["ci95"] is None else e["ci95"][1] for m, e in zip(mean, ests)])
    ax.plot(xs, mean, ls, color=colour, marker=".", ms=3, lw=1.4, label=label)
    ax.fill_between(xs, lo, hi, color=colour, alpha=alpha, lw=0)


def _by_step(runs: list[list[tuple[int, float]]]) -> tuple[list[int], list[dict]]:
    """Points (step, value) of several runs -> the steps any run has, and per step the mean
    and 95% bootstrap CI over the runs that have it."""
    steps = sorted({s for pts in runs for s, _ in pts})
    at = [dict(pts) for pts in runs]
    return steps, [bootstrap.mean_ci([a[s] for a in at if s in a]) for s in steps]


def plot_group_scores_per_game(rep: dict, out: Path) -> None:
    """One panel per game: each group's mean raw evaluation score over training with its 95%
    bootstrap CI band over the group's runs (greedy solid, sampled dashed), task boundaries
    dotted; the readable view of a study (``scores_per_game.png`` keeps one line per run)."""
    by, colours = _by_method(rep), _colours()

    def draw(ax, j):
        for k, (g, prs) in enumerate(by.items()):
            for key, ls in (("score", "-"), ("score_sampled", "--")):
                runs = [[(c["step"], c[key][j]) for c in rr["eval_curve"]
                         if len(c.get(key, [])) > j] for rr in prs]
                steps, ests = _by_step(runs)
                if steps:
                    _band(ax, steps, ests, colours[k % len(colours)], ls,
                          f"{g} ({len(prs)})" if key == "score" else None,
                          alpha=0.18 if key == "score" else 0.08)

    _per_game(rep, draw, "raw score, mean and 95% CI\n(greedy -, sampled --)",
              out / "scores_per_game_groups.png")


PLASTICITY_MEASURES = ("active", "stable_rank", "effective_rank", "weight_norm",
                       "init_distance", "grad_norm")


def plot_plasticity(rep: dict, out: Path) -> None:
    """One plot per plasticity measure (``agents.base.plasticity_metrics``), one panel per
    trunk layer: each group's mean over training with its 95% bootstrap CI band, task
    boundaries dotted. Nothing is written for runs without the records."""
    by = {g: prs for g, prs in _by_method(rep).items()
          if any(p.get("plasticity_measures") for p in prs)}
    if not by:
        return
    layers = list(dict.fromkeys(name for prs in by.values() for p in prs
                                for rec in p["plasticity_measures"] for name in rec["layers"]))
    ends = sorted({rec["step"] for prs in by.values() for p in prs
                   for rec in p["plasticity_measures"]
                   if rec.get("task_end")})
    colours = _colours()
    for measure in PLASTICITY_MEASURES:
        fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.4),
                                 squeeze=False)
        for ax, layer in zip(axes[0], layers):
            for k, (g, prs) in enumerate(by.items()):
                runs = [[(rec["step"], rec["layers"][layer][measure])
                         for rec in p["plasticity_measures"]
                         if rec["layers"].get(layer, {}).get(measure) is not None]
                        for p in prs]
                steps, ests = _by_step(runs)
                if steps:
                    _band(ax, steps, ests, colours[k % len(colours)], "-", f"{g} ({len(prs)})")
            for e in ends:
                ax.axvline(e, color="grey", lw=0.6, ls=":")
            ax.set_title(f"{measure} / {layer}", fontsize=10)
            ax.set_xlabel("environment steps")
        _save(fig, axes[0][0], out / f"plasticity_{measure}.png", dpi=110)


def plot_training_scores(rep: dict, out: Path, smooth: int = 25) -> None:
    """One panel per game: every run's training-game raw score over the steps of that task
    (the mean over a sliding window of ``smooth`` units, weighted by games)."""
    tasks = rep["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False)
    colours = _colours()
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


def _err(estimates: list[dict], key: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Points and their error-bar lengths (2 x n: below, above) from ``bootstrap.mean_ci`` /
    ``aggregate_scores`` dicts; NaN points where there is no estimate, 0 where no interval.
    A length is never negative (matplotlib refuses it): seeds that all score alike give an
    interval that misses their float mean by an ulp, and an IQM may lie just outside its
    percentile interval; the tables keep the exact numbers."""
    m = np.array([np.nan if e is None or e.get(key) is None else e[key] for e in estimates],
                 dtype=float)
    err = np.zeros((2, len(m)))
    for i, e in enumerate(estimates):
        if e is not None and e.get("ci95") is not None and np.isfinite(m[i]):
            err[:, i] = [m[i] - e["ci95"][0], e["ci95"][1] - m[i]]
    return m, np.maximum(err, 0.0)


def plot_aggregate_scores(rep: dict, out: Path) -> None:
    """rliable's interval estimates: per group, the IQM and the mean of the normalised scores
    (complete runs x games) with their stratified bootstrap 95% CIs; greedy (circles) and
    sampled (squares) evaluations."""
    gs = [g for g in rep.get("groups", []) if g["iqm"]["iqm"] is not None]
    if not gs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.9 + 0.45 * len(gs)), squeeze=False)
    y = np.arange(len(gs))[::-1]
    for ax, (key, est, title) in zip(axes[0], (("iqm", "iqm", "IQM"),
                                               ("mean_normalised_score", "mean", "mean"))):
        for suffix, marker, dy, what in (("", "o", 0.1, "greedy"), ("_sampled", "s", -0.1,
                                                                      "sampled")):
            ests = [g.get(key + suffix) for g in gs]
            if all(e is None for e in ests):
                continue
            m, err = _err(ests, est)
            ax.errorbar(m, y + dy, xerr=err, fmt=marker, capsize=3, label=what)
        ax.set_yticks(y, [g["label"] for g in gs], fontsize=8)
        ax.set_title(f"{title} of normalised scores (95% CI)", fontsize=10)
        ax.set_xlabel("score / fine-tuning's best")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "aggregate_normalised_scores.png", dpi=130)
    plt.close(fig)


def plot_group_normalised_accumulated_reward(rep: dict, out: Path) -> None:
    """Figure 7 after each task, per group: the mean over its seeds with a 95% CI bar
    (greedy solid, sampled dashed)."""
    gs = rep.get("groups", [])
    if not gs:
        return
    tasks = rep["tasks"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = _colours()
    for k, g in enumerate(gs):
        for suffix, ls, what in (("", "-", "greedy"), ("_sampled", "--", "sampled")):
            ests = g.get(f"normalised_accumulated_reward{suffix}") or []
            m, err = _err(ests)
            if len(m) and np.isfinite(m).any():
                ax.errorbar(np.arange(1, len(m) + 1) + 0.04 * k, m, yerr=err, ls=ls, marker="o",
                            ms=4, capsize=3, color=colours[k % len(colours)],
                            label=f"{g['label']} ({what})")
    ax.set_xticks(range(1, len(tasks) + 1), [f"{i}: {t}" for i, t in enumerate(tasks, 1)],
                  rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("after task")
    ax.set_ylabel("normalised accumulated reward")
    ax.set_title("Figure 7 per group: mean over seeds, 95% CI")
    _save(fig, ax, out / "normalised_accumulated_reward_groups.png")


def _group_bars(ax, gs: list[dict], estimates, names: list[str]) -> bool:
    """One bar per group and name (game, task): the group's mean over seeds with its 95% CI
    bar (``estimates(group)``: ``bootstrap.mean_ci`` dicts, one per name); False if no group has
    any estimate."""
    width = 0.8 / max(len(gs), 1)
    x = np.arange(len(names))
    drawn = False
    for k, g in enumerate(gs):
        m, err = _err(list(estimates(g))[:len(names)])
        if len(m) and np.isfinite(m).any():
            ax.bar(x[:len(m)] + (k - (len(gs) - 1) / 2) * width, m, width, yerr=err, capsize=2,
                   label=g["label"])
            drawn = True
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="k", lw=0.5)
    return drawn


def _panels(path: Path, gs: list[dict], panels: list[tuple]) -> None:
    """A row of ``_group_bars`` panels, (title, ylabel, names, estimates) each; the panels
    without any estimate are dropped, nothing is written if none is left."""
    panels = [p for p in panels if p[2]]
    if not gs or not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(0.5 + 4.2 * len(panels), 3.6),
                             squeeze=False)
    kept = []
    for ax, (title, ylabel, names, estimates) in zip(axes[0], panels):
        if _group_bars(ax, gs, estimates, names):
            ax.set_title(title, fontsize=9)
            ax.set_ylabel(ylabel, fontsize=8)
            kept.append(ax)
        else:
            ax.set_visible(False)
    if kept:
        kept[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_normalised_scores_per_game(rep: dict, out: Path) -> None:
    """Per game, each group's final normalised score (greedy; complete runs, mean over seeds,
    95% CI): over fine-tuning's best (Figure 7's), human-normalised and random-normalised
    (the panels that have games)."""
    gs = rep.get("groups", [])
    first = gs[0] if gs else {}
    _panels(out / "normalised_scores_per_game.png", gs, [
        ("score / fine-tuning's best (Figure 7's)", "normalised score",
         rep.get("aggregate_games", []), lambda g: g["normalised_scores_per_game"]),
        ("human-normalised (score - random) / (human - random)", "human-normalised score",
         first.get("human_normalised", {}).get("games", []),
         lambda g: g["human_normalised"]["per_game"]),
        ("random-normalised (score - random) / (ft best - random)", "random-normalised score",
         first.get("random_normalised", {}).get("games", []),
         lambda g: g["random_normalised"]["per_game"])])


def plot_forgetting_forward_transfer(rep: dict, out: Path) -> None:
    """Per task, each group's forgetting (RL: normalised by Figure 7's reference, raw where
    no game has that) and forward transfer (RL: Continual World's; supervised: Mammoth's),
    mean over seeds with 95% CI bars; nothing is written without any."""
    gs, tasks = rep.get("groups", []), rep["tasks"]
    if not gs or "forgetting" not in gs[0]:
        return
    rl = "normalised" in gs[0]["forgetting"]
    norm = rl and any(e["mean"] is not None for g in gs
                      for e in g["forgetting"]["normalised"]["per_task"])
    forg = (lambda g: g["forgetting"]["normalised"]["per_task"]) if norm else \
        (lambda g: g["forgetting"]["per_task"])
    what = "score / fine-tuning's best" if norm else ("raw score" if rl else "accuracy")
    has_ft = any(e["mean"] is not None for g in gs for e in g["forward_transfer"]["per_task"])
    _panels(out / "forgetting_forward_transfer.png", gs, [
        ("forgetting: best after learning - final", f"forgetting ({what})", tasks[:-1], forg),
        ("forward transfer " + ("(Continual World)" if rl else "(Mammoth / Avalanche)"),
         "forward transfer", tasks if has_ft else [],
         lambda g: g["forward_transfer"]["per_task"])])


def plot_rl_report(rep: dict, out: Path) -> None:
    """The RL report's plots: per run (Figure 7 over training, raw scores per game, the
    training scores where a run has TensorBoard returns) and per group (the aggregate IQM and
    mean, Figure 7 after each task, the normalised scores per game, forgetting and forward
    transfer per task, Figure 5 of a lam sweep, with their CIs)."""
    out = Path(out)
    plot_normalised_accumulated_reward(rep, out)
    plot_scores_per_game(rep, out)
    plot_group_scores_per_game(rep, out)
    plot_plasticity(rep, out)
    if any(rr["training_returns"] for rr in rep["runs"]):
        plot_training_scores(rep, out)
    plot_aggregate_scores(rep, out)
    plot_group_normalised_accumulated_reward(rep, out)
    plot_normalised_scores_per_game(rep, out)
    plot_forgetting_forward_transfer(rep, out)
    plot_lam_sweep(rep, out)
    plot_capacity(rep, out)


def plot_capacity(rep: dict, out: Path) -> None:
    """AGS-CL's capacity per trunk layer after each task (regularizers/agscl.py): the share of
    nodes free (G0) at the task's start, the share of those the task put to use, the share of
    important nodes that moved, and their mean drift over the freeze threshold alpha*lam*Omega;
    per group, the mean over its runs that reached the task with its 95% bootstrap CI. A task
    that failed for lack of free nodes shows a low G0 share; one whose important nodes were
    held, a drift ratio under 1 and few nodes moved. Nothing is written without such runs."""
    by = {g: prs for g, prs in _by_method(rep).items() if prs[0].get("capacity")}
    if not by:
        return
    layers = sorted({k.split("/", 1)[1] for prs in by.values() for k in prs[0]["capacity"]})
    panels = (("g0_start", "G0 share at task start"), ("g0_used", "G0 nodes put to use"),
              ("important_moved", "important nodes moved"),
              ("ratio", "drift / freeze threshold"))
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    colours, styles = _colours(), ["-", "--", ":", "-."]

    def series(run: dict, key: str, layer: str) -> list:
        c = run["capacity"]
        if key != "ratio":
            return c.get(f"{key}/{layer}") or []
        d, f = c.get(f"drift/{layer}") or [], c.get(f"freeze_threshold/{layer}") or []
        return [None if a is None or not b else a / b for a, b in zip(d, f)]

    for k, (g, prs) in enumerate(by.items()):
        for li, layer in enumerate(layers):
            for ax, (key, title) in zip(axes, panels):
                rows = [series(p, key, layer) for p in prs]
                n = max(map(len, rows), default=0)
                ests = [bootstrap.mean_ci([r[t] for r in rows if len(r) > t and r[t] is not None])
                        if any(len(r) > t and r[t] is not None for r in rows) else None
                        for t in range(n)]
                mean, err = _err(ests)
                if np.isfinite(mean).any():
                    ax.errorbar(np.arange(1, n + 1) + 0.04 * k, mean, yerr=err, marker="o",
                                ls=styles[li % len(styles)], capsize=3,
                                color=colours[k % len(colours)], label=f"{g} {layer}")
                ax.set_title(title, fontsize=9)
                ax.set_xlabel("task")
                ax.xaxis.get_major_locator().set_params(integer=True)
                if key != "ratio":
                    ax.set_ylim(-0.03, 1.03)
    axes[3].axhline(1.0, color="grey", lw=0.8)
    axes[3].set_yscale("symlog", linthresh=1e-2)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(4, len(labels)),
                   bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08 + 0.03 * (len(labels) // 4), 1, 1))
    fig.savefig(out / "capacity.png", dpi=120)
    plt.close(fig)


def _by_method(rep: dict) -> dict[str, list[dict]]:
    """The runs per group (its label; the method where the report has no groups)."""
    by = defaultdict(list)
    for pr in rep["runs"]:
        by[pr.get("group", pr["method"])].append(pr)
    return by


def plot_average_accuracy(rep: dict, out: Path) -> None:
    """Figure 3: average accuracy over the tasks learned per group: the mean over its runs
    that have learned that many tasks, with its 95% bootstrap CI (where the report has
    groups; otherwise mean and std over each method's complete runs)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, g in enumerate(rep.get("groups", [])):
        m, err = _err(g["average_accuracy_curve"])
        if len(m):
            ax.errorbar(np.arange(1, len(m) + 1) + 0.03 * k, m, yerr=err, marker="o",
                        capsize=3, label=g["label"])
    for m, prs in ({} if rep.get("groups") else _by_method(rep)).items():
        curves = np.array([p["average_accuracy_curve"] for p in prs
                           if len(p["average_accuracy_curve"]) == len(rep["tasks"])])
        if len(curves):
            x = np.arange(1, curves.shape[1] + 1)
            ax.errorbar(x, curves.mean(0), yerr=curves.std(0), marker="o", capsize=3, label=m)
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("average accuracy" + (" (mean, 95% CI)" if rep.get("groups") else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig3_average_accuracy.png", dpi=130)
    plt.close(fig)


def plot_sparsity_capacity(rep: dict, out: Path) -> None:
    """Figure 4: sparsity and used capacity after each task of the groups that report them
    (AGS-CL and its variants): the mean over the group's runs that reached the task, with its
    95% bootstrap CI; nothing is written if none does."""
    agscl = {m: prs for m, prs in _by_method(rep).items() if prs[0]["sparsity"]}
    if not agscl:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = _colours()
    for k, (m, prs) in enumerate(agscl.items()):
        for key, marker, ls, what in (("sparsity", "o", "-", "sparsity"),
                                      ("used_capacity", "s", "--", "used capacity")):
            # runs still training have fewer tasks: per task, the runs that reached it
            rows = [p[key] or [] for p in prs]
            ests = [bootstrap.mean_ci([r[t] for r in rows if len(r) > t])
                    for t in range(max(map(len, rows)))]
            mean, err = _err(ests)
            ax.errorbar(np.arange(1, len(mean) + 1), mean, yerr=err, marker=marker, ls=ls,
                        capsize=3, color=colours[k % len(colours)], label=f"{m} {what}")
    ax.set_xlabel("task")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig4_sparsity_capacity.png", dpi=130)
    plt.close(fig)


def plot_plasticity_stability(rep: dict, out: Path) -> None:
    """Figure 5: each run's plasticity P (eq. 15) against its stability S (eq. 16) (small
    dots) and each group's mean with its 95% CI bars in P and S."""
    fig, ax = plt.subplots(figsize=(5, 4))
    colours = _colours()
    by_group = {g["label"]: g for g in rep.get("groups", [])}
    for k, (m, prs) in enumerate(_by_method(rep).items()):
        col = colours[k % len(colours)]
        pts = [(p["plasticity"], p["stability"]) for p in prs if p["plasticity"] is not None]
        if pts:
            ax.scatter(*zip(*pts), s=12, alpha=0.6, color=col,
                       label=None if m in by_group else m)
        g = by_group.get(m)
        if g and g["plasticity"]["mean"] is not None and g["stability"]["mean"] is not None:
            (px,), xerr = _err([g["plasticity"]])
            (sy,), yerr = _err([g["stability"]])
            ax.errorbar([px], [sy], xerr=xerr, yerr=yerr, fmt="o", capsize=3, color=col,
                        label=f"{m} (mean, 95% CI)")
    ax.set_xlabel("plasticity P (eq. 15)")
    ax.set_ylabel("stability S (eq. 16)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fig5_plasticity_stability.png", dpi=130)
    plt.close(fig)


def plot_lam_sweep(rep: dict, out: Path) -> None:
    """Figure 5 over a lam sweep: for each method with more than one lam among the groups
    (``grouping.lam_sweeps``), one point per group (lam) at its mean P (x, eq. 15) and
    S (y, eq. 16) over seeds with 95% CI bars, joined in lam order; a star marks the best lam
    (highest P + S). Nothing is written without a sweep."""
    sweeps = rep.get("lam_sweeps") or {}
    if not sweeps:
        return
    fig, ax = plt.subplots(figsize=(6, 4.5))
    colours = _colours()
    for k, (method, sw) in enumerate(sweeps.items()):
        col = colours[k % len(colours)]
        pts = sw["points"]
        px, xerr = _err([p["plasticity"] for p in pts])
        sy, yerr = _err([p["stability"] for p in pts])
        ax.errorbar(px, sy, xerr=xerr, yerr=yerr, fmt="-o", ms=4, lw=1, capsize=3, color=col,
                    label=method)
        for p, x, y in zip(pts, px, sy):
            ax.annotate(p["label"].removeprefix(method).strip(), (x, y), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        b = [i for i, p in enumerate(pts) if p["label"] == sw["best"]["label"]][0]
        ax.scatter([px[b]], [sy[b]], marker="*", s=220, color=col, edgecolor="k", zorder=5,
                   label=f"{method} best: {pts[b]['label'].removeprefix(method).strip()} "
                         f"(highest P + S)")
    ax.set_xlabel("plasticity P (eq. 15)")
    ax.set_ylabel("stability S (eq. 16)")
    ax.set_title("Figure 5: P-S trade-off over lam (mean, 95% CI over seeds)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig5_lam_sweep.png", dpi=130)
    plt.close(fig)


def plot_memory(rep: dict, out: Path) -> None:
    """Figure 6: each group's memory relative to EWC; nothing is written without an EWC run."""
    mems = {m: np.mean([p["relative_memory"] for p in prs]) for m, prs in _by_method(rep).items()
            if prs[0]["relative_memory"] is not None}
    if not mems:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(mems), list(mems.values()))
    ax.set_ylabel("memory relative to EWC")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out / "fig6_memory.png", dpi=130)
    plt.close(fig)


def plot_supervised_report(rep: dict, out: Path) -> None:
    """The supervised report's plots: Figures 3-6, Figure 5 over a lam sweep, and forgetting
    and forward transfer per task."""
    out = Path(out)
    plot_average_accuracy(rep, out)
    plot_sparsity_capacity(rep, out)
    plot_plasticity_stability(rep, out)
    plot_lam_sweep(rep, out)
    plot_memory(rep, out)
    plot_forgetting_forward_transfer(rep, out)
