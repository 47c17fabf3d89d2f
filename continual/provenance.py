"""Where a run's numbers came from: the code's git commit, the packages, the machine.

A long run is often trained in several sessions (``--resume``). ``results.json`` keeps one
entry per session, so a reader can tell whether all of a run was trained by the same code;
``differs()`` names what changed between two sessions that can change the numbers: the code, the
packages, torch's CPU thread count (the trainer warns on resume).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

CODE_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "numpy", "gymnasium", "ale-py")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(CODE_ROOT), *args], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict:
    """{'commit': sha or None (not a git checkout), 'dirty': tracked files modified?}."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


def _version(pkg: str) -> str | None:
    """The installed version; torch's as ``torch.__version__`` says it once torch is imported,
    with the build tag (``+cpu``, ``+cu130``) that some builds leave out of their metadata."""
    if pkg == "torch" and "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def session(global_step: int) -> dict:
    """One training session of a run: when, from which step, with which code and machine."""
    return {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from_step": int(global_step), **code_version(),
            "python": platform.python_version(), "torch_threads": _torch_threads(),
            "packages": {p: _version(p) for p in PACKAGES},
            "host": platform.node(), "cpus": os.cpu_count(), "pid": os.getpid(),
            "argv": list(sys.argv)}


def _same_version(a: str | None, b: str | None) -> bool:
    """Equal, or equal but for a build tag (``+cu130``) that one of them lacks: sessions recorded
    before torch's version was read from ``torch.__version__`` have the metadata's, untagged."""
    if a == b:
        return True
    if a is None or b is None or ("+" in a and "+" in b):
        return False
    return a.split("+")[0] == b.split("+")[0]


def differs(before: dict, now: dict) -> list[str]:
    """What changed between two sessions that could change the numbers (code, packages)."""
    out = []
    if before.get("commit") != now.get("commit"):
        out.append(f"code commit {str(before.get('commit'))[:10]} then, "
                   f"{str(now.get('commit'))[:10]} now")
    if now.get("dirty"):
        out.append("the code has uncommitted changes")
    for p in PACKAGES:
        a, b = before.get("packages", {}).get(p), now.get("packages", {}).get(p)
        if not _same_version(a, b):
            out.append(f"{p} {a} then, {b} now")
    # CPU kernels may sum in another order with another thread count (not bit-exact then)
    if before.get("torch_threads") != now.get("torch_threads"):
        out.append(f"torch threads {before.get('torch_threads')} then, "
                   f"{now.get('torch_threads')} now")
    return out
