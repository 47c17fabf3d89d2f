"""AGS-CL against the paper's equations, each checked by an independent computation."""
import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from torch import nn

import regularizers
from regularizers.agscl import AGSCL, default_init
from regularizers.groups import find_node_layers
from tests.tiny import TinyCNN, TinyMLP


def group_vectors(layer):
    """Each node's group theta_n as a row: incoming weights, bias, BN scale and shift."""
    return torch.cat([p.detach().reshape(p.shape[0], -1) for p in layer.group_params], 1)


def numeric_prox(v, center, c, alpha):
    """argmin_theta c*||theta - center|| + ||theta - v||^2 / (2 alpha), by SLSQP on the
    epigraph form min c*t + ||theta - v||^2/(2 alpha) s.t. t >= ||theta - center||
    (independent of Lemma 1)."""
    v, center = v.astype(np.float64), center.astype(np.float64)
    d = len(v)

    def obj(z):
        return c * z[-1] + np.sum((z[:-1] - v) ** 2) / (2 * alpha)

    cons = {"type": "ineq", "fun": lambda z: z[-1] - np.linalg.norm(z[:-1] - center)}
    z0 = np.concatenate([v, [np.linalg.norm(v - center) + 1.0]])
    res = minimize(obj, z0, constraints=[cons], method="SLSQP",
                   options={"ftol": 1e-15, "maxiter": 1000})
    return res.x[:d]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prox_matches_numeric_minimiser(seed):
    torch.manual_seed(seed)
    model = TinyMLP()
    reg = AGSCL(model, mu=0.3, lam=2.0, eta=0.9)
    # some important nodes (Omega > 0), some not; theta_hat some other point
    reg.omega = [torch.tensor([0.0, 0.5, 0.0, 1.3]), torch.tensor([0.7, 0.0, 0.2])]
    reg.theta_hat = [[p.detach() + 0.3 * torch.randn_like(p) for p in L.group_params]
                     for L in reg.layers]
    reg.begin_task(0)                # the per-task constants of this Omega and theta_hat
    alpha = 0.25
    before = [group_vectors(L).numpy() for L in reg.layers]
    reg.prox(alpha)
    for L, om, th, v_all in zip(reg.layers, reg.omega, reg.theta_hat, before):
        after = group_vectors(L).numpy()
        hat = torch.cat([t.reshape(t.shape[0], -1) for t in th], 1).numpy()
        for n in range(L.num_nodes):
            if om[n] == 0:      # eq. (11): group Lasso toward 0
                expect = numeric_prox(v_all[n], np.zeros_like(v_all[n]), reg.mu, alpha)
            else:               # eq. (12)-(13): toward theta_hat with strength lam * Omega
                expect = numeric_prox(v_all[n], hat[n], reg.lam * float(om[n]), alpha)
            np.testing.assert_allclose(after[n], expect, atol=2e-5)


def test_exact_sparsity_and_freeze_heads_untouched():
    torch.manual_seed(0)
    model = TinyMLP()
    heads_before = [p.detach().clone() for p in model.heads.parameters()]
    reg = AGSCL(model, mu=1.0, lam=1.0)
    reg.omega = [torch.tensor([0.0, 0.0, 5.0, 5.0]), torch.tensor([5.0, 0.0, 0.0])]
    reg.theta_hat = [[p.detach() + 0.01 for p in L.group_params] for L in reg.layers]
    reg.begin_task(0)                # the per-task constants of this Omega and theta_hat
    norms = [torch.linalg.norm(group_vectors(L), dim=1) for L in reg.layers]
    alpha = float(max(n.max() for n in norms)) / 1.0 + 1.0   # every G0 node is under alpha*mu
    reg.prox(alpha)
    for L, om, th in zip(reg.layers, reg.omega, reg.theta_hat):
        g = group_vectors(L)
        hat = torch.cat([t.reshape(t.shape[0], -1) for t in th], 1)
        for n in range(L.num_nodes):
            if om[n] == 0:
                assert torch.equal(g[n], torch.zeros_like(g[n]))          # exactly sparse
            else:
                assert torch.equal(g[n], hat[n])                          # bitwise frozen
    for a, b in zip(heads_before, model.heads.parameters()):
        assert torch.equal(a, b)


