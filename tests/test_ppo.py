"""PPO learner (agents/ppo.py) and the actor-critic (agents/atari_net.py), on tiny configs."""
import io
import math

import numpy as np
import pytest
import torch

from agents.atari_net import ActorCritic
from agents.base import Learner
from agents.ppo import PPOConfig, PPOLearner
from envs.atari import GAMES, NUM_ACTIONS
from regularizers.agscl import AGSCL
from regularizers.base import Regularizer
from tests.tiny import DEVICE

TIMING = {"sps", "time_env", "time_inference", "time_update", "time_total"}


def tiny(**kw) -> PPOConfig:
    base = dict(num_envs=2, num_steps=16, update_epochs=1, num_minibatches=2,
                steps_per_task=64, eval_episodes=2, eval_max_steps=40, importance_steps=32,
                importance_batch_size=16, seed=3, device=DEVICE)
    base.update(kw)
    return PPOConfig.from_preset("cpu", **base)


class Recorder(Regularizer):
    """Records the hook calls; checks that before_step sees gradients before the step."""

    def __init__(self, model, penalty_value=0.0):
        super().__init__(model)
        self.calls = []
        self.penalty_value = penalty_value
        self.grads_at_before_step = []

    def begin_epoch(self, num_batches=None):
        self.calls.append(("begin_epoch", num_batches))

    def penalty(self):
        self.calls.append(("penalty",))
        return torch.tensor(self.penalty_value)

    def before_step(self):
        w = self.model.conv1.weight
        self.calls.append(("before_step",))
        self._w = w.detach().clone()
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in self.model.parameters()
                              if p.grad is not None))
        self.grads_at_before_step.append(float(norm))

    def after_step(self, lr):
        self.calls.append(("after_step", lr))
        assert not torch.equal(self._w, self.model.conv1.weight)   # the step happened

    def after_epoch(self, lr):
        self.calls.append(("after_epoch", lr))


def strip(d):
    return {k: v for k, v in d.items() if k not in TIMING}


def test_presets_and_validation():
    cpu, paper = PPOConfig.from_preset("cpu"), PPOConfig.from_preset("paper")
    assert (cpu.num_envs, cpu.num_steps, cpu.update_epochs, cpu.num_minibatches) == (8, 128, 4, 4)
    assert (cpu.learning_rate, cpu.ent_coef, cpu.clip_coef) == (2.5e-4, 0.01, 0.1)
    assert (paper.num_envs, paper.num_steps, paper.update_epochs, paper.num_minibatches) == \
        (128, 64, 10, 64)
    assert (paper.learning_rate, paper.adam_eps, paper.clip_coef, paper.vf_coef, paper.ent_coef,
            paper.gamma, paper.gae_lambda, paper.max_grad_norm, paper.steps_per_task) == \
        (3e-4, 1e-5, 0.2, 0.5, 0.0, 0.99, 0.95, 0.5, 5_000_000)
    with pytest.raises(ValueError, match="preset"):
        PPOConfig.from_preset("gpu")
    with pytest.raises(ValueError, match="divisible"):
        PPOConfig.from_preset("cpu", num_minibatches=3)
    with pytest.raises(ValueError, match="learning_rate"):
        PPOConfig.from_preset("cpu", learning_rate=-1)
    with pytest.raises(ValueError, match="no field"):
        PPOConfig.from_preset("cpu", lr=1)


@pytest.mark.parametrize("arch,widths", [("nature", [32, 64, 64, 512]),
                                         ("wide", [128, 256, 128, 512])])
def test_network_nodes_and_heads(arch, widths):
    model = ActorCritic([18, 6], arch=arch)
    reg = AGSCL(model)
    assert [L.num_nodes for L in reg.layers] == widths
    assert [L.name for L in reg.layers] == ["conv1", "conv2", "conv3", "fc"]
    x = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    logits, value = model(x, 1)
    assert logits.shape == (3, 6) and value.shape == (3,)
    with torch.no_grad():                      # inference layout == training layout numerically
        l2, v2 = model(x, 1)
    torch.testing.assert_close(logits, l2, rtol=1e-4, atol=1e-5)


def test_heads_match_real_action_sets():
    learner = PPOLearner(tiny(), ",".join(GAMES))
    assert isinstance(learner, Learner)
    assert [h.actor.out_features for h in learner.model.heads] == [NUM_ACTIONS[g] for g in GAMES]
    assert all(h.critic.out_features == 1 for h in learner.model.heads)
    assert learner.units_per_task(0) == 2 and learner.steps_per_unit(0) == 32


