"""AGS-CL's CUDA-graph path (``after_step`` replayed as one graph on a GPU) against the eager one.

These need a GPU and are skipped without one (bench/gpu_check.sh runs them on a lent machine).
On the CPU the graph is never used, which the last test checks everywhere.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from regularizers.agscl import AGSCL
from tests.tiny import TinyCNN

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pair(seed=0):
    """Two identical TinyCNN + AGS-CL pairs on the GPU after one task, with some Omega == 0
    nodes (so the freeze masks, eq. 11 and eq. 12-13 all act); the second uses eager steps."""
    torch.manual_seed(seed)
    model = TinyCNN().cuda()
    with torch.no_grad():
        model.conv1.weight[0] = 0.0            # a dead channel: Omega 0, its outputs cut
        model.conv1.bias[0] = -1.0
    x = torch.rand(16, 1, 6, 6, device="cuda")
    reg = AGSCL(model, mu=0.05, lam=2.0, rho=0.0)
    reg.end_task(0, [(x,)], loss_fn=None)
    reg.begin_task(1)
    model2 = copy.deepcopy(model)
    reg2 = AGSCL(model2, mu=0.05, lam=2.0, rho=0.0)
    reg2.load_state_dict(reg.state_dict())
    reg2.begin_task(1)
    reg2.use_cuda_graph = False
    return (model, reg), (model2, reg2), x


def _steps(model, reg, x, n, lrs):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(5)
    y = torch.randint(0, 2, (x.shape[0],), device=x.device)
    for k in range(n):
        loss = F.cross_entropy(model(x, 1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():      # move the cut weights too: the freeze must put them back
            model.conv2.weight[:, 0] += 0.25
        reg.after_step(lrs[k % len(lrs)])


@cuda
def test_graph_steps_equal_eager_steps():
    (m1, r1), (m2, r2), x = _pair()
    assert (r1.omega[0] == 0).any() and (r1.omega[0] > 0).any()
    lrs = [0.5, 0.25, 0.125, 1e-3]             # alpha changes between replays
    _steps(m1, r1, x, 12, lrs)
    _steps(m2, r2, x, 12, lrs)
    assert r1._graph is not None and r2._graph is None
    g = r1._graph
    _steps(m1, r1, x, 1, lrs)
    _steps(m2, r2, x, 1, lrs)
    assert r1._graph is g                       # captured once, then replayed
    for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=1e-6, atol=1e-7, msg=n)
    # the freeze held: the dead conv1 channel feeds no important conv2 node, though every step
    # moved those weights by 0.25
    important = r1.omega[1] > 0
    assert important.any()
    cut = m1.conv2.weight[important][:, 0]
    assert torch.equal(cut, torch.zeros_like(cut))


@cuda
def test_graph_and_eager_after_step_agree_bitwise_on_the_same_weights():
    """One after_step from the same weights (no backward, so no cuDNN nondeterminism in
    between): the replayed graph and the eager kernels give identical bits."""
    (m1, r1), (m2, r2), x = _pair(seed=2)
    _steps(m1, r1, x, 1, [0.3])                 # captures r1's graph
    with torch.no_grad():
        for p2, p1 in zip(m2.parameters(), m1.parameters()):
            p1.add_(torch.randn_like(p1), alpha=0.05)
            p2.copy_(p1)
    for lr in (0.3, 0.01):
        r1.after_step(lr)
        r2.after_step(lr)
        for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
            assert torch.equal(p1, p2), n


@cuda
def test_loaded_state_drops_the_graph():
    (m1, r1), _, x = _pair(seed=3)
    _steps(m1, r1, x, 1, [0.1])
    assert r1._graph is not None
    r1.load_state_dict(r1.state_dict())
    assert r1._graph is None


@cuda
def test_graph_is_recaptured_for_a_new_task_and_a_moved_parameter():
    (m1, r1), (m2, r2), x = _pair(seed=1)
    _steps(m1, r1, x, 2, [0.1])
    g = r1._graph
    r1.begin_task(1)                            # new constants: the graph is dropped
    assert r1._graph is None
    _steps(m1, r1, x, 1, [0.1])
    assert r1._graph is not None and r1._graph is not g
    g = r1._graph
    with torch.no_grad():                       # a parameter given new storage
        m1.fc.weight.data = m1.fc.weight.data.clone()
    _steps(m1, r1, x, 1, [0.1])
    assert r1._graph is not g
    _steps(m2, r2, x, 2, [0.1])
    r2.begin_task(1)
    _steps(m2, r2, x, 2, [0.1])
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2, rtol=1e-6, atol=1e-7)


def test_cpu_never_captures():
    torch.manual_seed(0)
    model = TinyCNN()
    reg = AGSCL(model, mu=0.05, lam=2.0)
    reg.end_task(0, [(torch.rand(8, 1, 6, 6),)], loss_fn=None)
    reg.begin_task(1)
    reg.after_step(0.1)
    assert reg._graph is None
