"""The contract between a learner (one task's training) and the continual trainer, and the one
minibatch step both learners share.

The trainer (``continual/trainer.py``) owns the task loop, evaluation matrix, logging, run
folder and checkpoints; the learner owns the model, the optimizer and one task's training.
Training is cut into *units* (one PPO iteration = rollout + update epochs; one supervised
epoch) so the trainer can checkpoint, evaluate and resume between them.

Trainer loop, for task t:
    learner.begin_task(t); reg.begin_task(t)
    [on resume: learner.load_state_dict(...); reg.load_state_dict(...)]
    for unit in range(start, learner.units_per_task(t)):
        scalars = learner.train_unit(t, unit, reg)    # calls the regularizer's hooks
        every few units: learner.evaluate(j) for j <= t; checkpoint (learner.state_dict())
    learner.end_task(t)                               # e.g. restore best-validation weights
    batches, loss_fn = learner.importance_data(t)
    reg.end_task(t, batches, loss_fn)
    row = [learner.evaluate(j) for j in range(t + 1)]

A checkpoint may come after any unit: ``state_dict`` must hold everything the rest of the run
depends on, so that a resumed run repeats the uninterrupted one exactly.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, runtime_checkable

import torch
from torch import nn


def minibatch_step(task_loss: torch.Tensor, reg, optimizer: torch.optim.Optimizer,
                   params, lr: float, max_grad_norm: float | None = None):
    """One optimizer step with the regularizer's hooks in their documented order
    (``regularizers/base.py``): loss = task loss + reg.penalty(); backward;
    reg.before_step() (raw gradients); clip the gradient norm; step; reg.after_step(lr)
    (AGS-CL's proximal step, alpha = lr). Returns (loss, penalty, gradient norm or None)."""
    penalty = reg.penalty()
    loss = task_loss + penalty
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    reg.before_step()
    grad_norm = nn.utils.clip_grad_norm_(params, max_grad_norm) if max_grad_norm else None
    optimizer.step()
    reg.after_step(lr)
    return loss, penalty, grad_norm


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
        prefixes them with ``train/``). Keys ``episode_return`` (RL) or ``val_accuracy`` feed
        the progress bar. Raise ``FloatingPointError`` on a NaN/inf loss."""

    def end_task(self, task: int) -> None:
        """Finish the task's training (supervised: restore the best-validation weights)."""

    def importance_data(self, task: int) -> tuple[Iterable[tuple], Callable[[nn.Module, tuple], torch.Tensor]]:
        """(batches, loss_fn) for ``reg.end_task``: batches are tuples whose first element is
        the model input; ``loss_fn(model, batch)`` is the batch's mean loss on ``task``."""

    def evaluate(self, task: int) -> dict[str, float]:
        """Evaluate on task ``task``; key ``score`` is the headline number (mean raw game
        score, or test accuracy in [0, 1]); other keys become extra matrices."""

    def extra_results(self) -> dict[str, Any]:
        """Anything the learner wants in results.json (e.g. SPS)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...
