"""The paper's measurements (section 4.1, eq. 15-16, Figure 7), as pure functions of matrices.

A is T x T (lists of rows; row i may hold only entries j <= i): A[i][j] = score on task j
after learning task i. Accuracy matrices for the supervised benchmarks, reward matrices (raw
scores) for Atari.

Beside them, the measures of the wider continual-learning literature: forgetting (Mammoth's,
per task), forward transfer before a task is trained (Mammoth's and Avalanche's) and
Continual World's forward transfer of evaluation curves (Wolczyk et al. 2021), and the
human- and random-normalised scores of the Atari literature (Mnih et al. 2015).

Then what a report needs to pool runs: grouping runs into experiments (a method and its
hyperparameters, seeds pooled: ``group_runs``), and the estimators with their bootstrap
confidence intervals (``iqm``, ``bootstrap_ci``, ``mean_ci``, ``aggregate_scores``: rliable's
IQM and mean with its stratified bootstrap, computed with ``scipy.stats.bootstrap``). No I/O.
"""
from __future__ import annotations

import inspect
import json

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


# --- grouping runs: a method and its hyperparameters, seeds pooled ---------------------------
# config.json parts that do not define a method's setting: bookkeeping, the machine (device,
# threads, paths) and the method's name (a group's "method"); the learner's seed is dropped too
NOT_HYPERPARAMETERS = ("format_version", "command", "machine", "regularizer")
SEEDED = ("ppo", "classifier")         # the learner parts whose "seed" is the run's seed


def hyperparameters(config: dict) -> dict:
    """What makes two runs of one method the same experiment: config.json without
    ``NOT_HYPERPARAMETERS`` and without the learner's seed (``ppo.seed``, ``classifier.seed``).
    Everything else counts (regularizer strengths, PPO / classifier settings, the stream)."""
    out = {k: v for k, v in config.items() if k not in NOT_HYPERPARAMETERS}
    for part in SEEDED:
        if isinstance(out.get(part), dict):
            out[part] = {k: v for k, v in out[part].items() if k != "seed"}
    return out


def _canonical(v):
    """Numbers as floats (a TOML ``lam = 10`` and a resolved 10.0 are one setting), dicts with
    sorted keys, for a JSON key."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    return repr(v)


def group_key(method: str, config: dict) -> str:
    """The key two runs share iff they are seeds of one experiment: the method and its
    ``hyperparameters``, as canonical JSON."""
    return json.dumps([method, _canonical(hyperparameters(config))], sort_keys=True)


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested dict as {"a.b": value}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _value_text(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_value_text(x) for x in v)
    return "unset" if v is _UNSET else str(v)


_UNSET = object()


def group_runs(runs) -> list[dict]:
    """Runs grouped by method and hyperparameters. ``runs``: (method, config.json dict) per
    run. Returns one dict per group, in the order of each group's first run:
    {"method", "label", "hyperparameters" (the first run's), "varied" (the flattened
    hyperparameters in which the group differs from the other groups of its method; a key a
    group lacks shows as "unset"), "members" (indices into ``runs``)}. The label is the method
    plus its varied hyperparameters, e.g. "agscl lam=10" (regularizer strengths by their own
    name, other settings by their last name, or their dotted path where that is ambiguous);
    the method alone when it has one group."""
    groups: dict[str, dict] = {}
    for i, (method, config) in enumerate(runs):
        g = groups.setdefault(group_key(method, config or {}), {
            "method": method, "hyperparameters": hyperparameters(config or {}), "members": []})
        g["members"].append(i)
    out = list(groups.values())
    for method in dict.fromkeys(g["method"] for g in out):
        mine = [g for g in out if g["method"] == method]
        flat = [flatten(g["hyperparameters"]) for g in mine]
        keys = list(dict.fromkeys(k for f in flat for k in f))
        varied = [k for k in keys if len({json.dumps(_canonical(f.get(k, "\0unset")))
                                          for f in flat}) > 1]
        short = {k: k.split(".")[-1] for k in varied}
        names = {k: s if list(short.values()).count(s) == 1 else
                 k.removeprefix("regularizer_hparams.") for k, s in short.items()}
        for g, f in zip(mine, flat):
            g["varied"] = {k: f.get(k) for k in varied}
            g["label"] = " ".join([method] + [f"{names[k]}={_value_text(f.get(k, _UNSET))}"
                                              for k in varied])
        labels = [g["label"] for g in mine]
        for k, g in enumerate(mine):       # values that print alike (e.g. beyond 6 digits)
            if labels.count(g["label"]) > 1:
                g["label"] += f" #{labels[:k].count(g['label']) + 1}"
    return [{k: g[k] for k in ("method", "label", "hyperparameters", "varied", "members")}
            for g in out]


# --- estimators over seeds and games (rliable's, Agarwal et al. 2021) -------------------------
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def iqm(x) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as
    ``scipy.stats.trim_mean(x, 0.25)``) of all values pooled; rliable's IQM."""
    from scipy.stats import trim_mean
    return float(trim_mean(np.ravel(np.asarray(x, dtype=float)), 0.25))


def _pooled(statistic):
    """A statistic of the pooled values as scipy's vectorised bootstrap calls it: one array
    per stratum, resamples along ``axis``."""
    def stat(*samples, axis=-1):
        return statistic(np.concatenate(samples, axis=axis), axis=axis)
    return stat


