"""The uniform-random policy's score on every MinAtar game, and the best constant action's:
the two floors against which docs/RESULTS.md reads whether PPO "learns" a game (MinAtar
publishes no random or human scores). A game whose best constant action scores as well as a
trained policy (Freeway: always "up") measures no capacity in a continual stream.

    python experiments/minatar_random.py                 # 100 full games per game
    python experiments/minatar_random.py --games Breakout,Seaquest --episodes 20

Each game is played with the evaluation protocol of the stream (envs/minatar.evaluate: sticky
actions, full games capped at --max-steps) with all-zero logits and sampled actions, i.e. a
uniform draw over the game's minimal action set. Games are played in batches of 50 seeded
seed, seed + 1000, ..., so the numbers are reproducible. Prints mean, std and a 95% interval of
the mean (normal approximation) per game, and returns them. The constant-action baseline
plays every action of the game's minimal set greedily in every step (the same games, seeds and
protocol) and reports the best one's score, with its action index.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from envs import minatar  # noqa: E402


def random_scores(game: str, episodes: int, max_steps: int, seed: int = 0,
                  batch: int = 50) -> np.ndarray:
    """``episodes`` scores of the uniform-random policy on ``game``."""
    n = minatar.num_actions(game)
    scores: list[float] = []
    for b in range(0, episodes, batch):
        k = min(batch, episodes - b)
        _, s = minatar.evaluate(lambda obs: np.zeros((len(obs), n), np.float32), game,
                                episodes=k, seed=seed + 1000 * (b // batch), greedy=False,
                                max_steps=max_steps)
        scores += s
    return np.asarray(scores)


def constant_scores(game: str, action: int, episodes: int, max_steps: int, seed: int = 0,
                    batch: int = 50) -> np.ndarray:
    """``episodes`` scores of the policy that always plays ``action`` (an index into the
    game's minimal action set) on ``game``."""
    n = minatar.num_actions(game)
    if not 0 <= action < n:
        raise ValueError(f"action {action} is not in {game}'s {n} actions")
    logits = np.full(n, -1e9, np.float32)
    logits[action] = 0.0
    scores: list[float] = []
    for b in range(0, episodes, batch):
        k = min(batch, episodes - b)
        _, s = minatar.evaluate(lambda obs: np.broadcast_to(logits, (len(obs), n)), game,
                                episodes=k, seed=seed + 1000 * (b // batch), greedy=True,
                                max_steps=max_steps)
        scores += s
    return np.asarray(scores)


def _summary(s: np.ndarray) -> dict:
    half = 1.96 * s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else float("nan")
    return {"mean": float(s.mean()), "std": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
            "ci95": [float(s.mean() - half), float(s.mean() + half)], "episodes": len(s)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--games", default=",".join(minatar.GAMES), help="comma-separated games")
    p.add_argument("--episodes", type=int, default=100, help="full games per game")
    p.add_argument("--max-steps", type=int, default=minatar.MAX_EPISODE_STEPS,
                   help="agent-step cap of a game")
    p.add_argument("--seed", type=int, default=0, help="seed of the first batch of games")
    p.add_argument("--constant", action="store_true",
                   help="also play every constant action and report the best one's score")
    a = p.parse_args(argv)
    out = {}
    for game in minatar.parse_games(a.games):
        r = out[game] = _summary(random_scores(game, a.episodes, a.max_steps, a.seed))
        print(f"{game:14s} random policy, {r['episodes']} games: mean {r['mean']:.2f} "
              f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}], std {r['std']:.2f}")
        if not a.constant:
            continue
        per_action = [_summary(constant_scores(game, k, a.episodes, a.max_steps, a.seed))
                      for k in range(minatar.num_actions(game))]
        best = max(range(len(per_action)), key=lambda k: per_action[k]["mean"])
        r["constant"] = {"best_action": best, **per_action[best],
                         "per_action": [c["mean"] for c in per_action]}
        c = r["constant"]
        print(f"{game:14s} best constant action {best} of {len(per_action)}: mean {c['mean']:.2f} "
              f"[{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]; every action: "
              + ", ".join(f"{m:.2f}" for m in c["per_action"]))
    return out


if __name__ == "__main__":
    main()
