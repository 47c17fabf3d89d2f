"""Node groups of a trunk, found automatically (paper section 3.2).

A *node* is one output unit of a trunk layer: a row of an ``nn.Linear`` weight or an output
channel of an ``nn.Conv2d`` weight. Its *group* theta_n is everything that feeds it: the
incoming weights, the bias, and (when a BatchNorm follows a conv or linear layer) that
channel's BN scale and shift. A node's outgoing weights are the slice of the next trunk
layer's input that it feeds; for conv -> flatten -> linear the flattened input is
channel-major, so node c feeds input features ``c*HW : (c+1)*HW``.

The trunk is taken to be a chain: its Linear/Conv2d layers in definition order, each fed by
the previous one's ReLU output, the last one feeding the heads. A trunk that is not a chain
(e.g. a ResNet) describes its node layers itself: ``model.agscl_node_layers()`` returns a list
of ``{"name", "bn", "prev", "feeds_heads"}`` (module names; ``prev`` the single node layer
feeding it, or None where it reads a sum of several). Layers inside ``model.heads`` are never
nodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(eq=False)
class NodeLayer:
    name: str
    module: nn.Module                       # nn.Linear or nn.Conv2d
    bn: nn.Module | None = None             # BatchNorm right after it, grouped per channel
    in_repeat: int = 1                      # input features per node of the previous layer
    prev: "NodeLayer | None" = field(default=None, repr=False)
    feeds_heads: bool = False               # its ReLU output is what the heads read

    @property
    def num_nodes(self) -> int:
        m = self.module
        return m.out_features if isinstance(m, nn.Linear) else m.out_channels

    @property
    def num_inputs(self) -> int:
        m = self.module
        return m.in_features if isinstance(m, nn.Linear) else m.in_channels

    @property
    def group_params(self) -> list[nn.Parameter]:
        """The tensors whose rows (dim 0) make up each node's group theta_n."""
        ps = [self.module.weight]
        if self.module.bias is not None:
            ps.append(self.module.bias)
        if self.bn is not None and self.bn.affine:
            ps += [self.bn.weight, self.bn.bias]
        return ps

    @property
    def activation_module(self) -> nn.Module:
        """The module whose output is the node's pre-ReLU value."""
        return self.bn if self.bn is not None else self.module

    def input_columns(self, weight: torch.Tensor) -> torch.Tensor:
        """View of ``weight`` as (out, prev_nodes, k): column block i is what node i feeds."""
        return weight.reshape(weight.shape[0], self.num_inputs // self.in_repeat, -1)


def _in_repeat(prev: NodeLayer, layer_name: str, module: nn.Module) -> int:
    n_in = module.in_features if isinstance(module, nn.Linear) else module.in_channels
    n_prev = prev.num_nodes
    if n_in == n_prev:
        return 1
    if isinstance(module, nn.Linear) and isinstance(prev.module, nn.Conv2d) and n_in % n_prev == 0:
        return n_in // n_prev                # conv -> flatten (channel-major) -> linear
    raise ValueError(
        f"cannot map the inputs of trunk layer {layer_name!r} ({n_in} inputs) onto the "
        f"{n_prev} nodes of {prev.name!r}: AGS-CL expects the trunk's Linear/Conv2d layers "
        f"to form a chain in definition order")


def find_node_layers(model: nn.Module) -> list[NodeLayer]:
    heads = getattr(model, "heads", None)
    if not isinstance(heads, nn.ModuleList):
        raise ValueError("model has no `heads` nn.ModuleList: continual models must keep their "
                         "per-task output layers in `model.heads`")
    spec = getattr(model, "agscl_node_layers", None)
    if callable(spec):
        return _layers_from_spec(model, spec())
    head_modules = {id(m) for m in heads.modules()}
    layers: list[NodeLayer] = []
    for name, m in model.named_modules():
        if id(m) in head_modules:
            continue
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            layer = NodeLayer(name, m)
            if layers:
                layer.prev = layers[-1]
                layer.in_repeat = _in_repeat(layers[-1], name, m)
            layers.append(layer)
        elif isinstance(m, _BN) and layers and layers[-1].bn is None \
                and m.num_features == layers[-1].num_nodes:
            layers[-1].bn = m
    if not layers:
        raise ValueError("the model's trunk has no nn.Linear or nn.Conv2d layer to regularise")
    layers[-1].feeds_heads = True
    return layers


def _layers_from_spec(model: nn.Module, spec: list[dict]) -> list[NodeLayer]:
    modules = dict(model.named_modules())
    head_modules = {id(m) for m in model.heads.modules()}
    by_name: dict[str, NodeLayer] = {}
    for entry in spec:
        name = entry["name"]
        m = modules.get(name)
        if not isinstance(m, (nn.Linear, nn.Conv2d)) or id(m) in head_modules:
            raise ValueError(f"agscl_node_layers(): {name!r} is not a trunk nn.Linear/nn.Conv2d")
        layer = NodeLayer(name, m, feeds_heads=bool(entry.get("feeds_heads", False)))
        if entry.get("bn"):
            bn = modules.get(entry["bn"])
            if not isinstance(bn, _BN) or bn.num_features != layer.num_nodes:
                raise ValueError(f"agscl_node_layers(): {entry['bn']!r} is not a BatchNorm with "
                                 f"{layer.num_nodes} channels for {name!r}")
            layer.bn = bn
        if entry.get("prev"):
            if entry["prev"] not in by_name:
                raise ValueError(f"agscl_node_layers(): prev {entry['prev']!r} of {name!r} is "
                                 f"not listed before it")
            layer.prev = by_name[entry["prev"]]
            layer.in_repeat = _in_repeat(layer.prev, name, m)
        by_name[name] = layer
    if not by_name:
        raise ValueError("agscl_node_layers() listed no layer")
    return list(by_name.values())


def head_input_layers(model: nn.Module, task: int, last: NodeLayer) -> list[nn.Linear]:
    """The Linear layers of head ``task`` that read the last trunk layer's nodes."""
    n = last.num_nodes
    return [m for m in model.heads[task].modules()
            if isinstance(m, nn.Linear) and m.in_features % n == 0
            and (m.in_features == n or isinstance(last.module, nn.Conv2d))]


def relu_outputs(model: nn.Module, layers: list[NodeLayer], x, task: int) -> dict[str, torch.Tensor]:
    """Every node layer's ReLU output (float32, detached; taken before an in-place ReLU can
    change it) in one no-gradient forward pass of ``model(x, task)``, by layer name."""
    acts: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_module, _inp, out):
            acts[name] = torch.relu(out.detach().float())
        return fn

    handles = [L.activation_module.register_forward_hook(hook(L.name)) for L in layers]
    try:
        with torch.no_grad():
            model(x, task)
    finally:
        for h in handles:
            h.remove()
    return acts
