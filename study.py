"""A study: many ordinary runs (methods x seeds x hyperparameters) on Ray Tune.

    python train.py study studies/omniglot.toml                 # an embedded Ray on this machine
    python train.py study SPEC.toml --address auto              # an existing Ray cluster

The spec (TOML):

    command = "atari"                 # or "minatar", "vision"
    out = "runs/study-name"           # one folder for the whole study
    [args]                            # any flag of that command, without the leading dashes
    games = "StarGunner,DemonAttack,NameThisGame"
    [grid]                            # the cross product of these lists is the set of trials
    regularizer = ["finetune", "ewc", "agscl"]
    seed = [1, 2, 3]
    [grid.agscl]                      # per-method lists of hyperparameters (that method only)
    lam = [10.0, 100.0]
    [[variants]]                      # optional: each table is one more set of flags, crossed
    prox = "epoch"                    # with the grid (an ablation: one switch at a time); a
    [[variants]]                      # variant's flags name its trials
    hard-freeze = false
    [resources]                       # per trial
    cpus = 1
    gpus = 0                          # fractions share a GPU, e.g. 0.25

Each trial is an ordinary run folder under ``out``, named for its method, hyperparameters and
seed, made by ``train.py <command>`` itself (a subprocess of the Ray worker), so ``report``,
``--resume`` and TensorBoard work on it as on any run. A crashed trial, or one whose worker or
node died, is retried by Tune and continues from its own last checkpoint (the run's exact
resume); the run's own record decides, so a run that is complete is never started again;
re-running the study skips finished trials and resumes the others. At the end the
study reports its trials, grouped by method and hyperparameters, into ``out/report``.

Everything is checked before any trial starts: a bad spec fails naming the key and the file.
Ray is imported only to execute a study.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
KEYS = {"command", "out", "args", "grid", "variants", "resources"}
# flags a trial's command line is made of by the study itself
OWN_FLAGS = {"out", "resume", "config", "no-progress"}


class SpecError(ValueError):
    """A bad study spec; the message names the file and the key."""


@dataclass
class Trial:
    name: str                     # the run folder's name under the study's out
    flags: dict                   # flag name -> value, as train.py takes them
    path: Path = field(default=None)

    def argv(self, command: str) -> list[str]:
        out = [command]
        for k, v in self.flags.items():
            out += [f"--{k}", _text(v)]
        return out + ["--out", str(self.path), "--no-progress"]


@dataclass
class Study:
    spec_path: Path
    command: str
    out: Path
    trials: list[Trial]
    cpus: float = 1.0
    gpus: float = 0.0


def _text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(_text(x) for x in v)
    return str(v)


def _slug(v) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", _text(v))


def load(spec_path: str | Path) -> Study:
    """Parse and check a spec: every trial's config is resolved (as train.py would) here."""
    from continual import runconfig
    from continual.flags import FLAGS, flag_of, resolve
    import regularizers
    path = Path(spec_path)
    where = str(path)
    if not path.is_file():
        raise SpecError(f"{where}: no such study spec")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{where} is not valid TOML: {e}") from None
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; a spec has "
                        f"{', '.join(sorted(KEYS))}")
    command = spec.get("command")
    if command not in runconfig.RUNS:
        raise SpecError(f"{where}: command = {command!r} must be one of "
                        f"{', '.join(runconfig.RUNS)}")
    if not isinstance(spec.get("out"), str) or not spec["out"]:
        raise SpecError(f"{where}: out must name the study's folder, e.g. out = \"runs/study\"")
    out = Path(spec["out"])
    if not out.is_absolute():
        out = Path.cwd() / out
    flag_names = {fl.name for fl in FLAGS[command] if fl.path} | \
        {a for fl in FLAGS[command] for a in fl.aliases}

    def check_flag(key: str, section: str) -> str:
        name = key.replace("_", "-")
        if name in OWN_FLAGS or name not in flag_names:
            why = "is set by the study" if name in OWN_FLAGS else \
                f"is not a flag of train.py {command}"
            raise SpecError(f"{where}: [{section}] {key} {why} (see `train.py {command} --help`)")
        return name

    args = spec.get("args", {})
    if not isinstance(args, dict):
        raise SpecError(f"{where}: [args] must be a table of flag = value")
    base = {check_flag(k, "args"): v for k, v in args.items()}
    grid = spec.get("grid", {})
    if not isinstance(grid, dict):
        raise SpecError(f"{where}: [grid] must be a table of flag = [values]")
    axes, per_method = {}, {}
    for k, v in grid.items():
        if isinstance(v, dict):
            per_method[k] = v
            continue
        if not isinstance(v, list) or not v:
            raise SpecError(f"{where}: [grid] {k} must be a non-empty list of values")
        axes[check_flag(k, "grid")] = v
    methods = axes.get("regularizer", [base.get("regularizer", "agscl")])
    for m in methods:           # a method, or a stack such as "ewc+redo"
        try:
            runconfig.check_method(command, m)
        except ValueError as e:
            raise SpecError(f"{where}: regularizer {m!r}: {e}") from None
    for m, table in per_method.items():
        if m not in methods:
            raise SpecError(f"{where}: [grid.{m}]: {m!r} is not among the study's methods "
                            f"({', '.join(methods)})")
        accepted = regularizers.hyperparameters(m)
        for k, v in table.items():
            if k not in accepted:
                raise SpecError(f"{where}: [grid.{m}] {k}: {m} has no such hyperparameter; "
                                f"it has {', '.join(accepted) or 'none'}")
            if not isinstance(v, list) or not v:
                raise SpecError(f"{where}: [grid.{m}] {k} must be a non-empty list of values")
    variants = spec.get("variants", [{}])
    if not isinstance(variants, list) or not variants or \
            not all(isinstance(v, dict) for v in variants):
        raise SpecError(f"{where}: variants must be a list of tables ([[variants]]) of "
                        f"flag = value")
    variants = [{check_flag(k, "variants"): v for k, v in var.items()} for var in variants]
    res = spec.get("resources", {})
    bad = sorted(set(res) - {"cpus", "gpus"}) if isinstance(res, dict) else ["(not a table)"]
    if bad:
        raise SpecError(f"{where}: [resources] has unknown key(s) {', '.join(bad)}; it has cpus, "
                        f"gpus")
    cpus, gpus = res.get("cpus", 1), res.get("gpus", 0)
    for k, v, lo in (("cpus", cpus, 0), ("gpus", gpus, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo:
            raise SpecError(f"{where}: [resources] {k} = {v!r} must be a number >= {lo}")

    trials, names = [], set()
    other = [k for k in axes if k not in ("regularizer", "seed")]
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        method = point.get("regularizer", methods[0])
        hp_axes = {flag_of(command, ("regularizer_hparams", k)).removeprefix("--"): v
                   for k, v in per_method.get(method, {}).items()}
        for hp_combo, var in itertools.product(itertools.product(*hp_axes.values()), variants):
            hp = dict(zip(hp_axes, hp_combo))
            flags = {**base, **point, "regularizer": method, **hp, **var}
            label = [method] + [f"{k}={_slug(point[k])}" for k in other] + \
                [f"{k.removeprefix('reg-')}={_slug(v)}" for k, v in {**hp, **var}.items()]
            if "seed" in point:
                label.append(f"seed{_slug(point['seed'])}")
            name = "-".join(label)
            if name in names:
                raise SpecError(f"{where}: two trials would share the folder {name}")
            names.add(name)
            try:
                resolve(command, flags)
            except ValueError as e:
                raise SpecError(f"{where}: trial {name}: {e}") from None
            trials.append(Trial(name, flags, out / name))
    return Study(path, command, out, trials, float(cpus), float(gpus))


# --- execution on Ray Tune --------------------------------------------------------------------
def _progress(trial_dir: Path) -> dict:
    """A trial's state as its run folder says (results.json is rewritten at every checkpoint)."""
    f = trial_dir / "results.json"
    try:
        r = json.loads(f.read_text())
    except (OSError, ValueError):
        return {"status": "starting", "task": "", "step": 0, "sps": None, "score": None}
    tasks = r.get("tasks", [])
    done = r.get("tasks_completed", 0)
    last = (r.get("eval_curve") or [{}])[-1].get("score")
    return {"status": r.get("status"), "task": f"{min(done + 1, len(tasks))}/{len(tasks)}",
            "step": r.get("global_step", 0), "sps": r.get("sps"),
            "score": None if not last else sum(last) / len(last)}


# How long a trial's runner waits for its run folder to be released by a train.py of an
# earlier attempt (one whose Ray worker or node was lost: it got SIGTERM and saves after its
# current unit) before it gives up this attempt (Tune then retries the trial).
LOCK_WAIT_S = 1800.0
IN_USE_ATTEMPTS = 5                 # launches refused by a held folder before giving up
PR_SET_PDEATHSIG = 1                # <linux/prctl.h>


def _die_with_parent():
    """A preexec_fn for a trial's train.py: the kernel sends it SIGTERM when the Ray worker
    that started it dies (Linux's PR_SET_PDEATHSIG; once for each of the worker's threads,
    which train.py takes as one request), so a lost worker's run saves and stops instead of
    training on beside the retry. None where the platform has no prctl (the retry then waits
    for the run folder's lock)."""
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl    # resolved here, before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:          # the worker died before the guard was set
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def _note(path: Path, text: str) -> None:
    """A line of the runner's own in trial.log (train.py's output goes there too)."""
    with open(path / "trial.log", "a") as log:
        log.write(f"study: {text}\n")


RELEASE_POLL_S = 0.2       # how often a held run folder is looked at (a lock test: cheap)


def _wait_released(folder, name: str, timeout: float) -> None:
    """Wait until no process holds the trial's run folder, e.g. the train.py of an attempt
    whose worker was lost and that is saving; RuntimeError (Tune retries) after ``timeout``."""
    if not folder.in_use():
        return
    _note(folder.path, f"waiting for pid {folder.holder()} to release the run folder")
    deadline = time.monotonic() + timeout
    while folder.in_use():
        if time.monotonic() > deadline:
            raise RuntimeError(f"trial {name}: {folder.path} is still held by pid "
                               f"{folder.holder()} after {timeout:.0f} s; stop that process "
                               f"(kill -INT saves a checkpoint), then run the study again")
        time.sleep(RELEASE_POLL_S)


def _command_line(folder, argv: list[str]) -> list[str]:
    """train.py's arguments for the run's next attempt: resume from its last checkpoint, or,
    where it stopped before its first one, start it anew (its first files are removed under
    the folder's lock; run.lock itself stays, the one file every attempt locks)."""
    if folder.last_checkpoint.exists():
        return [*argv, "--resume"]
    if folder.config_path.exists():
        folder.lock()
        try:
            for f in ("config.json", "results.json"):
                (folder.path / f).unlink(missing_ok=True)
            for d in ("tb", "plots"):
                shutil.rmtree(folder.path / d, ignore_errors=True)
        finally:
            folder.close()
    return list(argv)


def _train(path: Path, argv: list[str], cpus: float, report) -> int:
    """Run train.py on the trial's folder, reporting its progress every 2 s; its exit code.
    train.py gets a session and process group of its own: Ray SIGKILLs a dead worker's process
    group (its per-worker process group cleanup), which would stop the run without saving; the
    worker's death sends it SIGTERM instead (``_die_with_parent``), so it saves and stops."""
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, int(cpus))))
    with open(path / "trial.log", "a") as log:
        log.write(f"\n$ train.py {' '.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent())
        try:
            while proc.poll() is None:
                time.sleep(2)
                report(_progress(path))
        except BaseException:
            proc.send_signal(signal.SIGTERM)      # stopped by Tune: the run saves and stops
            proc.wait(timeout=300)
            raise
    return proc.returncode


def run_trial(config: dict, report=None) -> None:
    """The Tune trainable (``report``: Tune's): bring one trial's run to its end. The run's own
    record decides, before each launch and after it: a complete run is complete, whatever
    happened to the workers that ran it, and is never started again. A folder held by another
    process (an earlier attempt's train.py still saving) is waited for. A trial that fails for
    good (bad input, non-finite loss: exit 2 or 3) reports its error and ends; a crash or a
    kill raises, so that Tune retries it from its last checkpoint."""
    if report is None:
        from ray import tune
        report = tune.report
    from continual.runfolder import IN_USE_EXIT, RunFolder, RunInUseError
    path, name = Path(config["path"]), config["name"]
    path.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(path)
    for _ in range(IN_USE_ATTEMPTS):
        _wait_released(folder, name, LOCK_WAIT_S)
        if folder.is_complete():
            _note(path, "the run is complete; nothing to run")
            report(_progress(path))
            return
        try:
            argv = _command_line(folder, config["argv"])
        except RunInUseError:                     # taken again meanwhile: wait once more
            continue
        code = _train(path, argv, config["cpus"], report)
        p = _progress(path)
        if folder.is_complete():
            report(p)
            return
        if code == IN_USE_EXIT:                   # transient: another process holds the run
            continue
        if code in (2, 3):                        # fails the same way on every retry
            tail = (path / "trial.log").read_text().strip().splitlines()[-1:]
            report({**p, "status": "failed", "error": tail[0] if tail else ""})
            return
        raise RuntimeError(f"trial {name}: train.py exited with {code} (status {p['status']}); "
                           f"see {path / 'trial.log'}")
    raise RuntimeError(f"trial {name}: {path} was held by another process at each of "
                       f"{IN_USE_ATTEMPTS} launches; see {path / 'trial.log'}")


def _trainable(config: dict) -> None:
    run_trial(config["trial"])


def _table(study: Study, latest: dict) -> str:
    rows = [f"{'trial':<44} {'state':<11} {'task':>5} {'step':>10} {'SPS':>7} {'score':>9}"]
    for t in study.trials:
        p = latest.get(t.name) or _progress(t.path)
        sps = f"{p['sps']:.0f}" if p.get("sps") else ""
        score = f"{p['score']:.4g}" if p.get("score") is not None else ""
        rows.append(f"{t.name[:44]:<44} {str(p.get('status'))[:11]:<11} {p.get('task', ''):>5} "
                    f"{p.get('step', 0):>10} {sps:>7} {score:>9}")
    return "\n".join(rows)


# Ray's single-machine mode. Its servers (GCS, raylet, every worker, the runtime-env agent)
# listen on loopback alone when the node's IP is 127.0.0.1, but ray.init replaces a loopback
# node IP by the machine's outward one (whose node then listens on all interfaces) unless this
# variable is "0" while Ray starts (Ray 2.60; the processes it starts inherit it).
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _init_local_ray(runtime_env: dict):
    """An embedded one-node Ray whose every port listens on 127.0.0.1 only (no dashboard);
    its clients need the cluster's token too (Ray's token authentication, its default)."""
    before = os.environ.get(SINGLE_MACHINE)
    os.environ[SINGLE_MACHINE] = "0"
    import ray
    from ray._private import ray_constants
    cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False    # read at import: this process may have had Ray
    try:
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1",
                 runtime_env=runtime_env, log_to_driver=False)
    finally:        # only the start needs them: the node's address is fixed from here on
        ray_constants.ENABLE_RAY_CLUSTER = cluster
        if before is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = before
    ip = ray.util.get_node_ip_address()
    if ip != "127.0.0.1":
        print(f"warning: the local Ray's node has the address {ip}, not 127.0.0.1, so its ports "
              f"listen on every interface (this Ray ignores {SINGLE_MACHINE}=0); only its "
              f"token authentication guards them")
    return ray


