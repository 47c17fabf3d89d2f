"""Learners: one task's training (PPO on Atari, supervised classification), driven by the
shared continual trainer in ``continual/``. Learners hand numbers and state back to the
trainer; they never write files."""
