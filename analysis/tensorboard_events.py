"""Reading a run's TensorBoard events (its ``tb/`` folder) back as plain lists. (Not named
``tensorboard.py``: that would shadow the tensorboard package for a script run from here.)"""
from __future__ import annotations

import logging
from pathlib import Path


def load_scalars(run_path: str, tags: list[str] | None = None) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of a run's TensorBoard scalars (all tags if ``tags`` is None);
    {} if the run has no ``tb/`` folder. A resumed run's events after its checkpoint were
    re-done: TensorBoard keeps the re-done ones."""
    tb = Path(run_path) / "tb"
    if not tb.is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    log = logging.getLogger("tensorboard")
    level = log.level
    log.setLevel(logging.ERROR)    # a resumed run's purge of the steps after its checkpoint is
    try:                           # expected, not the "out of order event" it warns about
        ea.Reload()
    finally:
        log.setLevel(level)
    have = ea.Tags().get("scalars", [])
    return {t: [(e.step, e.value) for e in ea.Scalars(t)] for t in have
            if tags is None or t in tags}


def training_returns(run_path: str) -> list[tuple[int, float, float]]:
    """(step, mean raw score, games) of the training games that ended in each PPO unit, from the
    run's TensorBoard events (``train/episode_return``, ``train/episodes``); [] if none."""
    sc = load_scalars(run_path, ["train/episode_return", "train/episodes"])
    if "train/episode_return" not in sc:
        return []
    games = dict(sc.get("train/episodes", []))
    ret = dict(sc["train/episode_return"])                                  # a step once
    return [(s, ret[s], games.get(s, 1.0)) for s in sorted(ret)]
