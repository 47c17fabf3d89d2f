"""A study on a 2-node Ray cluster of this machine whose worker node is lost mid-study.

    python bench/two_node_study.py [--out DIR] [--steps 128] [--keep]

Two `ray start` with token authentication (a token of its own, in a file), 1 CPU each: the
head on 127.0.0.2, the worker node on 127.0.0.3 (loopback addresses: no traffic leaves the
machine). The tiny 6-trial study of tests/test_study.py runs on it with `--address`. Once a
trial that runs on the worker node has saved a checkpoint, that node's raylet is SIGKILLed: the
node is lost, its Ray workers exit, and their train.py get SIGTERM, save and stop. Tune retries
those trials on the head, where each waits for its run folder and resumes.

It prints which trials ran on the lost node, then each trial's status, its training sessions
(a resume starts one at the step of its checkpoint) and its launches of train.py, the study's
exit code and wall time. Exit 0 when every trial is complete, at least one resumed from its
checkpoint, and no train.py outlived the study.

Why not 127.0.0.1: outside its single-machine mode, Ray (2.60) replaces a node address of
127.0.0.1 by the machine's outward address, and in that mode no second node can join.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RAY = Path(sys.executable).with_name("ray")
HEAD, WORKER = "127.0.0.2", "127.0.0.3"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, command line) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(d.name)] = (int(stat[1]), stat[19], cmd)
    return out


def below(roots: set[int], procs: dict) -> set[int]:
    """``roots`` and every process under them."""
    tree, grew = set(roots), True
    while grew:
        more = {p for p, (pp, _, _) in procs.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def trainer_of(trial: Path, procs: dict) -> int | None:
    """The train.py process of a trial, if one runs."""
    for pid, (_, _, cmd) in procs.items():
        if "train.py" in cmd and f"--out {trial} " in cmd + " ":
            return pid
    return None


def start(cmd: list[str], env: dict) -> None:
    """`ray start ...`, or SystemExit with its output."""
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")


def status(trial: Path) -> dict:
    try:
        return json.loads((trial / "results.json").read_text())
    except (OSError, ValueError):
        return {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="folder of the study (default: a new temp one)")
    p.add_argument("--steps", type=int, default=128, help="env steps per game of each trial")
    p.add_argument("--keep", action="store_true", help="keep the Ray temp folder (its logs)")
    args = p.parse_args(argv)
    base = Path(args.out or tempfile.mkdtemp(prefix="two-node-"))
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray2n-", dir="/tmp"))   # short: socket paths
    token = base / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    from tests.test_study import TINY
    import study
    spec = base / "spec.toml"
    spec.write_text(TINY.format(out=base / "runs", steps=args.steps))
    trials = [t.path for t in study.load(spec).trials]
    port = free_port(HEAD)
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={ray_tmp}"]
    ours: dict[int, str] = {}            # pid -> start time: what teardown may stop
    t0 = time.time()
    rc, lost, at_kill, driver = None, [], {}, None
    try:
        start([str(RAY), "start", "--head", f"--node-ip-address={HEAD}", f"--port={port}",
                        "--include-dashboard=false",
                        f"--ray-client-server-port={free_port(HEAD)}", *common],
              env)
        start([str(RAY), "start", f"--address={HEAD}:{port}", f"--node-ip-address={WORKER}",
               *common], env)
        procs = processes()
        roots = {pid for pid, (_, _, cmd) in procs.items()
                 if str(ray_tmp) in cmd or f"{HEAD}:{port}" in cmd}
        ours.update({pid: procs[pid][1] for pid in below(roots, procs)})
        raylet = [pid for pid, (_, _, cmd) in procs.items() if pid in ours and
                  "raylet" in cmd.split(" ")[0] and f"--node_ip_address={WORKER}" in cmd]
        assert len(raylet) == 1, f"the worker node's raylet: {raylet}"
        raylet = raylet[0]
        print(f"cluster: head {HEAD}:{port}, worker node {WORKER} (raylet pid {raylet}); "
              f"token auth; Ray temp {ray_tmp}", flush=True)
        log = open(base / "study.log", "w")
        driver = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "study", str(spec),
                                   "--address", f"{HEAD}:{port}"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        # the worker node is lost once a trial there has saved a checkpoint
        while driver.poll() is None and not lost:
            procs = processes()
            on_worker = below({raylet}, procs)
            ours.update({pid: procs[pid][1] for pid in on_worker})
            running = {t: trainer_of(t, procs) for t in trials}
            there = [t for t, pid in running.items() if pid in on_worker]
            if any(status(t).get("status") == "running" and
                   (t / "checkpoints" / "last.pt").exists() for t in there):
                lost = there
                at_kill = {t.name: status(t).get("global_step") for t in there}
                os.kill(raylet, signal.SIGKILL)
                print(f"{time.time() - t0:.0f} s: SIGKILL to the worker node's raylet; its "
                      f"trials: " + ", ".join(f"{n} (step {s})" for n, s in at_kill.items()),
                      flush=True)
                break
            time.sleep(0.2)
        rc = driver.wait(timeout=1800)
        wall = time.time() - t0
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        for sig in (signal.SIGTERM, signal.SIGKILL):      # this cluster's processes only
            procs = processes()
            alive = {pid for pid, start in ours.items() if procs.get(pid, (0, None))[1] == start}
            for pid in below(alive, procs):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3)
        if not args.keep:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    left = [t.name for t in trials if trainer_of(t, processes())]
    print(f"\nstudy exit code {rc}, {wall:.0f} s; lost node's trials: "
          f"{', '.join(t.name for t in lost) or 'none'}")
    resumed, bad = [], []
    for t in trials:
        r = status(t)
        log = (t / "trial.log").read_text() if (t / "trial.log").exists() else ""
        launches = log.count("$ train.py")
        sessions = [s.get("from_step") for s in r.get("sessions", [])]
        if any(s for s in sessions):
            resumed.append(t.name)
        if r.get("status") != "complete":
            bad.append(t.name)
        print(f"  {t.name:<24} {r.get('status')!s:<9} sessions from steps {sessions}, "
              f"{launches} launch(es){' (on the lost node)' if t in lost else ''}")
    print(f"complete: {len(trials) - len(bad)} of {len(trials)}; resumed from a checkpoint: "
          f"{', '.join(resumed) or 'none'}; train.py still running: {', '.join(left) or 'none'}")
    print(f"study log: {base / 'study.log'}")
    return 0 if rc == 0 and not bad and resumed and lost and not left else 1


if __name__ == "__main__":
    sys.exit(main())
