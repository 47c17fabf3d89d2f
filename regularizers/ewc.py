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

* offline (default, ``online=False``): F <- F_old + F_new, the sum of the per-task Fishers, so the
  penalty is sum_tasks (lam/2) F_task (theta - theta*)^2 with the latest anchor. (The lab's code
  averaged instead, F <- (F_new + t * F_old) / (t + 1); that only rescales lam by ~1/(t+1).)
* online (``online=True``, Schwarz et al., "Progress & Compress", ICML 2018, online EWC):
  F <- gamma * F_old + F_new with gamma in (0, 1]; gamma = 1 is the offline rule above.

Only the shared trunk is penalised: parameters inside ``model.heads`` never are.

This module also holds ``QuadraticRegularizer``, the common base of EWC, SI, MAS and RWALK:
all four add coef * sum_i Omega_i (theta_i - theta*_i)^2 over the trainable trunk parameters
and differ only in how Omega is estimated.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, Regularizer, batch_size_of, check_range, trunk_named_parameters

_CHUNK_ELEMENTS = 1 << 24       # per-sample gradients held at once: chunk * (#trunk weights)


class _LossOf(nn.Module):
    """``loss_fn(model, batch)`` as a module holding ``model``, so that ``torch.func.
    functional_call`` can differentiate it with respect to the model's parameters."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, tupled: bool):
        super().__init__()
        self.model, self.loss_fn, self.tupled = model, loss_fn, tupled

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model, parts if self.tupled else parts[0])


class _QuadraticPenalty(torch.autograd.Function):
    """sum_i w_i (theta_i - a_i)^2 and its gradient 2 w_i (theta_i - a_i), fused.

    The same value and gradient autograd would give for ``(w * (p - a).square()).sum()``, in
    three passes over the weights forward (sub, mul, dot) and one backward, instead of autograd's
    nine: the penalty runs every minibatch over every trunk weight (1.7M for the Nature CNN);
    bench/quadratic_penalty.py measures both forms (docs/RESULTS.md section 2). Not twice
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
    def _start_path_step(self) -> None:
        """For path-integral methods (SI, RWALK): keep the task gradient and the weights
        before the optimizer step, in ``self._grads`` and ``self._prev``."""
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


class EWC(QuadraticRegularizer):
    """Elastic Weight Consolidation; see the module docstring for the formulas.

    lam >= 0: penalty strength (the 1/2 of eq. 3 is applied inside, coef = lam / 2).
    online: Schwarz et al.'s online EWC, F <- gamma * F_old + F_new (offline: gamma must be 1).
    gamma in (0, 1]: decay of the old Fisher in online EWC.
    fisher_batch >= 0: samples per gradient in the Fisher estimate (1: per sample; see above).
    """

    name = "ewc"

    def __init__(self, model: nn.Module, lam: float = 5000.0, online: bool = False,
                 gamma: float = 1.0, fisher_batch: int = 1):
        self.lam = check_range("lam", lam, lo=0)
        self.gamma = check_range("gamma", gamma, lo=0, hi=1, lo_open=True)
        self.online = bool(online)
        if not self.online and self.gamma != 1.0:
            raise ValueError(f"hyperparameter gamma={gamma!r} only applies to online EWC "
                             f"(online=True, e.g. regularizer 'ewc_online'); offline EWC sums "
                             f"the per-task Fishers (gamma = 1)")
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
        self.importance = [self.gamma * f + fn for f, fn in zip(self.importance, new)]
        self._consolidated(task)
