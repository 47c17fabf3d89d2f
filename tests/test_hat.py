"""HAT (Serra et al. 2018): annealing, mask penalty, gradient conditioning, and the key
property that a previous task's outputs survive training a new one."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import regularizers
from agents.classifier import ClassifierLearner
from agents.config import ClassifierConfig
from agents.vision_nets import CifarNet, build_model
from envs.vision import make_stream
from regularizers.hat import HAT

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return make_stream("split_digits", seed=0, num_tasks=5)


def _learn(learner, reg, task):
    learner.begin_task(task)
    reg.begin_task(task)
    for u in range(learner.units_per_task(task)):
        learner.train_unit(task, u, reg)
    learner.end_task(task)
    batches, loss_fn = learner.importance_data(task)
    reg.end_task(task, batches, loss_fn)


def test_requires_hat_model():
    with pytest.raises(ValueError, match="hat=True"):
        HAT(CifarNet([2, 2]))
    with pytest.raises(ValueError, match="s_max"):
        HAT(CifarNet([2, 2], hat=True), s_max=0.5)
    assert isinstance(regularizers.make("hat", CifarNet([2], hat=True)), HAT)


def test_s_annealing_within_epoch():
    m = build_model("mlp", [2, 2], (1, 8, 8), hat=True)
    reg = HAT(m, s_max=400)
    assert m.hat_s == 400
    reg.begin_task(0)
    reg.begin_epoch(5)
    seen = [m.hat_s]
    for _ in range(4):
        reg.after_step(1e-3)
        seen.append(m.hat_s)
    expected = [1 / 400 + (400 - 1 / 400) * (b - 1) / 4 for b in range(1, 6)]
    assert seen == pytest.approx(expected)
    reg.after_epoch(1e-3)
    assert m.hat_s == 400
    with pytest.raises(ValueError, match="num_batches"):
        reg.begin_epoch(None)


def test_penalty_is_normalised_mask_regulariser():
    torch.manual_seed(0)
    m = build_model("mlp", [2, 2], (1, 8, 8), hat=True)
    reg = HAT(m, lam=0.5)
    reg.begin_task(0)
    masks = m.hat_masks(0)
    n = sum(k.numel() for k in masks)
    assert float(reg.penalty().detach()) == pytest.approx(0.5 * sum(float(k.detach().sum()) for k in masks) / n)
    reg.end_task(0, [], None)
    reg.begin_task(1)
    m.hat_s = 3.0
    masks = m.hat_masks(1)
    aux = [1 - c for c in reg.cum]
    want = 0.5 * sum(float((k.detach() * a).sum()) for k, a in zip(masks, aux)) / sum(float(a.sum()) for a in aux)
    assert float(reg.penalty().detach()) == pytest.approx(want, rel=1e-5)
    reg.penalty().backward()                                      # differentiable in e_t
    assert m.hat_embeddings[0].weight.grad[1].abs().sum() > 0


@pytest.mark.filterwarnings("ignore:HAT. only 1 batch")
def test_gradient_conditioning_on_cumulative_masks():
    torch.manual_seed(0)
    m = CifarNet([2, 2], hat=True)
    reg = HAT(m, clipgrad=0)
    with torch.no_grad():                    # binary task-0 gates: first half of every layer
        for e in m.hat_embeddings:
            n = e.weight.shape[1]
            e.weight[0] = torch.where(torch.arange(n) < n // 2, 6.0, -6.0)
    reg.end_task(0, [], None)
    reg.begin_task(1)
    reg.begin_epoch(1)
    x = torch.randn(4, 3, 32, 32)
    loss = m(x, 1).pow(2).sum() + reg.penalty()
    loss.backward()
    raw = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    reg.before_step()
    g = m.conv2.weight.grad                                        # (32, 32, 3, 3)
    assert torch.all(g[:16, :16] == 0)                             # used -> used: frozen
    assert torch.equal(g[16:], raw["conv2.weight"][16:])           # free output units
    assert torch.equal(g[:16, 16:], raw["conv2.weight"][:16, 16:])  # free inputs
    assert torch.all(m.conv2.bias.grad[:16] == 0)
    gf = m.fc1.weight.grad                                         # inputs: 128 ch x 16
    assert torch.all(gf[:128, :64 * 16] == 0)
    assert torch.equal(gf[:128, 64 * 16:], raw["fc1.weight"][:128, 64 * 16:])
    assert torch.equal(m.heads[1].weight.grad, raw["heads.1.weight"])      # heads untouched
    # embedding compensation: s_max / s * (cosh(clamp(s e)) + 1) / (cosh(e) + 1)
    e, s = m.hat_embeddings[0].weight, m.hat_s
    factor = 400 / s * (torch.cosh(torch.clamp(s * e, -50, 50)) + 1) / (torch.cosh(e) + 1)
    assert torch.allclose(m.hat_embeddings[0].weight.grad,
                          raw["hat_embeddings.0.weight"] * factor, rtol=1e-5)
    with torch.no_grad():
        m.hat_embeddings[0].weight[1] = 10.0
    reg.after_step(1e-3)
    assert float(m.hat_embeddings[0].weight.detach().max()) == 6.0


def test_previous_task_outputs_unchanged_exactly(digits):
    """With binary gates (embeddings at +-6, s = 400) HAT blocks every path task 0 uses."""
    torch.manual_seed(0)
    learner = ClassifierLearner(digits, ClassifierConfig.from_preset(
        "split_digits", "quick", hat=True, epochs=3, batch_size=32))
    m = learner.model
    reg = regularizers.make("hat", m)
    learner.begin_task(0)
    reg.begin_task(0)
    for u in range(3):
        learner.train_unit(0, u, reg)
    learner.end_task(0)
    with torch.no_grad():                  # make task 0's gates exactly binary
        for e in m.hat_embeddings:
            e.weight[0] = torch.where(e.weight[0] > 0, 6.0, -6.0)
    reg.end_task(0, *learner.importance_data(0))
    x0 = digits.prepare(digits[0].x_test)
    m.eval()
    with torch.no_grad():
        before = m(x0, 0).clone()
    acc0 = learner.evaluate(0)["score"]
    trunk_before = [p.detach().clone() for p in m.parameters()]
    _learn(learner, reg, 1)
    m.eval()
    with torch.no_grad():
        after = m(x0, 0)
    assert torch.equal(before, after)
    assert learner.evaluate(0)["score"] == acc0
    assert any(not torch.equal(a, p) for a, p in zip(trunk_before, m.parameters()))
    assert learner.evaluate(1)["score"] > 0.8


def test_hat_protects_old_task_compared_to_finetune(digits):
    """Ordinary training: HAT's output drift on task 0 is a small fraction of fine-tuning's
    (not zero: gates that are not exactly 0 or 1 at s_max let Adam move their weights)."""
    drift = {}
    for name in ("finetune", "hat"):
        torch.manual_seed(0)
        learner = ClassifierLearner(digits, ClassifierConfig.from_preset(
            "split_digits", "quick", hat=name == "hat", epochs=4, batch_size=32))
        reg = regularizers.make(name, learner.model)
        _learn(learner, reg, 0)
        x0 = digits.prepare(digits[0].x_test)
        learner.model.eval()
        with torch.no_grad():
            before = learner.model(x0, 0).clone()
        _learn(learner, reg, 1)
        learner.model.eval()
        with torch.no_grad():
            drift[name] = float((learner.model(x0, 0) - before).abs().mean())
    assert drift["hat"] < 0.25 * drift["finetune"]


def test_state_dict_round_trip_and_memory():
    torch.manual_seed(0)
    m = build_model("omniglot", [3, 3], (1, 28, 28), hat=True)
    reg = HAT(m)
    assert reg.memory_bytes() == 0
    reg.begin_task(0)
    reg.end_task(0, [], None)
    assert reg.memory_bytes() == 4 * 64 * 4
    assert set(reg.task_metrics()) == {"hat_task_units", "hat_used_units"}
    state = reg.state_dict()
    m2 = build_model("omniglot", [3, 3], (1, 28, 28), hat=True)
    reg2 = HAT(m2)
    reg2.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(reg.cum, reg2.cum))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(reg._grad_masks, reg2._grad_masks))
    other = HAT(build_model("cifar", [3, 3], (3, 32, 32), hat=True))
    with pytest.raises(ValueError, match="does not match"):
        other.load_state_dict(state)


def test_warns_once_when_an_epoch_has_too_few_batches_to_anneal():
    import warnings
    reg = HAT(CifarNet([2, 2], hat=True), s_max=400)
    with pytest.warns(UserWarning, match="only 2 batch.*per epoch.*s_max = 400"):
        reg.begin_epoch(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg.begin_epoch(2)                 # once per regularizer, not every epoch
        HAT(CifarNet([2, 2], hat=True)).begin_epoch(8)      # enough batches: silent
