"""The plasticity methods (ReDo, Shrink & Perturb, L2 Init, continual backprop) and stacks of
them with a stability method, each against a hand computation on a tiny net."""
import copy

import pytest
import torch
import torch.nn.functional as F

import regularizers
from regularizers.agscl import default_init
from regularizers.base import Step
from regularizers.cbp import ContinualBackprop
from regularizers.l2_init import L2Init
from regularizers.redo import ReDo
from regularizers.shrink_perturb import ShrinkPerturb
from tests.tiny import TinyMLP


def _adam_with_state(model, x, task=0):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(x, task).sum().backward()
    opt.step()
    opt.zero_grad()
    return opt


def _model_with_a_dead_unit():
    """TinyMLP (3 -> 4 -> 3 -> heads) whose fc1 unit 2 never fires on positive inputs and
    whose fc1 unit 0 fires weakly, so their ReDo scores are known."""
    torch.manual_seed(0)
    m = TinyMLP()
    with torch.no_grad():
        m.fc1.weight.copy_(torch.tensor([[0.01, 0.0, 0.0], [1.0, 0.5, 0.2], [-1.0, -1.0, -1.0],
                                         [0.3, 0.9, 0.4]]))
        m.fc1.bias.copy_(torch.tensor([0.0, 0.1, -0.5, 0.2]))
        m.fc2.weight.abs_()
        m.fc2.bias.abs_()
    return m


def test_redo_recycles_exactly_the_tau_dormant_units():
    m = _model_with_a_dead_unit()
    x = torch.rand(32, 3) + 0.1
    opt = _adam_with_state(m, x)
    with torch.no_grad():                  # Definition 3.1 by hand
        h1 = F.relu(m.fc1(x)).abs().mean(0)
        h2 = F.relu(m.fc2(F.relu(m.fc1(x)))).abs().mean(0)
    s1, s2 = h1 / h1.mean(), h2 / h2.mean()
    tau = 0.1
    want1, want2 = (s1 <= tau).nonzero().flatten(), (s2 <= tau).nonzero().flatten()
    assert want1.tolist() == [0, 2]        # the weak unit and the dead one
    before = copy.deepcopy(m)
    moments = {n: {k: v.clone() for k, v in opt.state[p].items()} for n, p in m.named_parameters()}
    reg = ReDo(m, tau=tau, seed=7)
    chosen = reg.recycle_dormant(x, 0, opt)
    assert [c.tolist() for c in chosen] == [want1.tolist(), want2.tolist()]
    # fresh incoming weights: PyTorch's default init drawn from the method's own generator
    g = torch.Generator().manual_seed(7)
    w1, b1 = default_init(m.fc1, g)
    assert torch.equal(m.fc1.weight[want1], w1[want1]) and torch.equal(m.fc1.bias[want1], b1[want1])
    keep = [i for i in range(4) if i not in want1.tolist()]
    assert torch.equal(m.fc1.weight[keep], before.fc1.weight[keep])
    # outgoing weights zero: fc2's columns of the recycled fc1 units, the rest untouched
    assert torch.count_nonzero(m.fc2.weight[:, want1]) == 0
    assert torch.equal(m.fc2.weight[:, keep][[i for i in range(3) if i not in want2.tolist()]],
                       before.fc2.weight[:, keep][[i for i in range(3) if i not in want2.tolist()]])
    for p_name in ("fc1.weight", "fc1.bias"):
        p = dict(m.named_parameters())[p_name]
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.count_nonzero(opt.state[p][k][want1]) == 0
            assert torch.equal(opt.state[p][k][keep], moments[p_name][k][keep])
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.count_nonzero(opt.state[m.fc2.weight][k][:, want1]) == 0
    # every head's columns of a recycled last-trunk-layer unit are zero too
    for head in m.heads:
        assert torch.count_nonzero(head.weight[:, want2]) == 0


def test_redo_recycles_every_period_steps_on_the_steps_minibatch():
    m = _model_with_a_dead_unit()
    x = torch.rand(16, 3) + 0.1
    opt = _adam_with_state(m, x)
    reg = ReDo(m, tau=0.1, period=3, seed=1)
    reg.begin_task(0)
    calls = []
    reg.recycle_dormant = lambda xb, t, o: calls.append((xb is x, t, o is opt)) or []
    for _ in range(7):
        reg.begin_step(Step(0, x, None, opt, 0.01))
        reg.after_step(0.01)
    assert calls == [(True, 0, True)] * 2            # after steps 3 and 6


