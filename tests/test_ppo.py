"""PPO learner (agents/ppo.py) and the actor-critic (agents/atari_net.py), on tiny configs."""
import math

import numpy as np
import pytest
import torch

from agents.atari_net import ActorCritic
from agents.base import Learner
from agents.config import PPOConfig
from agents.ppo import PPOLearner, gae, ppo_losses
from envs.atari import NUM_ACTIONS
from regularizers.agscl import AGSCL
from regularizers.base import Regularizer
from tests.tiny import DEVICE, roundtrip

TIMING = {"sps", "time_env", "time_inference", "time_update", "time_total"}


def tiny(**kw) -> PPOConfig:
    base = dict(num_envs=2, num_steps=16, update_epochs=1, num_minibatches=2,
                steps_per_task=64, eval_episodes=2, eval_max_steps=40, importance_steps=32,
                importance_batch_size=16, seed=3)
    base.update(kw)
    return PPOConfig.from_preset("cpu", **base)


def make(cfg: PPOConfig, games: str) -> PPOLearner:
    return PPOLearner(cfg, games, device=DEVICE)


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
    assert (cpu.lr, cpu.ent_coef, cpu.clip_coef) == (2.5e-4, 0.01, 0.1)
    assert (paper.num_envs, paper.num_steps, paper.update_epochs, paper.num_minibatches) == \
        (128, 64, 10, 64)
    assert (paper.lr, paper.adam_eps, paper.clip_coef, paper.vf_coef, paper.ent_coef,
            paper.gamma, paper.gae_lambda, paper.max_grad_norm, paper.steps_per_task) == \
        (3e-4, 1e-5, 0.2, 0.5, 0.0, 0.99, 0.95, 0.5, 5_000_000)
    with pytest.raises(ValueError, match="preset"):
        PPOConfig.from_preset("gpu")
    with pytest.raises(ValueError, match="divisible"):
        PPOConfig.from_preset("cpu", num_minibatches=3)
    with pytest.raises(ValueError, match="lr"):
        PPOConfig.from_preset("cpu", lr=-1)
    with pytest.raises(ValueError, match="no field"):
        PPOConfig.from_preset("cpu", learning_rate=1)      # one name: lr, as the classifier's
    with pytest.raises(ValueError, match="bf16"):
        PPOConfig.from_preset("cpu", bf16=1)


def test_gae_against_a_plain_loop():
    """GAE(lambda) against the textbook recursion written per env with Python floats:
    A_t = delta_t + gamma lam (1 - d_{t+1}) A_{t+1}, delta_t = r_t + gamma (1 - d_{t+1}) V_{t+1} - V_t,
    where d_{t+1} says the episode ended after step t (the value after the rollout bootstraps)."""
    g = torch.Generator().manual_seed(0)
    T, N, gamma, lam = 7, 3, 0.9, 0.8
    r, v = torch.randn(T, N, generator=g), torch.randn(T, N, generator=g)
    d = (torch.rand(T, N, generator=g) < 0.3).float()
    v_next, d_next = torch.randn(N, generator=g), torch.tensor([0.0, 1.0, 0.0])
    adv, ret = gae(r, v, d, v_next, d_next, gamma, lam)
    for n in range(N):
        a = 0.0
        for t in reversed(range(T)):
            nxt_v = float(v_next[n]) if t == T - 1 else float(v[t + 1, n])
            nxt_d = float(d_next[n]) if t == T - 1 else float(d[t + 1, n])
            delta = float(r[t, n]) + gamma * nxt_v * (1 - nxt_d) - float(v[t, n])
            a = delta + gamma * lam * (1 - nxt_d) * a
            assert float(adv[t, n]) == pytest.approx(a, rel=1e-5, abs=1e-6)
            assert float(ret[t, n]) == pytest.approx(a + float(v[t, n]), rel=1e-5, abs=1e-6)
    # lam = 1, gamma = 1, no ends: the return is the sum of the rewards to go + bootstrap
    adv, ret = gae(r, v, torch.zeros(T, N), v_next, torch.zeros(N), 1.0, 1.0)
    torch.testing.assert_close(ret[0], r.sum(0) + v_next)


