"""Estimates over seeds and games with bootstrap confidence intervals, as rliable computes
them (Agarwal et al., NeurIPS 2021): ``iqm``, ``bootstrap_ci``, ``mean_ci``,
``aggregate_scores`` (the IQM and mean with the stratified bootstrap, computed with
``scipy.stats.bootstrap``), ``difference_ci`` (two groups' means apart), ``holm`` (a family
of p-values adjusted), and ``interval_text``, an estimate with its interval as a table shows
it. No I/O.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np

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


def _generator(bootstrap, seed: int) -> dict:
    """scipy.stats.bootstrap's keyword for a fresh seeded generator ('random_state' before
    scipy 1.15)."""
    name = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


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
    res = bootstrap(tuple(samples), _pooled(statistic), n_resamples=n_resamples,
                    confidence_level=confidence, method="percentile", vectorized=True,
                    paired=False, **_generator(bootstrap, seed))
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


def difference_ci(a, b, n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """The difference of two groups' means over their seeds, mean(b) - mean(a): {"mean",
    "ci95": percentile bootstrap [lo, hi] with each group's seeds resampled with replacement
    independently (unpaired: seed i of one group shares nothing with seed i of the other),
    "welch_ci95": Welch's t interval (unequal variances), "welch_p": Welch's two-sided p-value,
    "n": [len(a), len(b)]}. None values are left out; the intervals and p are None when a group
    has fewer than 2 values; when neither group has spread the difference is exact (its
    intervals are the point) and p is None (Welch's t is undefined). With few seeds
    the percentile bootstrap is too narrow (it resamples each group's spread at (n-1)/n of
    its variance, and its percentiles cover less than 95% at n = 5); Welch's interval is the
    more cautious of the two there."""
    from scipy.stats import bootstrap
    xa, xb = ([float(v) for v in vs if v is not None and np.isfinite(v)] for vs in (a, b))
    if not xa or not xb:
        return {"mean": None, "ci95": None, "welch_ci95": None, "welch_p": None,
                "n": [len(xa), len(xb)]}
    out = {"mean": float(np.mean(xb) - np.mean(xa)), "ci95": None, "welch_ci95": None,
           "welch_p": None, "n": [len(xa), len(xb)]}
    if min(len(xa), len(xb)) < 2:
        return out
    res = bootstrap((np.asarray(xa), np.asarray(xb)),
                    lambda x, y, axis=-1: np.mean(y, axis=axis) - np.mean(x, axis=axis),
                    n_resamples=n_resamples, confidence_level=CONFIDENCE, method="percentile",
                    vectorized=True, paired=False, **_generator(bootstrap, 0))
    out["ci95"] = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    from scipy.stats import ttest_ind
    if np.ptp(xa) == 0 and np.ptp(xb) == 0:       # no spread: the difference is exact
        if xa[0] == xb[0]:         # the means of equal values can differ by an ulp
            out["mean"], out["ci95"] = 0.0, [0.0, 0.0]
        out["welch_ci95"] = [out["mean"], out["mean"]]     # Welch's t is 0/0: no p
    else:
        with warnings.catch_warnings():     # one group without spread: scipy warns of
            warnings.simplefilter("ignore", RuntimeWarning)      # precision; the CI holds
            t = ttest_ind(xb, xa, equal_var=False)
            ci = t.confidence_interval(CONFIDENCE)
        out["welch_ci95"] = [float(ci.low), float(ci.high)]
        out["welch_p"] = float(t.pvalue)
    return out


def holm(pvalues) -> list:
    """Holm's step-down adjustment of a family of p-values (Holm 1979): sorted ascending,
    the i-th smallest (from 0) is multiplied by (m - i), made non-decreasing along the order
    and capped at 1. A test separates at family-wise level alpha iff its adjusted p <= alpha.
    None stays None and does not count in m."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m, out, running = len(idx), [None] * len(pvalues), 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


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

