"""Two groups of a report told apart or not: the difference of their means over seeds, with
95% intervals, for each headline measure.

    python experiments/group_difference.py runs/study-bf16/report/report.json \\
        --pair "finetune bf16=False:finetune bf16=True" --pair "ewc bf16=False:ewc bf16=True"

``--pair A:B`` names two groups by their report labels, as ``train.py report`` prints them
(a method with several groups shows its varied settings in every label). For each pair and
each protocol (greedy, sampled), over each group's complete runs, B minus A: Figure 7's final
normalised accumulated reward, the last game's raw score and random-normalised score, the
normalised forgetting (mean over the games before the last), stability S and plasticity P
(eq. 16 and 15), each as the difference of the means with two intervals of
``analysis.bootstrap.difference_ci``: the percentile bootstrap (the two groups' seeds
resampled independently) and Welch's t. "apart" marks a measure whose Welch interval excludes
0 (the bootstrap's is too narrow at 5 seeds). Each row also shows Welch's p and Holm's
adjusted p over the whole printed family (every pair, protocol and measure printed that has a
p: rows whose groups both lack spread have none; narrow the family with ``--measures``), with
"Holm" marking a row that separates at a family-wise 5%. Read with care:
- every normalised measure is relative to the fine-tuning runs in the report (Figure 7's and
  P's reference is fine-tuning's best task-end score per game over all of them), so adding
  runs to a report can move it; the last game's raw score has no reference;
- ten measures per pair are ten tests: one "apart" among them is weak evidence (Holm's
  column is the family's answer);
- an interval that holds 0 says these seeds cannot tell the groups apart, not that they are
  equal.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.bootstrap import difference_ci, holm, interval_text  # noqa: E402
from analysis.report import ReportError, read_game_report  # noqa: E402


def _measures(run: dict, suffix: str, n_tasks: int) -> dict:
    """A complete run's headline measures under one protocol ('' greedy, '_sampled')."""
    rn = run.get(f"random_normalised_matrix{suffix}") or [[None]]
    raw = run.get(f"reward_matrix{suffix}") or [[None]]
    forgetting = (run.get(f"forgetting{suffix}") or {}).get("normalised") or {}
    return {"figure7_final": (run.get(f"normalised_accumulated_reward{suffix}") or [None])[-1],
            "last_game_raw": raw[-1][-1] if len(raw) == n_tasks else None,
            "last_game_random_normalised": rn[-1][-1] if len(rn) == n_tasks else None,
            "forgetting_normalised": forgetting.get("mean"),
            "stability": run.get(f"stability{suffix}"),
            "plasticity": run.get(f"plasticity{suffix}")}


MEASURES = ("figure7_final", "last_game_raw", "last_game_random_normalised",
            "forgetting_normalised", "stability", "plasticity")


def differences(report: dict, a: str, b: str, measures=MEASURES) -> dict:
    """{protocol: {measure: difference_ci(A's runs, B's runs)}} over complete runs."""
    groups = {g["label"]: g for g in report["groups"]}
    for label in (a, b):
        if label not in groups:
            raise KeyError(f"no group labelled {label!r} in the report; its groups: "
                           f"{', '.join(repr(x) for x in groups)}")
    runs = {r["run"]: r for r in report["runs"]}
    n = len(report["tasks"])
    out = {}
    for kind, suffix in (("greedy", ""), ("sampled", "_sampled")):
        per = {}
        for label in (a, b):
            complete = [runs[p] for p in groups[label]["runs"] if p in runs
                        and len(runs[p].get(f"reward_matrix{suffix}") or []) == n]
            per[label] = [_measures(r, suffix, n) for r in complete]
        out[kind] = {m: difference_ci([x[m] for x in per[a]], [x[m] for x in per[b]])
                     for m in measures}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("report", help="a report.json of train.py report (a game stream's)")
    p.add_argument("--pair", action="append", required=True, metavar="A:B",
                   help="two group labels, A:B; prints B minus A (repeatable)")
    p.add_argument("--measures", nargs="+", choices=MEASURES, default=list(MEASURES),
                   metavar="MEASURE", help=f"the measures to print, and so Holm's family; "
                   f"give the report before this flag (default: all of {', '.join(MEASURES)})")
    args = p.parse_args(argv)
    try:
        report = read_game_report(args.report)
    except ReportError as e:
        p.error(str(e))
    pairs = []
    for pair in args.pair:
        if pair.count(":") != 1:
            p.error(f"--pair {pair!r}: give two group labels as A:B")
        a, b = pair.split(":")
        try:
            pairs.append((a, b, differences(report, a, b, args.measures)))
        except KeyError as e:
            p.error(str(e.args[0]))
    family = [d for _, _, diff in pairs for rows in diff.values() for d in rows.values()]
    for d, adjusted in zip(family, holm([d["welch_p"] for d in family])):
        d["holm_p"] = adjusted
    print(f"(mean difference, bootstrap [95% CI], Welch [95% CI], Welch's p, Holm's p over all "
          f"{sum(d['welch_p'] is not None for d in family)} rows; 'apart': Welch's interval "
          f"excludes 0; 'Holm': Holm's p <= 0.05)")
    for a, b, diff in pairs:
        print(f"{b}  minus  {a}")
        for kind, rows in diff.items():
            for m, d in rows.items():
                w = d["welch_ci95"]
                apart = w is not None and (w[0] > 0 or w[1] < 0)
                welch = "" if w is None else f"[{w[0]:.3f}, {w[1]:.3f}]"
                ps = "" if d["welch_p"] is None else f"p {d['welch_p']:.3f} holm {d['holm_p']:.3f}"
                flags = ("  apart" if apart else "") + \
                    ("  Holm" if d["holm_p"] is not None and d["holm_p"] <= 0.05 else "")
                print(f"  {kind:8s} {m:28s} {interval_text(d['mean'], d['ci95']):26s} "
                      f"{welch:18s} {ps:22s}{flags}  (n {d['n'][0]}, {d['n'][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
