"""L2 Init, regenerative regularisation (Kumar, Marklund & Van Roy, "Maintaining Plasticity in
Continual Learning via Regenerative Regularization", 2023): the penalty

    lam / 2 * ||theta - theta_0||^2

toward the network's initial parameters theta_0 (all of them, heads included), taken when the
method is made, i.e. at the run's initialisation. The paper tunes lam per setting (it searches
1e-2 down to 1e-6); 1e-3 is this project's starting point, not a published default.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import Regularizer, check_range, tensor_bytes


class L2Init(Regularizer):
    name = "l2init"
    KIND = "plasticity"
    HELP = {"lam": "L2 Init: strength of lam/2 ||theta - theta_0||^2 toward the initial weights"}

    def __init__(self, model: nn.Module, lam: float = 1e-3):
        super().__init__(model)
        self.lam = check_range("lam", lam, lo=0)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.theta_0 = [p.detach().clone() for p in self.params]

    def penalty(self) -> torch.Tensor:
        sq = sum(((p - p0) ** 2).sum() for p, p0 in zip(self.params, self.theta_0))
        return 0.5 * self.lam * sq

    def state_tensors(self) -> list[torch.Tensor]:
        return list(self.theta_0)

    def memory_bytes(self) -> int:
        return tensor_bytes(self.theta_0)

    def state_dict(self) -> dict:
        return {"task": self.task, "theta_0": [t.clone() for t in self.theta_0]}

    def load_state_dict(self, state: dict) -> None:
        self.task = state["task"]
        self.theta_0 = [t.to(p.device) for t, p in zip(state["theta_0"], self.params)]
