"""The paper's measurements (section 4.1, eq. 15-16, Figure 7), as pure functions of matrices.

A is T x T (lists of rows; row i may hold only entries j <= i): A[i][j] = score on task j
after learning task i. Accuracy matrices for the supervised benchmarks, reward matrices (raw
scores) for Atari.

Beside them, the measures of the wider continual-learning literature: forgetting (Mammoth's,
per task), forward transfer before a task is trained (Mammoth's and Avalanche's) and
Continual World's forward transfer of evaluation curves (Wolczyk et al. 2021), and the
human- and random-normalised scores of the Atari literature (Mnih et al. 2015). Pooling runs
is ``grouping`` (which runs are seeds of one experiment) and ``bootstrap`` (estimates over
them with confidence intervals). No I/O.
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
    """Figure 7: after task i, ``figure7_sum`` of row i: sum_{j<=i} R[i][j] / R*_j.

    ``R_ft_max[j]`` = R*_j, the reference of task j: the maximum evaluation reward the
    fine-tuning run obtained on it (over its whole evaluation history)."""
    M = pad(R, len(R))
    return [figure7_sum(M[i, :i + 1], R_ft_max) for i in range(len(M))]


def figure7_sum(scores, reference) -> float:
    """One Figure 7 value: sum_j scores[j] / reference[j] over the tasks whose reference is
    positive. A task whose reference is <= 0 (Boxing's scores can be negative) has no ratio
    (it would flip the sign or blow up) and is left out of the sum (the report lists it); a
    task without a reference yet (None, NaN, -inf: fine-tuning has not reached it) makes the
    value NaN, as it is not known yet."""
    total = 0.0
    for j, v in enumerate(scores):
        r = reference[j]
        if r is None or not np.isfinite(r):
            return float("nan")
        if r > 0:
            total += float(v) / r
    return total


def normalised(score: float, reference: float) -> float:
    """One Figure 7 term: a score over fine-tuning's best on that task (NaN if that is <= 0)."""
    return float(score) / reference if reference > 0 else float("nan")


def best_running_mean(values, window: int = 1) -> float:
    """max_i mean(values[i : i + window]): the best mean of ``window`` consecutive values (in
    the order given: evaluations by step). window 1 is the best single value; -inf with fewer
    than ``window`` values (no such mean yet)."""
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"window={window!r}: the running mean needs a window of >= 1 values")
    x = np.asarray([float(v) for v in values], dtype=float)
    if len(x) < window:
        return float("-inf")
    return float(np.max(np.convolve(x, np.ones(window) / window, mode="valid")))


# --- normalised scores (Atari: Mnih et al. 2015) ---------------------------------------------
def human_normalised(score: float, random: float, human: float) -> float:
    """(score - random) / (human - random): 0 = random play, 1 = the human tester (Mnih et al.
    2015, Extended Data Table 2's last column, as a fraction)."""
    return (float(score) - random) / (human - random)


def random_normalised(score: float, random: float, reference: float) -> float:
    """(score - random) / (reference - random): 0 = random play, 1 = the reference (the
    report's: fine-tuning's best, Figure 7's). The human-normalised form with the reference in
    place of the human, i.e. Figure 7's ratio shifted by the random score; rather than score /
    random or (score - random) / |random|, which blow up as random play scores near 0
    (Boxing's 0.1). NaN when the reference is not above random play (no scale)."""
    if reference is None or not np.isfinite(reference) or reference <= random:
        return float("nan")
    return (float(score) - random) / (reference - random)


# --- forgetting and forward transfer ---------------------------------------------------------
def forgetting_matrix(A) -> list[list[float]]:
    """F[i][j] = max_{j<=k<=i} A[k][j] - A[i][j] for j <= i: how far task j lies, after task
    i, below its best score since it was learned (rows k >= j only: after it was trained);
    F[j][j] = 0. Rows as far as A goes (a run still training)."""
    M = pad(A, max(len(A), max((len(r) for r in A), default=0)))
    return [[float(np.max(M[j:i + 1, j]) - M[i, j]) for j in range(i + 1)]
            for i in range(len(A))]


