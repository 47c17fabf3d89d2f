"""AGS-CL's RL settings: the authors' RL rules (--reg-preset lab), the Omega scale, the
proximal step once per PPO epoch, no hard freeze, the MinAtar fc width and the per-layer
capacity diagnosis, each against an independent computation."""
import pytest
import torch
import torch.nn.functional as F

from agents.config import PPOConfig, strengths
from agents.minatar_net import MinAtarActorCritic
from agents.ppo import PPOLearner
from continual import flags, runconfig
from regularizers.agscl import AGSCL, LAB_RL_OMEGA_SCALE
from tests.test_agscl import _dead_node_model
from tests.tiny import TinyMLP


def _authors_gs_cal_rl(model, obs_steps, gs_epochs=100, sbatch=20):
    """The loop of the authors' gs_cal_rl (sangwon-jung94/AGS-CL, approaches/ppo_gs.py), as
    plain arithmetic: per pass over the rollout's steps, R += sbatch * (batch-mean ReLU output
    of each node) at every step, then R /= num_steps once per pass."""
    ns = len(obs_steps)
    R = [torch.zeros(4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)]
    with torch.no_grad():
        acts = []
        for x in obs_steps:
            h1 = F.relu(model.fc1(x))
            h2 = F.relu(model.fc2(h1))
            acts.append([h1.mean(0).double(), h2.mean(0).double()])
    for _ in range(gs_epochs):
        for a in acts:
            R = [r + a_l.abs() * sbatch for r, a_l in zip(R, a)]
        R = [r / ns for r in R]
    return R


def test_lab_omega_scale_reproduces_the_authors_rl_omega():
    assert LAB_RL_OMEGA_SCALE == pytest.approx(20 * sum(20.0 ** -k for k in range(100)),
                                               rel=1e-15)
    torch.manual_seed(3)
    model = TinyMLP()
    steps = [torch.randn(8, 3) for _ in range(20)]       # a tiny rollout: 20 steps x 8 games
    expect = _authors_gs_cal_rl(model, steps)
    reg = AGSCL(model, omega_scale=LAB_RL_OMEGA_SCALE, reinit="none", hard_freeze=False)
    reg.end_task(0, [(x,) for x in steps], loss_fn=None)
    for om, e in zip(reg.omega, expect):
        torch.testing.assert_close(om.double(), e, rtol=1e-5, atol=1e-7)
    # against the paper's rule: the same activations, 400/19 times larger
    paper = AGSCL(model, reinit="none", hard_freeze=False)
    paper.end_task(0, [(x,) for x in steps], loss_fn=None)
    for om, p in zip(reg.omega, paper.omega):
        torch.testing.assert_close(om, LAB_RL_OMEGA_SCALE * p)
    with pytest.raises(ValueError, match="omega_scale"):
        AGSCL(model, omega_scale=0.0)


def _events_of_a_ppo_unit(prox: str):
    """The order of optimizer steps and proximal steps in one PPO unit with AGS-CL."""
    cfg = PPOConfig.from_preset("minatar_tiny", update_epochs=3, num_minibatches=2)
    learner = PPOLearner(cfg, "Breakout", env="minatar")
    reg = AGSCL(learner.model, prox=prox, hard_freeze=False)
    events = []
    real_prox, real_after = reg.prox, reg.after_step

    def prox_(alpha):
        events.append("prox")
        return real_prox(alpha)

    def after_step(lr):
        events.append("step")
        return real_after(lr)

    reg.prox, reg.after_step = prox_, after_step
    learner.begin_task(0)
    reg.begin_task(0)
    learner.train_unit(0, 0, reg)
    learner.close()
    return events


def test_prox_once_per_ppo_epoch_after_its_minibatches():
    assert _events_of_a_ppo_unit("epoch") == (["step", "step", "prox"]) * 3
    assert _events_of_a_ppo_unit("step") == (["step", "prox"]) * 6


def test_no_hard_freeze_leaves_the_cut_weights_to_the_optimizer():
    """hard_freeze=False (the authors' RL code, whose mask hit the old model's copy): a weight
    from an Omega == 0 node into an important node keeps whatever the optimizer gave it."""
    for hard, expect_zero in ((True, True), (False, False)):
        model = _dead_node_model()
        reg = AGSCL(model, mu=0.0, lam=1.0, rho=0.0, prox="epoch", hard_freeze=hard)
        reg.end_task(0, [(torch.rand(16, 3),)], loss_fn=None)
        reg.begin_task(1)
        i = int(torch.nonzero(reg.omega[1] > 0)[0])
        assert reg.omega[0][0] == 0
        assert (reg.freeze_masks()[1] is not None) == hard
        with torch.no_grad():
            model.fc2.weight[i, 0] = 0.25
        before = [p.detach().clone() for p in model.parameters()]
        reg.after_step(0.1)
        assert (float(model.fc2.weight[i, 0].detach()) == 0.0) == expect_zero
        if not hard:         # nothing at all moves between proximal steps
            assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


LAB = {"mu": 0.1, "lam": 1000.0, "eta": 0.9, "rho": 1.0, "prox": "epoch",
       "reinit_from": "unimportant", "hard_freeze": False, "omega_scale": 400 / 19}