def test_the_rollout_draw_is_torch_multinomials_own():
    """The rollout draws a ~ pi as torch.multinomial(probs, 1) does (an exponential race),
    without its input checks: the same actions and the same generator state after, so runs
    stay what they were; a torch whose multinomial draws otherwise fails here."""
    cfg = PPOConfig.from_preset("minatar_tiny")
    learner = PPOLearner(cfg, ["Breakout"], env="minatar")
    obs = torch.randint(0, 2, (5, *learner.obs_shape), dtype=torch.uint8)
    for seed in range(20):
        mine, ref = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        action, logp, _ = learner._policy_step(obs, 0, mine)
        with torch.inference_mode():
            logits, _ = learner.model(obs, 0)
        probs = torch.nn.functional.log_softmax(logits.float(), -1).exp()
        expected = torch.multinomial(probs, 1, generator=ref).squeeze(1)
        assert torch.equal(action, expected)
        assert torch.equal(mine.get_state(), ref.get_state())
        torch.testing.assert_close(logp, torch.log(probs).gather(1, action[:, None]).squeeze(1))
    learner.close()


def test_ppo_losses_on_hand_made_numbers():
    """Two samples, two actions; every term worked out by hand."""
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.8, 0.2]]))
    actions = torch.tensor([0, 1])
    old_logprob = torch.log(torch.tensor([0.25, 0.4]))     # ratios 2.0 and 0.5
    adv = torch.tensor([1.0, -2.0])
    newvalue, old_value = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])
    returns = torch.tensor([2.0, 1.0])
    s = ppo_losses(logits, newvalue, actions, old_logprob, old_value, adv, returns, clip=0.2,
                   norm_adv=False, clip_vloss=True)
    # policy: max(-A r, -A clip(r)): sample 0: max(-2, -1.2) = -1.2; sample 1: max(1, 1.6) = 1.6
    assert float(s["policy_loss"]) == pytest.approx((-1.2 + 1.6) / 2)
    # value: clipped V = V_old + clip(V - V_old, -0.2, 0.2) = 0.7, 0.3;
    # max((V - R)^2, (Vc - R)^2) = max(1, 1.69), max(1, 0.49) -> 0.5 * mean(1.69, 1)
    assert float(s["value_loss"]) == pytest.approx(0.5 * (1.69 + 1.0) / 2)
    h = lambda p: -sum(q * math.log(q) for q in p)          # noqa: E731
    assert float(s["entropy"]) == pytest.approx((h([0.5, 0.5]) + h([0.8, 0.2])) / 2)
    # approx KL = mean((r - 1) - log r); both ratios are outside [0.8, 1.2]
    assert float(s["approx_kl"]) == pytest.approx(((1 - math.log(2)) + (-0.5 + math.log(2))) / 2)
    assert float(s["clipfrac"]) == 1.0
    # unclipped value loss, and advantages normalised to mean 0, std 1 (torch's unbiased std
    # of [1, -2] is 3 / sqrt(2), so they become +-1 / sqrt(2))
    s = ppo_losses(logits, newvalue, actions, old_logprob, old_value, adv, returns, clip=0.2,
                   norm_adv=True, clip_vloss=False)
    assert float(s["value_loss"]) == pytest.approx(0.5 * (1.0 + 1.0) / 2)
    a0, a1 = 1 / math.sqrt(2), -1 / math.sqrt(2)
    expect = (max(-a0 * 2.0, -a0 * 1.2) + max(-a1 * 0.5, -a1 * 0.8)) / 2
    assert float(s["policy_loss"]) == pytest.approx(expect, rel=1e-5)


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
    games = ["StarGunner", "Gopher", "DemonAttack"]        # 18, 8, 6 actions
    learner = make(tiny(), ",".join(games))
    assert isinstance(learner, Learner)
    assert [h.actor.out_features for h in learner.model.heads] == [NUM_ACTIONS[g] for g in games]
    assert all(h.critic.out_features == 1 for h in learner.model.heads)
    assert learner.units_per_task(0) == 2 and learner.steps_per_unit(0) == 32


