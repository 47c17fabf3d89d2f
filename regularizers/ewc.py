"""EWC: Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017), offline and online.

Loss while learning task B after task A (Kirkpatrick et al., eq. 3):

    L(theta) = L_B(theta) + sum_i (lam / 2) * F_i * (theta_i - theta*_A,i)^2

with F the diagonal of the Fisher information at theta*_A, estimated from the gradients of the
task loss that ``loss_fn`` returns (a batch mean: for PPO the negative log-likelihood of the
policy's own sampled actions, for a classifier the cross-entropy), over one pass through the
task's batches, each split into chunks of ``fisher_batch`` samples:

    F = (1/N) * sum_c |c| * (d mean_loss_c / d theta)^2,     N = sum_c |c|

* ``fisher_batch=1`` (default): the per-sample empirical Fisher (1/N) sum_n (d loss_n/d theta)^2,
  the textbook EWC estimate (with actions sampled from the policy, as PPO's are, a Monte-Carlo
  estimate of the true Fisher). Computed with ``torch.func.vmap`` (per-sample autograd if the
  model cannot be traced).
* ``fisher_batch=k > 1``: squared gradients of k-sample means. E[|c| g_c^2] = |c| mu^2 + sigma^2,
  so near a minimum (mu ~ 0) this is ~1/k of the per-sample Fisher: the estimate's scale
  depends on k, and lam with it. The published code of the AGS-CL lab (``utils.
  fisher_matrix_diag``) used k = 20 (summing 20 * g_c^2 and dividing by N, i.e. this formula),
  so its supervised lam values go with ``fisher_batch=20`` (the vision presets set it).
* ``fisher_batch=0``: the batches as the learner gives them.

The model is put in eval mode while the Fisher is measured (dropout off, BatchNorm on its running
statistics) and restored afterwards; the lab measured it in train mode.

Several tasks (choices documented here, both with a single anchor theta* = the trunk after the
last task, the usual multi-head implementation that keeps one importance per weight):

* offline (``online=False``), two merge rules:
  - ``merge='sum'`` (default; Kirkpatrick et al.): F <- F_old + F_new, the sum of the per-task
    Fishers, so the penalty is sum_tasks (lam/2) F_task (theta - theta*)^2 with the latest anchor.
  - ``merge='mean'`` (the AGS-CL lab's code, ``update_fisher``): after the (t+1)-th task,
    F <- (F_new + t * F_old) / (t + 1), the running mean of the per-task Fishers. The penalty
    after t+1 tasks is 1/(t+1) of the sum rule's, so a lam tuned with one rule does not carry
    over to the other; the lab's published lam values (the vision presets) go with 'mean'.
* online (``online=True``, Schwarz et al., "Progress & Compress", ICML 2018, online EWC):
  F <- gamma * F_old + F_new with gamma in (0, 1]; gamma = 1 is the offline rule above.

Only the shared trunk is penalised: parameters inside ``model.heads`` never are.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, batch_size_of, check_range
from .quadratic import _CHUNK_ELEMENTS, QuadraticRegularizer


class _LossOf(nn.Module):
    """``loss_fn(model, batch)`` as a module holding ``model``, so that ``torch.func.
    functional_call`` can differentiate it with respect to the model's parameters."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, tupled: bool):
        super().__init__()
        self.model, self.loss_fn, self.tupled = model, loss_fn, tupled

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model, parts if self.tupled else parts[0])


