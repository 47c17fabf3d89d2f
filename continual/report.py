"""``train.py report`` from the run package's side: ``analysis.report.report`` given what only
this package knows of a run folder (whether a live process holds it, a saved config's
defaults), with report.json written the way a run's own files are (whole or not at all; a
full disk a clear error that says to run the report again)."""
from __future__ import annotations

from functools import partial

from analysis.report import REPORT_FIX
from analysis.report import report as _report

from . import runconfig
from .runfolder import in_use, write_json


def report(paths, out: str | None = None, *args, **kw) -> dict:
    """``analysis.report.report(paths, out, ...)`` with this package's lock probe, config
    defaults and writer."""
    return _report(paths, out, *args, in_use=in_use, resolve=runconfig.with_defaults,
                   write_json=partial(write_json, fix=REPORT_FIX), **kw)
