"""The paper's measurements (section 4.1, Figure 7), as plain functions of matrices.

A is T x T (lists of rows; row i may hold only entries j <= i): A[i][j] = score on task j
after learning task i.
"""
from __future__ import annotations

import numpy as np


def _square(A) -> np.ndarray:
    T = len(A)
    M = np.full((T, T), np.nan)
    for i, row in enumerate(A):
        M[i, :len(row)] = row
    return M


def average_accuracy(A) -> float:
    """mean_j A[T-1][j]."""
    M = _square(A)
    return float(np.mean(M[-1, :]))


def average_accuracy_curve(A) -> list[float]:
    """Average over the tasks seen so far after each task: mean_{j<=i} A[i][j]."""
    M = _square(A)
    return [float(np.mean(M[i, :i + 1])) for i in range(len(M))]


def plasticity(A, A_ft) -> float:
    """P = (1/T) sum_i A[i][i] / A*[i][i], A* = fine-tuning's matrix (eq. 15)."""
    M, F = _square(A), _square(A_ft)
    if M.shape != F.shape:
        raise ValueError(f"plasticity needs matrices of one stream: {M.shape} vs {F.shape}")
    return float(np.mean(np.diag(M) / np.diag(F)))


def stability(A) -> float:
    """S = (1/T) sum_j A[T-1][j] / max_{j<=i<=T-1} A[i][j] (eq. 16)."""
    M = _square(A)
    T = len(M)
    return float(np.mean([M[T - 1, j] / np.nanmax(M[j:, j]) for j in range(T)]))


def backward_transfer(A) -> float:
    """BWT = (1/(T-1)) sum_{j<T-1} (A[T-1][j] - A[j][j]) (Lopez-Paz & Ranzato 2017)."""
    M = _square(A)
    T = len(M)
    if T < 2:
        return 0.0
    return float(np.mean([M[T - 1, j] - M[j, j] for j in range(T - 1)]))


def normalised_accumulated_reward(R, R_ft_max) -> list[float]:
    """Figure 7: after task i, sum_{j<=i} R[i][j] / max reward fine-tuning reached on task j.

    ``R_ft_max[j]`` is the maximum evaluation reward the fine-tuning run obtained on task j
    (over its whole evaluation history). A task whose reference is <= 0 cannot be normalised:
    its term, and so the sum, is NaN."""
    M = _square(R)
    return [float(sum(normalised(M[i, j], R_ft_max[j]) for j in range(i + 1)))
            for i in range(len(M))]


def normalised(score: float, reference: float) -> float:
    return float(score) / reference if reference > 0 else float("nan")
