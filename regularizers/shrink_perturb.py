"""Shrink & Perturb (Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020):

    theta <- shrink * theta + sigma * theta_fresh

for every trunk Linear/Conv2d weight and bias, where theta_fresh is a fresh initialisation of
the layer (PyTorch's default init of its type) drawn from the method's own generator
(``seed``), so a resumed run draws what the uninterrupted one would. It acts at each task's
end (after the task is learned, before the next one starts) and, with ``every`` > 0, also
every ``every`` optimizer steps. The heads are left alone: each belongs to one game.
Defaults shrink 0.4 and sigma 0.1 are this project's starting point in the range the paper
studies (it sweeps both); Plasticine's continual PPO uses the soft, per-step form
(``every`` 1 with shrink close to 1).
"""
from __future__ import annotations

import operator

import torch
from torch import nn

from .base import Regularizer, check_int, check_range
from .groups import find_node_layers
from .units import default_init


class ShrinkPerturb(Regularizer):
    name = "snp"
    KIND = "plasticity"
    HELP = {"shrink": "Shrink & Perturb: factor on the weights",
            "sigma": "Shrink & Perturb: factor on the fresh initialisation added",
            "every": "Shrink & Perturb: also every N optimizer steps (0: at task ends only)"}

    def __init__(self, model: nn.Module, shrink: float = 0.4, sigma: float = 0.1,
                 every: int = 0, seed: int = 0):
        super().__init__(model)
        self.shrink = check_range("shrink", shrink, lo=0, hi=1)
        self.sigma = check_range("sigma", sigma, lo=0)
        self.every = check_int("every", every, 0)
        self.modules = [L.module for L in find_node_layers(model)]
        self.generator = torch.Generator().manual_seed(operator.index(seed))
        self.updates = 0

    @torch.no_grad()
    def shrink_perturb(self) -> None:
        for m in self.modules:
            weight, bias = default_init(m, self.generator)
            m.weight.mul_(self.shrink).add_(weight.to(m.weight.device), alpha=self.sigma)
            if bias is not None:
                m.bias.mul_(self.shrink).add_(bias.to(m.bias.device), alpha=self.sigma)

    def after_step(self, lr: float) -> None:
        self.updates += 1
        if self.every and self.updates % self.every == 0:
            self.shrink_perturb()

    def end_task(self, task, batches, loss_fn) -> None:
        self.shrink_perturb()
        self.task = task

    def state_dict(self) -> dict:
        return {"task": self.task, "updates": self.updates,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.task, self.updates = state["task"], state["updates"]
        self.generator.set_state(state["generator"].cpu())