def execute(study: Study, address: str | None = None, max_failures: int = 3,
            table_every: float = 30.0) -> dict:
    """Run the study's unfinished trials on Ray Tune; returns {trial name: final progress}."""
    todo = [t for t in study.trials if _progress(t.path)["status"] != "complete"]
    print(f"study {study.spec_path}: {len(study.trials)} trials, {len(study.trials) - len(todo)} "
          f"already complete, {len(todo)} to run in {study.out}")
    latest: dict = {}
    errors: dict[str, str] = {}            # trial name -> why it failed for good
    if todo:
        # the workers import this file's modules (the project must lie at the same path on
        # every node of a cluster, e.g. a shared filesystem). A worker on its way out (e.g.
        # its node's raylet died) leaves its train.py to the death signal, SIGTERM, on which
        # the run saves, instead of Ray's SIGKILL of a worker's children (Ray's own setting).
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "RAY_kill_child_processes_on_worker_exit": "false"}}
        if address:
            import ray
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray = _init_local_ray(env)
        from ray import tune

        class Table(tune.Callback):
            last = 0.0

            def on_trial_result(self, iteration, trials, trial, result, **info):
                latest[trial.config["trial"]["name"]] = result
                if time.time() - self.last > table_every:
                    self.last = time.time()
                    print(_table(study, latest), flush=True)

        trainable = tune.with_resources(_trainable, {"cpu": study.cpus, "gpu": study.gpus})
        space = {"trial": tune.grid_search([
            {"name": t.name, "path": str(t.path), "argv": t.argv(study.command),
             "cpus": study.cpus} for t in todo])}
        tuner = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda tr: tr.config["trial"]["name"]),
            run_config=tune.RunConfig(
                name="ray", storage_path=str(study.out / "_ray"), verbose=0,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                callbacks=[Table()]))
        try:
            for r in tuner.fit():            # a trial still crashing after its retries
                if r.error is not None:
                    lines = str(r.error).strip().splitlines()
                    errors[r.config["trial"]["name"]] = lines[-1] if lines else "error"
        finally:
            ray.shutdown()
        for name, r in latest.items():
            if r.get("status") == "failed":
                errors.setdefault(name, r.get("error") or "failed")
    final = {t.name: _progress(t.path) for t in study.trials}
    for name, err in errors.items():
        if final[name]["status"] != "complete":
            final[name] = {**final[name], "status": "failed", "error": err}
    return final