def test_hook_order_and_scalars():
    cfg = tiny(update_epochs=2, num_minibatches=2)
    learner = make(cfg, "Boxing,Gopher")
    reg = Recorder(learner.model)
    learner.begin_task(1)
    out = learner.train_unit(1, 1, reg)
    lr = cfg.lr * (1 - 1 / 2)
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
    # the running games are part of the state; at a task's end there are none to save
    assert learner.state_dict()["env_segment"]["game"] == "Gopher"
    learner.end_task(1)
    assert learner.state_dict()["env_segment"] is None


def test_train_unit_needs_begin_task():
    learner = make(tiny(), "Boxing")
    with pytest.raises(RuntimeError):
        learner.train_unit(0, 0, None)


def test_evaluate_deterministic_and_rng_free():
    learner = make(tiny(), "DemonAttack")
    state = torch.get_rng_state()
    a = learner.evaluate(0)
    b = learner.evaluate(0)
    assert a == b and set(a) == {"score", "score_sampled"}
    assert torch.equal(torch.get_rng_state(), state)


def test_importance_data_feeds_agscl():
    learner = make(tiny(), "Boxing")
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
    with torch.no_grad():          # Omega of the fc nodes = their mean activation on the data
        feats = torch.cat([learner.model.features(b[0]) for b in batches])
    torch.testing.assert_close(reg.omega[-1], feats.mean(0), rtol=1e-4, atol=1e-6)


def test_resume_is_bit_identical_after_any_unit(monkeypatch):
    """A checkpoint after every unit, each loaded into a new learner (a new process), gives the
    same run as no checkpoint: the running games are rebuilt from their logged actions, also
    across a segment restart (games restart after 10 agent steps here: at unit 2's start)."""
    import envs.replay
    monkeypatch.setattr(envs.replay, "SEGMENT_STEPS", 10)
    cfg = tiny(num_steps=8)
    a = make(cfg, "Gopher")
    a.begin_task(0)
    out_a = [strip(a.train_unit(0, u, Regularizer(a.model))) for u in range(3)]
    b = make(cfg, "Gopher")
    b.begin_task(0)
    out_b, logged = [], []
    for u in range(3):
        out_b.append(strip(b.train_unit(0, u, Regularizer(b.model))))
        state = roundtrip(b.state_dict())
        logged.append(state["env_segment"]["actions"].shape[0])
        b.close()
        b = make(cfg, "Gopher")
        b.begin_task(0)
        b.load_state_dict(state)
        assert np.array_equal(b.state_dict()["env_segment"]["actions"],
                              state["env_segment"]["actions"])     # loaded and saved again
    assert logged == [8, 16, 8]                                    # unit 2 began new games
    assert out_a == out_b
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), n
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k in sa["state"]:
        for name, v in sa["state"][k].items():
            assert torch.equal(v, sb["state"][k][name])
    assert (b.counters["env_steps"], b.counters["units"]) == \
        (a.counters["env_steps"], a.counters["units"]) == (3 * cfg.batch_size, 3)


def test_load_state_for_other_games_is_refused():
    a = make(tiny(), "Boxing")
    b = make(tiny(), "Gopher")
    with pytest.raises(ValueError, match="games"):
        b.load_state_dict(a.state_dict())


