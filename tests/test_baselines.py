"""EWC / online EWC, SI, MAS and RWALK against independent computations (tiny models, CPU)."""
import io
import sys

import pytest
import torch
from torch import nn
import torch.nn.functional as F

import regularizers
from regularizers.ewc import EWC
from regularizers.mas import MAS
from regularizers.quadratic import QuadraticRegularizer
from regularizers.rwalk import RWALK
from regularizers.si import SI

DT = torch.float64      # exact comparisons; the global default dtype is left alone
METHODS = ("ewc", "ewc_online", "si", "mas", "rwalk")


class Tiny(nn.Module):
    def __init__(self, n_tasks=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(4, 2) for _ in range(n_tasks))
        self.to(DT)

    def forward(self, x, task):
        return self.heads[task](self.trunk(x))


class TinyAC(Tiny):
    """PPO-like: returns (logits, value)."""

    def __init__(self):
        super().__init__()
        self.values = nn.Linear(4, 1).to(DT)   # outside heads, so part of the trunk

    def forward(self, x, task):
        h = self.trunk(x)
        return self.heads[task](h), self.values(h)


class Scalar(nn.Module):
    """One trunk weight theta; loss 0.5 * a * (theta - m)^2 is computed outside."""

    def __init__(self, theta0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([theta0], dtype=DT))
        self.heads = nn.ModuleList([nn.Identity()])

    def forward(self, x, task):
        return self.w * x


def data(seed, n=7):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=DT), torch.randint(0, 2, (n,), generator=g)


def batches_of(x, y, sizes):
    out, i = [], 0
    for s in sizes:
        out.append((x[i:i + s], y[i:i + s]))
        i += s
    return iter(out)        # single-pass, like a generator


def loss_fn_for(task):
    return lambda model, batch: F.cross_entropy(model(batch[0], task), batch[1])


def trunk(model):
    return [p for n, p in model.named_parameters() if not n.startswith("heads.")]


def train(model, reg, task, steps=4, lr=0.1, seed=0):
    x, y = data(100 + seed + task, n=8)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for i in range(steps):
        xb, yb = x[2 * (i % 4):2 * (i % 4) + 2], y[2 * (i % 4):2 * (i % 4) + 2]
        opt.zero_grad()
        loss = F.cross_entropy(model(xb, task), yb) + reg.penalty()
        loss.backward()
        reg.before_step()
        opt.step()
        reg.after_step(lr)
    reg.after_epoch(lr)


def run_task(model, reg, task, steps=4):
    reg.begin_task(task)
    train(model, reg, task, steps)
    x, y = data(200 + task)
    reg.end_task(task, batches_of(x, y, [3, 4]), loss_fn_for(task))


@torch.no_grad()
def perturb(model, scale=0.3, seed=5):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


# --- EWC ---------------------------------------------------------------------------------------
def per_sample_fisher(model, x, y, task):
    acc = [torch.zeros_like(p) for p in trunk(model)]
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1], task), y[i:i + 1]).backward()
        for a, p in zip(acc, trunk(model)):
            a += p.grad ** 2
    return [a / len(x) for a in acc]


def test_ewc_fisher_is_per_sample_empirical_fisher_with_batch_size_one():
    model = Tiny()
    reg = EWC(model, lam=3.0)
    x, y = data(1)
    reg.end_task(0, batches_of(x, y, [1] * len(x)), loss_fn_for(0))
    expected = per_sample_fisher(model, x, y, 0)
    assert reg.param_names == [n for n, _ in model.named_parameters() if not n.startswith("heads")]
    for f, e in zip(reg.importance, expected):
        torch.testing.assert_close(f, e)


@pytest.mark.parametrize("vmap", [True, False])
def test_ewc_default_fisher_is_per_sample_whatever_the_batches(vmap):
    """fisher_batch=1 (default): the per-sample empirical Fisher, by vmap or per-sample
    autograd, however the learner batched the data."""
    model = Tiny()
    reg = EWC(model)
    reg._use_vmap = vmap
    x, y = data(1)
    reg.end_task(0, batches_of(x, y, [3, 4]), loss_fn_for(0))
    assert reg._use_vmap is vmap
    for f, e in zip(reg.importance, per_sample_fisher(model, x, y, 0)):
        torch.testing.assert_close(f, e)