def test_reg_presets_paper_default_and_lab():
    paper = {"mu": 0.1, "lam": 100.0, "eta": 0.9, "rho": 1.0, "prox": "step"}
    for bench in ("atari", "minatar"):
        assert strengths(bench, "agscl") == paper == strengths(bench, "agscl", "paper")
        assert strengths(bench, "agscl", "lab") == LAB
        assert strengths(bench, "ewc", "lab") == strengths(bench, "ewc") == {"lam": 5000.0}
    with pytest.raises(ValueError, match="lab"):
        strengths("omniglot", "agscl", "lab")
    with pytest.raises(ValueError, match="unknown regularizer preset"):
        strengths("minatar", "agscl", "authors")
    cfg = flags.resolve("minatar", {"reg_preset": "lab", "lam": "50"})
    assert cfg.regularizer_hparams == {**LAB, "lam": 50.0}
    d = runconfig.to_dict(cfg)
    assert d["reg_preset"] == "lab" and d["regularizer_hparams"]["omega_scale"] == 400 / 19
    assert runconfig.from_dict("minatar", d).regularizer_hparams == {**LAB, "lam": 50.0}
    assert flags.resolve("atari", {}).reg_preset == "paper"
    with pytest.raises(ValueError, match="unknown regularizer preset"):
        flags.resolve("minatar", {"reg_preset": "nope"})
    _, reg, _ = runconfig.build(flags.resolve(
        "minatar", {"reg_preset": "lab", "preset": "minatar_tiny", "games": "Breakout"}))
    assert (reg.prox_when, reg.reinit_from, reg.hard_freeze, reg.lam, reg.omega_scale) == \
        ("epoch", "unimportant", False, 1000.0, 400 / 19)


def test_minatar_fc_width_is_the_trunks_capacity():
    cfg = flags.resolve("minatar", {"fc_width": "512", "preset": "minatar_tiny",
                                        "games": "Breakout,Asterix"})
    learner, reg, _ = runconfig.build(cfg)
    m = learner.model
    assert m.fc.out_features == 512 and all(h.actor.in_features == 512 for h in m.heads)
    assert [L.num_nodes for L in reg.layers] == [16, 512]     # found with no special code
    assert flags.resolve("minatar", {}).fc_width == 128
    assert MinAtarActorCritic([3]).fc.out_features == 128
    with pytest.raises(ValueError, match="fc_width"):
        flags.resolve("minatar", {"fc_width": "0"})
    learner.close()


def test_capacity_diagnosis_by_hand():
    torch.manual_seed(0)
    model = TinyMLP()
    lam, eta, alpha = 2.0, 0.5, 0.1
    reg = AGSCL(model, mu=0.0, lam=lam, eta=eta, reinit="none", hard_freeze=False,
                prox="epoch")
    old = [torch.tensor([0.0, 0.4, 0.0, 1.0]), torch.tensor([0.3, 0.0, 0.2])]
    reg.omega = [o.clone() for o in old]
    reg.set_anchor()
    reg.begin_task(1)
    reg.after_step(alpha)           # the task's first step size: no weight moves (prox epoch)
    reg.after_step(alpha / 2)
    delta = {(0, 1): 0.3, (0, 2): 0.7, (1, 0): 0.2}      # (layer, node) -> drift of its weight
    with torch.no_grad():
        for (li, n), d in delta.items():
            reg.layers[li].module.weight[n, 0] += d
    xs = torch.rand(16, 3)
    with torch.no_grad():
        h1 = F.relu(model.fc1(xs))
        act = [h1.mean(0), F.relu(model.fc2(h1)).mean(0)]
    reg.end_task(1, [(xs,)], loss_fn=None)
    m = reg.task_metrics()
    for li, name in enumerate(("fc1", "fc2")):
        o, new = old[li], eta * old[li] + act[li]
        g0, imp = o == 0, o > 0
        drift = torch.tensor([delta.get((li, n), 0.0) for n in range(len(o))])
        assert m[f"g0_start/{name}"] == pytest.approx(float(g0.float().mean()))
        assert m[f"g0_end/{name}"] == pytest.approx(float((new == 0).float().mean()))
        assert m[f"g0_used/{name}"] == pytest.approx(float((new[g0] > 0).float().mean()))
        assert m[f"important_moved/{name}"] == pytest.approx(float((drift[imp] > 0).float().mean()))
        assert m[f"drift/{name}"] == pytest.approx(float(drift[imp].mean()), rel=1e-5)
        assert m[f"freeze_threshold/{name}"] == pytest.approx(float((alpha * lam * o[imp]).mean()))
    assert m["important_moved/fc1"] == pytest.approx(1 / 2)     # fc1 node 1 of {1, 3}
    # the first task: no important node at its start, so no drift record
    first = AGSCL(TinyMLP(), reinit="none")
    first.end_task(0, [(xs,)], loss_fn=None)
    assert "drift/fc1" not in first.task_metrics() and first.task_metrics()["g0_start/fc1"] == 1
    # the task's first step size survives a checkpoint
    clone = AGSCL(model, mu=0.0, lam=lam, eta=eta, reinit="none", hard_freeze=False)
    reg.begin_task(2)
    reg.after_step(0.05)
    clone.begin_task(2)
    clone.load_state_dict(reg.state_dict())
    assert clone._alpha0 == 0.05
