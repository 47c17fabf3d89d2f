"""The run folder: config.json, results.json, checkpoints/, tb/ (TensorBoard), plots/.

Every write is atomic (temporary file + rename), so an interruption never leaves a half file
and nothing written earlier is lost. While a run is open its process holds an exclusive lock on
``run.lock`` in the folder, so a second process (e.g. a resume started while the first run is
still going in the background) is refused instead of interleaving checkpoints.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

try:                        # POSIX; elsewhere runs are simply not locked
    import fcntl
except ImportError:         # pragma: no cover
    fcntl = None

# The format of config.json and of checkpoints. Another format is refused, naming the last
# commit that can resume it (a run is continued by the code that started it).
CHECKPOINT_FORMAT = 2
LAST_COMMIT_OF_FORMAT = {1: "5d4c92f"}     # format 1: no "format_version" key


_UMASK = os.umask(0)
os.umask(_UMASK)


class RunError(RuntimeError):
    """A problem with the run folder, with a message that names the fix."""


class RunInUseError(RunError):
    """The run folder is held by another live process: a transient refusal (``train.py`` exits
    with ``IN_USE_EXIT``), which the same command gets past once that process has stopped."""


IN_USE_EXIT = 75        # sysexits.h EX_TEMPFAIL: a temporary failure, try again later


def refuse_format(what: str, version) -> None:
    """Raise RunError for a config or checkpoint of another format than ``CHECKPOINT_FORMAT``."""
    version = 1 if version is None else version
    commit = LAST_COMMIT_OF_FORMAT.get(version)
    where = (f"the last commit that can resume it is {commit} (git checkout {commit}, then "
             f"--resume there)" if commit else "no commit of this repository knows that format")
    raise RunError(f"{what} has format {version}; this code reads format {CHECKPOINT_FORMAT}: "
                   f"{where}, or start a new run in another --out")


def _disk_full(e: BaseException) -> bool:
    """A write that failed for lack of space: ENOSPC (or a quota), or torch.save's zip writer
    after a short write ("unexpected pos")."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(e, RuntimeError) and "unexpected pos" in str(e)


# what a full disk's error tells the user to do after freeing space, for a run's own files
RESUME_FIX = ("continue the run with --resume (the earlier checkpoints and results are "
              "intact)")


def _atomic_write_bytes(path: Path, write, fix: str = RESUME_FIX) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)      # mkstemp's 0600 -> what open() would have made
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if _disk_full(e):
            raise RunError(f"no space left on the device to write {path}: free space, then "
                           f"{fix}") from None
        raise


def write_json(path: Path, obj, fix: str = RESUME_FIX) -> None:
    """``obj`` as JSON in ``path``, whole or not at all; a full disk is a RunError that names
    the file and ``fix``, what to do once space is freed."""
    data = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable).encode()
    _atomic_write_bytes(Path(path), lambda f: f.write(data), fix)