@pytest.mark.parametrize("fisher_batch,chunks", [
    (2, ((0, 2), (2, 3), (3, 5), (5, 7))),     # k-sample means (the lab's k = 20)
    (0, ((0, 3), (3, 7))),                     # the batches as given
])
def test_ewc_fisher_of_chunk_means_weighted_by_size(fisher_batch, chunks):
    """F = (1/N) sum_c |c| g_c^2 over chunks c of each given batch ([3, 4] here)."""
    model = Tiny()
    reg = EWC(model, fisher_batch=fisher_batch)
    x, y = data(2)
    reg.end_task(0, batches_of(x, y, [3, 4]), loss_fn_for(0))
    acc = [torch.zeros_like(p) for p in trunk(model)]
    for lo, hi in chunks:
        model.zero_grad()
        F.cross_entropy(model(x[lo:hi], 0), y[lo:hi]).backward()
        for a, p in zip(acc, trunk(model)):
            a += (hi - lo) * p.grad ** 2
    for f, a in zip(reg.importance, acc):
        torch.testing.assert_close(f, a / 7)


def test_ewc_penalty_value_and_zero_before_first_task():
    model = Tiny()
    reg = EWC(model, lam=7.0)
    p0 = reg.penalty()
    assert p0.shape == () and p0.item() == 0.0
    x, y = data(3)
    reg.end_task(0, batches_of(x, y, [7]), loss_fn_for(0))
    fisher = [f.clone() for f in reg.importance]
    star = [p.detach().clone() for p in trunk(model)]
    assert reg.penalty().item() == 0.0
    perturb(model)
    direct = sum((f * (p - s) ** 2).sum() for f, p, s in zip(fisher, trunk(model), star))
    torch.testing.assert_close(reg.penalty(), 7.0 / 2 * direct)


def test_fused_quadratic_penalty_gradient_matches_autograd_and_gradcheck():
    from regularizers.quadratic import _QuadraticPenalty
    torch.manual_seed(3)
    params = [torch.randn(4, 3, dtype=DT, requires_grad=True),
              torch.randn(5, dtype=DT, requires_grad=True)]
    w = [torch.rand(4, 3, dtype=DT), torch.rand(5, dtype=DT)]
    a = [torch.randn(4, 3, dtype=DT), torch.randn(5, dtype=DT)]
    fused = 3.0 * _QuadraticPenalty.apply(w, a, *params)        # a scaled loss, as in a sum
    g_fused = torch.autograd.grad(fused, params)
    ref = 3.0 * sum((wi * (p - ai).square()).sum() for wi, p, ai in zip(w, params, a))
    g_ref = torch.autograd.grad(ref, params)
    torch.testing.assert_close(fused, ref)
    for x, y in zip(g_fused, g_ref):
        torch.testing.assert_close(x, y)
    assert torch.autograd.gradcheck(lambda *ps: _QuadraticPenalty.apply(w, a, *ps), params)


@pytest.mark.parametrize("online,gamma", [(False, 1.0), (True, 0.5)])
def test_ewc_accumulation_over_tasks(online, gamma):
    model = Tiny()
    reg = EWC(model, lam=1.0, online=online, gamma=gamma)
    x0, y0 = data(4)
    reg.end_task(0, batches_of(x0, y0, [1] * 7), loss_fn_for(0))
    f0 = per_sample_fisher(model, x0, y0, 0)
    perturb(model)
    x1, y1 = data(5)
    reg.end_task(1, batches_of(x1, y1, [1] * 7), loss_fn_for(1))
    f1 = per_sample_fisher(model, x1, y1, 1)
    for f, a, b in zip(reg.importance, f0, f1):
        torch.testing.assert_close(f, gamma * a + b)
    for s, p in zip(reg.anchor, trunk(model)):          # single anchor: the last task's weights
        assert torch.equal(s, p.detach())
    assert reg.tasks_done == 2 and reg.task == 1