def forgetting(A) -> list[float]:
    """Forgetting per task j < T-1 of a complete matrix: max_{j<=k<=T-1} A[k][j] - A[T-1][j]
    (>= 0), the last row of ``forgetting_matrix``. Mammoth's forgetting (aimagelab/mammoth,
    utils/metrics.py ``forgetting``: the best entry of task j's column minus its final one,
    averaged over j < T-1), with the best taken after task j was learned. Chaudhry et al.
    (2018) take the best over k < T-1 only: it differs where the final score is the best
    (theirs is then negative, this 0). Avalanche's forgetting, A[j][j] - A[T-1][j], is -BWT
    per task. The last task has had no time to be forgotten and is not included."""
    T = len(A)
    return forgetting_matrix(A)[-1][:T - 1] if T else []


def forward_transfer_before(A, reference) -> list[float | None]:
    """Forward transfer per task as Mammoth (utils/metrics.py ``forward_transfer``) and
    Avalanche (``ForwardTransfer``) define it: FWT_j = A[j-1][j] - reference[j] for j >= 1,
    the score on task j after learning task j-1 (before training on j) minus a random-init
    model's score on it (``reference``); both average j = 1..T-1. None where row j-1 has no
    entry j (task j was not evaluated before its training) or reference[j] is None; entry 0 is
    None (no task before it)."""
    out: list[float | None] = [None]
    for j in range(1, len(A)):
        before = A[j - 1][j] if len(A[j - 1]) > j else None
        ref = reference[j] if j < len(reference) else None
        out.append(None if before is None or ref is None else float(before) - float(ref))
    return out


def auc(points) -> float:
    """Area under an evaluation curve per step of a task's training: sum_k v_k (s_k - s_{k-1})
    / s_K with s_0 = 0, ``points`` = [(s_k, v_k)], s the steps since the task started,
    increasing. Each evaluation stands for the steps since the previous one; with evenly spaced
    evaluations (the trainer's periodic ones) this is their mean."""
    pts = sorted((float(s), float(v)) for s, v in points)
    if not pts:
        raise ValueError("auc needs at least one evaluation")
    if pts[0][0] <= 0:
        raise ValueError(f"auc: evaluation steps count from the task's start and must be > 0; "
                         f"got {pts[0][0]:g}")
    steps = np.array([0.0] + [s for s, _ in pts])
    vals = np.array([v for _, v in pts])
    return float(np.sum(vals * np.diff(steps)) / steps[-1])


def continual_world_forward_transfer(run, references) -> dict:
    """Continual World's forward transfer of one task (Wolczyk et al. 2021): FT = (AUC -
    AUC_ref) / (1 - AUC_ref), AUC the ``auc`` of the run's normalised evaluation curve during
    the task's own training, AUC_ref the mean ``auc`` of the reference curves (single-task
    training from scratch, one per reference run). Scores are normalised p = (s - lo) / (hi -
    lo), lo and hi the lowest and highest score in all these curves: Continual World's success
    rates lie in [0, 1] with 1 the best possible; raw scores have no such bound, so 1 is the
    best any of the compared curves reached. lo cancels: FT = (AUC_s - AUC_ref_s) / (hi -
    AUC_ref_s) of the raw curves. ``run``: [(step, score)]; ``references``: a list of such.
    Returns {"ft", "auc", "auc_reference", "lo", "hi"}; "ft" None, with "why", where every
    score is the same (no scale) or the reference is at hi throughout (1 - AUC_ref = 0)."""
    if not run or not references or not all(references):
        raise ValueError("forward transfer needs the run's curve and at least one reference "
                         "curve, each of one evaluation or more")
    vals = [v for _, v in run] + [v for ref in references for _, v in ref]
    lo, hi = float(min(vals)), float(max(vals))
    out = {"ft": None, "auc": None, "auc_reference": None, "lo": lo, "hi": hi}
    if hi == lo:
        return dict(out, why=f"every evaluation of the run and its reference scored {lo:g}")
    norm = lambda pts: [(s, (v - lo) / (hi - lo)) for s, v in pts]
    a = auc(norm(run))
    a_ref = float(np.mean([auc(norm(ref)) for ref in references]))
    out.update(auc=a, auc_reference=a_ref)
    if a_ref >= 1.0:
        return dict(out, why="the reference is at the best score throughout (1 - AUC_ref = 0)")
    out["ft"] = (a - a_ref) / (1.0 - a_ref)
    return out

