#!/usr/bin/env python
"""Continual learning with AGS-CL and its baselines: parse, wire, run.

    python train.py atari  [--games Boxing,Gopher] [--steps-per-task 100000] [--regularizer agscl] ...
    python train.py vision --benchmark omniglot --data-dir DIR --regularizer agscl --epochs 20 ...
    python train.py report RUN [RUN ...] [--out DIR]

`python train.py atari` with no further arguments runs a short CPU demo (2 games, 20k steps
each). Every run writes config.json, results.json, TensorBoard events (tb/), checkpoints/ and
plots/ into --out and continues after an interruption with --resume.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

# libgomp's default spin-waiting collapses torch's OpenMP threads (10-50x slower inference)
# as soon as another process busies a core (ALE's threads do); passive waiting avoids that.
# It must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import regularizers
from continual.report import TRAINING_WINDOW, report
from continual.runfolder import RunError, RunFolder
from continual.trainer import ContinualTrainer, NaNLossError, Schedule

# Published RL strengths (reference facts): AGS-CL mu 0.1, lam 100 (or 1000); EWC lam 5000.
# EWC's Fisher here is the per-sample one of the policy's own actions (regularizers/ewc.py);
# the published RL code scaled its own differently, so lam 5000 is a starting point, not a match.
ATARI_REG_DEFAULTS = {
    "agscl": {"mu": 0.1, "lam": 100.0, "eta": 0.9, "rho": 1.0, "prox": "step"},
    "ewc": {"lam": 5000.0}, "ewc_online": {"lam": 5000.0, "gamma": 0.9},
}
for _abl in ("agscl_no_reinit", "agscl_no_randinit", "agscl_no_zeroinit"):
    ATARI_REG_DEFAULTS[_abl] = {k: v for k, v in ATARI_REG_DEFAULTS["agscl"].items()}

ATARI_DEMO = ["--games", "StarGunner,Boxing", "--steps-per-task", "20480",
              "--eval-episodes", "3", "--eval-max-steps", "2500", "--eval-every", "10240"]

MACHINE_KEYS = {"device", "torch_threads", "env_threads"}   # may change across --resume


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _reg_hparams(args, defaults: dict) -> dict:
    """Regularizer hyperparameters: defaults < --mu/--lam/--eta/--rho < --hp key=value."""
    hp = dict(defaults)
    for k in ("mu", "lam", "eta", "rho"):
        v = getattr(args, k)
        if v is not None:
            hp[k] = v
    for item in args.hp or []:
        if "=" not in item:
            raise ValueError(f"--hp {item!r}: expected key=value, e.g. --hp gamma=0.9")
        k, v = item.split("=", 1)
        hp[k.strip()] = _parse_value(v)
    accepted = regularizers.hyperparameters(args.regularizer)
    explicit = {k for k in ("mu", "lam", "eta", "rho") if getattr(args, k) is not None} | \
        {i.split("=", 1)[0].strip() for i in args.hp or []}
    for k in list(hp):
        if k not in accepted:
            if k in explicit:
                raise ValueError(f"regularizer {args.regularizer!r} has no hyperparameter "
                                 f"{k!r}; accepted: {', '.join(accepted) or '(none)'}")
            del hp[k]                         # a default meant for another method
    return hp


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--regularizer", "-r", default="agscl",
                   help=f"one of: {', '.join(regularizers.NAMES)} (default agscl)")
    p.add_argument("--mu", type=float, help="AGS-CL group-Lasso strength mu (eq. 4)")
    p.add_argument("--lam", type=float, help="the method's main strength lambda")
    p.add_argument("--eta", type=float, help="AGS-CL Omega decay eta in (0, 1] (eq. 14)")
    p.add_argument("--rho", type=float, help="AGS-CL fraction of nodes re-initialised (I.2)")
    p.add_argument("--hp", action="append", metavar="KEY=VALUE",
                   help="any other regularizer hyperparameter (repeatable), e.g. --hp prox=epoch")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="run folder (default runs/<kind>-<method>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (same arguments)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="units (PPO iterations / epochs) between periodic checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _ppo_flags(p: argparse.ArgumentParser) -> None:
    from agents.ppo import PPOConfig
    g = p.add_argument_group("PPO hyperparameters (override the preset)")
    skip = {"preset", "seed", "device", "torch_threads"}
    for f in dataclasses.fields(PPOConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        flags = (flag, "--lr") if f.name == "learning_rate" else (flag,)
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
        if "bool" in t:
            g.add_argument(*flags, type=lambda s: s.lower() in ("1", "true", "yes", "on"),
                           metavar="BOOL", default=None)
        elif "int" in t and "float" not in t:
            g.add_argument(*flags, type=int, default=None)
        elif "float" in t:
            g.add_argument(*flags, type=float, default=None)
        else:
            g.add_argument(*flags, default=None)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    a = sub.add_parser("atari", help="continual PPO over the Atari stream")
    a.add_argument("--games", default=None,
                   help="comma-separated games (default: the paper's 8-game stream)")
    a.add_argument("--preset", default="cpu", help="PPO preset: cpu | paper")
    a.add_argument("--eval-every", type=int, default=None,
                   help="env steps between evaluations of all seen games "
                        "(default: a tenth of a task)")
    _add_common(a)
    _ppo_flags(a)

    v = sub.add_parser("vision", help="continual supervised learning on a vision stream")
    v.add_argument("--benchmark", default="split_digits",
                   help="split_cifar100 | cifar10_100 | omniglot | cub200 | split_digits")
    v.add_argument("--data-dir", default=None, help="where the data set lies (or goes)")
    v.add_argument("--download", action="store_true", help="download with checksum if missing")
    v.add_argument("--preset", default="published", help="published | quick")
    v.add_argument("--epochs", type=int, default=None)
    v.add_argument("--batch-size", type=int, default=None)
    v.add_argument("--lr", type=float, default=None)
    v.add_argument("--augment", type=int, default=0,
                   help="Omniglot: rotated/shifted copies per training image (paper: 20)")
    v.add_argument("--pretrained", default=None,
                   help="CUB-200: torchvision-format ResNet-18 state_dict file")
    v.add_argument("--max-tasks", type=int, default=None, help="use only the first N tasks")
    _add_common(v)

    r = sub.add_parser("report", help="compare runs of one stream (needs a fine-tuning run)")
    r.add_argument("runs", nargs="+")
    r.add_argument("--out", default=None, help="folder for report.json and plots")
    r.add_argument("--window", type=int, default=TRAINING_WINDOW,
                   help="Atari: env steps per window of the training-score table")
    return ap


def _check_device(name: str) -> None:
    """A device this torch build can use, or an error naming the fix (before any folder exists)."""
    import torch
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:1, "
                         f"...") from None
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(f"--device {name}: this torch ({torch.__version__}) is a CPU-only "
                             f"build; install a CUDA build of torch (README, 'GPU users') or "
                             f"use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n or n == 0:
            raise ValueError(f"--device {name}: {n} CUDA device(s) visible; use one of "
                             f"{', '.join(f'cuda:{i}' for i in range(n)) or 'cpu'}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available here; use --device cpu")


def _seed_everything(seed: int) -> None:
    """The global RNGs from the run's seed: model initialisation (vision), dropout, AGS-CL's
    (I.2) re-initialisation draws. (A resumed run then restores them from its checkpoint.)"""
    import random

    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _default_out(kind: str, reg: str) -> str:
    return f"runs/{kind}-{reg}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_atari(args) -> dict:
    import torch
    from agents.ppo import LATER_FIELDS, PPOConfig, PPOLearner
    from envs.atari import GAMES, parse_games
    if args.threads:
        torch.set_num_threads(args.threads)
    games = parse_games(args.games) if args.games else list(GAMES)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PPOConfig)
                 if getattr(args, f.name, None) is not None and f.name not in ("preset", "seed")}
    if args.seed is not None:
        overrides["seed"] = args.seed
    overrides["device"] = args.device
    cfg = PPOConfig.from_preset(args.preset, **overrides)
    _seed_everything(cfg.seed)
    hp = _reg_hparams(args, ATARI_REG_DEFAULTS.get(args.regularizer, {}))
    learner = PPOLearner(cfg, games)
    reg = regularizers.make(args.regularizer, learner.model, **hp)
    per_unit = cfg.batch_size
    units = learner.units_per_task(0)
    eval_every = args.eval_every if args.eval_every is not None else cfg.steps_per_task // 10
    schedule = Schedule(eval_every=max(1, eval_every // per_unit) if eval_every else 0,
                        checkpoint_every=args.checkpoint_every or max(1, min(50, units // 4)))
    ppo = {k: v for k, v in cfg.to_dict().items() if k not in MACHINE_KEYS
           and not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
    config = {"command": "atari", "games": games, "regularizer": args.regularizer,
              "regularizer_hparams": hp, "ppo": ppo, "eval_every_steps": eval_every,
              "schedule": dataclasses.asdict(schedule), "device": args.device,
              "threads": args.threads, "out": args.out}
    return _run(learner, reg, config, schedule, args)


def run_vision(args) -> dict:
    import torch
    from agents.classifier import ClassifierLearner, preset, recommended_hyperparameters
    from envs.vision import make_stream
    if args.threads:
        torch.set_num_threads(args.threads)
    seed = 0 if args.seed is None else args.seed
    _seed_everything(seed)
    stream_kw = {"download": args.download}
    if args.benchmark == "omniglot" and args.augment:
        stream_kw["augment"] = args.augment
    stream = make_stream(args.benchmark, data_dir=args.data_dir, seed=seed, **stream_kw)
    if args.max_tasks:
        if args.max_tasks < 1:
            raise ValueError(f"--max-tasks {args.max_tasks} must be >= 1")
        stream.tasks = stream.tasks[:args.max_tasks]
    cfg = preset(args.benchmark, args.preset, regularizer=args.regularizer, epochs=args.epochs,
                 batch_size=args.batch_size, lr=args.lr, pretrained=args.pretrained, seed=seed)
    hp = _reg_hparams(args, recommended_hyperparameters(args.benchmark, args.regularizer))
    learner = ClassifierLearner(stream, cfg, device=args.device)
    reg = regularizers.make(args.regularizer, learner.model, **hp)
    schedule = Schedule(eval_every=0, checkpoint_every=args.checkpoint_every or 5)
    config = {"command": "vision", "benchmark": args.benchmark, "tasks": stream.names,
              "regularizer": args.regularizer, "regularizer_hparams": hp,
              "classifier": cfg.to_dict(), "augment": args.augment,
              "data_dir": args.data_dir, "schedule": dataclasses.asdict(schedule),
              "device": args.device, "threads": args.threads, "out": args.out}
    return _run(learner, reg, config, schedule, args)


def _run(learner, reg, config, schedule, args) -> dict:
    run = RunFolder(args.out)
    print(f"run folder: {run.path}")
    trainer = ContinualTrainer(learner, reg, run, config, schedule, resume=args.resume,
                               progress=not args.no_progress)
    res = trainer.run()
    print(f"status: {res['status']}; results in {run.results_path}")
    return res


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["atari"]:
        print("no arguments: a short CPU demo of the continual Atari stream "
              f"({' '.join(ATARI_DEMO)} --regularizer agscl); see `train.py atari --help`")
        argv += ATARI_DEMO
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            rep = report(args.runs, args.out, args.window)
            print(rep["table"])
            out = Path(args.out) if args.out else Path(args.runs[0]).parent
            print(f"\nreport.json and plots in {out}")
            return 0
        if args.out is None:
            if args.resume:
                raise RunError("--resume needs --out: the run folder to continue")
            args.out = _default_out(args.command, args.regularizer)
        _check_device(args.device)
        return 0 if (run_atari if args.command == "atari" else run_vision)(args) else 1
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