def test_ewc_mean_merge_is_the_running_mean_of_three_tasks_fishers():
    # the AGS-CL lab's update_fisher: F <- (F_new + t F_old) / (t + 1), i.e. after three tasks
    # (F0 + F1 + F2) / 3, each F_k the per-sample Fisher at the end of task k
    model = Tiny(n_tasks=3)
    reg = EWC(model, lam=1.0, merge="mean")
    fishers = []
    for task, seed in enumerate((4, 5, 6)):
        if task:
            perturb(model, seed=seed)
        x, y = data(seed)
        reg.end_task(task, batches_of(x, y, [1] * 7), loss_fn_for(task))
        fishers.append(per_sample_fisher(model, x, y, task))
        for f, *fs in zip(reg.importance, *fishers):
            torch.testing.assert_close(f, sum(fs) / len(fs))
    summed = EWC(Tiny(), lam=1.0)                # the default stays Kirkpatrick's sum
    assert summed.merge == "sum"


def test_vision_presets_use_the_labs_rules_that_their_docstrings_state():
    from agents.config import strengths
    for bench in ("omniglot", "split_cifar100", "cifar10_100", "cub200"):
        ewc = regularizers.make("ewc", Tiny(), **strengths(bench, "ewc"))
        assert ewc.merge == "mean" and ewc.fisher_batch == 20
        si = regularizers.make("si", Tiny(), **strengths(bench, "si"))
        assert si.path_gradient == "total"
        assert regularizers.make("mas", Tiny(), **strengths(bench, "mas")).estimator == "lab"
        assert regularizers.make("rwalk", Tiny(), **strengths(bench, "rwalk")).normalize is False
    atari = regularizers.make("ewc", Tiny(), **strengths("atari", "ewc"))
    assert atari.merge == "sum"
    assert "'mean'" in (sys.modules[EWC.__module__].__doc__ or "")
    assert "'total'" in (sys.modules[SI.__module__].__doc__ or "")


def test_si_total_path_gradient_keeps_the_penalty_gradient():
    c, m, lr, pen_weight = 0.7, 1.0, 0.1, 0.5
    model, reg, opt = _si_after_one_task(c, lr, path_gradient="total")
    opt.zero_grad()
    loss = (0.5 * (model.w - m) ** 2).sum() + pen_weight * reg.penalty()
    loss.backward()
    reg.before_step()
    opt.step()
    reg.after_step(lr)
    g_total = (2.0 - m) + pen_weight * 2 * c * 3.0 * (2.0 - 0.5)
    assert float(reg.omega[0]) == pytest.approx(-g_total * (-lr * g_total), rel=1e-12)

class DropoutNet(Tiny):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.9)

    def forward(self, x, task):
        return self.heads[task](self.drop(self.trunk(x)))


def test_ewc_fisher_in_eval_mode_and_mode_restored():
    model = DropoutNet()
    model.train()
    reg = EWC(model)
    x, y = data(6)
    reg.end_task(0, batches_of(x, y, [1] * 7), loss_fn_for(0))
    assert model.training
    model.eval()
    expected = per_sample_fisher(model, x, y, 0)
    for f, e in zip(reg.importance, expected):
        torch.testing.assert_close(f, e)


