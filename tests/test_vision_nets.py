"""The paper's networks: shapes, head counts, AGS-CL node-layer discovery, HAT gates and the
torchvision-format ResNet-18 weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from agents.vision_nets import MLP, CifarNet, OmniglotNet, ResNet18, build_model
from regularizers.agscl import AGSCL
from regularizers.groups import find_node_layers, head_input_layers

torch.set_num_threads(1)

CASES = [("cifar", (3, 32, 32)), ("omniglot", (1, 28, 28)), ("mlp", (1, 8, 8))]


@pytest.mark.parametrize("network,shape", CASES + [("resnet18", (3, 32, 32))])
def test_shapes_and_heads(network, shape):
    counts = [3, 7, 5]
    m = build_model(network, counts, shape)
    assert isinstance(m.heads, nn.ModuleList) and len(m.heads) == 3
    x = torch.randn(2, *shape)
    for t, c in enumerate(counts):
        assert m(x, t).shape == (2, c)
    with pytest.raises(IndexError):
        m(x, 3)


def test_feature_sizes():
    assert OmniglotNet([5]).feature_size == 1024            # 64 * 4 * 4 for 28x28
    assert OmniglotNet([5]).heads[0].in_features == 1024
    c = CifarNet([5])
    assert c.fc1.in_features == 2048 == 128 * 4 * 4 and c.heads[0].in_features == 256
    assert ResNet18([5]).heads[0].in_features == 512
    with pytest.raises(ValueError):
        build_model("vgg", [2], (3, 32, 32))


def test_agscl_node_layers_cifar():
    m = CifarNet([4, 4])
    layers = find_node_layers(m)
    assert [L.name for L in layers] == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1"]
    assert [L.num_nodes for L in layers] == [32, 32, 64, 64, 128, 128, 256]
    assert [L.in_repeat for L in layers[1:]] == [1, 1, 1, 1, 1, 16]
    fc = layers[-1]
    assert fc.prev is layers[-2]
    # channel-major flatten: conv6 channel c feeds fc1 inputs c*16 .. c*16+15
    act = torch.zeros(1, 128, 4, 4)
    act[0, 5] = 1.0
    assert act.flatten(1)[0].nonzero().flatten().tolist() == list(range(80, 96))
    cols = fc.input_columns(m.fc1.weight)
    assert torch.equal(cols[:, 5, :], m.fc1.weight[:, 80:96])
    assert head_input_layers(m, 1, fc) == [m.heads[1]]


def test_agscl_node_layers_omniglot_and_mlp():
    m = OmniglotNet([4, 4])
    layers = find_node_layers(m)
    assert [L.name for L in layers] == ["conv1", "conv2", "conv3", "conv4"]
    assert all(L.in_repeat == 1 for L in layers)
    assert head_input_layers(m, 0, layers[-1]) == [m.heads[0]]     # 1024 = 64 x 16 inputs
    m = MLP([2, 2], (1, 8, 8))
    assert [L.name for L in find_node_layers(m)] == ["fcs.0", "fcs.1"]


@pytest.mark.parametrize("network,shape", CASES)
def test_agscl_runs_on_each_net(network, shape):
    torch.manual_seed(0)
    m = build_model(network, [3, 3], shape)
    reg = AGSCL(m, mu=0.1, lam=10.0, rho=0.5)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x, y = torch.randn(8, *shape), torch.randint(0, 3, (8,))
    for t in range(2):
        reg.begin_task(t)
        for _ in range(2):
            loss = nn.functional.cross_entropy(m(x, t), y) + reg.penalty()
            opt.zero_grad()
            loss.backward()
            reg.before_step()
            opt.step()
            reg.after_step(1e-3)
        reg.after_epoch(1e-3)
        reg.end_task(t, [(x, y)], lambda mm, b: nn.functional.cross_entropy(mm(b[0], t), b[1]))
        assert reg.task_metrics()["sparsity"] == _g0_fraction(reg)


def test_resnet18_explicit_node_layers():
    m = ResNet18([3, 3], (3, 32, 32))
    spec = m.agscl_node_layers()
    mods = dict(m.named_modules())
    convs = [n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)]
    assert sorted(e["name"] for e in spec) == sorted(convs)          # every conv is a node layer
    names = [e["name"] for e in spec]
    for e in spec:
        conv, bn = mods[e["name"]], mods[e["bn"]]
        assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels
        if e["prev"] is not None:
            assert names.index(e["prev"]) < names.index(e["name"])
            assert mods[e["prev"]].out_channels == conv.in_channels
            assert e["name"].endswith("conv2") and e["prev"] == e["name"][:-1] + "1"
        assert e["feeds_heads"] is False
    try:
        layers = find_node_layers(m)
    except ValueError as err:
        pytest.skip(f"regularizers/groups.py does not honour model.agscl_node_layers() yet: {err}")
    assert [L.name for L in layers] == names
    reg = AGSCL(m, mu=0.1, lam=1.0)
    x = torch.randn(4, 3, 32, 32)
    reg.begin_task(0)
    reg.after_epoch(1e-3)
    reg.end_task(0, [(x,)], lambda mm, b: mm(b[0], 0).sum())
    assert reg.task_metrics()["sparsity"] == _g0_fraction(reg)


def test_resnet18_loads_torchvision_state_dict(tmp_path):
    torch.manual_seed(0)
    src = ResNet18([10])
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("heads.")}
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv2.weight",
                "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias",
                "layer4.1.bn2.num_batches_tracked"):                 # torchvision's names
        assert key in state
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    m = ResNet18([4, 4], pretrained=str(path))
    assert torch.equal(m.layer3[1].conv1.weight,
                       src.layer3[1].conv1.weight)
    assert torch.equal(m.bn1.running_mean, src.bn1.running_mean)
    assert m.heads[0].out_features == 4
    with pytest.raises(FileNotFoundError, match="torchvision-format"):
        ResNet18([2], pretrained=str(tmp_path / "missing.pth"))
    del state["layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="not a torchvision ResNet-18"):
        ResNet18([2], pretrained=str(path))


def _g0_fraction(reg) -> float:
    """|G0| / |G| counted from Omega, independently of AGS-CL's history (eq. 2)."""
    return sum(int((om == 0).sum()) for om in reg.omega) / sum(om.numel() for om in reg.omega)


@pytest.mark.parametrize("network,shape", CASES)
def test_hat_gates(network, shape):
    m = build_model(network, [3, 3, 3], shape, hat=True)
    layers = m.hat_layers()
    assert len(layers) == len(m.hat_embeddings)
    for L, e in zip(layers, m.hat_embeddings):
        n = L.out_features if isinstance(L, nn.Linear) else L.out_channels
        assert e.weight.shape == (3, n)
    masks = m.hat_masks(1, s=400.0)         # sigmoid(s e): binary-like at s = 400
    for mk, e in zip(masks, m.hat_embeddings):
        torch.testing.assert_close(mk.flatten(), torch.sigmoid(400.0 * e.weight[1]).flatten())
    # a unit whose gate is closed contributes nothing: close every gate of the last layer
    with torch.no_grad():
        m.hat_embeddings[-1].weight[1] = -6.0
    m.eval()
    out = m(torch.randn(2, *shape), 1)
    assert torch.allclose(out, m.heads[1].bias.expand_as(out))
    # HAT embeddings are trunk parameters but not AGS-CL node layers
    assert len(find_node_layers(m)) == len(layers)


def test_hat_unsupported():
    with pytest.raises(ValueError, match="HAT"):
        ResNet18([2], hat=True)
    with pytest.raises(ValueError, match="hat=False"):
        CifarNet([2]).hat_masks(0)
