"""``train.py evaluate``: play a saved RL run's games, as RL papers report an agent.

    python train.py evaluate RUN [--checkpoint NAME] [--games G1,G2] [--episodes N]
        [--greedy | --sampled | --both] [--max-steps N] [--video DIR] [--seed S] [--out DIR]
        [--device D]

The run is loaded at a checkpoint (``checkpoints/last.pt`` by default) by ``runconfig.load``,
which rebuilds its learner and regularizer from config.json. It then plays full games of every
game the run had seen at that checkpoint (the tasks completed and the one being trained) with
the stream's ``evaluate``: game i of a game seeded seed + i, greedy actions (argmax, the
paper's protocol) and/or sampled ones, each game cut after max_steps agent steps and scored as
it stands. The defaults are the run's own evaluation (its eval_episodes, eval_max_steps and
each task's evaluation seed), so the last checkpoint of a finished run scores the last row of
its reward matrix again. ``--video DIR`` films every game played (DIR/<game>-<mode>-<i>.mp4).

Output: a table (game, mode, mean, std over the games (ddof 0), min, max, games), and
``evaluation.json`` in the run folder (or ``--out``): per game and mode the scores, their mean
and std, and the checkpoint, seeds, episodes, max_steps and the command line.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import numpy as np

from envs import streams

from .runfolder import RunError, RunFolder, write_json

MODES = {"greedy": ("greedy",), "sampled": ("sampled",), "both": ("greedy", "sampled")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help=f"the run folder (made by train.py "
                               f"{' or '.join(streams.STREAMS)})")
    p.add_argument("--checkpoint", default="last.pt", metavar="NAME",
                   help="a checkpoint in RUN/checkpoints (default: last.pt; e.g. task0.pt)")
    p.add_argument("--games", default=None, metavar="G1,G2",
                   help="comma-separated games to play, each one the run has seen (default: "
                        "every game it has seen)")
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help="games played per game and mode (default: the run's eval_episodes)")
    mode = p.add_mutually_exclusive_group()
    for name, what in (("greedy", "argmax actions, the paper's protocol (the default)"),
                       ("sampled", "actions sampled from the policy"),
                       ("both", "greedy, then sampled")):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=what)
    p.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="agent steps after which a game is cut (default: the run's "
                        "eval_max_steps)")
    p.add_argument("--video", default=None, metavar="DIR",
                   help="film every game played: DIR/<game>-<mode>-<i>.mp4")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="game i of every game is seeded S + i (default: the run's own "
                        "evaluation seed of each task)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for evaluation.json (default: the run folder)")
    p.add_argument("--device", default=None, metavar="D", help="torch device (default: the run's)")


def seen_tasks(trainer_state: dict, num_tasks: int) -> int:
    """How many tasks a run has seen at a checkpoint: those completed, and the one being
    trained if it had begun."""
    n = int(trainer_state["task"]) + (1 if int(trainer_state["unit"]) > 0 else 0)
    return min(n, num_tasks)


def _checkpoint_path(folder: RunFolder, name: str) -> Path:
    name = name if name.endswith(".pt") else name + ".pt"
    path = folder.ckpt_dir / name
    if not path.is_file():
        have = sorted(p.name for p in folder.ckpt_dir.glob("*.pt")) \
            if folder.ckpt_dir.is_dir() else []
        raise RunError(f"--checkpoint {name}: no such checkpoint in {folder.ckpt_dir}; "
                       + (f"it has: {', '.join(have)}" if have else
                          "the run has no checkpoint yet (it saves one every few units)"))
    return path


def _pick_games(asked: str | None, seen: list[str], stream, at: str) -> list[str]:
    if asked is None:
        return list(seen)
    parts = [p.strip() for p in asked.split(",")]
    if not all(parts):
        raise ValueError(f"--games {asked!r}: an empty game name; give comma-separated games "
                         f"from those the run has seen: {', '.join(seen)}")
    out = []
    for p in parts:
        try:
            g = stream.canonical_game(p)
        except ValueError:
            g = None
        if g not in seen:
            raise ValueError(f"--games: {p!r} is not a game this run had seen {at}; seen: "
                             f"{', '.join(seen)}")
        if g not in out:
            out.append(g)
    return out


def _positive(flag: str, v: int | None) -> None:
    if v is not None and v < 1:
        raise ValueError(f"{flag} {v}: must be an integer >= 1")


def evaluate_run(run: str | Path, checkpoint: str = "last.pt", games: str | None = None,
                 episodes: int | None = None, modes=("greedy",), max_steps: int | None = None,
                 video: str | Path | None = None, seed: int | None = None,
                 device: str | None = None) -> dict:
    """Play the games of ``run`` at ``checkpoint`` (see the module docstring); returns what
    evaluation.json holds (without the command line)."""
    from . import runconfig
    _positive("--episodes", episodes)
    _positive("--max-steps", max_steps)
    folder = RunFolder(run)
    if not folder.path.is_dir():
        raise RunError(f"{folder.path}: no such run folder")
    if not folder.config_path.exists():
        raise RunError(f"{folder.path} holds no run (no config.json): pass a folder made by "
                       f"train.py {' or '.join(streams.STREAMS)}")
    command = folder.read_config().get("command")
    if command not in streams.STREAMS:
        raise ValueError(f"train.py evaluate plays games: {folder.path} is a {command} run "
                         f"(its test accuracy per task is in results.json's accuracy_matrix)")
    path = _checkpoint_path(folder, checkpoint)
    config, learner, _reg, state = runconfig.load(
        folder.path, path.name, {"device": device} if device else None)
    try:
        cfg = learner.config
        n_seen = seen_tasks(state, len(learner.task_names))
        seen = learner.task_names[:n_seen]
        at = f"at {path.name} (step {state['global_step']})"
        if not seen:
            raise ValueError(f"{folder.path} had seen no game {at}")
        chosen = _pick_games(games, seen, learner.stream, at)
        episodes = cfg.eval_episodes if episodes is None else int(episodes)
        max_steps = cfg.eval_max_steps if max_steps is None else int(max_steps)
        out = {"run": str(folder.path), "command": command, "checkpoint": path.name,
               "step": int(state["global_step"]), "tasks_seen": list(seen),
               "episodes": episodes, "max_steps": max_steps, "seed": seed,
               "device": str(learner.device), "games": {}}
        for game in chosen:
            task = learner.task_names.index(game)
            game_seed = learner.eval_seed(task) if seed is None else int(seed)
            entry = {"task": task, "seed": game_seed}
            for mode in modes:
                paths = None if video is None else \
                    [str(Path(video) / f"{game}-{mode}-{i}.mp4") for i in range(episodes)]
                _, scores = learner.play(task, episodes, game_seed, greedy=mode == "greedy",
                                         max_steps=max_steps, video=paths)
                a = np.asarray(scores, dtype=np.float64)
                entry[mode] = {"scores": scores, "mean": float(a.mean()),
                               "std": float(a.std()), "min": float(a.min()),
                               "max": float(a.max())}
                if paths:
                    entry[mode]["videos"] = paths
            out["games"][game] = entry
        return out
    finally:
        learner.close()


def table(result: dict) -> str:
    seeds = "the run's evaluation seeds" if result["seed"] is None else f"seed {result['seed']}"
    head = (f"{result['run']} at {result['checkpoint']} (step {result['step']}; seen: "
            f"{', '.join(result['tasks_seen'])}); {result['episodes']} games each, cut at "
            f"{result['max_steps']} steps, {seeds}")
    rows = [("game", "mode", "mean", "std", "min", "max", "episodes")]
    for game, entry in result["games"].items():
        for mode in ("greedy", "sampled"):
            if mode in entry:
                m = entry[mode]
                rows.append((game, mode, f"{m['mean']:.2f}", f"{m['std']:.2f}",
                             f"{m['min']:.6g}", f"{m['max']:.6g}", str(len(m["scores"]))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join([head, "", lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main(args: argparse.Namespace, argv: list[str]) -> int:
    """train.py evaluate: play, print the table, write evaluation.json."""
    out = Path(args.out) if args.out else Path(args.run)
    for flag, d in (("--out", args.out), ("--video", args.video)):
        if d is not None and Path(d).exists() and not Path(d).is_dir():
            raise RunError(f"{flag} {d} is a file, not a folder: pass a folder")
    result = evaluate_run(args.run, args.checkpoint, args.games, args.episodes,
                          MODES[args.mode or "greedy"], args.max_steps, args.video, args.seed,
                          args.device)
    result["command_line"] = "python train.py " + shlex.join(argv)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "evaluation.json", result)
    print(table(result))
    print(f"\nevaluation.json in {out}" + (f"; videos in {args.video}" if args.video else ""))
    return 0
