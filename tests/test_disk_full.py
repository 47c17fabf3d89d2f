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

    def short_write(path, write, *rest):
        if path.name == target:
            writes["n"] += 1
            if writes["n"] == 3:                        # the disk fills at the third write
                def partial(f):
                    f.write(b"\0" * 100)                # part of the file, then no space
                    raise _full(what)
                return real(path, partial, *rest)
        return real(path, write, *rest)

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


def _hand_made_runs(root):
    for name, method, R in (("ft", "finetune", [[10.0], [2.0, 100.0]]),
                            ("ags", "agscl", [[16.0], [15.0, 50.0]])):
        (root / name).mkdir(parents=True)
        (root / name / "config.json").write_text(json.dumps({"command": "atari",
                                                             "regularizer": method}))
        (root / name / "results.json").write_text(json.dumps({
            "tasks": ["Boxing", "Gopher"], "regularizer": method, "reward_matrix": R,
            "eval_curve": [{"step": 1, "score": R[1]}]}))
    return [str(root / "ft"), str(root / "ags")]


@pytest.mark.parametrize("where", ["report.json", "plots"])
def test_a_full_disk_while_writing_a_report_is_a_clear_error_and_keeps_the_old_report(
        tmp_path, monkeypatch, capsys, where):
    import matplotlib.figure
    runs, out = _hand_made_runs(tmp_path), tmp_path / "rep"
    out.mkdir()
    (out / "report.json").write_text('{"old": 1}')

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    if where == "plots":
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
    else:
        monkeypatch.setattr(os, "fsync", full)
    assert train.main(["report", *runs, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device to write" in err and str(out) in err
    assert "free space, then run the same report again" in err
    assert "--resume" not in err and "Traceback" not in err
    assert json.loads((out / "report.json").read_text()) == {"old": 1}
    assert not list(out.glob("*.tmp")) and not list(out.glob(".report.json*"))
    monkeypatch.undo()
    assert train.main(["report", *runs, "--out", str(out)]) == 0      # space freed
    assert "finetune_max_reward" in json.loads((out / "report.json").read_text())