def main(spec: str, address: str | None = None, max_failures: int = 3) -> int:
    """Load, run and report a study; 0 when every trial completed."""
    study = load(spec)
    study.out.mkdir(parents=True, exist_ok=True)
    (study.out / "spec.toml").write_text(Path(spec).read_text())
    t0 = time.time()
    final = execute(study, address=address, max_failures=max_failures)
    complete = [t for t in study.trials if final[t.name]["status"] == "complete"]
    failed = [t for t in study.trials if final[t.name]["status"] != "complete"
              and (final[t.name].get("error") or str(final[t.name]["status"]).startswith("fail"))]
    unfinished = len(study.trials) - len(complete) - len(failed)
    print(_table(study, final))
    print(f"\n{len(complete)} of {len(study.trials)} trials complete, {len(failed)} failed, "
          f"{unfinished} not finished (the same command resumes them), {time.time() - t0:.0f} s")
    for t in failed:
        err = final[t.name].get("error") or f"status {final[t.name]['status']}"
        print(f"  failed: {t.name}: {err} (log: {t.path / 'trial.log'})")
    if complete:
        from continual.report import report
        try:
            rep = report([t.path for t in complete], str(study.out / "report"))
            print(rep["table"])
            print(f"\nreport.json and plots in {study.out / 'report'}")
        except (ValueError, RuntimeError) as e:
            print(f"no report: {e}")
    return 0 if len(complete) == len(study.trials) else 1
