"""A checkpoint or results.json write that fails for lack of space stops the run with a clear
error (the file, the fix: free space, then --resume; no traceback), loses nothing written
earlier, and the resume after freeing space equals the uninterrupted run."""
from __future__ import annotations

import errno
import os
import json

import pytest
import torch

import train
from continual import runfolder

ARGS = ["minatar", "--preset", "minatar_tiny", "--games", "Breakout,Freeway", "--regularizer",
        "ewc", "--no-progress", "--threads", "1", "--eval-every", "32", "--checkpoint-every", "1"]


def _full(what: str):
    """What a full disk raises: ENOSPC, or torch's zip writer after a short write."""
    return OSError(errno.ENOSPC, "No space left on device") if what == "enospc" else \
        RuntimeError("[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed "
                     "writing file data/3: unexpected pos 1600 vs 1536")


def test_a_write_that_finds_the_disk_full_is_a_run_error_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    runfolder.write_json(path, {"step": 1})
    for what in ("enospc", "torch"):
        def short(f):
            f.write(b"\0" * 100)
            raise _full(what)
        with pytest.raises(runfolder.RunError, match=f"no space left on the device to write "
                                                     f"{path}: free space, then continue"):
            runfolder._atomic_write_bytes(path, short)
        assert json.loads(path.read_text()) == {"step": 1}
        assert not list(tmp_path.glob("*.tmp"))

    def denied(f):
        raise PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(PermissionError):                 # another failure stays itself
        runfolder._atomic_write_bytes(path, denied)


@pytest.mark.slow
@pytest.mark.parametrize("target,what", [("last.pt", "enospc"), ("last.pt", "torch"),
                                         ("results.json", "enospc")])
def test_disk_full_is_a_clear_error_and_resume_equals_the_uninterrupted_run(
        tmp_path, monkeypatch, capsys, target, what):
    pytest.importorskip("minatar")
    assert train.main(ARGS + ["--out", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "results.json").read_text())

    cut = tmp_path / "cut"
    real = runfolder._atomic_write_bytes
    writes = {"n": 0}

    def short_write(path, write):
        if path.name == target:
            writes["n"] += 1
            if writes["n"] == 3:                        # the disk fills at the third write
                def partial(f):
                    f.write(b"\0" * 100)                # part of the file, then no space
                    raise _full(what)
                return real(path, partial)
        return real(path, write)

    monkeypatch.setattr(runfolder, "_atomic_write_bytes", short_write)
    assert train.main(ARGS + ["--out", str(cut)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device to write" in err and target in err
    assert "free space, then continue the run with --resume" in err
    assert "Traceback" not in err
    # nothing earlier is lost: the last good checkpoint and results.json load, no temp file
    before = json.loads((cut / "results.json").read_text())
    assert before["status"] == "running" and before["global_step"] > 0
    torch.load(cut / "checkpoints" / "last.pt", weights_only=False)
    assert not list(cut.rglob("*.tmp"))

    monkeypatch.setattr(runfolder, "_atomic_write_bytes", real)       # space freed
    assert train.main(ARGS + ["--out", str(cut), "--resume"]) == 0
    after = json.loads((cut / "results.json").read_text())
    assert after["reward_matrix"] == full["reward_matrix"]
    assert [c["score"] for c in after["eval_curve"]] == [c["score"] for c in full["eval_curve"]]


def test_a_full_disk_while_writing_a_report_names_the_file_and_keeps_the_old_one(tmp_path,
                                                                                 monkeypatch):
    from analysis import report as analysis_report
    path = tmp_path / "report.json"
    path.write_text('{"old": 1}')
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(analysis_report.ReportError) as e:
        analysis_report._write_json(path, {"new": 2})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert str(path) in str(e.value) and "run the same report again" in str(e.value)
    assert "--resume" not in str(e.value)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]      # no temp file left