class EWC(QuadraticRegularizer):
    """Elastic Weight Consolidation; see the module docstring for the formulas.

    lam >= 0: penalty strength (the 1/2 of eq. 3 is applied inside, coef = lam / 2).
    online: Schwarz et al.'s online EWC, F <- gamma * F_old + F_new (offline: gamma must be 1).
    merge: offline EWC's rule for several tasks, 'sum' (F_old + F_new) or 'mean' (running mean).
    gamma in (0, 1]: decay of the old Fisher in online EWC.
    fisher_batch >= 0: samples per gradient in the Fisher estimate (1: per sample; see above).
    """

    name = "ewc"
    HELP = {"lam": "EWC penalty strength (lam / 2 * F * (theta - theta*)^2)",
            "online": "EWC: online EWC (F <- gamma F_old + F_new)",
            "gamma": "online EWC: decay of the old Fisher in (0, 1]",
            "fisher_batch": "EWC: samples per gradient in the Fisher (1: per sample)",
            "merge": "offline EWC: per-task Fishers merged by 'sum' (Kirkpatrick et al.) or "
                     "'mean' (the AGS-CL lab's running mean)"}
    MERGES = ("sum", "mean")

    def __init__(self, model: nn.Module, lam: float = 5000.0, online: bool = False,
                 gamma: float = 1.0, fisher_batch: int = 1, merge: str = "sum"):
        self.lam = check_range("lam", lam, lo=0)
        self.gamma = check_range("gamma", gamma, lo=0, hi=1, lo_open=True)
        self.online = bool(online)
        if not self.online and self.gamma != 1.0:
            raise ValueError(f"hyperparameter gamma={gamma!r} only applies to online EWC "
                             f"(online=True, e.g. regularizer 'ewc_online'); offline EWC sums "
                             f"the per-task Fishers (gamma = 1)")
        if merge not in self.MERGES:
            raise ValueError(f"hyperparameter merge={merge!r} must be one of {self.MERGES}: "
                             f"'sum' adds the per-task Fishers, 'mean' averages them")
        if self.online and merge != "sum":
            raise ValueError(f"hyperparameter merge={merge!r} only applies to offline EWC; "
                             f"online EWC merges by F <- gamma * F_old + F_new")
        self.merge = merge
        if isinstance(fisher_batch, bool) or not float(check_range(
                "fisher_batch", fisher_batch, lo=0)).is_integer():
            raise ValueError(f"hyperparameter fisher_batch={fisher_batch!r} must be an integer "
                             f">= 0 (1: per-sample Fisher, k: k-sample means, 0: as batched)")
        self.fisher_batch = int(fisher_batch)
        self.coef = self.lam / 2.0
        super().__init__(model)
        self._use_vmap = True

    def _per_sample_sq_grads(self, batch, loss_fn: LossFn) -> list[torch.Tensor]:
        """sum over the batch's samples of (d loss_n / d theta)^2, by vmap over samples."""
        from torch.func import functional_call, grad, vmap
        tupled = isinstance(batch, (tuple, list))
        parts = tuple(batch) if tupled else (batch,)
        wrapper = _LossOf(self.model, loss_fn, tupled)
        names = [f"model.{n}" for n in self.param_names]

        def loss_one(params, *sample):
            return functional_call(wrapper, dict(zip(names, params)),
                                   tuple(t.unsqueeze(0) for t in sample))

        per_sample = vmap(grad(loss_one), in_dims=(None, *([0] * len(parts))))
        params = tuple(p.detach() for p in self.params)
        chunk = max(1, _CHUNK_ELEMENTS // max(sum(p.numel() for p in params), 1))
        sums = self._zeros()
        n = batch_size_of(batch)
        for i in range(0, n, chunk):
            with torch.no_grad():
                grads = per_sample(params, *(t[i:i + chunk] for t in parts))
            for s, g in zip(sums, grads):
                s.add_(g.detach().square().sum(0))
        return sums

    def _chunk_sq_grads(self, batch, loss_fn: LossFn, k: int) -> list[torch.Tensor]:
        """sum over chunks c of k samples of |c| * (d mean_loss_c / d theta)^2."""
        sums = self._zeros()
        n = batch_size_of(batch)
        for i in range(0, n, k):
            part = tuple(t[i:i + k] for t in batch) if isinstance(batch, (tuple, list)) \
                else batch[i:i + k]
            size = batch_size_of(part)
            grads = torch.autograd.grad(loss_fn(self.model, part), self.params,
                                        allow_unused=True)
            for s, g in zip(sums, grads):
                if g is not None:
                    s.add_(g.detach().square(), alpha=size)
        return sums

    def fisher(self, batches: Iterable[Batch], loss_fn: LossFn) -> list[torch.Tensor]:
        """(1/N) sum_c |c| g_c^2 over chunks c of ``fisher_batch`` samples; one pass."""
        sums = self._zeros()
        n = 0
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                for batch in batches:
                    size = batch_size_of(batch)
                    k = self.fisher_batch or size
                    part = None
                    if k == 1 and self._use_vmap:
                        try:
                            part = self._per_sample_sq_grads(batch, loss_fn)
                        except Exception:   # a model vmap cannot trace: per-sample autograd
                            self._use_vmap = False
                    if part is None:
                        part = self._chunk_sq_grads(batch, loss_fn, k)
                    for s, p in zip(sums, part):
                        s.add_(p)
                    n += size
        finally:
            self.model.train(was_training)
        if n == 0:
            raise ValueError("end_task got no batches: EWC needs the task's data to compute "
                             "the Fisher information")
        return [s / n for s in sums]

    @torch.no_grad()
    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        new = self.fisher(batches, loss_fn)
        if self.merge == "mean":    # F <- (F_new + t F_old) / (t + 1), t tasks merged so far
            t = self.tasks_done
            self.importance = [(fn + t * f) / (t + 1) for f, fn in zip(self.importance, new)]
        else:                       # F <- gamma F_old + F_new (offline: gamma = 1, the sum)
            self.importance = [self.gamma * f + fn for f, fn in zip(self.importance, new)]
        self._consolidated(task)
