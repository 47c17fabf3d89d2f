"""The hook interface every continual-learning regularizer implements.

Timing, as any trainer calls it (the trainer never knows which regularizer it runs):

    reg.begin_task(task)
    for each epoch:
        reg.begin_epoch(num_batches)           # optional knowledge of the epoch length
        for each minibatch:
            reg.begin_step(Step(...))          # the minibatch, the model's outputs, the optimizer
            loss = task_loss + reg.penalty()   # zero for AGS-CL and fine-tuning
            loss.backward()
            reg.before_step()                  # raw gradients (before any clipping)
            clip_grad_norm_(...)               # optional, the learner's business
            optimizer.step()
            reg.after_step(lr)                 # e.g. AGS-CL's proximal step, step size = lr
        reg.after_epoch(lr)                    # e.g. AGS-CL's proximal step once per epoch
    reg.end_task(task, batches, loss_fn)       # importance / Omega / re-initialisation

``begin_step`` is the step context: what a method that needs the data or the optimizer sees.
The base class keeps it in ``self.step`` for the step's other hooks (``penalty`` of a
distillation method reads ``self.step.inputs`` / ``.outputs``; ``after_step`` of a method that
resets weights reads ``self.step.optimizer`` to reset their moments). Methods that need neither
ignore it. ``NETWORK``: what a method needs the network built with (HAT: its gates), read by
whoever builds the model (``network_options`` in ``regularizers/__init__.py``).

Models are multi-head: ``model.heads`` is an ``nn.ModuleList`` with one head per task and
everything else is the shared trunk. Models are called as ``model(x, task)``; a batch
handed to ``end_task`` is a tuple whose first element is the input ``x``, and
``loss_fn(model, batch)`` returns the mean loss of that batch on the task being ended.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

Batch = tuple
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


@dataclass
class Step:
    """One minibatch step, as its hooks see it (``Regularizer.begin_step``)."""
    task: int
    inputs: Any                         # the minibatch's model inputs, as model(inputs, task)
    outputs: Any                        # the model's outputs on them (PPO: (logits, values);
                                        # supervised: logits), with their graph
    optimizer: torch.optim.Optimizer
    lr: float                           # the step size of this step


def trunk_named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Named parameters of the shared trunk: everything outside ``model.heads``."""
    if not isinstance(getattr(model, "heads", None), nn.ModuleList):
        raise ValueError(
            "model has no `heads` nn.ModuleList: continual models must keep their per-task "
            "output layers in `model.heads` (everything else is the shared trunk)")
    head_ids = {id(p) for p in model.heads.parameters()}
    return [(n, p) for n, p in model.named_parameters() if id(p) not in head_ids]


def batch_size_of(batch: Batch) -> int:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(x.shape[0])


def check_range(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    """Raise ValueError naming the bad hyperparameter and its accepted range."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"hyperparameter {name}={value!r} is not a number") from None
    bad = (v != v
           or (lo is not None and (v <= lo if lo_open else v < lo))
           or (hi is not None and (v >= hi if hi_open else v > hi)))
    if bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"hyperparameter {name}={value!r} is outside its accepted range "
                         f"{left}{lo_s}, {hi_s}{right}")
    return v


def check_int(name: str, value, lo: int) -> int:
    """Raise ValueError naming the hyperparameter unless it is an integer >= ``lo``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value \
            or int(value) < lo:
        raise ValueError(f"hyperparameter {name}={value!r} must be an integer >= {lo}")
    return int(value)


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


class Regularizer:
    """Base class: every hook is a no-op, so plain fine-tuning is this class itself."""

    name = "base"
    HELP: dict[str, str] = {}    # hyperparameter -> its meaning (shown by the CLI's --help)
    NETWORK: dict[str, Any] = {}    # what the method needs the network built with (HAT: gates)

    def __init__(self, model: nn.Module):
        self.model = model
        self.task: int | None = None
        self.step: Step | None = None

    # --- hooks -------------------------------------------------------------------------
    def begin_task(self, task: int) -> None:
        self.task = task

    def begin_epoch(self, num_batches: int | None = None) -> None:
        pass

    def begin_step(self, step: Step) -> None:
        """The step context of the coming minibatch step, before ``penalty``."""
        self.step = step

    def penalty(self) -> torch.Tensor:
        p = next(self.model.parameters())
        return torch.zeros((), device=p.device, dtype=p.dtype)

    def before_step(self) -> None:
        pass

    def after_step(self, lr: float) -> None:
        pass

    def after_epoch(self, lr: float) -> None:
        pass

    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        pass

    # --- measurements ------------------------------------------------------------------
    def task_metrics(self) -> dict[str, float]:
        """Per-task measurements after ``end_task`` (AGS-CL: sparsity, used_capacity)."""
        return {}

    def memory_bytes(self) -> int:
        """Bytes of regularisation state the method keeps between tasks (Analysis 3)."""
        return tensor_bytes(self.state_tensors())

    def state_tensors(self) -> list[torch.Tensor]:
        return []

    # --- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"task": self.task}

    def load_state_dict(self, state: dict) -> None:
        self.task = state.get("task")
