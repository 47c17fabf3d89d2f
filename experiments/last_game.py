"""Each group's score on the stream's last game, with a 95% CI over its seeds, from a report.

    python experiments/last_game.py runs/study-agscl-rl/report/report.json

The last game is the one a regularizer must still learn after all the others, so its score is
the plainest measure of what the stream left of plasticity. Printed per group, greedy and
sampled: the final random-normalised score ((score - random) / (fine-tuning's best - random),
the report's own matrices) and the raw score, each the mean over the group's complete runs with
the report's percentile bootstrap CI (analysis.bootstrap.mean_ci), and the raw scores per seed;
and beside it every game's task-end raw score (the reward matrix's diagonal: what the game
reached when it was the one trained), the same way; and with ``--layer L`` the plasticity
measures of trunk layer L (active fraction, stable and effective rank, weight norm, distance
from the initial weights, gradient norm) at each task's end, mean [95% CI] over the group's runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.bootstrap import interval_text, mean_ci  # noqa: E402
from analysis.report import ReportError, read_game_report  # noqa: E402


MEASURES = ("active", "stable_rank", "effective_rank", "weight_norm", "init_distance", "grad_norm")


def last_game(report: dict) -> list[dict]:
    runs = {r["run"]: r for r in report["runs"]}
    out = []
    for g in report["groups"]:
        row = {"group": g["label"]}
        for kind, suffix in (("greedy", ""), ("sampled", "_sampled")):
            final = [runs[p] for p in g["runs"] if p in runs
                     and len(runs[p][f"reward_matrix{suffix}"]) == len(report["tasks"])]
            raw = [r[f"reward_matrix{suffix}"][-1][-1] for r in final]
            rn = [(r[f"random_normalised_matrix{suffix}"] or [[None]])[-1][-1] for r in final]
            n = len(report["tasks"])
            diag = [mean_ci([r[f"reward_matrix{suffix}"][j][j] for r in final]) for j in range(n)]
            row[kind] = {"raw": mean_ci(raw), "random_normalised": mean_ci(rn),
                         "raw_per_seed": raw, "task_end": diag}
        row["measures"] = [[m for m in runs[p].get("plasticity_measures") or []
                            if m.get("task_end")] for p in g["runs"] if p in runs]
        out.append(row)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("report", help="a report.json of train.py report (a game stream's)")
    p.add_argument("--layer", default=None, help="also the plasticity measures of this trunk "
                   "layer (e.g. fc) at each task's end")
    args = p.parse_args(argv)
    try:
        report = read_game_report(args.report)
    except ReportError as e:
        p.error(str(e))
    print(f"last game: {report['tasks'][-1]}; mean [95% CI] over each group's complete runs")
    for row in last_game(report):
        print(row["group"])
        for kind in ("greedy", "sampled"):
            d = row[kind]
            rn, raw = d["random_normalised"], d["raw"]
            print(f"  {kind:8s} random-normalised {interval_text(rn['mean'], rn['ci95'])}  "
                  f"raw {interval_text(raw['mean'], raw['ci95'], 2)}  (n {raw['n']}; seeds "
                  f"{', '.join(f'{v:.1f}' for v in d['raw_per_seed'])})")
            print(f"  {'':8s} task-end raw: " + ", ".join(
                f"{t} {interval_text(e['mean'], e['ci95'], 2)}"
                for t, e in zip(report["tasks"], d["task_end"])))
        if args.layer:
            for j, t in enumerate(report["tasks"]):
                at = [ms[j]["layers"].get(args.layer) for ms in row["measures"] if len(ms) > j]
                at = [a for a in at if a]
                cis = {k: mean_ci([a[k] for a in at]) for k in MEASURES}
                print(f"  {args.layer} at {t}'s end: " + "  ".join(
                    f"{k} {interval_text(c['mean'], c['ci95'])}" for k, c in cis.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
