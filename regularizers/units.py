"""Unit surgery shared by the methods that re-initialise units (AGS-CL's (I.2), Shrink &
Perturb, and ReDo and continual backprop, which recycle them): PyTorch's default init drawn
from a method's own generator (``default_init``), fresh incoming weights of chosen units
(``reinit_rows``), and for a recycled unit also zero outgoing weights and zero optimizer
moments of both (``recycle``), so that it starts as a fresh one that does not yet change the
network's outputs. Units are the node layers of ``groups.find_node_layers``
(a row of a Linear weight, an output channel of a Conv2d)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .groups import NodeLayer, head_input_layers, relu_outputs


# The layer types whose reset_parameters() ``default_init`` reproduces.
DEFAULT_INITS = (nn.Linear.reset_parameters, nn.modules.conv._ConvNd.reset_parameters)


def default_init(module: nn.Module, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PyTorch's default init of an ``nn.Linear`` / ``nn.Conv2d``, as new CPU tensors drawn
    from ``generator`` in ``reset_parameters()``'s order: weight ~ kaiming_uniform(a=sqrt(5)),
    i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), then bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    w = module.weight
    weight = torch.empty(w.shape, dtype=w.dtype)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bias = None
    if module.bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        bias = torch.empty(module.bias.shape, dtype=module.bias.dtype)
        nn.init.uniform_(bias, -bound, bound, generator=generator)
    return weight, bias


@torch.no_grad()
def reinit_rows(L: NodeLayer, idx: torch.Tensor, generator: torch.Generator) -> None:
    """Fresh incoming weights and bias for units ``idx`` of ``L`` (``default_init``, drawn on
    the CPU from ``generator``); their BatchNorm channel gets scale 1, shift 0 and fresh running
    statistics."""
    weight, bias = default_init(L.module, generator)
    rows = idx.cpu()
    L.module.weight[idx] = weight[rows].to(L.module.weight.device)
    if bias is not None:
        L.module.bias[idx] = bias[rows].to(L.module.bias.device)
    if L.bn is not None:
        if L.bn.affine:
            L.bn.weight[idx] = 1.0
            L.bn.bias[idx] = 0.0
        if L.bn.track_running_stats and L.bn.running_mean is not None:
            L.bn.running_mean[idx] = 0.0
            L.bn.running_var[idx] = 1.0


def layer_scores(model: nn.Module, layers: list[NodeLayer], x, task: int
                 ) -> list[torch.Tensor]:
    """Every unit's mean |ReLU output| on the batch ``x`` (conv: also over positions), one
    no-gradient forward pass of ``model(x, task)``."""
    acts = relu_outputs(model, layers, x, task)
    return [a.mean(dim=[0, *range(2, a.dim())]) for a in (acts[L.name] for L in layers)]


def outgoing_weights(model: nn.Module, layers: list[NodeLayer], L: NodeLayer
                     ) -> list[nn.Parameter]:
    """The weights that read ``L``'s units: the next trunk layer's and, where ``L`` feeds the
    heads, every head's input layers. ``columns(w, L)`` views one as (out, L's units, k)."""
    out = [nxt.module.weight for nxt in layers if nxt.prev is L]
    if L.feeds_heads:
        for t in range(len(model.heads)):
            out += [head.weight for head in head_input_layers(model, t, L)]
    return out


def columns(w: torch.Tensor, L: NodeLayer) -> torch.Tensor:
    """``w`` (a weight reading ``L``) as (out, L.num_nodes, k): block i is what unit i feeds
    (channel-major after a flatten)."""
    return w if w.dim() > 2 else w.view(w.shape[0], L.num_nodes, -1)   # conv: dim 1 is it


def _moments(optimizer, p: torch.Tensor) -> list[torch.Tensor]:
    """The optimizer's per-weight state tensors of ``p`` (Adam: exp_avg, exp_avg_sq)."""
    if optimizer is None:
        return []
    st = optimizer.state.get(p, {})
    return [v for k, v in st.items() if torch.is_tensor(v) and v.shape == p.shape]


@torch.no_grad()
def recycle(model: nn.Module, layers: list[NodeLayer], L: NodeLayer, idx: torch.Tensor,
            generator: torch.Generator, optimizer=None) -> None:
    """Units ``idx`` of ``L``: fresh incoming weights (``reinit_rows``), zero outgoing
    weights, and zero optimizer moments of all of them (the step counts stay)."""
    if idx.numel() == 0:
        return
    reinit_rows(L, idx, generator)
    for p in L.group_params:                # incoming weights, bias, BN scale and shift
        for s in _moments(optimizer, p):
            s[idx] = 0
    for w in outgoing_weights(model, layers, L):
        for t in [w, *_moments(optimizer, w)]:
            columns(t, L)[:, idx] = 0