# --- SI ----------------------------------------------------------------------------------------
def test_si_importance_matches_closed_form_on_quadratic():
    a, m, lr, K, theta0, xi, c = 2.0, 1.0, 0.1, 6, 3.0, 0.01, 0.5
    model = Scalar(theta0)
    reg = SI(model, c=c, epsilon=xi)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    reg.begin_task(0)
    for _ in range(K):
        opt.zero_grad()
        (0.5 * a * (model.w - m) ** 2).sum().add(reg.penalty()).backward()
        reg.before_step()
        opt.step()
        reg.after_step(lr)
    reg.end_task(0, [], None)
    r = 1 - lr * a
    e0 = theta0 - m
    omega = lr * a ** 2 * e0 ** 2 * (1 - r ** (2 * K)) / (1 - r ** 2)   # sum_k -g_k * delta_k
    delta = e0 * (r ** K - 1)
    assert float(reg.importance[0]) == pytest.approx(omega / (delta ** 2 + xi), rel=1e-12)
    assert float(reg.anchor[0]) == pytest.approx(m + e0 * r ** K, rel=1e-12)
    assert float(reg.omega[0]) == 0.0

    # Task 2: the gradient of the penalty must not enter the path integral.
    b, m2 = 1.5, -2.0
    Om, star = float(reg.importance[0]), float(reg.anchor[0])
    reg.begin_task(1)
    th, w_expected, th_start = star, 0.0, star
    for _ in range(K):
        opt.zero_grad()
        (0.5 * b * (model.w - m2) ** 2).sum().add(reg.penalty()).backward()
        reg.before_step()
        opt.step()
        reg.after_step(lr)
        g_task = b * (th - m2)
        new = th - lr * (g_task + 2 * c * Om * (th - star))
        w_expected += -g_task * (new - th)
        th = new
    assert float(model.w.detach()) == pytest.approx(th, rel=1e-12)
    assert float(reg.omega[0]) == pytest.approx(w_expected, rel=1e-10)
    reg.end_task(1, [], None)
    assert float(reg.importance[0]) == pytest.approx(
        Om + w_expected / ((th - th_start) ** 2 + xi), rel=1e-10)


def _si_after_one_task(c, lr, **kw):
    """SI on the scalar model w = 2 as if one task were done: Omega = 3, anchor 0.5, omega 0."""
    model = Scalar(2.0)
    reg = SI(model, c=c, **kw)
    reg.begin_task(0)
    reg.omega[0].zero_()
    with torch.no_grad():
        reg.importance[0].fill_(3.0)
        reg.anchor[0].fill_(0.5)
    reg.tasks_done = 1
    reg._refresh()
    return model, reg, torch.optim.SGD(model.parameters(), lr=lr)


@pytest.mark.parametrize("pen_weight", [0.0, 0.5, None])
def test_si_removes_exactly_the_penalty_gradient_that_was_backpropagated(pen_weight):
    # pen_weight None: penalty() is evaluated (e.g. for logging) but not part of the loss
    c, m, lr = 0.7, 1.0, 0.1
    model, reg, opt = _si_after_one_task(c, lr)
    opt.zero_grad()
    task_loss = (0.5 * (model.w - m) ** 2).sum()
    pen = reg.penalty()
    loss = task_loss if pen_weight is None else task_loss + pen_weight * pen
    loss.backward()
    reg.before_step()
    opt.step()
    reg.after_step(lr)
    g_task = 2.0 - m
    g_total = g_task + (pen_weight or 0.0) * 2 * c * 3.0 * (2.0 - 0.5)
    assert float(reg.omega[0]) == pytest.approx(-g_task * (-lr * g_total), rel=1e-12)


def test_si_penalty_value():
    model = Tiny()
    reg = SI(model, c=2.0)
    run_task(model, reg, 0)
    om = [o.clone() for o in reg.importance]
    star = [p.detach().clone() for p in trunk(model)]
    perturb(model)
    direct = sum((o * (p - s) ** 2).sum() for o, p, s in zip(om, trunk(model), star))
    torch.testing.assert_close(reg.penalty(), 2.0 * direct)


# --- MAS ---------------------------------------------------------------------------------------
def test_mas_lab_estimator_matches_the_labs_loop():
    """estimator='lab': (1/N) sum over 20-sample chunks of |grad of the summed un-squared
    output norms|, chunks taken within each batch as given."""
    model = Tiny()
    reg = MAS(model, estimator="lab")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(45, 3, generator=g, dtype=torch.float64)
    reg.end_task(0, [(x[:25],), (x[25:],)], None)
    acc = [torch.zeros_like(p) for p in trunk(model)]
    for lo, hi in ((0, 20), (20, 25), (25, 45)):
        model.zero_grad()
        model(x[lo:hi], 0).norm(2, dim=-1).sum().backward()
        for a_, p in zip(acc, trunk(model)):
            a_ += p.grad.abs()
    for o, a_ in zip(reg.importance, acc):
        torch.testing.assert_close(o, a_ / 45)
    with pytest.raises(ValueError, match="estimator"):
        MAS(Tiny(), estimator="nope")