def test_shrink_perturb_by_hand_and_heads_untouched():
    torch.manual_seed(1)
    m = TinyMLP()
    before = copy.deepcopy(m)
    reg = ShrinkPerturb(m, shrink=0.4, sigma=0.1, seed=3)
    reg.end_task(0, [], None)
    g = torch.Generator().manual_seed(3)
    for new, old in ((m.fc1, before.fc1), (m.fc2, before.fc2)):
        w, b = default_init(old, g)
        torch.testing.assert_close(new.weight, 0.4 * old.weight + 0.1 * w)
        torch.testing.assert_close(new.bias, 0.4 * old.bias + 0.1 * b)
    for a, b in zip(m.heads.parameters(), before.heads.parameters()):
        assert torch.equal(a, b)
    # every k steps too
    reg2 = ShrinkPerturb(copy.deepcopy(before), shrink=0.5, sigma=0.0, every=2)
    reg2.after_step(0.1)
    assert torch.equal(reg2.model.fc1.weight, before.fc1.weight)
    reg2.after_step(0.1)
    torch.testing.assert_close(reg2.model.fc1.weight, 0.5 * before.fc1.weight)


def test_l2_init_penalty_and_gradient():
    torch.manual_seed(2)
    m = TinyMLP()
    theta0 = [p.detach().clone() for p in m.parameters()]
    reg = L2Init(m, lam=0.3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    pen = reg.penalty()
    expect = 0.15 * sum(((p - t) ** 2).sum() for p, t in zip(m.parameters(), theta0))
    torch.testing.assert_close(pen, expect)
    pen.backward()
    for p, t in zip(m.parameters(), theta0):
        torch.testing.assert_close(p.grad, 0.3 * (p.detach() - t))
    assert reg.memory_bytes() == sum(t.numel() * 4 for t in theta0)


def test_continual_backprop_utility_and_replacement_by_hand():
    torch.manual_seed(4)
    m = TinyMLP()
    x = torch.rand(8, 3)
    opt = _adam_with_state(m, x)
    reg = ContinualBackprop(m, rate=0.5, maturity=1, decay=0.9, seed=5)
    reg.begin_task(0)
    utils = [torch.zeros(4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
    for step in range(2):
        out = m(x, 0)                        # the training forward pass (gradients on)
        with torch.no_grad():
            h1 = F.relu(m.fc1(x))
            h2 = F.relu(m.fc2(h1))
            mag1 = m.fc2.weight.abs().sum(0).double()
            mag2 = sum(h.weight.abs().sum(0) for h in m.heads).double()
            utils[0] = 0.9 * utils[0] + 0.1 * h1.mean(0).double() * mag1
            utils[1] = 0.9 * utils[1] + 0.1 * h2.mean(0).double() * mag2
        before = copy.deepcopy(m)
        reg.begin_step(Step(0, x, out, opt, 0.01))
        reg.after_step(0.01)
        if step == 0:                       # ages 1: none mature (age > 1) yet
            assert all(torch.allclose(u, e) for u, e in zip(reg.utility, utils))
            assert all(a.tolist() == [1] * len(a) for a in reg.age)
            assert all(torch.equal(p, q) for p, q in zip(m.parameters(), before.parameters()))
    # step 2: all mature (age 2 > 1); owed 0.5 * 4 = 2 in fc1, 0.5 * 3 = 1.5 in fc2
    low1 = torch.argsort(utils[0], stable=True)[:2]
    low2 = torch.argsort(utils[1], stable=True)[:1]
    assert sorted((reg.age[0] == 0).nonzero().flatten().tolist()) == sorted(low1.tolist())
    assert (reg.age[1] == 0).nonzero().flatten().tolist() == low2.tolist()
    assert reg.owed == [0.0, 0.5]
    rows = [r for r in range(3) if r not in low2.tolist()]   # fc2's replaced unit is fresh
    assert torch.count_nonzero(m.fc2.weight[rows][:, low1]) == 0
    assert torch.count_nonzero(opt.state[m.fc1.weight]["exp_avg"][low1]) == 0
    assert all(torch.count_nonzero(h.weight[:, low2]) == 0 for h in m.heads)
    assert all(float(reg.utility[0][i]) == 0 for i in low1)
    reg.end_task(0, [], None)
    assert reg.task_metrics() == {"replaced": 3 / 7}


class Recorder(regularizers.Regularizer):
    def __init__(self, model, tag, log):
        super().__init__(model)
        self.tag, self.log = tag, log

    def __getattribute__(self, name):
        if name in ("begin_task", "begin_step", "penalty", "before_step", "after_step",
                    "after_epoch", "end_task"):
            object.__getattribute__(self, "log").append((object.__getattribute__(self, "tag"),
                                                          name))
        return object.__getattribute__(self, name)


def test_stack_order_penalty_metrics_and_state():
    from regularizers.stack import Stack
    m = TinyMLP()
    log = []
    st = Stack([Recorder(m, "stab", log), Recorder(m, "plast", log)])
    st.begin_task(0)
    st.begin_step(Step(0, None, None, None, 0.1))
    st.penalty()
    st.before_step()
    st.after_step(0.1)
    st.after_epoch(0.1)
    st.end_task(0, iter([(torch.zeros(1, 3),)]), None)
    assert [t for t, _ in log] == ["stab", "plast"] * 7
    assert [h for h, _ in zip([n for _, n in log][::2], range(7))] == \
        ["begin_task", "begin_step", "penalty", "before_step", "after_step", "after_epoch",
         "end_task"]
    # a real stack: the penalties add up, metrics are prefixed, state round-trips
    torch.manual_seed(0)
    m = TinyMLP()
    reg = regularizers.make("ewc+l2init+redo", m, seed=2, lam=10.0, l2init_lam=0.5,
                            redo_tau=0.0)
    ewc, l2, redo = reg.methods
    assert (ewc.lam, l2.lam, redo.tau) == (10.0, 0.5, 0.0)
    x = torch.rand(8, 3)
    batches = [(x, torch.zeros(8, dtype=torch.long))]
    loss_fn = lambda model, b: F.cross_entropy(model(b[0], 0), b[1])   # noqa: E731
    reg.begin_task(0)
    reg.end_task(0, batches, loss_fn)
    reg.begin_task(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1)
    torch.testing.assert_close(reg.penalty(), ewc.penalty() + l2.penalty())
    assert set(reg.task_metrics()) >= {"redo_recycled"}
    clone = regularizers.make("ewc+l2init+redo", m, seed=99, lam=10.0, l2init_lam=0.5,
                              redo_tau=0.0)
    clone.load_state_dict(reg.state_dict())
    assert torch.equal(clone.methods[2].generator.get_state(), redo.generator.get_state())
    torch.testing.assert_close(clone.penalty(), reg.penalty())


def test_stack_names_and_errors():
    assert regularizers.parse("ewc+redo+snp") == ["ewc", "redo", "snp"]
    assert regularizers.parse("redo") == ["finetune", "redo"]
    assert regularizers.parse("cbp+agscl") == ["agscl", "cbp"]
    hp = regularizers.hyperparameters("ewc+l2init")
    assert hp["lam"] == 5000.0 and hp["l2init_lam"] == 1e-3          # no clash
    with pytest.raises(ValueError, match="stability methods"):
        regularizers.make("ewc+si", TinyMLP())
    with pytest.raises(ValueError, match="unknown regularizer 'nope'"):
        regularizers.make("ewc+nope", TinyMLP())
    with pytest.raises(ValueError, match="no hyperparameter tau"):
        regularizers.make("ewc+redo", TinyMLP(), tau=0.1)
    # the made stack holds every value in use: the given ones over each method's defaults
    reg = regularizers.make("ewc+redo", TinyMLP(), lam=7.0, redo_tau=0.025)
    assert reg.hparams == {**hp_of("ewc"), "lam": 7.0, "redo_tau": 0.025,
                           "redo_period": hp_of("redo")["redo_period"]}
    assert reg.hparams["online"] is False
    # a registry name's fixed arguments are values in use too
    assert regularizers.make("ewc_online+redo", TinyMLP()).hparams["online"] is True
    assert regularizers.make("agscl_no_reinit", TinyMLP()).hparams["reinit"] == "none"


def hp_of(name):
    return regularizers.hyperparameters(name)


TINY_MINATAR = ["minatar", "--games", "Breakout,Asterix", "--preset", "minatar_tiny",
                "--eval-every", "32", "--checkpoint-every", "1", "--no-progress",
                "--threads", "1", "--seed", "3"]


@pytest.mark.slow
@pytest.mark.parametrize("stack", [
    ["--regularizer", "ewc+redo", "--redo-period", "2", "--redo-tau", "0.5"],
    ["--regularizer", "agscl+snp", "--snp-every", "3"],
    ["--regularizer", "l2init", "--l2init-lam", "0.1"],
    ["--regularizer", "cbp", "--cbp-rate", "0.2", "--cbp-maturity", "2"]])
def test_resume_of_a_stack_equals_the_uninterrupted_run(tmp_path, monkeypatch, stack):
    import json

    import train
    from agents.ppo import PPOLearner
    args = TINY_MINATAR + stack
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0
    orig = PPOLearner.train_unit

    def crash(self, task, unit, reg=None):
        if (task, unit) == (1, 1):
            raise KeyboardInterrupt
        return orig(self, task, unit, reg)

    monkeypatch.setattr(PPOLearner, "train_unit", crash)
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(PPOLearner, "train_unit", orig)
    assert train.main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    full, cut = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("full", "cut"))
    drop = {"sps", "time_split", "task_seconds", "elapsed_seconds", "sessions"}
    assert {k: v for k, v in full.items() if k not in drop} == \
        {k: v for k, v in cut.items() if k not in drop}
    cfg = json.loads((tmp_path / "full" / "config.json").read_text())
    assert cfg["regularizer"] == stack[1]
    acted = {"ewc+redo": "redo_recycled", "cbp": "cbp_replaced"}.get(stack[1])
    if acted:                                      # the method did act in the run
        assert any(v > 0 for v in full[acted])


def test_plasticity_metrics_against_numpy():
    import numpy as np

    from agents.base import initial_weights, plasticity_metrics
    torch.manual_seed(5)
    m = TinyMLP(hidden=(6, 3))
    theta_0 = initial_weights(m)
    with torch.no_grad():
        m.fc1.weight.add_(0.2)
        m.fc1.weight[0] = 0.0          # a silent unit lowers the ranks
        m.fc1.bias[0] = -1.0
    x = torch.randn(40, 3)
    m(x, 0).sum().backward()
    rec = plasticity_metrics(m, x, 0, theta_0)["layers"]
    h1 = np.maximum(m.fc1(x).detach().numpy().astype(np.float64), 0)
    s = np.linalg.svd(h1, compute_uv=False)
    p = s / s.sum()
    srank = int(np.argmax(np.cumsum(s) / s.sum() >= 0.99)) + 1
    erank = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
    w, b = m.fc1.weight.detach().numpy(), m.fc1.bias.detach().numpy()
    w0, b0 = (t.numpy() for t in theta_0["fc1"])
    r = rec["fc1"]
    assert r["active"] == pytest.approx((h1 > 0).mean())
    assert r["stable_rank"] == srank and r["effective_rank"] == pytest.approx(erank, rel=1e-6)
    assert r["weight_norm"] == pytest.approx(np.sqrt((w ** 2).sum() + (b ** 2).sum()), rel=1e-6)
    assert r["init_distance"] == pytest.approx(np.sqrt(((w - w0) ** 2).sum() + ((b - b0) ** 2).sum()),
                                               rel=1e-6)
    g = np.sqrt((m.fc1.weight.grad.numpy() ** 2).sum() + (m.fc1.bias.grad.numpy() ** 2).sum())
    assert r["grad_norm"] == pytest.approx(g, rel=1e-6)
    assert set(rec) == {"fc1", "fc2"}
    m.zero_grad(set_to_none=True)
    assert plasticity_metrics(m, x, 0)["layers"]["fc2"]["grad_norm"] is None
