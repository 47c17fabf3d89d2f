"""MAS: Memory Aware Synapses (Aljundi et al., ECCV 2018).

Importance of parameter theta_ij after a task with N samples x_k (eq. 2, with the global
squared-l2 output sensitivity of eq. 4):

    Omega_ij = (1/N) * sum_k | g_ij(x_k) |,    g_ij(x_k) = d [ l2^2(F(x_k; theta)) ] / d theta_ij

F(x; theta) is the output of the current task's head, ``model(x, task)``; when the model returns
a tuple of tensors (PPO: (logits, value)) the squared l2 norms of all outputs are summed. The
absolute value is taken per sample, as in the paper (computed with ``torch.func.vmap`` over the
samples, in chunks; the lab's code took |.| of the batch gradient of the un-squared norm, a
different quantity). The model is in eval mode for the measurement. No labels are used: only the
first element of each batch (the input x) is read, in one pass.

Several tasks: the importances accumulate, Omega <- Omega_old + Omega_new (the paper's
"accumulated" importance; the lab's code also summed), with one anchor theta* = the trunk after
the last task. Loss while learning a new task (eq. 3):

    L(theta) = L_n(theta) + lam * sum_ij Omega_ij * (theta_ij - theta*_ij)^2

without the 1/2 that the lab's code added (its lam = 3 is our lam = 1.5). lam >= 0, default 1.0.

``estimator='lab'`` measures Omega as the AGS-CL lab's code did (the vision presets use it, since
their lam was tuned for it): Omega_new = (1/N) sum_c | d [sum_{k in c} ||F(x_k)||_2] / d theta |
over chunks c of 20 samples -- the absolute value of a 20-sample sum of the gradients of the
*un-squared* norm. Its scale differs from the paper's estimate by a data-dependent factor.
Only the trunk (everything outside ``model.heads``) is regularised.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, check_range
from .quadratic import _CHUNK_ELEMENTS, QuadraticRegularizer


def _squared_output_norm(out) -> torch.Tensor:
    """Sum of squared l2 norms of a model output (a tensor or a tuple/list of tensors)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    tensors = [o for o in outs if isinstance(o, torch.Tensor)]
    if not tensors:
        raise TypeError(f"MAS needs model(x, task) to return a tensor or a tuple of tensors, "
                        f"got {type(out).__name__}")
    return torch.stack([o.square().sum() for o in tensors]).sum()


LAB_BATCH = 20


def _output_norms(out) -> torch.Tensor:
    """Per-sample l2 norm of a model output (over all its tensors' last dims)."""
    outs = out if isinstance(out, (tuple, list)) else (out,)
    sq = [o.reshape(o.shape[0], -1).square().sum(1) for o in outs if isinstance(o, torch.Tensor)]
    return torch.stack(sq).sum(0).sqrt()


class MAS(QuadraticRegularizer):
    name = "mas"
    HELP = {"lam": "MAS penalty strength", "estimator": "MAS importance: paper | lab"}

    def __init__(self, model: nn.Module, lam: float = 1.0, estimator: str = "paper"):
        self.lam = check_range("lam", lam, lo=0)
        if estimator not in ("paper", "lab"):
            raise ValueError(f"hyperparameter estimator={estimator!r} must be 'paper' "
                             f"(per-sample |grad of the squared output norm|) or 'lab' (the "
                             f"AGS-CL lab's code: |grad of the summed output norms| of "
                             f"{LAB_BATCH}-sample batches)")
        self.estimator = estimator
        self.coef = self.lam
        super().__init__(model)
        self._use_vmap = True

    def _lab_abs_grad_sum(self, x: torch.Tensor, task: int) -> list[torch.Tensor]:
        """sum over chunks c of 20 samples of | d sum_{k in c} ||F(x_k)||_2 / d theta |."""
        sums = self._zeros()
        for xc in x.split(LAB_BATCH):
            norms = _output_norms(self.model(xc, task))
            grads = torch.autograd.grad(norms.sum(), self.params, allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s.add_(g.abs())
        return sums

    # --- importance -------------------------------------------------------------------------
    def _abs_grad_sum_vmap(self, x: torch.Tensor, task: int) -> list[torch.Tensor]:
        from torch.func import functional_call, grad, vmap

        names = self.param_names

        def sq_norm(params, xi):
            out = functional_call(self.model, dict(zip(names, params)), (xi.unsqueeze(0), task))
            return _squared_output_norm(out)

        per_sample = vmap(grad(sq_norm), in_dims=(None, 0))
        params = tuple(p.detach() for p in self.params)
        numel = sum(p.numel() for p in self.params)
        chunk = max(1, _CHUNK_ELEMENTS // max(numel, 1))
        sums = self._zeros()
        for xc in x.split(chunk):
            with torch.no_grad():   # the transform still differentiates; no outer graph is kept
                grads = per_sample(params, xc)
            for s, g in zip(sums, grads):
                s.add_(g.detach().abs().sum(0))
        return sums

    def _abs_grad_sum_loop(self, x: torch.Tensor, task: int) -> list[torch.Tensor]:
        sums = self._zeros()
        for i in range(x.shape[0]):
            sq = _squared_output_norm(self.model(x[i:i + 1], task))
            grads = torch.autograd.grad(sq, self.params, allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s.add_(g.abs())
        return sums

    def abs_grad_sum(self, x: torch.Tensor, task: int) -> list[torch.Tensor]:
        """sum over the samples of x of |d ||F(x_k)||^2 / d theta| (per trunk tensor)."""
        if self.estimator == "lab":
            return self._lab_abs_grad_sum(x, task)
        if self._use_vmap:
            try:
                return self._abs_grad_sum_vmap(x, task)
            except Exception:       # a model vmap cannot trace: fall back to per-sample autograd
                self._use_vmap = False
        return self._abs_grad_sum_loop(x, task)

    def importance_of(self, task: int, batches: Iterable[Batch]) -> list[torch.Tensor]:
        """Omega_new = (1/N) sum_k |g(x_k)| over the task's inputs (eq. 2, 4), one pass."""
        sums = self._zeros()
        n = 0
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                for batch in batches:
                    x = batch[0] if isinstance(batch, (tuple, list)) else batch
                    for s, g in zip(sums, self.abs_grad_sum(x, task)):
                        s.add_(g)
                    n += int(x.shape[0])
        finally:
            self.model.train(was_training)
        if n == 0:
            raise ValueError("end_task got no batches: MAS needs the task's inputs to measure "
                             "the output sensitivity")
        return [s / n for s in sums]

    @torch.no_grad()
    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        new = self.importance_of(task, batches)
        self.importance = [old + nw for old, nw in zip(self.importance, new)]
        self._consolidated(task)
