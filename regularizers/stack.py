"""A stack: one stability method and any plasticity methods in one run, e.g. ``ewc+redo`` or
``agscl+snp+l2init`` (``regularizers.make``). Every hook calls the stability method first, then
the plasticity methods in the order written; ``penalty`` is their sum. So after an optimizer
step AGS-CL's proximal step acts before ReDo recycles (a recycled unit starts fresh, not
shrunk), and at a task's end the stability method takes its importance and anchor from the
weights as trained, before Shrink & Perturb moves them.

Each method keeps its own hyperparameters; in a run's config and on the command line a
plasticity method's carry its name (``redo_tau``, ``l2init_lam``, ...), so that EWC's ``lam`` and
L2 Init's ``lam`` are different settings. ``task_metrics`` prefixes a plasticity method's
metrics with its name the same way. State is saved per method."""
from __future__ import annotations

import torch

from .base import Regularizer, Step


class Stack(Regularizer):
    def __init__(self, methods: list[Regularizer]):
        super().__init__(methods[0].model)
        self.methods = methods
        self.NETWORK = {k: v for m in methods for k, v in m.NETWORK.items()}

    def _each(self, hook: str, *args) -> None:
        for m in self.methods:
            getattr(m, hook)(*args)

    def begin_task(self, task):
        super().begin_task(task)
        self._each("begin_task", task)

    def begin_epoch(self, num_batches=None):
        self._each("begin_epoch", num_batches)

    def begin_step(self, step: Step):
        super().begin_step(step)
        self._each("begin_step", step)

    def penalty(self) -> torch.Tensor:
        total = self.methods[0].penalty()
        for m in self.methods[1:]:
            total = total + m.penalty()
        return total

    def before_step(self):
        self._each("before_step")

    def after_step(self, lr):
        self._each("after_step", lr)

    def after_epoch(self, lr):
        self._each("after_epoch", lr)

    def end_task(self, task, batches, loss_fn):
        batches = list(batches)            # every method reads the same importance data
        self._each("end_task", task, batches, loss_fn)
        self.task = task

    def task_metrics(self) -> dict[str, float]:
        out = dict(self.methods[0].task_metrics())
        for m in self.methods[1:]:
            out.update({f"{m.name}_{k}": v for k, v in m.task_metrics().items()})
        return out

    def memory_bytes(self) -> int:
        return sum(m.memory_bytes() for m in self.methods)

    def state_tensors(self):
        return [t for m in self.methods for t in m.state_tensors()]

    def state_dict(self) -> dict:
        return {"task": self.task, "methods": [m.state_dict() for m in self.methods]}

    def load_state_dict(self, state: dict) -> None:
        self.task = state["task"]
        for m, s in zip(self.methods, state["methods"]):
            m.load_state_dict(s)