def test_node_layers_and_conv_flatten_mapping():
    model = TinyCNN()
    layers = find_node_layers(model)
    assert [L.name for L in layers] == ["conv1", "conv2", "fc"]
    assert layers[0].bn is model.bn1
    assert [L.num_nodes for L in layers] == [3, 2, 4]
    assert layers[2].in_repeat == 9
    # channel-major flatten: node c of conv2 feeds fc inputs c*9 .. c*9+8
    w = torch.arange(4 * 18, dtype=torch.float32).reshape(4, 18)
    cols = layers[2].input_columns(w)
    assert torch.equal(cols[:, 1], w[:, 9:18])
    x = torch.zeros(1, 2, 3, 3)
    x[0, 1] = 1.0
    assert torch.equal(x.flatten(1)[0].nonzero().flatten(), torch.arange(9, 18))


def _manual_mean_relu(model, xs):
    """Independent forward pass: mean ReLU output per node of conv1(+bn), conv2, fc."""
    model.eval()
    with torch.no_grad():
        a1 = F.relu(model.bn1(model.conv1(xs)))
        a2 = F.relu(model.conv2(a1))
        a3 = F.relu(model.fc(a2.flatten(1)))
    return [a1.mean(dim=(0, 2, 3)), a2.mean(dim=(0, 2, 3)), a3.mean(0)]


def test_omega_update_eq14():
    torch.manual_seed(0)
    model = TinyCNN()
    reg = AGSCL(model, eta=0.7, reinit="none")
    old = [torch.rand(L.num_nodes) for L in reg.layers]
    reg.omega = [o.clone() for o in old]
    xs = torch.randn(10, 1, 6, 6)
    batches = [(xs[:4],), (xs[4:],)]     # unequal batch sizes: the mean is over samples
    expect = _manual_mean_relu(model, xs)
    reg.end_task(0, batches, loss_fn=None)
    for om, o, a in zip(reg.omega, old, expect):
        torch.testing.assert_close(om, 0.7 * o + a, rtol=1e-5, atol=1e-6)


def _train(model, reg, task, xs, ys, steps, lr=0.05):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    reg.begin_task(task)
    for _ in range(steps):
        loss = F.cross_entropy(model(xs, task), ys) + reg.penalty()
        opt.zero_grad()
        loss.backward()
        reg.before_step()
        opt.step()
        reg.after_step(lr)
    reg.after_epoch(lr)


def _dead_node_model():
    """TinyMLP (fed positive inputs) whose fc1 node 0 and fc2 node 2 are zero-norm, so their
    Omega stays 0 and (I.1)/(I.2) apply; every other node fires on positive inputs."""
    torch.manual_seed(1)
    model = TinyMLP(hidden=(4, 3))
    with torch.no_grad():
        for layer in (model.fc1, model.fc2):
            layer.weight.abs_()
            layer.bias.abs_()
        model.fc1.weight[0] = 0.0
        model.fc1.bias[0] = 0.0
        model.fc2.weight[:, 0] = 1.0
        model.heads[0].weight[:, 2] = 1.0
        model.fc2.weight[2] = 0.0
        model.fc2.bias[2] = 0.0
    return model