def test_hook_order_and_scalars():
    cfg = tiny(update_epochs=2, num_minibatches=2)
    learner = PPOLearner(cfg, "Boxing,Gopher")
    reg = Recorder(learner.model)
    learner.begin_task(1)
    out = learner.train_unit(1, 1, reg)
    lr = cfg.learning_rate * (1 - 1 / 2)
    step = [("penalty",), ("before_step",), ("after_step", lr)]
    assert reg.calls == 2 * ([("begin_epoch", 2)] + 2 * step + [("after_epoch", lr)])
    # before_step sees the raw gradients, before clipping: their mean norm is the pre-clip
    # norm the learner reports
    assert out["grad_norm"] == pytest.approx(
        sum(reg.grads_at_before_step) / len(reg.grads_at_before_step), rel=1e-4)
    for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac", "lr", "sps",
              "time_env", "time_inference", "time_update"):
        assert k in out and math.isfinite(out[k]), k
    assert out["lr"] == pytest.approx(lr)
    assert out["entropy"] == pytest.approx(math.log(8), rel=0.05)   # near-uniform fresh head
    assert learner.extra_results()["sps"] > 0


def test_nan_loss_raises():
    learner = PPOLearner(tiny(), "Boxing")
    learner.begin_task(0)
    with pytest.raises(FloatingPointError, match="Boxing"):
        learner.train_unit(0, 0, Recorder(learner.model, penalty_value=float("nan")))


def test_train_unit_needs_begin_task():
    learner = PPOLearner(tiny(), "Boxing")
    with pytest.raises(RuntimeError):
        learner.train_unit(0, 0, None)


def test_evaluate_deterministic_and_rng_free():
    learner = PPOLearner(tiny(), "DemonAttack")
    state = torch.get_rng_state()
    a = learner.evaluate(0)
    b = learner.evaluate(0)
    assert a == b and set(a) == {"score", "score_sampled"}
    assert torch.equal(torch.get_rng_state(), state)


def test_importance_data_feeds_agscl():
    learner = PPOLearner(tiny(), "Boxing")
    batches, loss_fn = learner.importance_data(0)
    assert [len(b[0]) for b in batches] == [16, 16]
    x, a = batches[0]
    assert x.dtype == torch.uint8 and x.shape == (16, 4, 84, 84) and a.dtype == torch.long
    loss = loss_fn(learner.model, batches[0])
    assert loss.dim() == 0 and math.isfinite(loss.item())
    assert loss.item() == pytest.approx(math.log(18), rel=0.05)     # fresh head ~ uniform
    again, _ = learner.importance_data(0)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(batches, again))
    reg = AGSCL(learner.model)
    reg.end_task(0, batches, loss_fn)
    assert 0 <= reg.task_metrics()["sparsity"] <= 1


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_resume_after_checkpoint_boundary_is_bit_identical():
    cfg = tiny()
    # uninterrupted: unit 0, checkpoint (boundary), unit 1
    a = PPOLearner(cfg, "Gopher")
    a.begin_task(0)
    a.train_unit(0, 0, Regularizer(a.model))
    a.checkpoint_boundary()
    out_a = a.train_unit(0, 1, Regularizer(a.model))
    # interrupted: unit 0, checkpoint, new process (new learner), load, unit 1
    b = PPOLearner(cfg, "Gopher")
    b.begin_task(0)
    b.train_unit(0, 0, Regularizer(b.model))
    state = _roundtrip(b.state_dict())
    b.checkpoint_boundary()
    c = PPOLearner(cfg, "Gopher")
    c.begin_task(0)
    c.load_state_dict(state)
    out_c = c.train_unit(0, 1, Regularizer(c.model))
    assert strip(out_a) == strip(out_c)
    for (n, p), (_, q) in zip(a.model.named_parameters(), c.model.named_parameters()):
        assert torch.equal(p, q), n
    # the state round trip itself
    d = PPOLearner(cfg, "Gopher")
    d.begin_task(0)
    d.load_state_dict(_roundtrip(c.state_dict()))
    for (n, p), (_, q) in zip(c.model.named_parameters(), d.model.named_parameters()):
        assert torch.equal(p, q), n
    sa, sd = c.optimizer.state_dict(), d.optimizer.state_dict()
    assert sa["param_groups"] == sd["param_groups"]
    for k in sa["state"]:
        for name, v in sa["state"][k].items():
            assert torch.equal(v, sd["state"][k][name])
    assert d.counters == c.counters


def test_games_run_on_across_checkpoints():
    """A checkpoint no longer ends the games in progress: with boundaries between the units the
    run is the same as without (games longer than a checkpoint interval can finish)."""
    cfg = tiny()
    outs = []
    for boundaries in (False, True):
        a = PPOLearner(cfg, "Gopher")
        a.begin_task(0)
        o = []
        for u in range(3):
            o.append(strip(a.train_unit(0, u, Regularizer(a.model))))
            if boundaries:
                a.checkpoint_boundary()
        outs.append((o, [p.detach().clone() for p in a.model.parameters()]))
        assert len(a._seg_actions) == 3 * cfg.num_steps          # one segment throughout
    assert outs[0][0] == outs[1][0]
    assert all(torch.equal(p, q) for p, q in zip(outs[0][1], outs[1][1]))


