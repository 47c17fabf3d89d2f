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

Two optional methods, which the trainer uses where a learner has them (``GameLearner``; the
PPO learner has both, the classifier neither): ``record_video(task, path, seed)`` films one
evaluation game (``--capture-video``), and ``dormant_units(task, reg)`` measures the trunk's
dormant units (Sokar et al., 2023; ``dormant_units`` below) at every evaluation. Neither may
consume randomness. A learner may also have ``plasticity_metrics(task)``
(``plasticity_metrics`` below, on the same batch; the PPO learner has it), which the trainer
records beside the dormant units.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from regularizers.base import Step
from regularizers.groups import find_node_layers, relu_outputs

# Dormant units (Sokar et al., ICML 2023): the thresholds tau of their Figures (0: units that
# never fire on the batch; 0.025: their RL experiments' tau), and the batch size measured on.
DORMANT_TAUS = (0.0, 0.025)
DORMANT_OBS = 256


def minibatch_step(task_loss: torch.Tensor, reg, optimizer: torch.optim.Optimizer,
                   params, lr: float, max_grad_norm: float | None = None, *, task: int,
                   inputs, outputs):
    """One optimizer step with the regularizer's hooks in their documented order
    (``regularizers/base.py``): reg.begin_step(the step context: ``task``, the minibatch's
    ``inputs``, the model's ``outputs`` on them, the optimizer, lr); loss = task loss +
    reg.penalty(); backward; reg.before_step() (raw gradients); clip the gradient norm; step;
    reg.after_step(lr) (AGS-CL's proximal step, alpha = lr). Returns (loss, penalty, gradient
    norm or None)."""
    reg.begin_step(Step(task, inputs, outputs, optimizer, lr))
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


@runtime_checkable
class GameLearner(Protocol):
    """The optional part of the contract (the PPO learner's): what the trainer does with it
    where a learner has it."""

    def record_video(self, task: int, path: str, seed: int | None = None) -> float:
        """Play one evaluation game of task ``task`` (greedy; ``seed`` default: the task's
        evaluation seed, so it is the evaluation's first game), film it to the MP4 ``path``;
        return its score."""

    def dormant_units(self, task: int, reg: Any = None) -> dict | None:
        """``dormant_units(...)`` of the model on a batch of the task's inputs (None before
        there is one); ``reg``: the run's regularizer, whose G0 (AGS-CL's
        ``unimportant_nodes``) is counted where it has one."""


# --- plasticity metrics -----------------------------------------------------------------------
# Stable rank's delta (Kumar et al., "Implicit Under-Parameterization", ICLR 2021).
SRANK_DELTA = 0.01