def test_zero_init_survives_next_task_and_rand_init_revives():
    model = _dead_node_model()
    reg = AGSCL(model, mu=0.0, lam=1e9, rho=1.0)
    xs, ys = torch.rand(32, 3), torch.randint(0, 2, (32,))
    reg.end_task(0, [(xs,)], loss_fn=None)
    assert reg.omega[0][0] == 0 and reg.omega[1][2] == 0
    assert (reg.omega[0][1:] > 0).all()
    # (I.1): outgoing weights of unimportant nodes are zero in the next layer and the head
    # (fc2 node 2 itself was then re-initialised by (I.2), so look at the other rows)
    assert torch.equal(model.fc2.weight[:2, 0], torch.zeros(2))
    assert torch.equal(model.heads[0].weight[:, 2], torch.zeros(2))
    # (I.2): zero-norm unimportant nodes got fresh non-zero incoming weights
    assert model.fc1.weight[0].abs().sum() > 0
    assert model.fc2.weight[2].abs().sum() > 0
    # theta_hat is the snapshot after re-initialisation
    assert torch.equal(reg.theta_hat[0][0], model.fc1.weight)
    # a further task: zeros from G0 nodes into important nodes survive exactly
    _train(model, reg, 1, xs, ys, steps=30)
    important = reg.omega[1] > 0
    assert torch.equal(model.fc2.weight[important][:, 0], torch.zeros(int(important.sum())))
    assert torch.equal(model.heads[0].weight[:, 2], torch.zeros(2))  # old head untouched
    # important nodes with a huge lam stay bitwise frozen
    assert torch.equal(model.fc2.weight[important], reg.theta_hat[1][0][important])
    assert torch.equal(model.fc1.weight[1:], reg.theta_hat[0][0][1:])


@pytest.mark.parametrize("name,zero,rand", [("agscl_no_reinit", False, False),
                                            ("agscl_no_randinit", True, False),
                                            ("agscl_no_zeroinit", False, True)])
def test_ablation_switches(name, zero, rand):
    model = _dead_node_model()
    reg = regularizers.make(name, model)
    reg.end_task(0, [(torch.rand(16, 3),)], loss_fn=None)
    assert torch.equal(model.fc2.weight[:2, 0], torch.zeros(2)) is zero
    assert bool(model.fc1.weight[0].abs().sum() > 0) is rand


def test_rho_fraction_and_candidates():
    torch.manual_seed(0)
    model = TinyMLP(hidden=(8, 3))
    with torch.no_grad():
        model.fc1.weight[:6] = 0.0
        model.fc1.bias[:6] = 0.0
    reg = AGSCL(model, rho=0.5)
    reg.end_task(0, [(torch.randn(8, 3),)], loss_fn=None)
    revived = int((model.fc1.weight[:6].abs().sum(1) > 0).sum())
    assert revived == 3


def test_sparsity_and_used_capacity():
    model = _dead_node_model()
    reg = AGSCL(model, reinit="zero")
    reg.end_task(0, [(torch.rand(16, 3),)], loss_fn=None)
    # G0 = {fc1 node 0, fc2 node 2} of 7 nodes; untouched dead nodes did not move
    assert reg.sparsity() == pytest.approx(2 / 7)
    assert reg.used_capacity() == pytest.approx(7 / 7)   # no training happened at all
    m = reg.task_metrics()
    assert {k: v for k, v in m.items() if "/" not in k} == {
        "sparsity": pytest.approx(2 / 7), "used_capacity": 1.0, "reinitialised": 0.0,
        "zero_norm": pytest.approx(2 / 7)}
    assert m["g0_end/fc1"] == pytest.approx(1 / 4) and m["g0_end/fc2"] == pytest.approx(1 / 3)
    xs, ys = torch.rand(32, 3), torch.randint(0, 2, (32,))
    reg2 = AGSCL(_dead_node_model(), lam=1e9, mu=0.0, reinit="zero")
    reg2.end_task(0, [(xs,)], loss_fn=None)
    _train(reg2.model, reg2, 1, xs, ys, steps=10)
    reg2.end_task(1, [(xs,)], loss_fn=None)
    # frozen important nodes did not move; the two unimportant ones did or stayed 0
    assert reg2.used_capacity() >= 5 / 7