def test_bf16_auto_is_the_cpus_own_bf16(tmp_path, monkeypatch):
    """bf16='auto' (the default) is on where the CPU computes bf16 natively (its cpuinfo flags
    AVX512-BF16 or AMX-BF16), off without them and on every other device; the run config
    records the resolved value, and a resumed run keeps the one it recorded."""
    import agents.config as C
    from continual.flags import resolve
    from continual.runconfig import to_dict
    info = tmp_path / "cpuinfo"
    for flags, native in (("fpu avx2 avx512f avx512_bf16 sse", True), ("fpu amx_bf16", True),
                          ("fpu avx2 avx512f avx512bw", False)):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert C.native_bf16(str(info)) is native
    assert C.native_bf16(str(tmp_path / "absent")) is False
    for native in (True, False):
        info.write_text("flags\t\t: avx512_bf16\n" if native else "flags\t\t: avx2\n")
        monkeypatch.setattr(C, "CPUINFO", str(info))
        assert C.resolve_bf16("auto", "cpu") is native
        assert C.resolve_bf16("auto", "cuda:0") is False
        assert C.resolve_bf16(True, "cpu") is True and C.resolve_bf16(False, "cpu") is False
        assert to_dict(resolve("minatar", {}))["ppo"]["bf16"] is native
        assert to_dict(resolve("minatar", {"bf16": "auto"}))["ppo"]["bf16"] is native
        assert to_dict(resolve("minatar", {"bf16": "false"}))["ppo"]["bf16"] is False
        assert make(tiny(), "Boxing").config.bf16 is native       # the learner decides too
    # a run recorded in float32 resumes in float32 on a CPU with bf16 (native is now True)
    import json
    monkeypatch.setattr(C, "CPUINFO", str(tmp_path / "bf16info"))
    (tmp_path / "bf16info").write_text("flags\t\t: avx512_bf16\n")
    run = tmp_path / "run"
    run.mkdir()
    saved = to_dict(resolve("minatar", {"bf16": "false"}))
    (run / "config.json").write_text(json.dumps(saved))
    assert saved["ppo"]["bf16"] is False
    assert to_dict(resolve("minatar", {}, resume_from=run))["ppo"]["bf16"] is False
    assert tiny().bf16 == "auto"
    with pytest.raises(ValueError, match="bf16='maybe' must be true, false or auto"):
        tiny(bf16="maybe")
    # bf16 on a CPU that emulates it: warned (a run resumed on another machine)
    monkeypatch.setattr(C, "CPUINFO", str(tmp_path / "absent"))
    with pytest.warns(UserWarning, match="without native bf16"):
        make(tiny(bf16=True), "Boxing")
    # only --bf16 takes 'auto': another boolean flag refuses it
    with pytest.raises(ValueError, match="--hard-freeze: 'auto' is not a boolean"):
        resolve("minatar", {"regularizer": "agscl", "hard_freeze": "auto"})
    with pytest.raises(ValueError, match="--bf16: 'maybe' is not a boolean: use true or false "
                                         "or auto"):
        resolve("minatar", {"bf16": "maybe"})
    # a config.json written before bf16 existed ran float32: it reads as bf16 false, here too
    from continual.runconfig import with_defaults
    old = to_dict(resolve("minatar", {"bf16": "false"}))
    del old["ppo"]["bf16"]
    monkeypatch.setattr(C, "CPUINFO", str(tmp_path / "bf16info"))
    assert with_defaults(old)["ppo"]["bf16"] is False
    (run / "config.json").write_text(json.dumps(old))
    assert to_dict(resolve("minatar", {}, resume_from=run))["ppo"]["bf16"] is False


def test_bf16_autocast_keeps_the_update_close_to_float32():
    """bf16=True autocasts the forward passes only: on the same minibatch the loss and the
    gradient stay close to float32's (the update is run once per precision from the same
    weights), and a bf16 unit trains with finite statistics."""
    import torch.nn.functional as F
    learner = make(tiny(), "Boxing")
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

    learner = make(tiny(update_epochs=2), "Boxing")
    learner.begin_task(0)
    good = {k: v.clone() for k, v in learner.model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"epoch 1, minibatch 0"):
        learner.train_unit(0, 0, NaNGrad(learner.model, at=3))   # 2 minibatches per epoch
    # a NaN penalty value (from good weights again): the first epoch's check stops the unit
    learner.model.load_state_dict(good)
    learner.begin_task(0)
    with pytest.raises(FloatingPointError, match=r"Boxing.*epoch 0, minibatch 0"):
        learner.train_unit(0, 1, Recorder(learner.model, penalty_value=float("nan")))