def initial_weights(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """Copies of every trunk layer's group tensors (weight, bias, BN scale and shift), the
    reference of ``plasticity_metrics``' distance from the initial weights."""
    return {L.name: [p.detach().clone() for p in L.group_params] for L in find_node_layers(model)}


def feature_ranks(feats: torch.Tensor, delta: float = SRANK_DELTA) -> tuple[int, float]:
    """(stable rank, effective rank) of a (samples, units) feature matrix from its singular
    values s: srank = min{k : sum_{i<=k} s_i / sum_i s_i >= 1 - delta} (Kumar et al. 2021);
    erank = exp(-sum_i p_i log p_i), p = s / ||s||_1 (Roy & Vetterli 2007). 0 and 0 for an
    all-zero matrix."""
    s = torch.linalg.svdvals(feats.double())
    total = s.sum()
    if total <= 0:
        return 0, 0.0
    srank = int((torch.cumsum(s, 0) / total < 1 - delta).sum()) + 1
    p = s / total
    p = p[p > 0]
    return min(srank, len(s)), float(torch.exp(-(p * p.log()).sum()))


def plasticity_metrics(model: nn.Module, x: torch.Tensor, task: int,
                       theta_0: dict[str, list[torch.Tensor]] | None = None) -> dict:
    """Per trunk layer (``find_node_layers``), on the batch ``x`` (one forward pass, no
    gradients), the plasticity measures of Plasticine's set:
        active           fraction of (sample, unit) ReLU outputs > 0 (conv: and positions)
        stable_rank      ``feature_ranks`` of the (samples, units) features (a conv channel:
        effective_rank   its mean over positions)
        weight_norm      ||theta_l||: the layer's weights, bias (and BN scale and shift)
        init_distance    ||theta_l - theta_l,0|| against ``theta_0`` (``initial_weights``)
        grad_norm        ||grad theta_l|| of the last optimizer step (None before one)
    -> {"layers": {name: {...}}}"""
    layers = find_node_layers(model)
    acts = relu_outputs(model, layers, x, task)
    out = {}
    with torch.no_grad():
        for L in layers:
            h = acts[L.name]
            feats = h.mean(dim=list(range(2, h.dim()))) if h.dim() > 2 else h
            srank, erank = feature_ranks(feats.cpu())
            ps = L.group_params
            rec = {"active": float((h > 0).float().mean()), "stable_rank": srank,
                   "effective_rank": erank,
                   "weight_norm": float(sum(p.double().pow(2).sum() for p in ps).sqrt())}
            if theta_0 is not None:
                rec["init_distance"] = float(sum((p.double() - q.double()).pow(2).sum()
                                                 for p, q in zip(ps, theta_0[L.name])).sqrt())
            grads = [p.grad for p in ps]
            rec["grad_norm"] = None if any(g is None for g in grads) else \
                float(sum(g.double().pow(2).sum() for g in grads).sqrt())
            out[L.name] = rec
    return {"layers": out}


# --- dormant units ----------------------------------------------------------------------------
def dormant_scores(h: torch.Tensor) -> torch.Tensor:
    """Sokar et al. (2023), Definition 3.1, for one layer's outputs ``h`` (N, H) or (N, H, ...):
    s_i = E_x |h_i(x)| / ((1/H) sum_k E_x |h_k(x)|), the expectation over the batch (and, for a
    conv channel, its positions). A layer silent on the whole batch scores 0 everywhere."""
    a = h.detach().abs().double()
    mean = a.mean(dim=[0, *range(2, a.dim())])                      # E_x |h_i(x)|, (H,)
    layer = mean.mean()
    return mean / layer if layer > 0 else torch.zeros_like(mean)


def dormant_units(model: nn.Module, x: torch.Tensor, task: int,
                  taus: Sequence[float] = DORMANT_TAUS,
                  unimportant: Sequence[torch.Tensor] | None = None) -> dict:
    """The fraction of tau-dormant units (``dormant_scores`` <= tau) of every trunk layer
    (``regularizers.groups.find_node_layers``: each Linear/Conv2d, scored on its ReLU output)
    on the batch ``x`` (one forward pass of ``model(x, task)``, no gradients), and over the
    whole trunk ("all"). ``unimportant``: one boolean mask per layer (AGS-CL's G0); then also
    the fraction of units in G0 ("g0") and of those tau-dormant and in G0 ("tau<tau>_g0").

    -> {"layers": {name or "all": {"units": H, "tau0": fraction, "tau0.025": ..., ...}}}"""
    layers = find_node_layers(model)
    if unimportant is not None and [m.numel() for m in unimportant] != \
            [L.num_nodes for L in layers]:
        raise ValueError("dormant_units: the G0 masks do not match the trunk's layers")
    acts = relu_outputs(model, layers, x, task)
    names = [f"tau{t:g}" for t in taus]
    out, total = {}, {}
    for i, L in enumerate(layers):
        s = dormant_scores(acts[L.name]).cpu()
        counts = {"units": L.num_nodes}
        g0 = None if unimportant is None else unimportant[i].detach().cpu().reshape(-1).bool()
        if g0 is not None:
            counts["g0"] = int(g0.sum())
        for n, tau in zip(names, taus):
            dormant = s <= tau
            counts[n] = int(dormant.sum())
            if g0 is not None:
                counts[f"{n}_g0"] = int((dormant & g0).sum())
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        out[L.name] = counts
    out["all"] = total
    return {"layers": {name: {k: (v if k == "units" else v / c["units"]) for k, v in c.items()}
                       for name, c in out.items()}}