def test_memory_bytes_and_state_round_trip():
    torch.manual_seed(0)
    model = TinyCNN()
    reg = AGSCL(model)
    nodes = 3 + 2 + 4
    trunk = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("heads"))
    assert reg.memory_bytes() == 4 * (nodes + trunk)
    reg.end_task(0, [(torch.randn(5, 1, 6, 6),)], loss_fn=None)
    state = reg.state_dict()
    reg2 = AGSCL(model)
    reg2.load_state_dict(state)
    for a, b in zip(reg.omega, reg2.omega):
        assert torch.equal(a, b)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    saved = [p.detach().clone() for p in model.parameters()]
    reg.prox(0.1)
    after1 = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p, s in zip(model.parameters(), saved):
            p.copy_(s)
    reg2.prox(0.1)
    for a, p in zip(after1, model.parameters()):
        assert torch.equal(a, p)


def test_penalty_zero_and_errors():
    model = TinyMLP()
    assert float(regularizers.make("agscl", model).penalty()) == 0.0
    assert float(regularizers.make("finetune", model).penalty()) == 0.0
    for kw, word in [({"mu": -1}, "mu"), ({"lam": -0.5}, "lam"), ({"eta": 0}, "eta"),
                     ({"eta": 1.5}, "eta"), ({"rho": 2}, "rho"), ({"prox": "often"}, "prox")]:
        with pytest.raises(ValueError, match=word):
            regularizers.make("agscl", model, **kw)
    with pytest.raises(ValueError, match="unknown regularizer 'nope'.*agscl"):
        regularizers.make("nope", model)
    with pytest.raises(ValueError, match="no hyperparameter"):
        regularizers.make("agscl", model, lr=3)
    with pytest.raises(ValueError, match="heads"):
        regularizers.make("agscl", torch.nn.Linear(2, 2))


