"""Plots of one run (written into its plots/ folder after every task)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _matrix(rows, T):
    M = np.full((len(rows), T), np.nan)
    for i, r in enumerate(rows):
        M[i, :len(r)] = r
    return M


def plot_matrix(rows, tasks, title, path: Path) -> None:
    M = _matrix(rows, len(tasks))
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
