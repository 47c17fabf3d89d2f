"""Multi-head actor-critic for the MinAtar stream: the network of the MinAtar paper (Young &
Tian, 2019): one 3x3 convolution with 16 channels (stride 1, no padding: 10x10 -> 8x8), a ReLU,
a fully connected layer of 128 units (``hidden``), a ReLU; then per game an actor (Linear(128, A_t)) and a
critic (Linear(128, 1)) in ``model.heads[t]`` (``agents.atari_net.PolicyHead``).

Regularizers find two node layers in the trunk, conv1 (16 channel nodes) and fc (128 nodes),
with the flatten channel-major, exactly as in the Atari network: no special code. Inputs are the
stream's uint8 0/1 grids (N, 10, 10, 10). Orthogonal initialisation as CleanRL: gain sqrt(2)
for the trunk, 0.01 for the actor, 1 for the critic, zero biases.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .atari_net import PolicyHead, layer_init

CHANNELS, GRID, CONV, HIDDEN = 10, 10, 16, 128


class MinAtarActorCritic(nn.Module):
    def __init__(self, num_actions_per_task: list[int], hidden: int = HIDDEN):
        super().__init__()
        if not num_actions_per_task or any(int(a) < 1 for a in num_actions_per_task):
            raise ValueError(f"num_actions_per_task must be a non-empty list of positive ints, "
                             f"got {num_actions_per_task!r}")
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden={hidden!r}: the fc width must be an integer >= 1")
        self.num_actions = [int(a) for a in num_actions_per_task]
        # Definition order = the trunk chain the regularizers see.
        self.conv1 = layer_init(nn.Conv2d(CHANNELS, CONV, 3, stride=1))
        self.fc = layer_init(nn.Linear(CONV * (GRID - 2) ** 2, hidden))
        self.heads = nn.ModuleList(PolicyHead(hidden, a) for a in self.num_actions)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 grids (N, 10, 10, 10) -> trunk output (N, hidden)."""
        x = F.relu(self.conv1(x.float()), inplace=True)
        return F.relu(self.fc(torch.flatten(x, 1)), inplace=True)

    def forward(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (action logits (N, A_task), state values (N,))."""
        return self.heads[task](self.features(x))
