"""AGS-CL against the paper's equations, each checked by an independent computation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize

import regularizers
from regularizers.agscl import AGSCL
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
    reg._prepare()
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
    reg._prepare()
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
    assert reg.task_metrics() == {"sparsity": pytest.approx(2 / 7), "used_capacity": 1.0,
                                  "reinitialised": 0.0, "zero_norm": pytest.approx(2 / 7)}
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
