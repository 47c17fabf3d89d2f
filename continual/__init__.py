"""The run: each command's config and flags, the wiring of learner and regularizer, the task
loop with its evaluation matrix, checkpoints, exact resume and logging, the run folder, and
``train.py evaluate``; ``report`` hands run folders to the analysis package."""
