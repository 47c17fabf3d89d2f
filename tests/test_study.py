"""train.py study: spec checks (no Ray), and a tiny study on a local Ray with 2 CPUs that
survives a killed trial and a killed driver (slow)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import study
import train

ROOT = Path(__file__).resolve().parents[1]
TINY = """command = "atari"
out = "{out}"
[args]
games = "Boxing,Gopher"
num-envs = 2
num-steps = 16
update-epochs = 1
num-minibatches = 2
steps-per-task = {steps}
eval-episodes = 1
eval-max-steps = 30
eval-every = 0
importance-steps = 32
checkpoint-every = 1
threads = 1
env-threads = 1
[grid]
regularizer = ["finetune", "agscl"]
seed = [1, 2]
[grid.agscl]
lam = [10.0, 100.0]
[resources]
cpus = 1
"""


def write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_trials_are_the_grid_with_per_method_hyperparameters(tmp_path):
    s = study.load(write(tmp_path, TINY.format(out=tmp_path / "runs", steps=64)))
    assert [t.name for t in s.trials] == [
        "finetune-seed1", "finetune-seed2", "agscl-lam=10.0-seed1", "agscl-lam=100.0-seed1",
        "agscl-lam=10.0-seed2", "agscl-lam=100.0-seed2"]
    t = s.trials[3]
    assert t.flags["regularizer"] == "agscl" and t.flags["lam"] == 100.0 and t.flags["seed"] == 1
    assert t.path == tmp_path / "runs" / "agscl-lam=100.0-seed1"
    # a trial's command line is an ordinary train.py run
    from continual import runconfig
    argv = t.argv("atari")
    cfg = runconfig.resolve("atari", train.given_flags("atari", train.build_parser().parse_args(argv)))
    assert (cfg.regularizer, cfg.regularizer_hparams["lam"], cfg.ppo.seed, cfg.games) == \
        ("agscl", 100.0, 1, ["Boxing", "Gopher"])
    assert (s.cpus, s.gpus) == (1.0, 0.0)


BAD = [
    ("colour = 1\n", "unknown key.*colour"),
    ('command = "chess"\n', "command = 'chess'"),
    ("[args]\nwarp-speed = 3\n", r"\[args\] warp-speed is not a flag of train.py atari"),
    ("[args]\nout = 'x'\n", r"\[args\] out is set by the study"),
    ('[grid]\nregularizer = ["finetune", "hat"]\n', "'hat' is not a method of atari"),
    ("[grid]\nseed = []\n", r"\[grid\] seed must be a non-empty list"),
    ("[grid]\nseed = 3\n", r"\[grid\] seed must be a non-empty list"),
    ('[grid]\nregularizer = ["agscl"]\n[grid.agscl]\nmuu = [1.0]\n', "agscl has no such hyper"),
    ('[grid]\nregularizer = ["agscl"]\n[grid.ewc]\nlam = [1.0]\n', r"\[grid.ewc\]: 'ewc' is not"),
    ('[args]\nsteps-per-task = "many"\n', "--steps-per-task: invalid literal"),
    ("[resources]\ncpus = -1\n", r"cpus = -1 must be a number >= 0"),
    ("[resources]\nnodes = 2\n", r"\[resources\] has unknown key"),
    ('[grid]\nregularizer = ["finetune"]\n[grid.finetune]\n', None),   # fine: no hyperparameters
]


@pytest.mark.parametrize("extra,match", BAD)
def test_bad_specs_fail_before_any_trial_naming_key_and_file(tmp_path, capsys, extra, match):
    head = 'command = "atari"\nout = "runs/x"\n' if not extra.startswith("command") else \
        'out = "runs/x"\n'
    spec = write(tmp_path, head + extra)
    if match is None:
        assert len(study.load(spec).trials) == 1
        return
    with pytest.raises(study.SpecError, match=match) as e:
        study.load(spec)
    assert str(spec) in str(e.value)
    assert train.main(["study", str(spec)]) == 2           # the CLI: a clear error, exit 2
    assert str(spec) in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_missing_spec_and_invalid_toml(tmp_path):
    with pytest.raises(study.SpecError, match="no such study spec"):
        study.load(tmp_path / "nope.toml")
    with pytest.raises(study.SpecError, match="not valid TOML"):
        study.load(write(tmp_path, "command = \n"))


@pytest.mark.slow
def test_train_py_atari_does_not_import_ray():
    code = "import sys, train; train.build_parser(); print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def _pids_of(needle: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmd and "train.py" in cmd:
                out.append(int(d.name))
    return out


def _status(path: Path) -> str | None:
    try:
        return json.loads((path / "results.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def _wait(cond, timeout, what):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.mark.slow
def test_tiny_study_survives_a_killed_trial_and_a_killed_driver(tmp_path):
    """6 trials (finetune; agscl with lam 10 and 100; 2 seeds) on a local Ray. A trial's
    train.py is SIGKILLed mid-task: Tune retries it and it resumes exactly. Then the driver is
    SIGKILLed: the same command finishes the study without re-running finished trials, and the
    report has 3 groups."""
    out = tmp_path / "runs"
    spec = write(tmp_path, TINY.format(out=out, steps=128))
    cmd = [sys.executable, str(ROOT / "train.py"), "study", str(spec)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    names = [t.name for t in study.load(spec).trials]
    victim = out / names[0]
    try:
        # 1. a trial killed mid-task (a checkpoint behind it) is retried by Tune
        _wait(lambda: _status(victim) == "running" and _pids_of(str(victim)), 300,
              "the first trial to checkpoint")
        for pid in _pids_of(str(victim)):
            os.kill(pid, signal.SIGKILL)
        # 2. the driver killed once a trial is complete (and others are not)
        _wait(lambda: sum(_status(out / n) == "complete" for n in names) >= 2, 600,
              "two complete trials")
        done_before = {n: (out / n / "results.json").read_bytes() for n in names
                       if _status(out / n) == "complete"}
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    _wait(lambda: not any(_pids_of(str(out / n)) for n in names), 120, "the trials to stop")
    assert len(done_before) < len(names)
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"{len(done_before)} already complete" in again.stdout
    for n in names:
        assert _status(out / n) == "complete", n
    for n, before in done_before.items():                      # not run again
        assert (out / n / "results.json").read_bytes() == before, n
    # the killed trial resumed (more than one session) and equals an uninterrupted run
    res = json.loads((victim / "results.json").read_text())
    assert len(res["sessions"]) >= 2
    trial = study.load(spec).trials[0]
    trial.path = tmp_path / "uninterrupted"
    assert subprocess.run([sys.executable, str(ROOT / "train.py"), *trial.argv("atari")],
                          cwd=ROOT, capture_output=True, timeout=600).returncode == 0
    ref = json.loads((trial.path / "results.json").read_text())
    for k in ("reward_matrix", "reward_matrix_sampled", "eval_curve"):
        assert res[k] == ref[k], k
    rep = json.loads((out / "report" / "report.json").read_text())
    groups = {(g["method"], json.dumps(g["hyperparameters"], sort_keys=True)) for g in rep["groups"]}
    assert len(groups) == 3 and sum(len(g["runs"]) for g in rep["groups"]) == 6


@pytest.mark.parametrize("spec", sorted((ROOT / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_specs_are_valid(spec):
    s = study.load(spec)
    assert s.trials and len({t.name for t in s.trials}) == len(s.trials)


# --- the trial runner without Ray: the run's own record decides --------------------------------
def _complete_folder(path: Path) -> None:
    """A run folder whose results.json says complete (made by hand: no training)."""
    from continual import runconfig
    from continual.runfolder import write_json
    write_json(path / "config.json", runconfig.to_dict(runconfig.resolve("atari", {})))
    write_json(path / "results.json", {"status": "complete", "tasks": ["Boxing", "Gopher"],
                                       "tasks_completed": 2, "global_step": 64})
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")


def _files(path: Path) -> dict:
    return {str(p.relative_to(path)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != "trial.log"}


def _trial(path: Path) -> dict:
    return {"name": path.name, "path": str(path), "cpus": 1,
            "argv": ["atari", "--out", str(path), "--no-progress"]}


def test_a_trial_whose_run_is_complete_is_not_started_again(tmp_path):
    path = tmp_path / "finetune-seed1"
    _complete_folder(path)
    before, reports = _files(path), []
    study.run_trial(_trial(path), report=reports.append)
    assert [r["status"] for r in reports] == ["complete"]
    assert _files(path) == before
    log = (path / "trial.log").read_text()
    assert "$ train.py" not in log and "the run is complete; nothing to run" in log


HOLDER = """import sys, time, json
from continual.runfolder import RunFolder
f = RunFolder(sys.argv[1]); f.lock()
print("held", flush=True)
time.sleep(float(sys.argv[2]))          # an earlier attempt's train.py finishing its run
r = json.loads(f.results_path.read_text()); r["status"] = "complete"
f.results_path.write_text(json.dumps(r))
"""


def test_a_held_folder_is_waited_for_and_the_run_it_finished_is_not_run_again(tmp_path):
    """An earlier attempt's train.py (here a stand-in) still holds the folder and then finishes
    the run: the new attempt waits for the lock, reads the record, and starts nothing."""
    path = tmp_path / "finetune-seed1"
    _complete_folder(path)
    (path / "results.json").write_text(json.dumps({"status": "running"}))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "1.5"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    reports = []
    t0 = time.monotonic()
    study.run_trial(_trial(path), report=reports.append)
    assert time.monotonic() - t0 >= 1.0 and holder.wait(timeout=10) == 0
    assert [r["status"] for r in reports] == ["complete"]
    log = (path / "trial.log").read_text()
    assert f"waiting for pid {holder.pid} to release the run folder" in log
    assert "$ train.py" not in log


def test_a_launch_refused_by_a_held_folder_is_transient(tmp_path, monkeypatch):
    """train.py exits 75 when another process holds the folder (that process then finished
    the run): the runner waits and reads the record instead of failing the trial."""
    from continual.runfolder import IN_USE_EXIT
    path = tmp_path / "finetune-seed1"
    _complete_folder(path)
    (path / "results.json").write_text(json.dumps({"status": "interrupted"}))
    launches = []

    def refused(path_, argv, cpus, report):
        launches.append(argv)
        (path / "results.json").write_text(json.dumps({"status": "complete"}))
        return IN_USE_EXIT

    monkeypatch.setattr(study, "_train", refused)
    reports = []
    study.run_trial(_trial(path), report=reports.append)
    assert len(launches) == 1 and launches[0][-1] == "--resume"
    assert reports[-1]["status"] == "complete"
    # bad input (exit 2) still fails for good, once
    (path / "results.json").write_text(json.dumps({"status": "interrupted"}))
    monkeypatch.setattr(study, "_train", lambda *a: launches.append(a) or 2)
    (path / "trial.log").write_text("error: --lam: bad\n")
    reports.clear()
    study.run_trial(_trial(path), report=reports.append)
    assert len(launches) == 2 and reports[-1]["status"] == "failed"
    assert reports[-1]["error"] == "error: --lam: bad"


PARENT = """import subprocess, sys, time
import study
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         preexec_fn=study._die_with_parent())
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_trial_process_gets_sigterm_when_its_worker_dies(tmp_path):
    """The guard a trial's train.py is started with: its parent (the Ray worker) is SIGKILLed,
    and the kernel sends the child SIGTERM (train.py then saves and stops)."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    child = int(parent.stdout.readline())
    try:
        parent.kill()
        parent.wait()

        def gone():
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                return True
            return state in ("Z", "X")
        _wait(gone, 10, "the child to die with its parent")
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
