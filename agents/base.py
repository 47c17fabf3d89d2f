"""The contract between a learner (one task's training) and the continual trainer.

The trainer (``continual/trainer.py``) owns the task loop, evaluation matrix, logging, run
folder and checkpoints; the learner owns the model, the optimizer and one task's training.
Training is cut into *units* (one PPO iteration = rollout + update epochs; one supervised
epoch) so the trainer can checkpoint, evaluate and resume between them.

Trainer loop, for task t:
    learner.begin_task(t); reg.begin_task(t)
    [on resume: learner.load_state_dict(...); reg.load_state_dict(...)]
    for unit in range(start, learner.units_per_task(t)):
        scalars = learner.train_unit(t, unit, reg)    # calls reg.penalty/before_step/after_step/...
        every few units: learner.evaluate(j) for j <= t; checkpoint; learner.checkpoint_boundary()
    learner.end_task(t)                               # e.g. restore best-validation weights
    batches, loss_fn = learner.importance_data(t)
    reg.end_task(t, batches, loss_fn)
    row = [learner.evaluate(j) for j in range(t + 1)]
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Learner(Protocol):
    model: nn.Module            # multi-head: model.heads[t]; called as model(x, t)
    task_names: list[str]       # one name per task of the stream
    matrix_key: str             # "reward_matrix" (RL) or "accuracy_matrix" (supervised)

    def units_per_task(self, task: int) -> int:
        """How many ``train_unit`` calls make up task ``task``."""

    def steps_per_unit(self, task: int) -> int:
        """Progress counted per unit (env steps for RL, training samples for supervised)."""

    def begin_task(self, task: int) -> None:
        """Prepare the task (fresh optimizer, schedules). Must not consume randomness that an
        interrupted-and-resumed run would not consume identically."""

    def train_unit(self, task: int, unit: int, reg: Any) -> dict[str, float]:
        """Train one unit, calling the regularizer hooks; return scalars to log (the trainer
        prefixes them with ``train/``). Keys ``episode_return`` (RL) or ``val_loss`` feed the
        progress bar. Raise ``FloatingPointError`` on a NaN/inf loss."""

    def end_task(self, task: int) -> None:
        """Finish the task's training (supervised: restore the best-validation weights)."""

    def importance_data(self, task: int) -> tuple[Iterable[tuple], Callable[[nn.Module, tuple], torch.Tensor]]:
        """(batches, loss_fn) for ``reg.end_task``: batches are tuples whose first element is
        the model input; ``loss_fn(model, batch)`` is the batch's mean loss on ``task``."""

    def evaluate(self, task: int) -> dict[str, float]:
        """Evaluate on task ``task``; key ``score`` is the headline number (mean raw game
        score, or test accuracy in [0, 1]); other keys become extra matrices."""

    def checkpoint_boundary(self) -> None:
        """Called right after every checkpoint, in interrupted and uninterrupted runs alike, so
        that state a checkpoint cannot hold (e.g. running emulators) restarts identically."""

    def checkpoint_anywhere(self) -> bool:
        """True when ``checkpoint_boundary`` changes nothing, so that a checkpoint after any
        unit leaves the run as it was: Ctrl-C then saves after the current unit instead of
        training on to the next periodic checkpoint."""

    def extra_results(self) -> dict[str, Any]:
        """Anything the learner wants in results.json (e.g. SPS)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...
