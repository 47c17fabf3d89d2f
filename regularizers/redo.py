"""ReDo: Recycling Dormant neurons (Sokar, Agarwal, Castro & Evci, "The Dormant Neuron
Phenomenon in Deep Reinforcement Learning", ICML 2023).

Every ``period`` optimizer steps, on the step's minibatch (``Regularizer.step``), each trunk
unit's score is s_i = E_x|h_i(x)| / ((1/H) sum_k E_x|h_k(x)|) (Definition 3.1; h the ReLU
output, conv channels averaged over positions too), and the tau-dormant units (s_i <= tau) of
every trunk layer are recycled (Algorithm 1): their incoming weights re-initialised, their
outgoing weights (next trunk layer, every head) set to 0, and the optimizer's moments of both
reset (``units.recycle``; the authors' code, google/dopamine `dopamine/labs/redo`, resets
Adam's moments of the recycled weights). The fresh weights are PyTorch's default init of the
layer type, drawn from the method's own generator (``seed``), so a resumed run recycles
exactly what the uninterrupted one would.

tau 0.1 is the default here, as in the paper's experiments at a high replay ratio and
Plasticine's ReDo; the paper's default setting uses tau 0.025 (``--redo-tau 0.025``). ``period``
1000 optimizer steps, as the paper's recycling every 1000 gradient steps.
"""
from __future__ import annotations

import operator

import torch
from torch import nn

from .base import Regularizer, check_int, check_range
from .groups import find_node_layers
from .units import layer_scores, recycle


class ReDo(Regularizer):
    name = "redo"
    KIND = "plasticity"
    HELP = {"tau": "ReDo: a unit is dormant when its score s_i <= tau",
            "period": "ReDo: optimizer steps between recyclings"}

    def __init__(self, model: nn.Module, tau: float = 0.1, period: int = 1000, seed: int = 0):
        super().__init__(model)
        self.tau = check_range("tau", tau, lo=0)
        self.period = check_int("period", period, 1)
        self.layers = find_node_layers(model)
        self.generator = torch.Generator().manual_seed(operator.index(seed))
        self.updates = 0                  # optimizer steps taken (all tasks)
        self.recycled_in_task = 0         # units recycled in the current task
        self.history: list[dict] = []

    @staticmethod
    def scores(acts: list[torch.Tensor]) -> list[torch.Tensor]:
        """Definition 3.1 from each layer's mean |h_i| (a silent layer scores 0 everywhere)."""
        return [a / a.mean() if a.mean() > 0 else torch.zeros_like(a) for a in acts]

    def begin_task(self, task: int) -> None:
        if task != self.task:
            self.recycled_in_task = 0
        super().begin_task(task)

    def after_step(self, lr: float) -> None:
        self.updates += 1
        if self.updates % self.period == 0:
            self.recycle_dormant(self.step.inputs, self.step.task, self.step.optimizer)

    @torch.no_grad()
    def recycle_dormant(self, x, task: int, optimizer=None) -> list[torch.Tensor]:
        """Recycle the tau-dormant units on batch ``x``; returns their indices per layer."""
        chosen = []
        for L, s in zip(self.layers, self.scores(layer_scores(self.model, self.layers, x, task))):
            idx = (s <= self.tau).nonzero().flatten().to(L.module.weight.device)
            recycle(self.model, self.layers, L, idx, self.generator, optimizer)
            self.recycled_in_task += idx.numel()
            chosen.append(idx)
        return chosen

    def end_task(self, task, batches, loss_fn) -> None:
        total = sum(L.num_nodes for L in self.layers)
        self.history.append({"task": task, "recycled": self.recycled_in_task / total})
        self.task = task

    def task_metrics(self) -> dict[str, float]:
        return {"recycled": self.history[-1]["recycled"]} if self.history else {}

    def state_dict(self) -> dict:
        return {"task": self.task, "updates": self.updates, "recycled": self.recycled_in_task,
                "history": list(self.history), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.task, self.updates = state["task"], state["updates"]
        self.recycled_in_task, self.history = state["recycled"], list(state["history"])
        self.generator.set_state(state["generator"].cpu())
