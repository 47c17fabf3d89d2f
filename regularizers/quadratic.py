"""The common base of EWC, SI, MAS and RWALK: a quadratic penalty around an anchor.

All four add coef * sum_i Omega_i (theta_i - theta*_i)^2 over the trainable trunk parameters
(everything outside ``model.heads``) and differ only in how Omega is estimated and when the
anchor theta* moves.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Regularizer, trunk_named_parameters

# Per-sample gradients held at once by the vmap estimators (EWC's Fisher, MAS's importance):
# chunk * (#trunk weights) elements.
_CHUNK_ELEMENTS = 1 << 24


class _QuadraticPenalty(torch.autograd.Function):
    """sum_i w_i (theta_i - a_i)^2 and its gradient 2 w_i (theta_i - a_i), fused.

    The same value and gradient autograd would give for ``(w * (p - a).square()).sum()``, in
    three passes over the weights forward (sub, mul, dot) and one backward, instead of autograd's
    nine: the penalty runs every minibatch over every trunk weight (1.7M for the Nature CNN);
    bench/quadratic_penalty.py measures both forms (docs/RESULTS.md). Not twice
    differentiable."""

    @staticmethod
    def forward(ctx, w: list, anchor: list, *params: torch.Tensor) -> torch.Tensor:
        d = torch._foreach_sub(params, anchor)                 # theta - theta*
        wd = torch._foreach_mul(d, w)                          # w (theta - theta*)
        total = torch.zeros((), dtype=params[0].dtype, device=params[0].device)
        for x, y in zip(wd, d):
            total += torch.dot(x.reshape(-1), y.reshape(-1))
        ctx.wd = wd
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # d/dtheta = 2 w (theta - theta*); not in place, so that retain_graph keeps working
        return (None, None, *torch._foreach_mul(ctx.wd, 2.0 * grad))


class QuadraticRegularizer(Regularizer):
    """penalty = coef * sum_i Omega_i * (theta_i - theta*_i)^2 over the trainable trunk weights.

    State kept between tasks, and what ``memory_bytes`` counts: one importance Omega per trunk
    weight plus the anchor theta* (one float per trunk weight), i.e. 2 x (number of trunk
    weights) x element size, for EWC, SI and MAS; RWALK also carries its running Fisher and its
    averaged score from task to task (4 floats per weight). Accumulators that only live during a
    task (SI's path integral, RWALK's current-task score, per-step snapshots) are not counted,
    though ``state_dict`` saves them.

    Subclasses set ``self.coef`` and update ``self.importance``/``self.anchor`` in ``end_task``
    (then call ``self._consolidated(task)``). For methods that need the gradient of the task
    loss alone (SI, RWALK), ``_task_gradients()`` removes the penalty's own gradient from
    ``p.grad``: a hook on the tensor ``penalty()`` returns records the gradient s that backward
    actually sent into it (0 if it was never backpropagated, 1 for loss = task + penalty, the
    scale for a scaled loss), and s * 2 * coef * Omega * (theta - theta*) is subtracted. This
    assumes ``p.grad`` is not rescaled (e.g. clipped) between ``backward()`` and ``before_step()``.
    """

    coef: float = 0.0

    def __init__(self, model: nn.Module):
        super().__init__(model)
        named = [(n, p) for n, p in trunk_named_parameters(model) if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable trunk parameters to regularise")
        self.param_names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.importance = [torch.zeros_like(p).detach() for p in self.params]
        self.anchor = [p.detach().clone() for p in self.params]
        self.tasks_done = 0
        self._pen_scale: torch.Tensor | None = None
        self._refresh()

    # --- helpers ------------------------------------------------------------------------------
    def _zeros(self) -> list[torch.Tensor]:
        return [torch.zeros_like(p).detach() for p in self.params]

    def _current(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def _refresh(self) -> None:
        """Precompute coef * Omega so that ``penalty`` is one multiply-add per tensor."""
        self._w = [self.coef * imp for imp in self.importance]
        self._active = self.tasks_done > 0 and self.coef > 0

    def _consolidated(self, task: int) -> None:
        self.anchor = self._current()
        self.tasks_done += 1
        self.task = task
        self._refresh()

    def _task_gradients(self) -> list[torch.Tensor | None]:
        """d task_loss / d theta: ``p.grad`` minus the penalty's analytic gradient (if in it)."""
        scale, self._pen_scale = self._pen_scale, None
        out = []
        for p, w, a in zip(self.params, self._w, self.anchor):
            g = p.grad
            if g is None:
                out.append(None)
                continue
            g = g.detach()
            # always a fresh tensor: later in-place edits of p.grad (clipping) must not leak in
            g = g - (2.0 * scale) * w * (p.detach() - a) if scale is not None else g.clone()
            out.append(g)
        return out

    # --- hooks --------------------------------------------------------------------------------
    def penalty(self) -> torch.Tensor:
        if not self._active:
            return super().penalty()
        out = _QuadraticPenalty.apply(self._w, self.anchor, *self.params)
        if out.requires_grad:
            out.register_hook(self._record_penalty_grad)
        return out

    def _record_penalty_grad(self, grad: torch.Tensor) -> None:
        g = grad.detach()
        self._pen_scale = g if self._pen_scale is None else self._pen_scale + g

    def before_step(self) -> None:
        self._pen_scale = None

    @torch.no_grad()
    def _start_path_step(self, total: bool = False) -> None:
        """For path-integral methods (SI, RWALK): keep the task gradient (``total``: the
        penalised gradient ``p.grad`` as it is) and the weights before the optimizer step, in
        ``self._grads`` and ``self._prev``."""
        if total:
            self._pen_scale = None
            self._grads = [None if p.grad is None else p.grad.detach().clone()
                           for p in self.params]
        else:
            self._grads = self._task_gradients()
        for s, p in zip(self._prev, self.params):
            s.copy_(p)

    # --- measurements & persistence -----------------------------------------------------------
    def state_tensors(self) -> list[torch.Tensor]:
        return list(self.importance) + list(self.anchor)

    def _extra_state(self) -> dict[str, list[torch.Tensor]]:
        """Per-parameter accumulators of a subclass (name -> list aligned with ``params``)."""
        return {}

    def _set_extra_state(self, extra: dict[str, list[torch.Tensor]]) -> None:
        pass

    def state_dict(self) -> dict:
        lists = {"importance": self.importance, "anchor": self.anchor, **self._extra_state()}
        return {"task": self.task, "tasks_done": self.tasks_done,
                "param_names": list(self.param_names),
                "tensors": {k: [t.detach().clone() for t in v] for k, v in lists.items()}}

    def load_state_dict(self, state: dict) -> None:
        if list(state["param_names"]) != self.param_names:
            raise ValueError(f"{type(self).__name__} state does not match this model's trunk "
                             f"parameters (a checkpoint from another network?)")
        tensors = {}
        for key, ts in state["tensors"].items():
            if len(ts) != len(self.params) or any(
                    t.shape != p.shape for t, p in zip(ts, self.params)):
                raise ValueError(f"{type(self).__name__} state '{key}' does not match the shapes "
                                 f"of this model's trunk parameters")
            tensors[key] = [t.detach().to(device=p.device, dtype=p.dtype).clone()
                            for t, p in zip(ts, self.params)]
        self.task = state["task"]
        self.tasks_done = int(state["tasks_done"])
        self.importance = tensors.pop("importance")
        self.anchor = tensors.pop("anchor")
        self._set_extra_state(tensors)
        self._pen_scale = None
        self._refresh()
