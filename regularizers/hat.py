"""HAT: Hard Attention to the Task (Serra et al., ICML 2018).

HAT is an architecture as well as a penalty: the model (built with ``hat=True``, see
``agents/vision_nets.py``) gates every trunk layer's units with a task embedding,
m_t^l = sigmoid(s * e_t^l), and exposes

    model.hat_embeddings   nn.ModuleList of nn.Embedding(T, units_l)
    model.hat_masks(t, s)  the gates of task t, one tensor per gated layer
    model.hat_layers()     the gated Linear/Conv2d modules in forward order
    model.hat_s            the gate scale s the forward pass uses

This regularizer drives it through the ordinary hooks:

    begin_epoch(B)   s <- 1/s_max for batch 1; after every step the batch counter b advances and
                     s = 1/s_max + (s_max - 1/s_max) (b - 1) / (B - 1)            (HAT eq. 3)
    penalty()        c * sum_l sum_i m_{t,i} (1 - m^{<t}_i) / sum_l sum_i (1 - m^{<t}_i)  (eq. 5)
    before_step()    gradients of each trunk weight scaled by 1 - min(m^{<t}_out, m^{<t}_in),
                     of each bias by 1 - m^{<t}_out (eq. 2); embedding gradients compensated
                     by s_max/s * (cosh(clamp(s e)) + 1) / (cosh(e) + 1) (eq. 4, as in the
                     authors' code); then the gradient norm is clipped to ``clipgrad``
    after_step()     embeddings clamped to [-thres_emb, thres_emb]; s advanced
    after_epoch()    s <- s_max (validation and evaluation use binary-like gates)
    end_task(t)      m^{<=t} = max(m^{<t}, m_t at s_max)

``lam`` is HAT's c (default 0.75); s_max 400 (the authors' grid-search choices). Heads are
per task and never masked. The cumulative masks (one float per unit) are HAT's
regularisation state.
"""
from __future__ import annotations

import warnings
from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, Regularizer, check_range


