"""Multi-head actor-critic for the Atari stream.

Shared trunk (the regularised part): conv 8x8/4 -> conv 4x4/2 -> conv 3x3/1 -> flatten -> fc 512,
a ReLU after each. ``arch='nature'`` has the Nature-DQN widths 32-64-64; ``arch='wide'`` the
128-256-128 widths of the published AGS-CL RL code. ``model.heads[t]`` holds game t's actor
(Linear(512, A_t)) and critic (Linear(512, 1)), so regularizers find exactly four node layers
(conv1, conv2, conv3, fc; the flatten is channel-major) and treat the heads as per-task.

Inputs are the environments' uint8 frames (N, 4, 84, 84); they are scaled by 1/255 inside.
When gradients are on (the PPO update), activations run in channels-last memory format, where
oneDNN's convolution backward is faster on a CPU (docs/RESULTS.md); without gradients (rollout
inference, small batches) the default layout is faster and is kept. The
parameters always stay in the default contiguous format, so regularizers can view/reshape them
in place. Orthogonal initialisation as CleanRL: gain
sqrt(2) for the trunk, 0.01 for the actor, 1 for the critic, zero biases.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = {"nature": (32, 64, 64), "wide": (128, 256, 128)}
HIDDEN = 512


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class PolicyHead(nn.Module):
    def __init__(self, hidden: int, num_actions: int):
        super().__init__()
        self.actor = layer_init(nn.Linear(hidden, num_actions), std=0.01)
        self.critic = layer_init(nn.Linear(hidden, 1), std=1.0)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(h), self.critic(h).squeeze(-1)


class ActorCritic(nn.Module):
    def __init__(self, num_actions_per_task: list[int], arch: str = "nature",
                 channels_last: bool = True):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown network arch {arch!r}; choose one of: {', '.join(ARCHS)}")
        if not num_actions_per_task or any(int(a) < 1 for a in num_actions_per_task):
            raise ValueError(f"num_actions_per_task must be a non-empty list of positive ints, "
                             f"got {num_actions_per_task!r}")
        c1, c2, c3 = ARCHS[arch]
        self.arch = arch
        self.channels_last = channels_last
        self.num_actions = [int(a) for a in num_actions_per_task]
        # Definition order = the trunk chain the regularizers see.
        self.conv1 = layer_init(nn.Conv2d(4, c1, 8, stride=4))
        self.conv2 = layer_init(nn.Conv2d(c1, c2, 4, stride=2))
        self.conv3 = layer_init(nn.Conv2d(c2, c3, 3, stride=1))
        self.fc = layer_init(nn.Linear(c3 * 7 * 7, HIDDEN))
        self.heads = nn.ModuleList(PolicyHead(HIDDEN, a) for a in self.num_actions)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or already scaled float) frames (N, 4, 84, 84) -> trunk output (N, 512)."""
        # (not for one sample: no gain there, and torch.func.vmap's per-sample gradients of
        # EWC's Fisher and MAS see batches of one and cannot change the memory format)
        if self.channels_last and torch.is_grad_enabled() and x.shape[0] > 1:
            x = x.contiguous(memory_format=torch.channels_last)    # cheap on uint8
        x = x.to(torch.float32).mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.float()
        # In-place ReLUs are safe: a layer's backward keeps its input, not its output, and
        # forward hooks on the layers (e.g. AGS-CL's activation hook) run before them.
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(self.conv2(x), inplace=True)
        x = F.relu(self.conv3(x), inplace=True)
        x = torch.flatten(x, 1)             # logical (C, H, W) order: channel-major
        return F.relu(self.fc(x), inplace=True)

    def forward(self, x: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (action logits (N, A_task), state values (N,))."""
        return self.heads[task](self.features(x))
