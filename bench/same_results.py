"""Does a change keep the numbers? Tiny fixed-seed runs of every method with the code of a
base commit and with the working tree, compared field by field.

    python bench/same_results.py --base 5d4c92f          # prints one line per run, exit 1 on a difference

Runs: 2-game Atari (finetune, agscl, ewc, si, mas, rwalk), 2-game MinAtar (finetune, agscl,
ewc) and 3-task split_digits (every method), the same command line in both codes. Compared:
every results.json field of the base's but timings, machine and the learner's echo of its
config (matrices, evaluation curves, sparsity, used capacity, memory, ...); fields only the
working tree writes are listed as new, not as differences. The base commit is checked out in a
temporary git worktree.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# --bf16 false: the float32 path, whatever the CPU ('auto', the default, turns bf16 on where the
# CPU has AVX512-BF16 or AMX, so a base from before that default compares like with like)
TINY_ATARI = ("atari --games Boxing,Gopher --num-envs 2 --num-steps 16 --update-epochs 1 "
              "--num-minibatches 2 --steps-per-task 64 --eval-episodes 1 --eval-max-steps 30 "
              "--eval-every 32 --importance-steps 32 --checkpoint-every 1 --no-progress "
              "--threads 1 --seed 5 --bf16 false").split()
TINY_MINATAR = ("minatar --games Breakout,Asterix --preset minatar_tiny --eval-every 32 "
                "--checkpoint-every 1 --no-progress --threads 1 --seed 5 --bf16 false").split()
TINY_VISION = ("vision --benchmark split_digits --epochs 2 --max-tasks 3 --no-progress "
               "--threads 1 --seed 3").split()
ATARI = ("finetune", "agscl", "ewc", "si", "mas", "rwalk")
MINATAR = ("finetune", "agscl", "ewc")
VISION = ("finetune", "agscl", "agscl_no_reinit", "agscl_no_randinit", "agscl_no_zeroinit",
          "ewc", "ewc_online", "si", "mas", "rwalk", "hat")
SKIP = {"sps", "time_split", "task_seconds", "elapsed_seconds", "sessions", "seconds_per_epoch",
        "ppo_config", "classifier_config", "torch_threads"}


def runs() -> dict[str, list[str]]:
    out = {f"atari-{m}": TINY_ATARI + ["--regularizer", m] for m in ATARI}
    out.update({f"minatar-{m}": TINY_MINATAR + ["--regularizer", m] for m in MINATAR})
    out.update({f"vision-{m}": TINY_VISION + ["--regularizer", m] for m in VISION})
    return out


def run_all(code: Path, out: Path, jobs: int) -> None:
    def one(item):
        name, args = item
        with open(out / f"{name}.log", "w") as log:
            subprocess.run([sys.executable, "train.py", *args, "--out", str(out / name)],
                           cwd=code, stdout=log, stderr=subprocess.STDOUT, check=False)
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, runs().items()))


def differences(a: dict, b: dict) -> list[str]:
    """The fields of the base's results ``a`` that the new results ``b`` differ in."""
    return [k for k in sorted(a) if k not in SKIP and a.get(k) != b.get(k)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the commit to compare the working tree with")
    p.add_argument("--out", default=None, help="folder for both codes' runs (default: a temp dir)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="same-results-"))
    base = out / "base-code"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
                   check=True, capture_output=True)
    try:
        run_all(base, out / "base", args.jobs)
        run_all(ROOT, out / "new", args.jobs)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                       check=False, capture_output=True)
    bad = 0
    for name in runs():
        fa, fb = out / "base" / name / "results.json", out / "new" / name / "results.json"
        if not (fa.exists() and fb.exists()):
            print(f"{name}: MISSING ({fa if not fa.exists() else fb}; see its .log)")
            bad += 1
            continue
        a, b = json.loads(fa.read_text()), json.loads(fb.read_text())
        diff = differences(a, b)
        new = sorted(set(b) - set(a))
        print(f"{name}: {'identical' if not diff else 'DIFFERENT: ' + ', '.join(diff)}"
              + (f" (new fields: {', '.join(new)})" if new else ""))
        bad += bool(diff)
    print(f"runs in {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
