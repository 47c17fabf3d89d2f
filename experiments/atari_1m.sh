#!/usr/bin/env bash
# The ~1M-steps-per-game continual Atari result of issue #3 (docs/RESULTS.md section 3):
# experiments/atari_cpu.sh with 1,000,000 steps per game into runs/atari-1m and the evaluation
# settings of that run (5 full games per seen game every 100k steps, capped at 4500 agent steps;
# a checkpoint every 10 PPO iterations). About 3 h per method per game on the 2-core box with the
# three methods in parallel, so it spans sessions: re-run this same command to resume (the
# settings must stay the same, or --resume refuses); a run folder in use by a still-running
# process is refused, not shared.
set -euo pipefail
cd "$(dirname "$0")/.."
export EXTRA="--eval-episodes 5 --eval-max-steps 4500 --eval-every 100000 --checkpoint-every 10 --threads 1 --env-threads 1"
exec bash experiments/atari_cpu.sh 1000000 runs/atari-1m
