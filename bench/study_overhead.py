"""Wall time of a tiny study on Ray Tune with 1 and with 2 trials at once, against the same
runs made directly with train.py one after another (Ray's overhead per trial).

    python bench/study_overhead.py [--out /tmp/study-bench]

The tiny study is the one of tests/test_study.py: 6 trials (fine-tuning; AGS-CL with lam 10 and
100; 2 seeds) of a 2-game Atari stream with a few PPO iterations per game.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def spec_text(out: Path, cpus: int) -> str:
    from tests.test_study import TINY
    return TINY.format(out=out, steps=128).replace("cpus = 1", f"cpus = {cpus}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    base = Path(args.out or tempfile.mkdtemp(prefix="study-bench-"))
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    import study
    rows = {}
    for label, cpus in (("ray, 1 trial at a time", 2), ("ray, 2 trials at a time", 1)):
        spec = base / f"cpus{cpus}.toml"
        spec.write_text(spec_text(base / f"runs-cpus{cpus}", cpus))
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(ROOT / "train.py"), "study", str(spec)],
                            cwd=ROOT, capture_output=True).returncode
        rows[label] = (time.perf_counter() - t0, rc)
    trials = study.load(base / "cpus1.toml").trials
    t0 = time.perf_counter()
    rc = 0
    for t in trials:
        t.path = base / "direct" / t.name
        rc |= subprocess.run([sys.executable, str(ROOT / "train.py"), *t.argv("atari")],
                             cwd=ROOT, capture_output=True).returncode
    rows["train.py directly, one after another"] = (time.perf_counter() - t0, rc)
    print(f"command: python bench/study_overhead.py; {len(trials)} trials; runs in {base}")
    for label, (sec, rc) in rows.items():
        print(f"{label:<40} {sec:7.1f} s   (exit {rc})")
    direct = rows["train.py directly, one after another"][0]
    serial = rows["ray, 1 trial at a time"][0]
    print(f"Ray's overhead per trial (1 at a time vs direct): {(serial - direct) / len(trials):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