def test_prox_once_per_epoch_setting():
    torch.manual_seed(0)
    model = TinyMLP()
    reg = AGSCL(model, mu=100.0, prox="epoch")
    before = [p.detach().clone() for p in model.parameters()]
    reg.after_step(0.1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    reg.after_epoch(0.1)
    assert torch.equal(model.fc1.weight, torch.zeros_like(model.fc1.weight))


@pytest.mark.parametrize("prox", ["step", "epoch"])
def test_hard_freeze_before_prox_keeps_important_nodes_exact(prox):
    """An important node whose real drift is within alpha*lam*Omega snaps back to theta_hat
    exactly, even when the optimizer also moved its cut weight (from an Omega == 0 node of the
    previous layer, held at 0 by the hard freeze): the freeze must act before the prox, or
    that weight's drift would count in ||theta - theta_hat|| and leave the row moved."""
    model = _dead_node_model()
    reg = AGSCL(model, mu=0.0, lam=1.0, rho=0.0, prox=prox)
    reg.end_task(0, [(torch.rand(16, 3),)], loss_fn=None)
    reg.begin_task(1)
    assert reg.omega[0][0] == 0                  # fc1 node 0: unimportant, its column is cut
    i = int(torch.nonzero(reg.omega[1] > 0)[0])  # an important fc2 node
    alpha = 0.1
    thr = alpha * reg.lam * float(reg.omega[1][i])
    w_hat, b_hat = reg.theta_hat[1][0][i].clone(), reg.theta_hat[1][1][i].clone()
    assert w_hat[0] == 0
    with torch.no_grad():
        model.fc2.weight[i, 1:] += 0.3 * thr / (w_hat.numel() - 1) ** 0.5   # within threshold
        model.fc2.weight[i, 0] = 5.0 * thr                                   # cut column drift
    reg.after_step(alpha)
    if prox == "epoch":
        assert model.fc2.weight[i, 0] == 0 and not torch.equal(model.fc2.weight[i], w_hat)
        reg.after_epoch(alpha)
    assert torch.equal(model.fc2.weight[i], w_hat)
    assert torch.equal(model.fc2.bias[i], b_hat)


def test_state_of_another_network_is_refused():
    reg = AGSCL(TinyMLP(hidden=(4, 3)))
    state = reg.state_dict()
    other = AGSCL(TinyMLP(d_in=5, hidden=(4, 3))).state_dict()   # same nodes, other fan-in
    with pytest.raises(ValueError, match="another network"):
        reg.load_state_dict(dict(state, theta_hat=other["theta_hat"]))
    reg.load_state_dict(state)


@pytest.mark.parametrize("reinit_from, revived", [("zero_norm", 2), ("unimportant", 3)])
def test_zero_norm_and_reinitialised_tell_sparsified_from_dead_nodes(reinit_from, revived):
    """A G0 node can be zero-norm (sparsified) or only inactive (a dead ReLU with weights):
    task_metrics tells them apart, and the paper's (I.2) rule re-initialises only the first."""
    model = _dead_node_model()
    with torch.no_grad():                        # fc1 node 1: negative weights, never fires
        model.fc1.weight[1] = -model.fc1.weight[1].abs() - 0.1
        model.fc1.bias[1] = -1.0
    reg = AGSCL(model, rho=1.0, reinit_from=reinit_from)
    reg.end_task(0, [(torch.rand(16, 3),)], loss_fn=None)
    m = reg.task_metrics()
    assert m["sparsity"] == pytest.approx(3 / 7)         # fc1 nodes 0, 1 and fc2 node 2
    assert m["zero_norm"] == pytest.approx(2 / 7)        # fc1 node 0 and fc2 node 2
    assert m["reinitialised"] == pytest.approx(revived / 7)


# --- the end-of-task steps, one by one -----------------------------------------------------------
def test_update_omega_is_eta_omega_plus_mean_relu_activation_on_tiny_mlp():
    """Eq. (14) against a hand-computed forward pass of TinyMLP (float64, numpy)."""
    torch.manual_seed(0)
    model = TinyMLP()
    reg = AGSCL(model, eta=0.6)
    old = [torch.rand(4), torch.rand(3)]
    reg.omega = [o.clone() for o in old]
    xs = torch.randn(9, 3)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    hat = [[t.clone() for t in th] for th in reg.theta_hat]
    reg.update_omega(1, [(xs[:2],), (xs[2:],)])      # unequal batches: a mean over samples
    x = xs.double().numpy()
    w = {k: v.double().numpy() for k, v in weights.items()}
    a1 = np.maximum(x @ w["fc1.weight"].T + w["fc1.bias"], 0)
    a2 = np.maximum(a1 @ w["fc2.weight"].T + w["fc2.bias"], 0)
    for om, o, a in zip(reg.omega, old, (a1, a2)):
        np.testing.assert_allclose(om.numpy(), 0.6 * o.double().numpy() + a.mean(0),
                                   rtol=1e-6, atol=1e-7)
    for k, v in model.state_dict().items():            # eq. (14) only measures
        assert torch.equal(v, weights[k]), k
    for th, h in zip(reg.theta_hat, hat):
        assert all(torch.equal(a, b) for a, b in zip(th, h))


def test_unimportant_nodes_are_the_zero_omega_nodes():
    reg = AGSCL(TinyMLP())
    reg.omega = [torch.tensor([0.0, 0.5, 0.0, 1e-30]), torch.tensor([2.0, 0.0, 0.1])]
    g0 = reg.unimportant_nodes()
    assert [m.tolist() for m in g0] == [[True, False, True, False], [False, True, False]]


def test_zero_outgoing_zeroes_exactly_the_outgoing_columns_mlp():
    torch.manual_seed(0)
    model = TinyMLP()
    reg = AGSCL(model)
    expect = {k: v.clone() for k, v in model.state_dict().items()}
    expect["fc2.weight"][:, [1, 3]] = 0.0             # fc1 nodes 1, 3 feed fc2's columns 1, 3
    expect["heads.0.weight"][:, 0] = 0.0              # fc2 node 0 feeds column 0 of head 0
    reg.zero_outgoing(0, [torch.tensor([False, True, False, True]),
                          torch.tensor([True, False, False])])
    for k, v in model.state_dict().items():           # head 1 and every incoming weight kept
        assert torch.equal(v, expect[k]), k


def test_zero_outgoing_zeroes_exactly_the_outgoing_columns_cnn():
    """conv -> flatten -> linear: conv2 channel c feeds fc inputs c*9 .. c*9+8."""
    torch.manual_seed(0)
    model = TinyCNN()
    reg = AGSCL(model)
    expect = {k: v.clone() for k, v in model.state_dict().items()}
    expect["conv2.weight"][:, [0, 2]] = 0.0
    expect["fc.weight"][:, 9:18] = 0.0
    expect["heads.1.weight"][:, [0, 3]] = 0.0
    reg.zero_outgoing(1, [torch.tensor([True, False, True]), torch.tensor([False, True]),
                          torch.tensor([True, False, False, True])])
    for k, v in model.state_dict().items():
        assert torch.equal(v, expect[k]), k


def _zero_norm_cnn(seed=0):
    """TinyCNN whose conv1 channel 0 (with its BN scale and shift) and fc nodes 1, 3 have zero
    norm, with running BN statistics that are not the reset values."""
    torch.manual_seed(seed)
    model = TinyCNN()
    with torch.no_grad():
        model.bn1.running_mean.uniform_(-1, 1)
        model.bn1.running_var.uniform_(0.5, 2.0)
        for p in (model.conv1.weight, model.conv1.bias, model.bn1.weight, model.bn1.bias):
            p[0] = 0.0
        model.fc.weight[[1, 3]] = 0.0
        model.fc.bias[[1, 3]] = 0.0
    return model


# G0 for _zero_norm_cnn: conv1 node 1 is unimportant but not zero-norm, fc node 0 likewise
G0 = [torch.tensor([True, True, False]), torch.tensor([False, False]),
      torch.tensor([True, True, False, True])]


@pytest.mark.parametrize("layer", [
    lambda: nn.Linear(5, 3), lambda: nn.Linear(5, 3, bias=False),
    lambda: nn.Conv2d(2, 4, 3), lambda: nn.Conv2d(4, 6, 3, groups=2)])
def test_default_init_is_pytorchs_reset_parameters(layer):
    m = layer()
    torch.manual_seed(11)
    m.reset_parameters()
    weight, bias = default_init(m, torch.Generator().manual_seed(11))
    assert torch.equal(weight, m.weight)
    assert (bias is None) if m.bias is None else torch.equal(bias, m.bias)


def test_reinitialise_touches_exactly_the_chosen_rows():
    """(I.2), paper rule (zero-norm G0 nodes, rho = 1): conv1 node 0 and fc nodes 1, 3 get
    generator draws of the default init, their BN channel is reset, nothing else moves."""
    model = _zero_norm_cnn()
    reg = AGSCL(model, seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert reg.reinitialise(G0) == 3
    g = torch.Generator().manual_seed(5)           # the same draws, in the same order
    torch.randperm(1, generator=g)
    w1, b1 = default_init(model.conv1, g)
    torch.randperm(2, generator=g)
    w3, b3 = default_init(model.fc, g)
    expect = {k: v.clone() for k, v in before.items()}
    expect["conv1.weight"][0], expect["conv1.bias"][0] = w1[0], b1[0]
    expect["bn1.weight"][0], expect["bn1.bias"][0] = 1.0, 0.0
    expect["bn1.running_mean"][0], expect["bn1.running_var"][0] = 0.0, 1.0
    expect["fc.weight"][[1, 3]], expect["fc.bias"][[1, 3]] = w3[[1, 3]], b3[[1, 3]]
    for k, v in model.state_dict().items():
        assert torch.equal(v, expect[k]), k
    for k in ("conv1.weight", "conv1.bias", "fc.weight", "fc.bias"):
        assert not torch.equal(model.state_dict()[k], before[k])
    fresh = model.fc.weight[[1, 3]].detach()
    assert float(fresh.abs().max()) <= 1 / 18 ** 0.5          # U(+-1/sqrt(fan_in))


def test_reinitialise_rho_fraction_of_all_g0_rows():
    """reinit_from='unimportant', rho = 0.5: 2 of fc's 3 G0 rows, 1 of conv1's 2; no others."""
    model = _zero_norm_cnn()
    reg = AGSCL(model, rho=0.5, reinit_from="unimportant")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert reg.reinitialise(G0) == 3
    after = model.state_dict()
    fc_moved = (after["fc.weight"] != before["fc.weight"]).any(1)
    conv_moved = (after["conv1.weight"] != before["conv1.weight"]).flatten(1).any(1)
    assert int(fc_moved.sum()) == 2 and not (fc_moved & ~G0[2]).any()
    assert int(conv_moved.sum()) == 1 and not (conv_moved & ~G0[0]).any()
    for k in ("conv2.weight", "conv2.bias", "heads.0.weight", "heads.1.weight"):
        assert torch.equal(after[k], before[k]), k


def test_end_task_is_the_public_steps_in_the_papers_order():
    xs = torch.rand(6, 1, 6, 6)
    m1, m2 = _zero_norm_cnn(), _zero_norm_cnn()
    r1, r2 = AGSCL(m1, seed=4), AGSCL(m2, seed=4)
    r1.end_task(0, [(xs,)], loss_fn=None)
    r2.update_omega(0, [(xs,)])
    g0 = r2.unimportant_nodes()
    r2.zero_outgoing(0, g0)
    revived = r2.reinitialise(g0)
    r2.set_anchor()
    assert revived == 3 and r1.task_metrics()["reinitialised"] == pytest.approx(3 / 9)
    for a, b in zip(r1.omega, r2.omega):
        assert torch.equal(a, b)
    for th1, th2 in zip(r1.theta_hat, r2.theta_hat):
        assert all(torch.equal(a, b) for a, b in zip(th1, th2))
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(r1.freeze_masks(), r2.freeze_masks()):
        assert (a is None and b is None) or torch.equal(a, b)


def test_set_anchor_takes_theta_and_rebuilds_the_prox_target():
    torch.manual_seed(0)
    model = TinyMLP()
    reg = AGSCL(model, mu=0.0, lam=1e9)
    reg.omega = [torch.ones(4), torch.ones(3)]
    with torch.no_grad():
        model.fc1.weight.add_(1.0)
    reg.set_anchor()
    assert torch.equal(reg.theta_hat[0][0], model.fc1.weight)
    assert reg.theta_hat[0][0] is not model.fc1.weight
    target = model.fc1.weight.detach().clone()
    with torch.no_grad():
        model.fc1.weight.add_(1e-3)
    reg.after_step(0.1)                    # a huge lam * Omega: back to the new theta_hat
    assert torch.equal(model.fc1.weight, target)


def test_freeze_masks_cut_g0_inputs_of_important_nodes_and_are_copies():
    reg = AGSCL(TinyMLP())
    reg.omega = [torch.tensor([0.0, 1.0, 0.0, 2.0]), torch.tensor([3.0, 0.0, 1.0])]
    reg.begin_task(1)
    masks = reg.freeze_masks()
    assert masks[0] is None                        # fc1 reads the input, not nodes
    expect = torch.ones(3, 4, 1)
    expect[[[0], [2]], [[0, 2]]] = 0.0             # important fc2 rows 0, 2; G0 fc1 nodes 0, 2
    assert torch.equal(masks[1], expect)
    masks[1].zero_()
    assert torch.equal(reg.freeze_masks()[1], expect)
    reg.omega = [torch.ones(4), torch.ones(3)]     # nothing to cut
    reg.begin_task(2)
    assert reg.freeze_masks() == [None, None]
    off = AGSCL(TinyMLP(), hard_freeze=False)
    off.omega = [torch.tensor([0.0, 1.0, 0.0, 2.0]), torch.tensor([3.0, 0.0, 1.0])]
    off.begin_task(1)
    assert off.freeze_masks() == [None, None]


def test_a_layer_with_its_own_init_is_refused_for_rand_init():
    class Custom(nn.Linear):
        def reset_parameters(self):
            nn.init.ones_(self.weight)

    model = TinyMLP()
    model.fc2 = Custom(4, 3)
    with pytest.raises(ValueError, match="reset_parameters"):
        AGSCL(model)
    AGSCL(model, reinit="zero")                    # no (I.2): nothing to draw


# --- AGS-CL's own generator ---------------------------------------------------------------------
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))]