def per_sample_mas(model, x, task):
    acc = [torch.zeros_like(p) for p in trunk(model)]
    for i in range(len(x)):
        model.zero_grad()
        out = model(x[i:i + 1], task)
        outs = out if isinstance(out, tuple) else (out,)
        sum(o.pow(2).sum() for o in outs).backward()
        for a_, p in zip(acc, trunk(model)):
            a_ += p.grad.abs()
    return [a_ / len(x) for a_ in acc]


@pytest.mark.parametrize("cls", [Tiny, TinyAC])
def test_mas_importance_per_sample_and_accumulated(cls):
    model = cls()
    reg = MAS(model, lam=2.0)
    x, y = data(7)
    reg.end_task(0, batches_of(x, y, [3, 4]), None)
    assert reg._use_vmap                       # the vectorised path, not the fallback
    o0 = per_sample_mas(model, x, 0)
    for o, e in zip(reg.importance, o0):
        torch.testing.assert_close(o, e)
    perturb(model)
    x1, y1 = data(8, n=5)
    reg.end_task(1, batches_of(x1, y1, [5]), None)
    o1 = per_sample_mas(model, x1, 1)
    for o, a_, b in zip(reg.importance, o0, o1):
        torch.testing.assert_close(o, a_ + b)
    star = [p.detach().clone() for p in trunk(model)]
    imp = [o.clone() for o in reg.importance]
    perturb(model, seed=9)
    direct = sum((o * (p - s) ** 2).sum() for o, p, s in zip(imp, trunk(model), star))
    torch.testing.assert_close(reg.penalty(), 2.0 * direct)


def test_mas_loop_fallback_matches_vmap():
    model = Tiny()
    reg = MAS(model)
    x, _ = data(10)
    fast = reg.abs_grad_sum(x, 0)
    slow = reg._abs_grad_sum_loop(x, 0)
    for f_, s_ in zip(fast, slow):
        torch.testing.assert_close(f_, s_)


# --- RWALK -------------------------------------------------------------------------------------
def test_rwalk_fisher_and_score_on_controlled_sequence():
    model = Tiny()
    alpha, eps, lam = 0.7, 0.05, 3.0
    reg = RWALK(model, lam=lam, alpha=alpha, epsilon=eps)
    params = trunk(model)
    g = torch.Generator().manual_seed(11)

    def drive(steps):
        seq = [([torch.randn(p.shape, generator=g, dtype=DT) for p in params],
                [0.1 * torch.randn(p.shape, generator=g, dtype=DT) for p in params])
               for _ in range(steps)]
        for grads, deltas in seq:
            for p, gr in zip(params, grads):
                p.grad = gr.clone()
            reg.before_step()
            with torch.no_grad():
                for p, d in zip(params, deltas):
                    p.add_(d)
            reg.after_step(0.1)
        return seq

    def expected(seq, fisher, path):
        for grads, deltas in seq:
            for i, (gr, d) in enumerate(zip(grads, deltas)):
                fisher[i] = alpha * gr ** 2 + (1 - alpha) * fisher[i]
                path[i] = path[i] - gr * d / (0.5 * fisher[i] * d ** 2 + eps)
        return fisher, path

    reg.begin_task(0)
    seq0 = drive(3)
    fisher, path = expected(seq0, [torch.zeros_like(p) for p in params],
                            [torch.zeros_like(p) for p in params])
    for a_, b in zip(reg.fisher, fisher):
        torch.testing.assert_close(a_, b)
    for a_, b in zip(reg.path, path):
        torch.testing.assert_close(a_, b)
    reg.end_task(0, [], None)
    s0 = [p_.clamp(min=0) for p_ in path]
    fmax = max(float(f_.max()) for f_ in fisher)
    smax = max(float(s_.max()) for s_ in s0)
    for imp, f_, s_ in zip(reg.importance, fisher, s0):
        torch.testing.assert_close(imp, f_ / fmax + s_ / smax)
    assert all(float(p_.abs().max()) == 0 for p_ in reg.path)

    # Task 2: the Fisher keeps running; the score is averaged with the first task's.
    reg.begin_task(1)
    seq1 = drive(2)
    fisher, path1 = expected(seq1, fisher, [torch.zeros_like(p) for p in params])
    reg.end_task(1, [], None)
    s1 = [0.5 * (a_ + b.clamp(min=0)) for a_, b in zip(s0, path1)]
    fmax = max(float(f_.max()) for f_ in fisher)
    smax = max(float(s_.max()) for s_ in s1)
    for imp, f_, s_ in zip(reg.importance, fisher, s1):
        torch.testing.assert_close(imp, f_ / fmax + s_ / smax)
    star = [p.detach().clone() for p in params]
    imp = [o.clone() for o in reg.importance]
    perturb(model)
    direct = sum((o * (p - s) ** 2).sum() for o, p, s in zip(imp, params, star))
    torch.testing.assert_close(reg.penalty(), lam * direct)