def test_resume_across_a_segment_restart_and_legacy_states(monkeypatch):
    import agents.ppo as ppo
    monkeypatch.setattr(ppo, "ENV_SEGMENT_STEPS", 20)      # games restart after 2 units of 16
    cfg = tiny()
    a = PPOLearner(cfg, "Gopher")
    a.begin_task(0)
    out_a = [strip(a.train_unit(0, u, Regularizer(a.model))) for u in range(4)]
    b = PPOLearner(cfg, "Gopher")
    b.begin_task(0)
    out_b = [strip(b.train_unit(0, u, Regularizer(b.model))) for u in range(3)]
    state = _roundtrip(b.state_dict())
    assert state["env_segment"]["actions"].shape == (16, cfg.num_envs)   # unit 2 began anew
    c = PPOLearner(cfg, "Gopher")
    c.begin_task(0)
    c.load_state_dict(state)
    again = PPOLearner(cfg, "Gopher")              # loaded and saved again before a unit
    again.begin_task(0)
    again.load_state_dict(state)
    assert np.array_equal(_roundtrip(again.state_dict())["env_segment"]["actions"],
                          state["env_segment"]["actions"])
    out_b.append(strip(c.train_unit(0, 3, Regularizer(c.model))))
    assert out_a == out_b
    # a checkpoint of older code (no env_segment): that run keeps ending its games there
    old = {k: v for k, v in state.items() if k not in ("env_segment", "legacy_restarts")}
    d = PPOLearner(cfg, "Gopher")
    d.begin_task(0)
    d.load_state_dict(old)
    d.train_unit(0, 3, Regularizer(d.model))
    assert d._segment_state() is None and d._legacy_restarts
    d.checkpoint_boundary()
    assert d._reseed and _roundtrip(d.state_dict())["legacy_restarts"]


def test_load_state_for_other_games_is_refused():
    a = PPOLearner(tiny(), "Boxing")
    b = PPOLearner(tiny(), "Gopher")
    with pytest.raises(ValueError, match="games"):
        b.load_state_dict(a.state_dict())


def test_bf16_autocast_keeps_the_update_close_to_float32():
    """bf16=True autocasts the forward passes only: on the same minibatch the loss and the
    gradient stay close to float32's (the update is run once per precision from the same
    weights), and a bf16 unit trains with finite statistics."""
    import torch.nn.functional as F
    learner = PPOLearner(tiny(), "Boxing")
    learner.begin_task(0)
    obs = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8, device=learner.device)
    acts = torch.randint(0, 18, (16,), device=learner.device)
    grads = {}
    for bf16 in (False, True):
        learner.config.bf16 = bf16
        learner.model.zero_grad(set_to_none=True)
        with learner._autocast():
            logits, value = learner.model(obs, 0)
        assert logits.dtype == (torch.bfloat16 if bf16 else torch.float32)
        loss = F.cross_entropy(logits.float(), acts) + value.float().square().mean()
        loss.backward()
        grads[bf16] = torch.cat([p.grad.flatten() for p in learner.model.parameters()
                                 if p.grad is not None])
        assert all(p.dtype == torch.float32 for p in learner.model.parameters())
    cos = F.cosine_similarity(grads[False], grads[True], dim=0)
    assert cos > 0.99
    learner.config.bf16 = True
    seen = []
    hook = learner.model.register_forward_hook(
        lambda m, i, o: seen.append((torch.is_grad_enabled(),
                                     torch.is_autocast_enabled(learner.device.type))))
    out = learner.train_unit(0, 0)
    hook.remove()
    assert all(math.isfinite(out[k]) for k in ("policy_loss", "value_loss", "entropy"))
    assert any(g for g, _ in seen) and any(not g for g, _ in seen)   # update and rollout
    assert all(a for _, a in seen)                                   # both autocast


def test_bf16_is_recorded_only_when_set(tmp_path):
    """Older runs (configs without the field) still resume: the default is left out."""
    import json
    import train
    from tests.test_cli import TINY_ATARI
    args = TINY_ATARI + ["--regularizer", "finetune", "--steps-per-task", "32"]
    assert train.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert "bf16" not in json.loads((tmp_path / "a" / "config.json").read_text())["ppo"]
    assert train.main(args + ["--bf16", "true", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["ppo"]["bf16"] is True
    with pytest.raises(ValueError, match="bf16"):
        PPOConfig.from_preset("cpu", bf16=1)


def test_nan_gradients_stop_the_unit_naming_the_minibatch():
    """A penalty whose gradient is NaN: the hooks and the step run on NaN until the epoch's
    check, which raises FloatingPointError (the trainer's clean stop) naming the minibatch."""
    class NaNGrad(Regularizer):
        def __init__(self, model, at):
            super().__init__(model)
            self.at, self.calls = at, 0

        def penalty(self):
            self.calls += 1
            w = next(self.model.parameters())
            return (w.sum() * float("nan")) if self.calls == self.at else w.sum() * 0.0

    learner = PPOLearner(tiny(update_epochs=2), "Boxing")
    learner.begin_task(0)
    with pytest.raises(FloatingPointError, match=r"epoch 1, minibatch 0"):
        learner.train_unit(0, 0, NaNGrad(learner.model, at=3))   # 2 minibatches per epoch
