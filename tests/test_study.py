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
    from continual import flags, runconfig
    argv = t.argv("atari")
    cfg = flags.resolve("atari", train.given_flags("atari", train.build_parser().parse_args(argv)))
    assert (cfg.regularizer, cfg.regularizer_hparams["lam"], cfg.ppo.seed, cfg.games) == \
        ("agscl", 100.0, 1, ["Boxing", "Gopher"])
    assert (s.cpus, s.gpus) == (1.0, 0.0)


BAD = [
    ("colour = 1\n", "unknown key.*colour"),
    ('command = "chess"\n', "command = 'chess'"),
    ("[args]\nwarp-speed = 3\n", r"\[args\] warp-speed is not a flag of train.py atari"),
    ("[args]\nout = 'x'\n", r"\[args\] out is set by the study"),
    ('[grid]\nregularizer = ["finetune", "hat"]\n', "'hat' needs a network of its own"),
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


def _wait(cond, timeout, what, every=0.3):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = _parent(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    tree, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def _address(hex_ip: str):
    """An address of /proc/net/tcp{,6} (32-bit words in host byte order, little-endian)."""
    import ipaddress
    raw = bytes.fromhex(hex_ip)
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def listening(pids: set[int]) -> list[tuple[int, str, str, int]]:
    """The TCP sockets the processes ``pids`` listen on: (pid, name, address, port)."""
    owner = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    owner[link[8:-1]] = pid
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in owner:                 # 0A: LISTEN
                ip, port = f[1].split(":")
                pid = owner[f[9]]
                out.append((pid, _comm(pid), str(_address(ip)), int(port, 16)))
    return out


def is_loopback(address: str) -> bool:
    import ipaddress
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)            # [::ffff:127.0.0.1]
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def test_listening_sockets_and_loopback_are_read_right():
    import socket
    with socket.socket() as a, socket.socket(socket.AF_INET6) as b:
        a.bind(("127.0.0.1", 0))
        a.listen()
        b.bind(("::", 0))
        b.listen()
        mine = {(ip, port) for _, _, ip, port in listening({os.getpid()})}
        assert ("127.0.0.1", a.getsockname()[1]) in mine and ("::", b.getsockname()[1]) in mine
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not any(map(is_loopback, ("0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2")))


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
    from continual import flags, runconfig
    from continual.runfolder import write_json
    write_json(path / "config.json", runconfig.to_dict(flags.resolve("atari", {})))
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
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "0.6"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    reports = []
    t0 = time.monotonic()
    study.run_trial(_trial(path), report=reports.append)
    assert time.monotonic() - t0 >= 0.3 and holder.wait(timeout=10) == 0
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


def _spec(tmp_path, out, steps, seeds=(1,)):
    """The tiny study with fine-tuning only: one trial per seed."""
    text = TINY.format(out=out, steps=steps).replace(
        'regularizer = ["finetune", "agscl"]\nseed = [1, 2]\n[grid.agscl]\nlam = [10.0, 100.0]',
        f'regularizer = ["finetune"]\nseed = {list(seeds)}')
    assert "agscl" not in text
    return write(tmp_path, text)


def _study(spec, log, env=None):
    env = {k: v for k, v in (env or os.environ).items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), "study", str(spec)],
                            cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _end(driver, timeout):
    try:
        return driver.wait(timeout=timeout)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()