def test_rwalk_unnormalised_and_task_gradient_excludes_penalty():
    model = Scalar(2.0)
    reg = RWALK(model, lam=0.5, alpha=0.5, epsilon=0.1, normalize=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reg.begin_task(0)
    for _ in range(2):
        opt.zero_grad()
        (0.5 * model.w ** 2).sum().add(reg.penalty()).backward()
        reg.before_step()
        opt.step()
        reg.after_step(0.1)
    reg.end_task(0, [], None)
    # theta: 2 -> 1.8 -> 1.62; g = theta; F: 0.5*4 = 2, then 0.5*3.24 + 0.5*2 = 2.62
    f = 0.5 * 1.8 ** 2 + 0.5 * 2.0
    s = 2 * 0.2 / (0.5 * 2 * 0.04 + 0.1) + 1.8 * 0.18 / (0.5 * f * 0.18 ** 2 + 0.1)
    assert float(reg.importance[0]) == pytest.approx(f + s, rel=1e-12)
    # Task 2 with the penalty active: the Fisher must see the task gradient only.
    Om, star = f + s, 1.62
    reg.begin_task(1)
    opt.zero_grad()
    (0.5 * 3.0 * model.w ** 2).sum().add(reg.penalty()).backward()
    reg.before_step()
    opt.step()
    reg.after_step(0.1)
    g_task = 3.0 * 1.62
    assert float(reg.fisher[0]) == pytest.approx(0.5 * g_task ** 2 + 0.5 * f, rel=1e-12)
    d = -0.1 * (g_task + 2 * 0.5 * Om * (1.62 - star))
    f2 = 0.5 * g_task ** 2 + 0.5 * f
    assert float(reg.path[0]) == pytest.approx(-g_task * d / (0.5 * f2 * d * d + 0.1), rel=1e-12)


# --- common ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", METHODS)
def test_make_defaults_and_heads_never_penalised(name):
    model = Tiny()
    reg = regularizers.make(name, model)
    assert reg.penalty().item() == 0.0
    run_task(model, reg, 0)
    perturb(model)
    model.zero_grad()
    pen = reg.penalty()
    assert pen.shape == () and pen.item() > 0
    pen.backward()
    for n, p in model.named_parameters():
        if n.startswith("heads."):
            assert p.grad is None or float(p.grad.abs().max()) == 0.0
    assert any(float(p.grad.abs().max()) > 0 for p in trunk(model))
    assert not any(n.startswith("heads") for n in reg.param_names)


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip(name):
    model = Tiny()
    reg = regularizers.make(name, model)
    run_task(model, reg, 0)
    reg.begin_task(1)
    train(model, reg, 1, steps=3)              # mid-task accumulators (SI omega, RWALK path)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "reg": reg.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)

    model2 = Tiny(seed=1)
    model2.load_state_dict(ckpt["model"])
    reg2 = regularizers.make(name, model2)
    reg2.begin_task(1)
    reg2.load_state_dict(ckpt["reg"])
    assert reg2.task == reg.task and reg2.tasks_done == reg.tasks_done == 1
    torch.testing.assert_close(reg2.penalty(), reg.penalty(), rtol=0, atol=0)
    # identical continuation: same steps, same end of task
    train(model, reg, 1, steps=2, seed=3)
    train(model2, reg2, 1, steps=2, seed=3)
    x, y = data(300)
    reg.end_task(1, batches_of(x, y, [7]), loss_fn_for(1))
    reg2.end_task(1, batches_of(x, y, [7]), loss_fn_for(1))
    for a_, b in zip(reg.state_tensors(), reg2.state_tensors()):
        torch.testing.assert_close(a_, b, rtol=0, atol=0)
    with pytest.raises(ValueError):
        regularizers.make(name, TinyAC()).load_state_dict(reg.state_dict())


@pytest.mark.parametrize("name", METHODS)
def test_memory_bytes_counts_importance_and_anchor(name):
    model = Tiny().float()      # 4-byte weights
    reg = regularizers.make(name, model)
    n_trunk = sum(p.numel() for p in trunk(model))
    assert n_trunk == 3 * 4 + 4 + 4 * 4 + 4
    per_weight = 4 if name == "rwalk" else 2     # RWALK: + running Fisher + averaged score
    assert reg.memory_bytes() == per_weight * n_trunk * 4
    model = Tiny()                  # 8-byte weights, after a task
    reg = regularizers.make(name, model)
    run_task(model, reg, 0)
    assert reg.memory_bytes() == per_weight * n_trunk * 8
    assert len(reg.state_tensors()) == per_weight * len(trunk(model))


@pytest.mark.parametrize("cls,kwargs,word", [
    (EWC, {"lam": -1}, "lam"),
    (EWC, {"online": True, "gamma": 0}, "gamma"),
    (EWC, {"online": True, "gamma": 1.5}, "gamma"),
    (EWC, {"gamma": 0.5}, "gamma"),                 # gamma only for online EWC
    (SI, {"c": -0.1}, "c="),
    (SI, {"epsilon": 0}, "epsilon"),
    (MAS, {"lam": -2}, "lam"),
    (RWALK, {"lam": -1}, "lam"),
    (RWALK, {"alpha": 1.5}, "alpha"),
    (RWALK, {"alpha": 0}, "alpha"),
    (RWALK, {"epsilon": 0}, "epsilon"),
    (MAS, {"lam": float("nan")}, "lam"),
    (EWC, {"fisher_batch": -1}, "fisher_batch"),
    (EWC, {"fisher_batch": 2.5}, "fisher_batch"),
    (EWC, {"merge": "max"}, "merge"),
    (EWC, {"online": True, "gamma": 0.9, "merge": "mean"}, "merge"),
    (SI, {"path_gradient": "penalised"}, "path_gradient"),
])
def test_bad_hyperparameters_raise(cls, kwargs, word):
    with pytest.raises(ValueError, match=word):
        cls(Tiny(), **kwargs)


def test_make_rejects_bad_values_and_fixes_online():
    with pytest.raises(ValueError, match="lam"):
        regularizers.make("ewc", Tiny(), lam=-1)
    with pytest.raises(ValueError, match="alpha"):
        regularizers.make("rwalk", Tiny(), alpha=1.5)
    assert "online" not in regularizers.hyperparameters("ewc_online")
    reg = regularizers.make("ewc_online", Tiny(), gamma=0.9)
    assert reg.online and reg.gamma == 0.9 and reg.name == "ewc_online"
    assert not regularizers.make("ewc", Tiny()).online


def test_empty_importance_data_raises():
    for name in ("ewc", "mas"):
        reg = regularizers.make(name, Tiny())
        with pytest.raises(ValueError, match="no batches"):
            reg.end_task(0, iter([]), loss_fn_for(0))


@pytest.mark.parametrize("name", METHODS)
def test_run_seed_is_not_a_hyperparameter_and_is_ignored(name):
    """``make(..., seed=)`` passes the run's seed only to methods that draw with it: these
    four share QuadraticRegularizer and draw nothing."""
    assert issubclass(regularizers.get_class(name), QuadraticRegularizer)
    assert "seed" not in regularizers.hyperparameters(name)
    a, b = Tiny(), Tiny()
    ra, rb = regularizers.make(name, a, seed=3), regularizers.make(name, b)
    run_task(a, ra, 0)
    run_task(b, rb, 0)
    for x, y in zip(ra.state_tensors(), rb.state_tensors()):
        assert torch.equal(x, y)
