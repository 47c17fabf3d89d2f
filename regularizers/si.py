"""SI: Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017).

While task mu is trained, every parameter k accumulates its path integral of the task loss
(section 3 of the paper), discretised over optimizer steps:

    omega_k^mu = - integral g_k(theta(t)) * theta_k'(t) dt  ~=  sum_steps - g_k * delta_theta_k

where delta_theta_k is the change that ``optimizer.step()`` makes (parameters are snapshot in
``before_step`` and differenced in ``after_step``) and g is, by ``path_gradient``:

* ``'task'`` (default; the paper and its code): the gradient of the *unregularised* task loss.
  Gradients read in ``before_step`` contain the penalty's gradient 2 c Omega (theta - theta~)
  whenever ``penalty()`` was backpropagated; it is subtracted analytically
  (``QuadraticRegularizer._task_gradients``), so no second backward pass is needed.
* ``'total'`` (the AGS-CL lab's SI code, for which its c values were tuned; the vision presets
  use it): the gradient of the penalised loss, ``p.grad`` as backward left it.

At the end of task mu (eq. 5):

    Omega_k^mu = sum_{nu < mu} omega_k^nu / ((Delta_k^nu)^2 + xi),
    Delta_k^nu = theta_k(end of task nu) - theta_k(end of task nu-1)

i.e. Omega += omega / (Delta^2 + epsilon), omega reset to 0, anchor theta~ = current weights, and
task mu+1 minimises the surrogate loss (eq. 4):

    L~_mu = L_mu + c * sum_k Omega_k^mu * (theta~_k - theta_k)^2

Hyperparameters: c >= 0 (default 1.0), epsilon = xi > 0 (default 0.01, the AGS-CL lab's value),
path_gradient 'task' or 'total' (above).
Omega is not clipped at 0 (the lab's code did not clip either). Delta^nu is measured from
the weights at the start of the task (the anchor; for the first task, the weights at
``begin_task``). Only the trunk (everything outside ``model.heads``) is regularised.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, check_range
from .quadratic import QuadraticRegularizer


class SI(QuadraticRegularizer):
    name = "si"
    HELP = {"c": "SI penalty strength c", "epsilon": "SI damping xi of the importance",
            "path_gradient": "SI: the path integral's gradient, 'task' (unregularised loss, "
                             "the paper) or 'total' (penalised loss, the AGS-CL lab's code)"}
    PATH_GRADIENTS = ("task", "total")

    def __init__(self, model: nn.Module, c: float = 1.0, epsilon: float = 0.01,
                 path_gradient: str = "task"):
        if path_gradient not in self.PATH_GRADIENTS:
            raise ValueError(f"hyperparameter path_gradient={path_gradient!r} must be one of "
                             f"{self.PATH_GRADIENTS}: 'task' excludes the penalty's gradient "
                             f"(Zenke et al.), 'total' includes it (the AGS-CL lab's code)")
        self.path_gradient = path_gradient
        self.c = check_range("c", c, lo=0)
        self.epsilon = check_range("epsilon", epsilon, lo=0, lo_open=True)
        self.coef = self.c
        super().__init__(model)
        self.omega = self._zeros()                  # path integral of the current task
        self._prev = self._zeros()                  # weights before the optimizer step
        self._grads: list[torch.Tensor | None] | None = None

    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        for w in self.omega:
            w.zero_()
        if self.tasks_done == 0:        # the path of the first task starts here
            self.anchor = self._current()
            self._refresh()

    def before_step(self) -> None:
        self._start_path_step(total=self.path_gradient == "total")

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        if self._grads is None:
            return
        for w, g, p, s in zip(self.omega, self._grads, self.params, self._prev):
            if g is not None:
                w.sub_(g * (p - s))                 # omega += -g * delta_theta
        self._grads = None

    @torch.no_grad()
    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        for imp, w, p, a in zip(self.importance, self.omega, self.params, self.anchor):
            imp.add_(w / ((p - a).square() + self.epsilon))
            w.zero_()
        self._consolidated(task)

    def _extra_state(self) -> dict[str, list[torch.Tensor]]:
        return {"omega": self.omega}

    def _set_extra_state(self, extra: dict[str, list[torch.Tensor]]) -> None:
        self.omega = extra["omega"]
        self._grads = None
