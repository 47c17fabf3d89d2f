"""``train.py report RUN...``: compare runs of one task stream, as the paper does.

The entry point: reads the run folders (``load_runs``), dispatches to the RL report
(``report_rl``: reward matrices, Figure 7) or the supervised one (``report_supervised``:
accuracy matrices, eq. 15-16, Figures 3-6), and writes report.json and the plots.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .report_rl import TRAINING_WINDOW, format_rl, nonpositive_references, rl_report
from .report_supervised import format_supervised, supervised_report
from .runfolder import RunError, RunFolder, write_json

__all__ = ["TRAINING_WINDOW", "load_runs", "report"]


def load_runs(paths) -> list[dict]:
    """Each run folder's results.json, with ``_config`` (its config.json), ``_path``,
    ``_label`` (the folder's name) and ``_method`` (its regularizer) added. A folder that has
    not written results yet is left out, with a note."""
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
        res["_method"] = res.get("regularizer") or res["_config"].get("regularizer", "?")
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


def report(paths, out: str | None = None, window: int = TRAINING_WINDOW,
           plots: bool = True) -> dict:
    """The report of the run folders ``paths`` (one stream, one of them fine-tuning), with its
    text table under "table"; report.json and (``plots``) the plots go to ``out`` (default: the
    folder above the first run)."""
    if not (isinstance(window, int) and window >= 1):
        raise RunError(f"window={window!r}: the training-score window must be a number of env "
                       f"steps >= 1")
    runs = load_runs(paths)
    out_dir = Path(out) if out else Path(runs[0]["_path"]).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    # runs written before the trainer always listed its matrix: an Atari run's config says so
    rl = "reward_matrix" in runs[0] or runs[0]["_config"].get("command") == "atari"
    if not rl and not runs[0].get("accuracy_matrix"):
        raise RunError(f"{runs[0]['_path']}: results.json has no accuracy matrix yet (a "
                       f"supervised report needs every run to have finished its first task)")
    if not any(r["_method"] == "finetune" for r in runs):
        raise RunError("the report needs a fine-tuning run of the same stream among the runs "
                       "(train.py ... --regularizer finetune): it is the reference of Figure 7 "
                       "and of plasticity (eq. 15)")
    from . import plots as figures           # matplotlib only when a report is made
    if rl:
        rep = rl_report(runs, window)
        bad = nonpositive_references(rep)
        if bad:
            print(f"warning: fine-tuning's best score is <= 0 on {', '.join(bad)}; the "
                  f"normalised reward of those tasks is not meaningful (divided by a "
                  f"non-positive number): Figure 7's sum is NaN once it includes them, and "
                  f"they are left out of the groups' IQM and mean of normalised scores")
        rep["table"] = format_rl(rep)
        if plots:
            figures.plot_rl_report(rep, out_dir)
    else:
        rep = supervised_report(runs)
        rep["table"] = format_supervised(rep)
        if plots:
            figures.plot_supervised_report(rep, out_dir)
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
