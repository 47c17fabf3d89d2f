"""The paper's measurements (section 4.1, eq. 15-16, Figure 7), as pure functions of matrices.

A is T x T (lists of rows; row i may hold only entries j <= i): A[i][j] = score on task j
after learning task i. Accuracy matrices for the supervised benchmarks, reward matrices (raw
scores) for Atari.
"""
from __future__ import annotations

import numpy as np


def pad(rows, n_tasks: int | None = None) -> np.ndarray:
    """A ragged matrix as a float array of len(rows) x n_tasks (default: the longest row),
    NaN where a row has no entry (a task not reached) and where an entry is None."""
    width = max((len(r) for r in rows), default=0) if n_tasks is None else n_tasks
    M = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        if len(r) > width:
            raise ValueError(f"row {i} has {len(r)} entries, more than the {width} tasks")
        M[i, :len(r)] = [np.nan if v is None else v for v in r]
    return M


def average_accuracy(A) -> float:
    """mean_j A[T-1][j]."""
    M = pad(A, len(A))
    return float(np.mean(M[-1, :]))


def average_accuracy_curve(A) -> list[float]:
    """Average over the tasks seen so far after each task: mean_{j<=i} A[i][j] (Figure 3)."""
    M = pad(A, len(A))
    return [float(np.mean(M[i, :i + 1])) for i in range(len(M))]


def plasticity(A, A_ft) -> float:
    """P = (1/T) sum_i A[i][i] / A*[i][i], A* = fine-tuning's matrix (eq. 15)."""
    M, F = pad(A, len(A)), pad(A_ft, len(A_ft))
    if M.shape != F.shape:
        raise ValueError(f"plasticity needs matrices of one stream: {M.shape} vs {F.shape}")
    return float(np.mean(np.diag(M) / np.diag(F)))


def stability(A) -> float:
    """S = (1/T) sum_j A[T-1][j] / max_{j<=i<=T-1} A[i][j] (eq. 16)."""
    M = pad(A, len(A))
    T = len(M)
    return float(np.mean([M[T - 1, j] / np.nanmax(M[j:, j]) for j in range(T)]))


def backward_transfer(A) -> float:
    """BWT = (1/(T-1)) sum_{j<T-1} (A[T-1][j] - A[j][j]) (Lopez-Paz & Ranzato 2017)."""
    M = pad(A, len(A))
    T = len(M)
    if T < 2:
        return 0.0
    return float(np.mean([M[T - 1, j] - M[j, j] for j in range(T - 1)]))


def mean_diagonal(matrices: list, n_tasks: int) -> list[list[float]]:
    """A* of eq. 15 from several runs' matrices: entry i is the mean of A[i][i] over the runs
    that have finished task i (NaN where none has), as rows [0, ..., 0, A*[i][i]]."""
    diag = []
    for i in range(n_tasks):
        vals = [M[i][i] for M in matrices if len(M) > i]
        diag.append(float(np.mean(vals)) if vals else float("nan"))
    return [[0.0] * i + [d] for i, d in enumerate(diag)]


def rl_plasticity_stability(R, ft_matrices: list) -> dict:
    """Eq. 15-16 on a complete reward matrix (raw scores; the paper gives them for accuracies
    only). S = mean_j R[T-1][j] / max_{i>=j} R[i][j]; P = mean_i R[i][i] / R*[i][i], R* = the
    fine-tuning runs' task-end scores (``mean_diagonal``). A ratio to a non-positive score
    means nothing, so either is None where one of its denominators is <= 0 (e.g. Boxing,
    whose scores can be negative), and P is None while a fine-tuning diagonal entry is
    missing."""
    T = len(R)
    best = [max(R[i][j] for i in range(j, T)) for j in range(T)]
    S = stability(R) if all(b > 0 for b in best) else None
    ref = mean_diagonal(ft_matrices, T)
    P = plasticity(R, ref) if all(np.isfinite(r[-1]) and r[-1] > 0 for r in ref) else None
    return {"stability": S, "plasticity": P}


def normalised_accumulated_reward(R, R_ft_max) -> list[float]:
    """Figure 7: after task i, sum_{j<=i} R[i][j] / max reward fine-tuning reached on task j.

    ``R_ft_max[j]`` is the maximum evaluation reward the fine-tuning run obtained on task j
    (over its whole evaluation history). A task whose reference is <= 0 cannot be normalised:
    its term, and so the sum, is NaN."""
    M = pad(R, len(R))
    return [float(sum(normalised(M[i, j], R_ft_max[j]) for j in range(i + 1)))
            for i in range(len(M))]


def normalised(score: float, reference: float) -> float:
    """One Figure 7 term: a score over fine-tuning's best on that task (NaN if that is <= 0)."""
    return float(score) / reference if reference > 0 else float("nan")
