"""Mean of TensorBoard scalars of runs over windows of environment steps.

    python experiments/tb_means.py runs/atari-1m/finetune runs/atari-1m/ewc \
        --windows 0:1000000,1000000:1200000,1800000:2000000

prints, per run and tag, the mean of the values logged at steps in (lo, hi] of each window
(PPO logs one value per unit; a resumed run's re-done units count once). Default tags: the PPO
update's statistics (train/grad_norm is the total gradient norm before clipping, penalty included).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.tensorboard_events import load_scalars  # noqa: E402

DEFAULT_TAGS = "train/grad_norm,train/penalty,train/policy_loss,train/value_loss,train/entropy," \
               "train/approx_kl,train/clipfrac"


def window_means(points: list[tuple[int, float]], windows: list[tuple[int, int]]) -> list[float]:
    out = []
    for lo, hi in windows:
        v = [x for s, x in points if lo < s <= hi]
        out.append(sum(v) / len(v) if v else float("nan"))
    return out


def parse_windows(text: str) -> list[tuple[int, int]]:
    try:
        ws = [tuple(int(float(x)) for x in w.split(":")) for w in text.split(",") if w]
    except ValueError:
        ws = []
    if not ws or any(len(w) != 2 or w[0] >= w[1] for w in ws):
        raise SystemExit(f"--windows {text!r}: give lo:hi step ranges with lo < hi, comma-separated,"
                         f" e.g. 0:1000000,1000000:1200000")
    return ws


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--windows", required=True, help="lo:hi env-step ranges, comma-separated")
    p.add_argument("--tags", default=DEFAULT_TAGS, help="comma-separated scalar tags")
    args = p.parse_args(argv)
    windows = parse_windows(args.windows)
    tags = [t for t in args.tags.split(",") if t]
    print(f"{'run':<24}{'tag':<22}" + "".join(f"{f'{lo:,}-{hi:,}':>24}" for lo, hi in windows))
    for run in args.runs:
        if not (Path(run) / "tb").is_dir():
            raise SystemExit(f"{run}: no TensorBoard folder 'tb' (not a run folder?)")
        sc = load_scalars(run, tags)
        for t in tags:
            if t in sc:
                print(f"{Path(run).name[:23]:<24}{t[:21]:<22}"
                      + "".join(f"{m:>24.4g}" for m in window_means(sc[t], windows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
