"""Learners: one task's training (PPO on Atari or MinAtar, supervised classification), driven by
the shared continual trainer in ``continual/``. Learners hand numbers and state back to the
trainer; the one file they write is a video, at a path the trainer or `train.py evaluate`
gives."""