def _jsonable(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def check_out(path: Path) -> None:
    """A run folder path must be a folder or not exist yet."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path} is a file, not a folder: pass a folder for the run "
                       f"(nothing was written)")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise RunError(f"--out {path}: {parent} is a file, so the run folder cannot be "
                           f"made there; pass another --out")


def check_format(what: str, obj):
    """``obj`` (a loaded config or checkpoint) if it is of this format, else ``refuse_format``."""
    version = obj.get("format_version") if isinstance(obj, dict) else None
    if version != CHECKPOINT_FORMAT:
        refuse_format(what, version)
    return obj


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.ckpt_dir = self.path / "checkpoints"
        self.tb_dir = self.path / "tb"
        self.plot_dir = self.path / "plots"
        self._lock_file = None

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    @property
    def last_checkpoint(self) -> Path:
        return self.ckpt_dir / "last.pt"

    def open(self, config: dict, resume: bool) -> None:
        """Create the folder for a new run (writing ``config`` to config.json), or check that
        it holds a run of this format to resume. Either way the folder is locked for this
        process until ``close()`` (or its exit)."""
        config = json.loads(json.dumps(config, default=_jsonable))
        check_out(self.path)
        if resume:
            if not self.config_path.exists():
                raise RunError(f"--resume: {self.path} holds no run (no config.json); "
                               f"start a new run without --resume")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        if resume:
            try:
                self.read_config()
            except RunError:
                self.close()
                raise
            return
        if self.config_path.exists():
            self.close()
            raise RunError(f"{self.path} already holds a run; pass --resume to continue it or "
                           f"another --out for a new run (nothing was overwritten)")
        write_json(self.config_path, config)

    def read_config(self) -> dict:
        """The run's config.json, refused if it is of another format."""
        if not self.config_path.exists():
            raise RunError(f"--resume: {self.path} holds no run (no config.json); start a new "
                           f"run without --resume")
        try:
            saved = json.loads(self.config_path.read_text())
        except (OSError, ValueError) as e:
            raise RunError(f"{self.config_path} is unreadable ({e}); start a new run in "
                           f"another --out") from None
        return check_format(f"the run in {self.path}", saved)

    def read_results(self) -> dict | None:
        """The run's results.json, or None where there is none or it is unreadable."""
        try:
            res = json.loads(self.results_path.read_text())
        except (OSError, ValueError):
            return None
        return res if isinstance(res, dict) else None

    def status(self) -> str | None:
        """The run's status as its results.json says ("running", "interrupted", "complete",
        "failed: ..."), or None where there is no readable results.json. Reads only."""
        return (self.read_results() or {}).get("status")

    def is_complete(self) -> bool:
        """Whether the run trained to its end: ``--resume`` has nothing left to do."""
        return self.status() == "complete"

    def lock(self) -> None:
        """Hold the folder's lock (``RunInUseError`` if another process holds it) until
        ``close()``: e.g. a study's runner while it tidies a trial's folder."""
        if not self.path.is_dir():
            raise RunError(f"{self.path} is not a run folder (no such folder)")
        self._lock()

    def _lock(self) -> None:
        if fcntl is None or self._lock_file is not None:
            return
        f = open(self.path / "run.lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise self.in_use_error() from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock_file = f

    def in_use(self) -> bool:
        """Whether another process holds this run now (a "running" status in results.json whose
        folder is not held means the process stopped without a word: killed or crashed)."""
        lock = self.path / "run.lock"
        if fcntl is None or not lock.exists():
            return False
        with open(lock, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def in_use_error(self) -> RunInUseError:
        """The refusal of a folder that another process holds, naming it."""
        return RunInUseError(f"{self.path} is in use by another process (pid "
                             f"{self.holder() or 'unknown'}): a run can be continued by one "
                             f"process at a time; wait for it to finish or stop it (Ctrl-C / "
                             f"kill -INT saves a checkpoint), then --resume")

    def holder(self) -> int | None:
        """The pid the folder's lock file names: the process that holds it (or held it last)."""
        try:
            return int((self.path / "run.lock").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        """Release the run's lock (the process's exit releases it too)."""
        if self._lock_file is not None:
            self._lock_file.close()          # closing the descriptor drops the flock
            self._lock_file = None

    def save_checkpoint(self, state: dict, name: str = "last.pt") -> Path:
        import torch        # here, not above: a study's runner reads folders without torch
        path = self.ckpt_dir / name
        _atomic_write_bytes(path, lambda f: torch.save(state, f))
        return path

    def load_checkpoint(self, path: Path | None = None) -> dict:
        import torch
        path = Path(path or self.last_checkpoint)
        if not path.exists():
            raise RunError(f"no checkpoint at {path}: the run stopped before its first "
                           f"checkpoint, so there is nothing to resume; delete {self.path} (or "
                           f"pass another --out) and start the run again without --resume")
        try:
            ck = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # truncated, corrupt, not a torch file
            tasks = sorted(self.ckpt_dir.glob("task*.pt"),
                           key=lambda p: int(p.stem[4:]) if p.stem[4:].isdigit() else -1)
            fix = (f"copy {tasks[-1]} over it to resume from the end of that task, or start a "
                   f"new run" if tasks else f"start a new run (delete {self.path} or pass "
                   f"another --out)")
            raise RunError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                           f"{fix}") from None
        return check_format(f"checkpoint {path}", ck)


def in_use(path: str | os.PathLike) -> bool:
    """Whether another process holds the run folder ``path`` now (``RunFolder.in_use``)."""
    return RunFolder(path).in_use()


def config_differences(saved: dict, new: dict, prefix: str = "") -> list[str]:
    """What differs between two configs, as 'key: old then, new now', the "machine" part
    aside (device, threads: what may change across a resume)."""
    out = []
    for k in sorted(set(saved) | set(new)):
        if k == "machine" and not prefix:
            continue
        a, b = saved.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} then, {b!r} now")
    return out
