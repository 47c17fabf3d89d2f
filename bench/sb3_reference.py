"""Reference point for bench/atari_sps.py: Stable-Baselines3's PPO on the same machine.

Issue #3 quotes "a popular PyTorch PPO library" at 317 env steps per second with the `cpu`
preset's shape. This runs Stable-Baselines3 (the most used PyTorch PPO library) with that
shape, so our SPS can be compared with it on the *same* box instead of against a number
measured elsewhere:

    8 envs x 128 steps, 4 epochs x 4 minibatches of 256, Nature CNN (SB3's CnnPolicy),
    SB3's standard Atari wrappers (noop 30, frame skip 4 with max-pool, 84x84 grey,
    episodic life, fire reset, reward clipping) and a 4-frame stack, DummyVecEnv.

Stable-Baselines3 is not a dependency of this project; install it in a separate environment:

    python -m venv /tmp/sb3 && /tmp/sb3/bin/pip install torch==2.13.0 stable-baselines3 \
        ale-py==0.12.1 opencv-python-headless
    OMP_WAIT_POLICY=PASSIVE /tmp/sb3/bin/python bench/sb3_reference.py --threads 2

SPS is env steps (agent steps, 4 frames each) per second of `learn()`, after a warm-up
iteration, the same definition as bench/atari_sps.py.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from atari_sps import loadavg, machine  # noqa: E402  (also sets OMP_WAIT_POLICY=PASSIVE)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--game", default="Boxing")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=4,
                   help="timed PPO iterations (1024 env steps each), after one warm-up")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    try:
        import ale_py
        import gymnasium as gym
        import torch
        from stable_baselines3 import PPO
        import stable_baselines3
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError as e:
        sys.exit(f"bench/sb3_reference.py needs stable-baselines3 and opencv in its environment "
                 f"({e}); see this file's docstring for the install command")
    gym.register_envs(ale_py)
    torch.set_num_threads(args.threads)

    class IterTimer(BaseCallback):
        """Time stamps at the start of each rollout (= the end of the previous update)."""
        def __init__(self):
            super().__init__()
            self.stamps: list[float] = []

        def _on_rollout_start(self) -> None:
            self.stamps.append(time.perf_counter())

        def _on_step(self) -> bool:
            return True

    print(f"command: python bench/sb3_reference.py {' '.join(sys.argv[1:])}")
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, SIMD {' '.join(m['simd'])}, torch "
          f"{m['torch']} ({m['torch_threads']} threads, OMP_WAIT_POLICY={m['omp_wait_policy']}), "
          f"stable-baselines3 {stable_baselines3.__version__}, ale-py {m['ale_py']}")
    print(f"load average before: {loadavg()}")
    steps_per_iter = 8 * 128
    results = []
    for r in range(args.repeats):
        env = VecFrameStack(make_atari_env(f"ALE/{args.game}-v5", n_envs=8, seed=r,
                                           vec_env_cls=DummyVecEnv,
                                           env_kwargs=dict(frameskip=1,
                                                           repeat_action_probability=0.0)),
                            n_stack=4)
        model = PPO("CnnPolicy", env, n_steps=128, batch_size=256, n_epochs=4,
                    learning_rate=2.5e-4, clip_range=0.1, ent_coef=0.01, vf_coef=0.5,
                    gae_lambda=0.95, gamma=0.99, max_grad_norm=0.5, seed=r, verbose=0,
                    device="cpu")
        timer = IterTimer()
        model.learn(total_timesteps=steps_per_iter * (args.iterations + 1), callback=timer)
        end = time.perf_counter()
        stamps = timer.stamps + [end]
        per_iter = [b - a for a, b in zip(stamps[1:], stamps[2:])]   # skip the warm-up
        sps = steps_per_iter * len(per_iter) / sum(per_iter)
        results.append(sps)
        print(f"  repeat {r}: {' '.join(f'{steps_per_iter / t:.0f}' for t in per_iter)} SPS "
              f"per iteration; overall {sps:.1f} SPS")
        env.close()
    results.sort()
    print(f"SB3 PPO ({args.game}, 8x128, 4x4 minibatches of 256, NatureCNN): "
          f"median {results[len(results) // 2]:.0f} SPS, best {results[-1]:.0f}")
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
