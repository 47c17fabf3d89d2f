"""The shared continual trainer: task loop, evaluation matrix, metrics, run folder, logging,
checkpoints and reports, for every learner (PPO on Atari, supervised classifiers)."""
