"""``train.py report RUN...``: compare runs of one task stream, as the paper does.

The entry point: reads the run folders (``load_runs``), dispatches to the RL report
(``rl.rl_report``: reward matrices, Figure 7) or the supervised one
(``supervised.supervised_report``: accuracy matrices, eq. 15-16, Figures 3-6), adds its text
table (``text``), and writes report.json and the plots. A run folder is read by its files
alone (results.json, config.json, tb/); what only the run package knows of a folder comes in
as three callables of ``report``: ``in_use`` (whether a live process holds the folder),
``resolve`` (a saved config.json with the defaults of today's config filled in) and
``write_json`` (how a run's files are written: whole or not at all). ``continual.report``
passes them; ``train.py report`` and the study runner call that.
"""
from __future__ import annotations

import errno
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from envs.streams import STREAMS

from .rl import REFERENCE_WINDOW, TRAINING_WINDOW, benchmark, nonpositive_references, rl_report
from .supervised import supervised_report
from .text import format_rl, format_supervised

__all__ = ["REFERENCE_WINDOW", "REPORT_FIX", "TRAINING_WINDOW", "ReportError", "load_runs",
           "load_single_task", "read_game_report", "report"]


class ReportError(ValueError):
    """Runs that cannot be reported as asked, with a message that names the fix."""


def read_game_report(path) -> dict:
    """A saved report.json of game-stream runs (what ``report`` wrote for atari or minatar
    runs); ReportError naming the problem when it is unreadable or of another kind."""
    try:
        rep = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: not a readable report.json ({e})") from None
    if not isinstance(rep, dict) or not rep.get("runs") or \
            "reward_matrix" not in rep["runs"][0]:
        raise ReportError(f"{path} is not the report of game-stream runs (train.py report of "
                          f"atari or minatar runs): it has no reward matrices")
    return rep


def load_runs(paths, one_stream: bool = True, in_use=None, resolve=None) -> list[dict]:
    """Each run folder's results.json, with ``_config`` (its config.json, through ``resolve``
    where given), ``_path``, ``_label`` (the folder's name) and ``_method`` (its regularizer)
    added. A folder that has not written results yet is left out, with a note. A "running"
    status of a folder that ``in_use(folder)`` says no process holds becomes "stopped" (without
    ``in_use`` the status stays as results.json says). ``one_stream``: all of one task stream,
    else an error."""
    runs = []
    for p in paths:
        p = Path(p)
        f = p / "results.json" if p.is_dir() else p
        if not f.exists() and (f.parent / "config.json").exists():
            print(f"note: {p} is left out: the run has not written results yet (it does at its "
                  f"first checkpoint)")
            continue
        if not f.exists():
            raise ReportError(f"{p}: no results.json (is it a run folder of train.py?)")
        res = json.loads(f.read_text())
        cfg_path = f.parent / "config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        res["_config"] = resolve(cfg) if resolve and cfg_path.exists() else cfg
        res["_path"] = str(f.parent)
        res["_label"] = f.parent.name
        res["_method"] = res.get("regularizer") or res["_config"].get("regularizer", "?")
        if res.get("status") == "running" and in_use and not in_use(f.parent):
            res["status"] = "stopped (no process holds it; --resume continues it)"
        runs.append(res)
    if not runs:
        raise ReportError("report needs at least one run folder")
    streams = {tuple(r["tasks"]) for r in runs}
    if one_stream and len(streams) > 1:
        hint = " (a single-task run from scratch, forward transfer's reference, is given " \
               "with --single-task)" if any(len(s) == 1 for s in streams) else ""
        raise ReportError("report compares runs of one task stream; got streams "
                          + " | ".join(",".join(s) for s in streams) + hint)
    return runs


def load_single_task(paths, runs: list[dict], in_use=None, resolve=None) -> list[dict]:
    """The single-task runs ``paths`` (``load_runs``' dicts), forward transfer's reference:
    each trains one game of the stream of ``runs``, on the same benchmark, from scratch."""
    if not paths:
        return []
    single = load_runs(paths, one_stream=False, in_use=in_use, resolve=resolve)
    stream, bench = runs[0]["tasks"], benchmark(runs)
    for s in single:
        if len(s["tasks"]) != 1 or s["tasks"][0] not in stream:
            raise ReportError(f"{s['_path']}: a single-task reference trains one game of the "
                              f"stream ({', '.join(stream)}); it trains {', '.join(s['tasks'])} "
                              f"(make one with train.py {bench} --games GAME --out DIR)")
        if benchmark([s]) != bench:
            raise ReportError(f"{s['_path']}: a {benchmark([s])} run; the stream's runs are "
                              f"{bench} runs (same game name, another game)")
    return single


