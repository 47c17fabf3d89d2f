"""Unit surgery shared by the plasticity methods that recycle units (ReDo, continual backprop):
re-initialise a trunk unit's incoming weights, zero its outgoing weights, and reset the
optimizer's moments of both, so that a recycled unit starts as a fresh one that does not
yet change the network's outputs. Units are the node layers of ``groups.find_node_layers``
(a row of a Linear weight, an output channel of a Conv2d)."""
from __future__ import annotations

import torch
from torch import nn

from .agscl import default_init
from .groups import NodeLayer, head_input_layers, relu_outputs


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
    """Units ``idx`` of ``L``: fresh incoming weights and bias (PyTorch's default init of the
    layer type, drawn from ``generator``; a BatchNorm channel reset to scale 1, shift 0), zero
    outgoing weights, and zero optimizer moments of all of them (the step counts stay)."""
    if idx.numel() == 0:
        return
    m = L.module
    weight, bias = default_init(m, generator)
    rows = idx.cpu()
    m.weight[idx] = weight[rows].to(m.weight.device)
    incoming = [m.weight]
    if bias is not None:
        m.bias[idx] = bias[rows].to(m.bias.device)
        incoming.append(m.bias)
    if L.bn is not None and L.bn.affine:
        L.bn.weight[idx], L.bn.bias[idx] = 1.0, 0.0
        incoming += [L.bn.weight, L.bn.bias]
    for p in incoming:
        for s in _moments(optimizer, p):
            s[idx] = 0
    for w in outgoing_weights(model, layers, L):
        for t in [w, *_moments(optimizer, w)]:
            columns(t, L)[:, idx] = 0
