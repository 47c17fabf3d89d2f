"""The paper's supervised networks, all multi-head: ``model.heads[t]`` is task t's output layer
and ``model(x, t)`` returns task t's logits; everything outside ``model.heads`` is the shared
trunk that the regularizers see.

    CifarNet      conv 32-32-pool-64-64-pool-128-128-pool (3x3, pad 1, dropout .25 after each
                  pool), fc 2048 -> 256, dropout .5, heads Linear(256, C_t)
    OmniglotNet   4 x conv 64 (3x3, no padding), max-pool after conv2 and conv4, heads on the
                  flattened 64 * 4 * 4 = 1024 features (28x28 input), no dropout
    ResNet18      torchvision-compatible layout (loads a torchvision-format state_dict file),
                  heads Linear(512, C_t) on the pooled features
    MLP           for split_digits: fc 64 -> 100 -> 100, heads Linear(100, C_t)

The chain networks (CifarNet, OmniglotNet, MLP) define their Linear/Conv2d trunk layers in
forward order, so AGS-CL's automatic node-group discovery (``regularizers/groups.py``) reads
them as a chain; CifarNet's fc input is the channel-major flatten of the last conv (128 x 4 x 4).
ResNet18 is not a chain: it describes its node layers explicitly in ``agscl_node_layers()``.

HAT support (``hat=True``, Serra et al. 2018, chain networks only): one ``nn.Embedding(T, units)``
per trunk layer in ``model.hat_embeddings``; each trunk layer's ReLU output is multiplied by the
gate ``sigmoid(model.hat_s * e_t)``. ``model.hat_s`` is set by ``regularizers.hat.HAT``
(annealed while training, ``s_max`` otherwise). ``model.hat_layers()`` lists the gated
Linear/Conv2d modules in order (gate i belongs to layer i).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NETWORKS = ("cifar", "omniglot", "resnet18", "mlp")


class MultiHeadNet(nn.Module):
    """Shared pieces: per-task heads and the optional HAT gates."""

    hat: bool = False

    def _make_heads(self, features: int, class_counts: Sequence[int]) -> None:
        if not class_counts:
            raise ValueError("class_counts must list the number of classes of every task")
        self.class_counts = [int(c) for c in class_counts]
        self.heads = nn.ModuleList([nn.Linear(features, c) for c in self.class_counts])

    def _make_hat(self, hat: bool, units: Sequence[int], hat_s_max: float) -> None:
        self.hat = bool(hat)
        if self.hat:
            t = len(self.class_counts)
            self.hat_embeddings = nn.ModuleList([nn.Embedding(t, int(u)) for u in units])
            self.hat_s = float(hat_s_max)

    def hat_layers(self) -> list[nn.Module]:
        """The gated trunk layers, in forward order (gate i gates layer i's output)."""
        if not self.hat:
            raise ValueError(f"{type(self).__name__} was built without HAT support (hat=False)")
        return self._gated_modules()

    def _gated_modules(self) -> list[nn.Module]:
        return [getattr(self, n) for n in self._hat_layer_names]

    def hat_masks(self, task: int, s: float | None = None) -> list[torch.Tensor]:
        """Gates sigmoid(s * e_task) of every gated layer (differentiable in e)."""
        if not self.hat:
            raise ValueError(f"{type(self).__name__} was built without HAT support (hat=False)")
        s = self.hat_s if s is None else float(s)
        return [torch.sigmoid(s * emb.weight[task]) for emb in self.hat_embeddings]

    @staticmethod
    def _gate(h: torch.Tensor, masks, i: int) -> torch.Tensor:
        if masks is None:
            return h
        return h * masks[i].view(1, -1, *([1] * (h.dim() - 2)))

    def _check_task(self, task: int) -> int:
        task = int(task)
        if not 0 <= task < len(self.heads):
            raise IndexError(f"task {task} out of range: the model has {len(self.heads)} heads")
        return task


class CifarNet(MultiHeadNet):
    _hat_layer_names = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1")

    def __init__(self, class_counts: Sequence[int], input_shape=(3, 32, 32), hat: bool = False,
                 hat_s_max: float = 400.0):
        super().__init__()
        c, h, w = input_shape
        if h % 8 or w % 8:
            raise ValueError(f"CifarNet needs an input size divisible by 8, got {h}x{w}")
        self.conv1 = nn.Conv2d(c, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv5 = nn.Conv2d(64, 128, 3, padding=1)
        self.conv6 = nn.Conv2d(128, 128, 3, padding=1)
        self.feature_size = 128 * (h // 8) * (w // 8)
        self.fc1 = nn.Linear(self.feature_size, 256)
        self.drop1 = nn.Dropout(0.25)
        self.drop2 = nn.Dropout(0.5)
        self._make_heads(256, class_counts)
        self._make_hat(hat, [32, 32, 64, 64, 128, 128, 256], hat_s_max)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        task = self._check_task(task)
        m = self.hat_masks(task) if self.hat else None
        g = self._gate
        h = g(F.relu(self.conv1(x)), m, 0)
        h = self.drop1(F.max_pool2d(g(F.relu(self.conv2(h)), m, 1), 2))
        h = g(F.relu(self.conv3(h)), m, 2)
        h = self.drop1(F.max_pool2d(g(F.relu(self.conv4(h)), m, 3), 2))
        h = g(F.relu(self.conv5(h)), m, 4)
        h = self.drop1(F.max_pool2d(g(F.relu(self.conv6(h)), m, 5), 2))
        h = self.drop2(g(F.relu(self.fc1(h.flatten(1))), m, 6))
        return self.heads[task](h)


class OmniglotNet(MultiHeadNet):
    _hat_layer_names = ("conv1", "conv2", "conv3", "conv4")

    def __init__(self, class_counts: Sequence[int], input_shape=(1, 28, 28), hat: bool = False,
                 hat_s_max: float = 400.0):
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, 64, 3)
        self.conv2 = nn.Conv2d(64, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.conv4 = nn.Conv2d(64, 64, 3)
        # 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4: 64 * 4 * 4 = 1024
        oh, ow = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        if oh < 1 or ow < 1:
            raise ValueError(f"OmniglotNet input {h}x{w} is too small")
        self.feature_size = 64 * oh * ow
        self._make_heads(self.feature_size, class_counts)
        self._make_hat(hat, [64, 64, 64, 64], hat_s_max)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        task = self._check_task(task)
        m = self.hat_masks(task) if self.hat else None
        g = self._gate
        h = g(F.relu(self.conv1(x)), m, 0)
        h = F.max_pool2d(g(F.relu(self.conv2(h)), m, 1), 2)
        h = g(F.relu(self.conv3(h)), m, 2)
        h = F.max_pool2d(g(F.relu(self.conv4(h)), m, 3), 2)
        return self.heads[task](h.flatten(1))


class MLP(MultiHeadNet):
    def __init__(self, class_counts: Sequence[int], input_shape=(1, 8, 8),
                 hidden: Sequence[int] = (100, 100), hat: bool = False,
                 hat_s_max: float = 400.0):
        super().__init__()
        n_in = 1
        for d in input_shape:
            n_in *= int(d)
        self.fcs = nn.ModuleList()
        for i, n_out in enumerate(hidden):
            self.fcs.append(nn.Linear(n_in, int(n_out)))
            n_in = int(n_out)
        if not self.fcs:
            raise ValueError("MLP needs at least one hidden layer")
        self._make_heads(n_in, class_counts)
        self._make_hat(hat, list(hidden), hat_s_max)

    def _gated_modules(self) -> list[nn.Module]:
        return list(self.fcs)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        task = self._check_task(task)
        m = self.hat_masks(task) if self.hat else None
        h = x.flatten(1)
        for i, fc in enumerate(self.fcs):
            h = self._gate(F.relu(fc(h)), m, i)
        return self.heads[task](h)


# --- ResNet-18 -----------------------------------------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18(MultiHeadNet):
    """ResNet-18 with torchvision's parameter names (``fc`` replaced by ``heads``).

    ``pretrained``: path of a torchvision-format state_dict (e.g. ``resnet18-f37072fd.pth``);
    its ``fc.*`` entries are ignored. torchvision itself is not needed."""

    def __init__(self, class_counts: Sequence[int], input_shape=(3, 224, 224),
                 pretrained: str | os.PathLike | None = None, hat: bool = False,
                 hat_s_max: float = 400.0):
        super().__init__()
        if hat:
            raise ValueError("HAT support is implemented for the chain networks (cifar, "
                             "omniglot, mlp), not for ResNet-18: its residual additions "
                             "have no single gated unit per channel")
        c = input_shape[0]
        self.conv1 = nn.Conv2d(c, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        planes, layers = 64, []
        for i, (p, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            layer = nn.Sequential(BasicBlock(planes, p, stride), BasicBlock(p, p, 1))
            setattr(self, f"layer{i + 1}", layer)
            planes = p
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._make_heads(512, class_counts)
        self._make_hat(False, [], hat_s_max)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if pretrained:
            self.load_pretrained(pretrained)

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        task = self._check_task(task)
        h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return self.heads[task](self.avgpool(h).flatten(1))

    def load_pretrained(self, path: str | os.PathLike) -> None:
        path = os.path.expanduser(str(path))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"pretrained ResNet-18 weights not found at {path}: give "
                                    f"the path of a torchvision-format state_dict file (e.g. "
                                    f"resnet18-f37072fd.pth from download.pytorch.org/models)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"cannot read pretrained weights {path}: {e}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state_dict")
        state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "heads."))}
        own = {k: v for k, v in self.state_dict().items() if not k.startswith("heads.")}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        bad_shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or bad_shape:
            raise ValueError(f"{path} is not a torchvision ResNet-18 state_dict: missing "
                             f"{missing[:5]}, unexpected {unexpected[:5]}, wrong shape "
                             f"{bad_shape[:5]}")
        self.load_state_dict(state, strict=False)

    def agscl_node_layers(self) -> list[dict]:
        """Explicit AGS-CL node layers (the residual trunk is not a chain).

        Every conv is a node layer grouped with its BatchNorm. Only a block's ``conv2`` has a
        single node layer feeding it (that block's ``conv1``), so only there are outgoing
        weights zeroed (I.1) and hard-frozen. The stem, each block's ``conv1`` and the
        downsample convs read the residual stream (a sum of several layers' outputs plus the
        identity): ``prev`` is None. No layer feeds the heads directly (the head reads the
        residual sum), so (I.1) never zeroes head columns. Omega of a residual-stream producer
        is the mean ReLU of its BatchNorm output (before the addition)."""
        spec = [{"name": "conv1", "bn": "bn1", "prev": None, "feeds_heads": False}]
        for li in range(1, 5):
            for bi in range(2):
                b = f"layer{li}.{bi}"
                spec.append({"name": f"{b}.conv1", "bn": f"{b}.bn1", "prev": None,
                             "feeds_heads": False})
                spec.append({"name": f"{b}.conv2", "bn": f"{b}.bn2", "prev": f"{b}.conv1",
                             "feeds_heads": False})
                if getattr(self, f"layer{li}")[bi].downsample is not None:
                    spec.append({"name": f"{b}.downsample.0", "bn": f"{b}.downsample.1",
                                 "prev": None, "feeds_heads": False})
        return spec


# --- factory --------------------------------------------------------------------------------
def build_model(network: str, class_counts: Sequence[int], input_shape: Sequence[int],
                hat: bool = False, pretrained: str | None = None,
                hat_s_max: float = 400.0,
                mlp_hidden: Sequence[int] = (100, 100)) -> MultiHeadNet:
    input_shape = tuple(int(d) for d in input_shape)
    if network == "cifar":
        return CifarNet(class_counts, input_shape, hat=hat, hat_s_max=hat_s_max)
    if network == "omniglot":
        return OmniglotNet(class_counts, input_shape, hat=hat, hat_s_max=hat_s_max)
    if network == "mlp":
        return MLP(class_counts, input_shape, hidden=mlp_hidden, hat=hat, hat_s_max=hat_s_max)
    if network == "resnet18":
        return ResNet18(class_counts, input_shape, pretrained=pretrained, hat=hat,
                        hat_s_max=hat_s_max)
    raise ValueError(f"unknown network {network!r}; choose one of: {', '.join(NETWORKS)}")


__all__ = ["NETWORKS", "CifarNet", "OmniglotNet", "ResNet18", "MLP", "MultiHeadNet",
           "build_model"]