def _drawn(seed, global_seed, device="cpu", **kw):
    """The weights after (I.2) on _zero_norm_cnn, with the global RNG seeded ``global_seed``."""
    model = _zero_norm_cnn().to(device)
    reg = AGSCL(model, seed=seed, **kw)
    torch.manual_seed(global_seed)
    assert reg.reinitialise(G0) > 0
    return {k: v.cpu() for k, v in model.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kw", [{}, {"rho": 0.5, "reinit_from": "unimportant"}])
def test_same_seed_same_reinit_whatever_the_global_rng(device, kw):
    a = _drawn(7, 0, device, **kw)
    assert _same(a, _drawn(7, 12345, device, **kw))
    assert not _same(a, _drawn(8, 0, device, **kw))
    if device == "cuda":                           # one CPU generator: the CPU's draws
        assert _same(a, _drawn(7, 0, "cpu", **kw))


@pytest.mark.parametrize("device", DEVICES)
def test_end_task_leaves_the_global_rngs_untouched(device):
    model = _zero_norm_cnn().to(device)
    reg = AGSCL(model, rho=0.5, reinit_from="unimportant")
    xs = torch.rand(6, 1, 6, 6, device=device)
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    reg.end_task(0, [(xs,)], loss_fn=None)
    assert reg.task_metrics()["reinitialised"] > 0
    assert torch.equal(torch.get_rng_state(), cpu)
    if torch.cuda.is_available():
        assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), cuda))


