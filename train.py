#!/usr/bin/env python
"""Continual learning with AGS-CL and its baselines: parse, build, run.

    python train.py atari  [--games Boxing,Gopher] [--steps-per-task 100000] [--regularizer agscl] ...
    python train.py minatar [--games Breakout,Freeway] [--steps-per-task 500000] ...
    python train.py vision --benchmark omniglot --data-dir DIR --regularizer agscl --epochs 20 ...
    python train.py atari --resume --out DIR          # continue a run from its config.json
    python train.py study SPEC.toml [--address auto]   # many runs on Ray Tune (study.py)
    python train.py report RUN [RUN ...] [--out DIR]
    python train.py evaluate RUN [--games G1,G2] [--episodes N] [--both] [--video DIR] ...

`python train.py atari` with no further arguments runs a short CPU demo (2 games, 20k steps
each). Every run writes config.json, results.json, TensorBoard events (tb/), checkpoints/ and
plots/ into --out; `--config FILE` starts from a config file (e.g. another run's config.json).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# libgomp's default spin-waiting collapses torch's OpenMP threads (10-50x slower inference)
# as soon as another process busies a core (ALE's threads do); passive waiting avoids that.
# It must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from analysis.report import REFERENCE_WINDOW, TRAINING_WINDOW  # noqa: E402
from continual import evaluate, flags, runconfig  # noqa: E402
from envs import streams  # noqa: E402
from continual.report import report  # noqa: E402
from continual.runfolder import (IN_USE_EXIT, RunError, RunFolder, RunInUseError,  # noqa: E402
                                 check_out)
from continual.trainer import ContinualTrainer, NaNLossError  # noqa: E402

ATARI_DEMO = ["--games", "StarGunner,Boxing", "--steps-per-task", "20480",
              "--eval-episodes", "3", "--eval-max-steps", "2500", "--eval-every", "10240"]

_GROUPS = {"ppo": "PPO hyperparameters (override the preset)",
           "classifier": "classifier settings (override the preset)",
           "regularizer_hparams": "regularizer hyperparameters (each method takes its own; "
                                  "a flag the method does not take is refused)",
           "machine": "machine (may change on --resume)"}


def _add_run_flags(p: argparse.ArgumentParser, command: str) -> None:
    """The command's flags, generated from its config's fields (continual/flags.py)."""
    groups = {k: p.add_argument_group(v) for k, v in _GROUPS.items()}
    for fl in flags.FLAGS[command]:
        g = groups.get(fl.path[0], p) if fl.path else p
        names = ["--" + fl.name] + ["--" + a for a in fl.aliases]
        kw = dict(default=None, help=fl.help, dest=fl.name.replace("-", "_"))
        if fl.name == "no-progress":
            kw.update(action="store_const", const=True)
        elif fl.kind in (bool, flags.BoolOrAuto):
            kw.update(nargs="?", const="true",
                      metavar="BOOL" if fl.kind is bool else "{true,false,auto}")
        else:
            kw.update(metavar=fl.kind.__name__.upper() if fl.kind is not str else "TEXT")
        g.add_argument(*names, **kw)
    p.add_argument("--out", default=None,
                   help="the run folder (default: runs/<command>-<method>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint and config.json "
                        "(flags given must agree with it, but machine ones); a complete run is "
                        "left as it is")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name, stream in streams.STREAMS.items():
        _add_run_flags(sub.add_parser(name, help=stream.HELP), name)
    _add_run_flags(sub.add_parser("vision", help="continual supervised learning on a vision "
                                  "stream"), "vision")
    st = sub.add_parser("study", help="many runs (methods x seeds x hyperparameters) on Ray "
                        "Tune, then their grouped report (study.py)")
    st.add_argument("spec", help="the study's TOML spec (see study.py, studies/)")
    st.add_argument("--address", default=None,
                    help="an existing Ray cluster: auto, or ray://HOST:10001 (default: an "
                         "embedded local Ray on this machine)")
    st.add_argument("--max-failures", type=int, default=3,
                    help="retries of a crashed trial (each resumes from its last checkpoint)")
    r = sub.add_parser("report", help="compare runs of one stream (needs a fine-tuning run)")
    r.add_argument("runs", nargs="+")
    r.add_argument("--out", default=None, help="folder for report.json and plots")
    r.add_argument("--window", type=int, default=TRAINING_WINDOW,
                   help="Atari: env steps per window of the training-score table")
    r.add_argument("--reference-window", type=int, default=REFERENCE_WINDOW,
                   help="Figure 7's reference: fine-tuning's best mean of N consecutive "
                        "evaluations of each game (1: its best single evaluation, the paper's; "
                        "3: robust to one lucky evaluation)")
    r.add_argument("--single-task", nargs="+", default=[], metavar="RUN",
                   help="single-task runs from scratch, one game of the stream each (e.g. "
                        "train.py atari --games Boxing): forward transfer's reference "
                        "(Continual World); without them the reference is fine-tuning")
    evaluate.add_arguments(sub.add_parser(
        "evaluate", help="play a saved game-stream run's games: scores per game (greedy, "
                         "sampled), evaluation.json, videos (continual/evaluate.py)"))
    return ap


def given_flags(command: str, args: argparse.Namespace) -> dict:
    """The config flags given on the command line (name -> text)."""
    names = {fl.name.replace("-", "_") for fl in flags.FLAGS[command] if fl.path}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def run(command: str, args: argparse.Namespace) -> dict:
    """Parse -> config -> build -> run one training run."""
    if args.resume and args.out is None:
        raise RunError("--resume needs --out: the run folder to continue")
    config = flags.resolve(command, given_flags(command, args), args.config,
                           resume_from=args.out if args.resume else None)
    if args.resume:
        done = RunFolder(args.out).read_results()
        if done and done.get("status") == "complete":
            # nothing left to train: the finished run's files stay as they are (no lock, no
            # session, no TensorBoard writer), whoever asks for the resume (e.g. a study's retry)
            print(f"the run in {args.out} is already complete; nothing to resume (results in "
                  f"{RunFolder(args.out).results_path})")
            return done
        if RunFolder(args.out).in_use():       # refused now, not after building the learner
            raise RunFolder(args.out).in_use_error()
    out = args.out or f"runs/{command}-{config.regularizer}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_out(Path(out))
    learner, reg, schedule = runconfig.build(config)
    folder = RunFolder(out)
    print(f"run folder: {folder.path}")
    trainer = ContinualTrainer(learner, reg, folder, runconfig.to_dict(config), schedule,
                               resume=args.resume, progress=config.machine.progress)
    res = trainer.run()
    print(f"status: {res['status']}; results in {folder.results_path}")
    return res


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["atari"]:
        print("no arguments: a short CPU demo of the continual Atari stream "
              f"({' '.join(ATARI_DEMO)} --regularizer agscl); see `train.py atari --help`")
        argv += ATARI_DEMO
    args = build_parser().parse_args(argv)
    try:
        if args.command == "study":
            import study                       # Ray is imported only here
            return study.main(args.spec, args.address, args.max_failures)
        if args.command == "evaluate":
            return evaluate.main(args, argv)
        if args.command == "report":
            rep = report(args.runs, args.out, args.window,
                         reference_window=args.reference_window, single_task=args.single_task)
            print(rep["table"])
            out = Path(args.out) if args.out else Path(args.runs[0]).parent
            print(f"\nreport.json and plots in {out}")
            return 0
        return 0 if run(args.command, args) else 1
    except RunInUseError as e:            # transient: another process still runs the folder
        print(f"error: {e}", file=sys.stderr)
        return IN_USE_EXIT
    except NaNLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (ValueError, RunError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopped without saving; --resume restarts from the last checkpoint",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