def _iqm_along(x, axis=-1):
    from scipy.stats import trim_mean
    return trim_mean(x, 0.25, axis=axis)


def bootstrap_ci(samples, statistic, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 confidence: float = CONFIDENCE, seed: int = 0):
    """Percentile bootstrap interval [lo, hi] of ``statistic`` of the pooled values of
    ``samples`` (a list of 1-D arrays, the strata), each stratum resampled with replacement
    independently of the others (``scipy.stats.bootstrap``; with one stratum per game this is
    rliable's stratified bootstrap). ``statistic(x, axis)`` is vectorised (np.mean,
    ``_iqm_along``). A fresh ``np.random.default_rng(seed)`` per call: a report is reproducible
    and each interval does not depend on what else is computed. None when a stratum holds
    fewer than 2 values (one run: nothing to resample, no interval)."""
    from scipy.stats import bootstrap
    samples = [np.asarray(s, dtype=float).ravel() for s in samples]
    if not samples or any(len(s) == 0 for s in samples):
        raise ValueError("bootstrap_ci needs non-empty samples")
    if min(len(s) for s in samples) < 2:
        return None
    kw = {"rng": np.random.default_rng(seed)}
    if "rng" not in inspect.signature(bootstrap).parameters:     # scipy < 1.15
        kw = {"random_state": np.random.default_rng(seed)}
    res = bootstrap(tuple(samples), _pooled(statistic), n_resamples=n_resamples,
                    confidence_level=confidence, method="percentile", vectorized=True,
                    paired=False, **kw)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def mean_ci(values, n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """A metric averaged over seeds: {"mean", "ci95": percentile bootstrap [lo, hi] of the mean
    over the seeds (None with one seed), "n": seeds}; values that are None (a run without that
    metric) are left out; {"mean": None, ...} when none is left."""
    xs = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not xs:
        return {"mean": None, "ci95": None, "n": 0}
    return {"mean": float(np.mean(xs)), "ci95": bootstrap_ci([xs], np.mean, n_resamples),
            "n": len(xs)}


def aggregate_scores(scores, n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """rliable's aggregate of a runs x games matrix of normalised scores: {"iqm": {"iqm",
    "ci95", "n", "games"}, "mean": {"mean", "ci95", "n", "games"}}: the IQM and the mean of
    all runs x games pooled, each with its stratified bootstrap interval (runs resampled with
    replacement within each game, independently per game; percentile). n = runs; "ci95" is
    None with one run."""
    S = np.asarray(scores, dtype=float)
    if S.ndim != 2 or S.size == 0:
        empty = {"ci95": None, "n": int(S.shape[0]) if S.ndim == 2 else 0,
                 "games": int(S.shape[1]) if S.ndim == 2 else 0}
        return {"iqm": {"iqm": None, **empty}, "mean": {"mean": None, **empty}}
    if not np.all(np.isfinite(S)):
        raise ValueError("aggregate_scores needs finite scores (leave games without a "
                         "reference out)")
    per_game = [S[:, j] for j in range(S.shape[1])]
    n, g = S.shape
    return {"iqm": {"iqm": iqm(S), "ci95": bootstrap_ci(per_game, _iqm_along, n_resamples),
                    "n": n, "games": g},
            "mean": {"mean": float(S.mean()), "ci95": bootstrap_ci(per_game, np.mean,
                                                                    n_resamples),
                     "n": n, "games": g}}


def interval_text(estimate, ci, digits: int = 3) -> str:
    """"0.912 [0.850, 0.970]": an estimate and its interval for a table; "0.912 [-]" without
    an interval (one run), "-" without an estimate."""
    if estimate is None or not np.isfinite(estimate):
        return "-"
    if ci is None:
        return f"{estimate:.{digits}f} [-]"
    return f"{estimate:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def lam_sweeps(gs: list[dict]) -> dict:
    """Figure 5's plasticity-stability trade-off over lam (the paper fixes mu and varies lam
    for AGS-CL, varies lam for EWC) of a report's groups (supervised or RL: each with
    "method", "label", "hyperparameters" and "plasticity" / "stability" ``mean_ci``s): per
    method with more than one lam among the groups,
    {"points": [{"label", "lam", "plasticity", "stability"}] (sorted by lam; each a
    ``mean_ci`` over the group's seeds), "best": the label and lam of the point with the
    highest P + S (means; the paper marks the optimum lam), "criterion"}. Groups without P or
    S (no complete run) are no point."""
    out = {}
    for method in dict.fromkeys(g["method"] for g in gs):
        pts = [{"label": g["label"], "lam": g["hyperparameters"]["regularizer_hparams"]["lam"],
                "plasticity": g["plasticity"], "stability": g["stability"]}
               for g in gs if g["method"] == method
               and "lam" in (g["hyperparameters"].get("regularizer_hparams") or {})
               and g["plasticity"]["mean"] is not None and g["stability"]["mean"] is not None]
        if len({float(p["lam"]) for p in pts}) < 2:
            continue
        pts.sort(key=lambda p: float(p["lam"]))
        best = max(pts, key=lambda p: p["plasticity"]["mean"] + p["stability"]["mean"])
        out[method] = {"points": pts, "best": {"label": best["label"], "lam": best["lam"]},
                       "criterion": "highest P + S (means over seeds)"}
    return out