def report(paths, out: str | None = None, window: int = TRAINING_WINDOW,
           plots: bool = True, reference_window: int = REFERENCE_WINDOW,
           single_task=(), *, in_use, resolve, write_json) -> dict:
    """The report of the run folders ``paths`` (one stream, one of them fine-tuning), with its
    text table under "table"; report.json and (``plots``) the plots go to ``out`` (default: the
    folder above the first run). RL streams: ``reference_window``: Figure 7's reference is
    fine-tuning's best mean of that many consecutive evaluations of a game (1: its best single
    one, the paper's; 3 resists one lucky evaluation); ``single_task``: run folders of
    single-task runs from scratch, one game of the stream each, the reference of forward
    transfer (Continual World), fine-tuning's where a game has none. ``in_use(folder) -> bool``
    and ``resolve(config) -> dict``: as ``load_runs`` takes them; ``write_json(path, obj)``
    writes report.json. A full disk while the plots are written is a ReportError."""
    if not (isinstance(window, int) and window >= 1):
        raise ReportError(f"window={window!r}: the training-score window must be a number of "
                          f"env steps >= 1")
    if not (isinstance(reference_window, int) and not isinstance(reference_window, bool)
            and reference_window >= 1):
        raise ReportError(f"reference_window={reference_window!r}: Figure 7's reference is "
                          f"the best mean of a number >= 1 of consecutive evaluations (1: the "
                          f"best single one)")
    runs = load_runs(paths, in_use=in_use, resolve=resolve)
    out_dir = Path(out) if out else Path(runs[0]["_path"]).parent
    with _disk_full_is_an_error(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    rl = runs[0]["_config"].get("command") in STREAMS
    if not rl and not runs[0].get("accuracy_matrix"):
        raise ReportError(f"{runs[0]['_path']}: results.json has no accuracy matrix yet (a "
                          f"supervised report needs every run to have finished its first task)")
    if not any(r["_method"] == "finetune" for r in runs):
        raise ReportError("the report needs a fine-tuning run of the same stream among the "
                          "runs (train.py ... --regularizer finetune): it is the reference of "
                          "Figure 7 and of plasticity (eq. 15)")
    from . import plots as figures           # matplotlib only when a report is made
    if rl:
        single = load_single_task(single_task, runs, in_use, resolve)
        rep = rl_report(runs, window, reference_window, single)
        bad = nonpositive_references(rep)
        if bad:
            print(f"warning: fine-tuning's best score is <= 0 on {', '.join(bad)}; a ratio to "
                  f"it means nothing: Figure 7's sum leaves those tasks out (report.json: "
                  f"figure7_left_out), and they are left out of the groups' IQM and mean of "
                  f"normalised scores")
        rep["table"] = format_rl(rep)
        if plots:
            with _disk_full_is_an_error(out_dir):
                figures.plot_rl_report(rep, out_dir)
    else:
        if single_task or reference_window != REFERENCE_WINDOW:
            raise ReportError("single-task references and the reference window are the RL "
                              "report's (forward transfer of evaluation curves, Figure 7's "
                              "reference); a supervised report has neither")
        rep = supervised_report(runs)
        rep["table"] = format_supervised(rep)
        if plots:
            with _disk_full_is_an_error(out_dir):
                figures.plot_supervised_report(rep, out_dir)
    write_json(out_dir / "report.json", _finite_or_null(rep))
    return rep


# what a full disk's error tells the user to do after freeing space
REPORT_FIX = "run the same report again (the runs it reads are untouched)"


@contextmanager
def _disk_full_is_an_error(out_dir: Path):
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ReportError(f"no space left on the device to write the report in {out_dir}: "
                              f"free space, then {REPORT_FIX}") from None
        raise


def _finite_or_null(o):
    """NaN/inf (a task fine-tuning has no positive score on yet) as null: strict JSON."""
    if isinstance(o, float):
        return o if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite_or_null(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_null(v) for v in o]
    return o