class HAT(Regularizer):
    name = "hat"
    NETWORK = {"hat": True}     # the network's gates (agents/vision_nets.py)
    HELP = {"lam": "HAT's c: strength of the attention penalty", "s_max": "HAT gate scale s_max",
            "clipgrad": "HAT gradient-norm clip", "thres_cosh": "HAT embedding-gradient clamp",
            "thres_emb": "HAT embedding clamp"}

    def __init__(self, model: nn.Module, lam: float = 0.75, s_max: float = 400.0,
                 clipgrad: float = 10000.0, thres_cosh: float = 50.0, thres_emb: float = 6.0):
        super().__init__(model)
        self.lam = check_range("lam", lam, lo=0)
        self.s_max = check_range("s_max", s_max, lo=1, lo_open=False)
        self.clipgrad = check_range("clipgrad", clipgrad, lo=0)
        self.thres_cosh = check_range("thres_cosh", thres_cosh, lo=0, lo_open=True)
        self.thres_emb = check_range("thres_emb", thres_emb, lo=0, lo_open=True)
        embs = getattr(model, "hat_embeddings", None)
        if (not getattr(model, "hat", False) or not isinstance(embs, nn.ModuleList)
                or not callable(getattr(model, "hat_masks", None))
                or not callable(getattr(model, "hat_layers", None))):
            raise ValueError(
                f"HAT needs a model with HAT support ({type(model).__name__} has none): build "
                f"it with hat=True (agents.vision_nets: cifar, omniglot and mlp networks), "
                f"which adds model.hat_embeddings, model.hat_masks(task, s), "
                f"model.hat_layers() and model.hat_s")
        self.layers: list[nn.Module] = list(model.hat_layers())
        if not embs or len(self.layers) != len(embs):
            raise ValueError("model.hat_layers() and model.hat_embeddings differ in length")
        for L, e in zip(self.layers, embs):
            n_out = L.out_features if isinstance(L, nn.Linear) else L.out_channels
            if n_out != e.embedding_dim:
                raise ValueError(f"HAT embedding of size {e.embedding_dim} does not match the "
                                 f"{n_out} units of its gated layer {L}")
        self.cum: list[torch.Tensor] | None = None       # m^{<t}, after each end_task
        self._grad_masks: list[tuple[torch.Tensor, torch.Tensor | None]] = []
        self._batch, self._num_batches = 1, 1
        self.history: list[dict[str, float]] = []
        model.hat_s = self.s_max

    # --- annealing --------------------------------------------------------------------------
    def _anneal(self) -> float:
        b, n = self._batch, self._num_batches
        frac = (b - 1) / (n - 1) if n > 1 else 0.0
        frac = min(max(frac, 0.0), 1.0)
        return 1.0 / self.s_max + (self.s_max - 1.0 / self.s_max) * frac

    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        if not 0 <= task < self.model.hat_embeddings[0].num_embeddings:
            raise ValueError(f"task {task} has no HAT embedding: the model was built for "
                             f"{self.model.hat_embeddings[0].num_embeddings} tasks")
        self.model.hat_s = self.s_max

    def begin_epoch(self, num_batches: int | None = None) -> None:
        if num_batches is None or int(num_batches) < 1:
            raise ValueError("HAT anneals s within each epoch: begin_epoch(num_batches) needs "
                             "the number of batches of the epoch")
        if int(num_batches) < 4 and not getattr(self, "_warned_few_batches", False):
            self._warned_few_batches = True
            warnings.warn(f"HAT: only {int(num_batches)} batch(es) per epoch, too few for eq. 3 "
                          f"to anneal the gate scale s gradually from 1/s_max to s_max = "
                          f"{self.s_max:g} over an epoch's batches; learning can stall. A smaller "
                          f"batch size gives a smoother schedule", stacklevel=2)
        self._num_batches, self._batch = int(num_batches), 1
        self.model.hat_s = self._anneal()

    # --- loss ---------------------------------------------------------------------------------
    def penalty(self) -> torch.Tensor:
        masks = self.model.hat_masks(self.task, self.model.hat_s)
        if self.cum is None:
            reg = sum(m.sum() for m in masks)
            count = sum(m.numel() for m in masks)
            return self.lam * reg / count
        reg = sum((m * (1 - c)).sum() for m, c in zip(masks, self.cum))
        count = sum((1 - c).sum() for c in self.cum)
        if float(count) <= 0:
            return reg * 0.0
        return self.lam * reg / count

    # --- gradient conditioning ------------------------------------------------------------------
    def _build_grad_masks(self) -> None:
        """1 - min(m_out, m_in) per weight and 1 - m_out per bias, from the cumulative masks."""
        self._grad_masks = []
        if self.cum is None:
            return
        prev = None
        for L, post in zip(self.layers, self.cum):
            w = L.weight
            if isinstance(L, nn.Linear):
                post_w = post.view(-1, 1).expand(w.shape[0], w.shape[1])
                if prev is not None:
                    rep = w.shape[1] // prev.numel()
                    pre_w = prev.repeat_interleave(rep).view(1, -1).expand_as(post_w)
                    post_w = torch.minimum(post_w, pre_w)
            else:
                post_w = post.view(-1, 1, 1, 1).expand_as(w)
                if prev is not None:
                    pre_w = prev.view(1, -1, 1, 1).expand_as(w)
                    post_w = torch.minimum(post_w, pre_w)
            gw = (1 - post_w).contiguous().to(w.dtype)
            gb = (1 - post).to(w.dtype) if L.bias is not None else None
            self._grad_masks.append((gw, gb))
            prev = post

    @torch.no_grad()
    def before_step(self) -> None:
        if self.cum is not None:
            for L, (gw, gb) in zip(self.layers, self._grad_masks):
                if L.weight.grad is not None:
                    L.weight.grad.mul_(gw)
                if gb is not None and L.bias.grad is not None:
                    L.bias.grad.mul_(gb)
        s = float(self.model.hat_s)
        for emb in self.model.hat_embeddings:
            g = emb.weight.grad
            if g is None:
                continue
            e = emb.weight
            num = torch.cosh(torch.clamp(s * e, -self.thres_cosh, self.thres_cosh)) + 1
            den = torch.cosh(e) + 1
            g.mul_(self.s_max / s * num / den)
        if self.clipgrad > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.grad is not None], self.clipgrad)

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        for emb in self.model.hat_embeddings:
            emb.weight.clamp_(-self.thres_emb, self.thres_emb)
        self._batch += 1
        self.model.hat_s = self._anneal()

    def after_epoch(self, lr: float) -> None:
        self.model.hat_s = self.s_max

    # --- end of task ------------------------------------------------------------------------
    @torch.no_grad()
    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        self.model.hat_s = self.s_max
        masks = [m.detach().clone() for m in self.model.hat_masks(task, self.s_max)]
        if self.cum is None:
            self.cum = masks
        else:
            self.cum = [torch.maximum(c, m) for c, m in zip(self.cum, masks)]
        self._build_grad_masks()
        total = sum(c.numel() for c in self.cum)
        self.history.append({
            "task": task,
            "task_units": sum(float((m > 0.5).sum()) for m in masks) / total,
            "used_units": sum(float((c > 0.5).sum()) for c in self.cum) / total,
        })
        self.task = task

    # --- measurements & persistence ----------------------------------------------------------
    def task_metrics(self) -> dict[str, float]:
        if not self.history:
            return {}
        h = self.history[-1]
        return {"hat_task_units": h["task_units"], "hat_used_units": h["used_units"]}

    def state_tensors(self) -> list[torch.Tensor]:
        return list(self.cum) if self.cum is not None else []

    def state_dict(self) -> dict:
        return {"task": self.task,
                "cum": None if self.cum is None else [c.clone() for c in self.cum],
                "batch": self._batch, "num_batches": self._num_batches,
                "s": float(self.model.hat_s), "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        cum = state.get("cum")
        if cum is not None:
            shapes = [tuple(e.weight.shape[1:]) for e in self.model.hat_embeddings]
            if len(cum) != len(shapes) or any(tuple(c.shape) != s for c, s in zip(cum, shapes)):
                raise ValueError("HAT state does not match this model's gated layers "
                                 "(a checkpoint from another network?)")
            dev = self.model.hat_embeddings[0].weight.device
            cum = [c.to(dev) for c in cum]
        self.task = state.get("task")
        self.cum = cum
        self._batch = int(state.get("batch", 1))
        self._num_batches = int(state.get("num_batches", 1))
        self.model.hat_s = float(state.get("s", self.s_max))
        self.history = list(state.get("history", []))
        self._build_grad_masks()
