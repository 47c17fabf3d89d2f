"""RWALK: Riemannian Walk (Chaudhry, Dokania, Ajanthan & Torr, ECCV 2018).

Every optimizer step t (g_t = gradient of the unregularised task loss read in ``before_step``,
delta_t = the change made by ``optimizer.step()``):

  * online empirical Fisher, EWC++ (eq. 6):  F^t = alpha * g_t^2 + (1 - alpha) * F^{t-1}
    (a moving average over minibatch gradients, never reset between tasks);
  * KL-weighted path score (eq. 7):
        s(theta_i) += -g_t,i * delta_t,i / (1/2 * F^t_i * delta_t,i^2 + epsilon)
    (numerator: the loss decrease due to theta_i, as in SI; denominator: the KL divergence the
    move causes, with the Fisher F^t that includes step t, as in the lab's code).

At the end of task k: the task's score is clipped at 0 ("negative scores are set to zero"),
averaged with the previous tasks' score, s <- (s_old + s_new) / 2 (the rule after eq. 8; the first
task's score is taken as is), and, with ``normalize=True`` (default, the paper's requirement that
the two terms be commensurate), F and s are each scaled into [0, 1] by their maximum over all trunk
weights. The next task minimises (eq. 8):

    L~(theta) = L(theta) + lam * sum_i (F_i + s_i) * (theta_i - theta*_i)^2

with theta* = the trunk after task k. Gradients read in ``before_step`` contain the penalty's
gradient 2 lam (F + s)(theta - theta*) when ``penalty()`` was backpropagated; it is subtracted
analytically (``QuadraticRegularizer._task_gradients``), so the Fisher and the score see the task
loss only, like the authors' code (its "vanilla gradients").

Hyperparameters: lam >= 0 (default 1.0), alpha in (0, 1] (default 0.9, the paper's and the
lab's value), epsilon > 0 (default 0.01, the AGS-CL lab's value; the authors' TF code used 1e-3),
normalize (default True; the AGS-CL lab's PyTorch code did not normalise, clip or double the first
score, so its lam = 8 / 4 / 3000 / 300 belong with ``normalize=False``). Only the trunk
(everything outside ``model.heads``) is regularised.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, check_range
from .quadratic import QuadraticRegularizer


def _scaled_by_max(ts: list[torch.Tensor]) -> list[torch.Tensor]:
    """ts / max over all entries of all tensors (unchanged when that max is not positive)."""
    m = torch.stack([t.max() for t in ts]).max()
    if not bool(m > 0):
        return [t.clone() for t in ts]
    return [t / m for t in ts]


class RWALK(QuadraticRegularizer):
    name = "rwalk"
    HELP = {"lam": "RWALK penalty strength", "alpha": "RWALK EWC++ Fisher update rate in (0, 1]",
            "epsilon": "RWALK damping of the path score",
            "normalize": "RWALK: normalise the Fisher and the scores (the paper)"}

    def __init__(self, model: nn.Module, lam: float = 1.0, alpha: float = 0.9,
                 epsilon: float = 0.01, normalize: bool = True):
        self.lam = check_range("lam", lam, lo=0)
        self.alpha = check_range("alpha", alpha, lo=0, hi=1, lo_open=True)
        self.epsilon = check_range("epsilon", epsilon, lo=0, lo_open=True)
        self.normalize = bool(normalize)
        self.coef = self.lam
        super().__init__(model)
        self.fisher = self._zeros()          # running Fisher F^t (eq. 6)
        self.path = self._zeros()            # score of the current task so far (eq. 7)
        self.score = self._zeros()           # averaged score of the finished tasks
        self._prev = self._zeros()
        self._grads: list[torch.Tensor | None] | None = None

    def before_step(self) -> None:
        self._start_path_step()

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        if self._grads is None:
            return
        a = self.alpha
        for f, sc, g, p, prev in zip(self.fisher, self.path, self._grads, self.params,
                                     self._prev):
            if g is None:                       # unused parameter: zero gradient
                f.mul_(1.0 - a)
                continue
            f.mul_(1.0 - a).add_(g.square(), alpha=a)
            d = p - prev
            sc.add_(-g * d / (0.5 * f * d.square() + self.epsilon))
        self._grads = None

    @torch.no_grad()
    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        new = [s.clamp_min(0) for s in self.path]
        if self.tasks_done == 0:
            self.score = new
        else:
            self.score = [0.5 * (old + nw) for old, nw in zip(self.score, new)]
        for s in self.path:
            s.zero_()
        fisher, score = self.fisher, self.score
        if self.normalize:
            fisher, score = _scaled_by_max(fisher), _scaled_by_max(score)
        self.importance = [f + s for f, s in zip(fisher, score)]
        self._consolidated(task)

    def state_tensors(self) -> list[torch.Tensor]:
        """Between tasks RWALK keeps, besides Omega = F + s and the anchor, the running Fisher
        (never reset) and the averaged score of the finished tasks."""
        return super().state_tensors() + list(self.fisher) + list(self.score)

    def _extra_state(self) -> dict[str, list[torch.Tensor]]:
        return {"fisher": self.fisher, "path": self.path, "score": self.score}

    def _set_extra_state(self, extra: dict[str, list[torch.Tensor]]) -> None:
        self.fisher, self.path, self.score = extra["fisher"], extra["path"], extra["score"]
        self._grads = None