@pytest.mark.slow
def test_a_local_study_listens_on_loopback_only_and_refuses_a_client_without_the_token(
        tmp_path):
    """While a trial runs, every TCP port of the study's Ray processes (GCS, raylet, workers,
    the runtime-env agent, the driver) listens on loopback alone; the GCS refuses a call
    without the cluster's token (InvalidAuthToken) and answers one with it."""
    import secrets
    out, log = tmp_path / "runs", tmp_path / "study.log"
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    driver = _study(_spec(tmp_path, out, steps=256), log,
                    dict(os.environ, RAY_AUTH_TOKEN_PATH=str(token)))
    try:
        _wait(lambda: _pids_of(str(out / "finetune-seed1")), 300, "the trial to start")
        socks = listening(_tree(driver.pid))
        names = {name for _, name, _, _ in socks}
        assert {"gcs_server", "raylet", "python"} <= names, socks
        assert any(n.startswith("ray::") for n in names), socks        # the workers
        assert [s for s in socks if not is_loopback(s[2])] == [], log.read_text()[-2000:]
        import grpc
        from ray.core.generated import gcs_service_pb2 as pb, gcs_service_pb2_grpc as pbg
        gcs = [(ip, port) for _, name, ip, port in socks if name == "gcs_server"]
        assert gcs
        ip, port = gcs[0]
        import ipaddress
        host = str(getattr(ipaddress.ip_address(ip), "ipv4_mapped", None) or ip)
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            stub = pbg.NodeInfoGcsServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetClusterId(pb.GetClusterIdRequest(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "InvalidAuthToken" in refused.value.details()
            answer = stub.GetClusterId(pb.GetClusterIdRequest(), timeout=10, metadata=[
                ("authorization", f"Bearer {token.read_text()}")])
            assert answer.cluster_id
    finally:
        rc = _end(driver, 600)
    assert rc == 0, log.read_text()[-3000:]


def _step(path: Path) -> int | None:
    try:
        r = json.loads((path / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return r["global_step"] if r.get("status") == "running" else None


@pytest.mark.slow
def test_a_trial_that_finishes_after_its_ray_worker_is_lost_stays_complete(tmp_path):
    """Two trials at once. The Ray worker running the first is SIGKILLed during its run's last
    unit (train.py itself is not killed): train.py gets SIGTERM, finishes that unit and with it
    the run. Tune retries the trial; the retry waits for the folder, reads "complete" and
    starts nothing. The study ends with both trials complete, each trained in one session, and
    the first's results.json as its own train.py wrote it."""
    out, log = tmp_path / "runs", tmp_path / "study.log"
    names = ["finetune-seed1", "finetune-seed2"]
    driver = _study(_spec(tmp_path, out, steps=128, seeds=(1, 2)), log)
    victim = out / names[0]
    try:
        # 2 games x 4 units of 32 steps, results.json after each: 224 = the last unit is on
        _wait(lambda: _step(victim) == 224 and _pids_of(str(victim)), 300,
              "the first trial's last unit", every=0.05)
        trainer = _pids_of(str(victim))[0]
        worker = _parent(trainer)
        assert _comm(worker).startswith("ray::"), _comm(worker)
        os.kill(worker, signal.SIGKILL)
        _wait(lambda: _status(victim) == "complete", 120, "the orphaned run to finish")
        written = (victim / "results.json").read_bytes()
    finally:
        rc = _end(driver, 600)
    assert rc == 0, log.read_text()[-3000:]
    for n in names:
        res = json.loads((out / n / "results.json").read_text())
        assert res["status"] == "complete" and len(res["sessions"]) == 1, n
    assert (victim / "results.json").read_bytes() == written
    trial_log = (victim / "trial.log").read_text()
    assert "SIGTERM: finishing the current unit" in trial_log       # stopped with its worker
    assert trial_log.count("$ train.py") == 1                       # never launched again
    assert "the run is complete; nothing to run" in trial_log       # the retry read the record
    assert "2 of 2 trials complete, 0 failed" in log.read_text()


def test_a_study_grids_over_stacks_and_their_prefixed_hyperparameters(tmp_path):
    spec = write(tmp_path, """command = "minatar"
out = "runs/x"
[args]
preset = "minatar_tiny"
[grid]
seed = [1]
regularizer = ["ewc", "ewc+redo"]
[grid."ewc+redo"]
redo_tau = [0.025, 0.1]
""")
    trials = study.load(spec).trials
    assert [t.name for t in trials] == ["ewc-seed1", "ewc+redo-redo-tau=0.025-seed1",
                                        "ewc+redo-redo-tau=0.1-seed1"]
    assert trials[1].flags["redo-tau"] == 0.025 and trials[1].flags["regularizer"] == "ewc+redo"
    bad = write(tmp_path, "command = \"minatar\"\nout = \"runs/x\"\n[grid]\n"
                          "regularizer = [\"ewc+si\"]\n", "bad.toml")
    with pytest.raises(study.SpecError, match="stability methods"):
        study.load(bad)


def test_variants_cross_the_grid_one_set_of_flags_each(tmp_path):
    spec = write(tmp_path, """command = "minatar"
out = "runs/x"
[args]
preset = "minatar_tiny"
regularizer = "agscl"
mu = 1.0
[grid]
seed = [1, 2]
[[variants]]
[[variants]]
prox = "epoch"
[[variants]]
hard-freeze = false
reinit-from = "unimportant"
""")
    trials = study.load(spec).trials
    assert [t.name for t in trials] == [
        "agscl-seed1", "agscl-prox=epoch-seed1", "agscl-hard-freeze=false-reinit-from=unimportant-seed1",
        "agscl-seed2", "agscl-prox=epoch-seed2", "agscl-hard-freeze=false-reinit-from=unimportant-seed2"]
    assert trials[1].flags["prox"] == "epoch" and trials[1].flags["mu"] == 1.0
    assert "prox" not in trials[2].flags and trials[2].flags["hard-freeze"] is False
    bad = write(tmp_path, "command = \"minatar\"\nout = \"x\"\n[[variants]]\nnope = 1\n", "b.toml")
    with pytest.raises(study.SpecError, match=r"\[variants\] nope"):
        study.load(bad)