def test_state_dict_round_trip_continues_the_same_draws():
    def fresh(seed):
        model = _zero_norm_cnn()
        return model, AGSCL(model, seed=seed, rho=0.5, reinit_from="unimportant")

    m1, r1 = fresh(3)
    r1.reinitialise(G0)                            # the generator moves on
    buf = io.BytesIO()
    torch.save({"model": m1.state_dict(), "reg": r1.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    m2, r2 = fresh(99)                             # another seed: the state must win
    m2.load_state_dict(ck["model"])
    r2.load_state_dict(ck["reg"])
    r1.reinitialise(G0)
    r2.reinitialise(G0)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert not torch.equal(m1.fc.weight, fresh(3)[0].fc.weight)


def test_seed_is_not_a_hyperparameter_and_make_passes_it():
    for name in ("agscl", "agscl_no_reinit", "agscl_no_randinit", "agscl_no_zeroinit"):
        assert "seed" not in regularizers.hyperparameters(name)
        assert regularizers.make(name, TinyMLP(), seed=5).seed == 5
    reg = regularizers.make("agscl", TinyMLP(), seed=5, mu=0.2)
    assert reg.mu == 0.2
    assert torch.equal(reg.generator.get_state(), torch.Generator().manual_seed(5).get_state())
    assert regularizers.make("agscl", TinyMLP()).seed == 0
    with pytest.raises(ValueError, match="seed"):
        AGSCL(TinyMLP(), seed=1.5)
