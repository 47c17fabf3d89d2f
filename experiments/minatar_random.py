"""The uniform-random policy's score on every MinAtar game: the floor against which
docs/RESULTS.md section 9 reads whether PPO "learns" a game (MinAtar publishes no random or
human scores).

    python experiments/minatar_random.py                 # 100 full games per game
    python experiments/minatar_random.py --games Breakout,Seaquest --episodes 20

Each game is played with the evaluation protocol of the stream (envs/minatar.evaluate: sticky
actions, full games capped at --max-steps) with all-zero logits and sampled actions, i.e. a
uniform draw over the game's minimal action set. Games are played in batches of 50 seeded
seed, seed + 1000, ..., so the numbers are reproducible. Prints mean, std and a 95% interval of
the mean (normal approximation) per game, and returns them.
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


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--games", default=",".join(minatar.GAMES), help="comma-separated games")
    p.add_argument("--episodes", type=int, default=100, help="full games per game")
    p.add_argument("--max-steps", type=int, default=minatar.MAX_EPISODE_STEPS,
                   help="agent-step cap of a game")
    p.add_argument("--seed", type=int, default=0, help="seed of the first batch of games")
    a = p.parse_args(argv)
    out = {}
    for game in minatar.parse_games(a.games):
        s = random_scores(game, a.episodes, a.max_steps, a.seed)
        half = 1.96 * s.std(ddof=1) / np.sqrt(len(s)) if len(s) > 1 else float("nan")
        out[game] = {"mean": float(s.mean()), "std": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
                     "ci95": [float(s.mean() - half), float(s.mean() + half)],
                     "episodes": len(s)}
        print(f"{game:14s} random policy, {len(s)} games: mean {s.mean():.2f} "
              f"[{s.mean() - half:.2f}, {s.mean() + half:.2f}], std {out[game]['std']:.2f}")
    return out


if __name__ == "__main__":
    main()
