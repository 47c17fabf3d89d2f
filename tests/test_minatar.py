"""The continual MinAtar stream: shapes and action sets, seeded determinism, the MinAtar network
and AGS-CL's node groups on it, exact resume, and the command line."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import regularizers
from agents.config import PPOConfig
from agents.minatar_net import MinAtarActorCritic
from agents.ppo import PPOLearner
from continual import flags, runconfig
from envs import minatar
from envs.replay import ReplayableTrainEnv
from regularizers.base import Regularizer
from regularizers.groups import find_node_layers

from tests.tiny import DEVICE, load_script, roundtrip

pytest.importorskip("minatar")


def tiny(**kw) -> PPOConfig:
    return PPOConfig.from_preset("minatar_tiny", **{"seed": 3, **kw})


def test_games_shapes_and_minimal_action_sets():
    from minatar import Environment
    assert minatar.GAMES == ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")
    for g in minatar.GAMES:
        raw = Environment(minatar._MODULES[g])
        assert len(raw.minimal_action_set()) == minatar.NUM_ACTIONS[g] == minatar.num_actions(g)
        assert raw.state_shape()[2] == minatar.GAME_CHANNELS[g] <= minatar.CHANNELS
        env = minatar.MinAtarEnv(g, 3, seed=1)
        obs = env.reset()
        assert obs.shape == (3, *minatar.OBS_SHAPE) and obs.dtype == np.uint8
        # the game's channels first (channels-first), the padding channels all zero
        raw.seed(1)
        raw.reset()
        assert np.array_equal(obs[0, :minatar.GAME_CHANNELS[g]],
                              np.moveaxis(raw.state(), 2, 0).astype(np.uint8))
        assert not obs[:, minatar.GAME_CHANNELS[g]:].any()
        o, r, done, over = env.step(np.zeros(3, dtype=np.int64))
        assert o.shape == obs.shape and r.dtype == np.float32 and np.array_equal(done, over)


def test_parse_games_and_errors():
    assert minatar.parse_games("space_invaders, breakout") == ["SpaceInvaders", "Breakout"]
    assert minatar.parse_games(None) == list(minatar.GAMES)
    for bad, word in (("Pong", "unknown MinAtar game"), ("Breakout,,Freeway", "empty"),
                      ("Breakout,breakout", "twice")):
        with pytest.raises(ValueError, match=word):
            minatar.parse_games(bad)
    with pytest.raises(ValueError, match="sticky"):
        minatar.MinAtarEnv("Breakout", 1, sticky=1.5)


def _play(env, seed, steps=300):
    rng = np.random.default_rng(7)
    out = [env.reset(seed=seed)]
    rewards = []
    for _ in range(steps):
        o, r, d, _ = env.step(rng.integers(0, env.num_actions, env.num_envs))
        out.append(o)
        rewards.append(r)
    return np.stack(out), np.stack(rewards), env.pop_finished()


@pytest.mark.parametrize("game", minatar.GAMES)
def test_one_seed_gives_identical_trajectories(game):
    a, b = minatar.MinAtarEnv(game, 2), minatar.MinAtarEnv(game, 2)
    oa, ra, fa = _play(a, 11)
    ob, rb, fb = _play(b, 11)
    assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and fa == fb
    oc, _, _ = _play(a, 12)                      # another seed, another game
    assert not np.array_equal(oa, oc)
    od, _, _ = _play(a, 11)                      # the same env re-seeded replays it exactly
    assert np.array_equal(oa, od)


def test_replay_rebuilds_running_games_exactly():
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 3, (40, 2))
    a = ReplayableTrainEnv(minatar.MinAtarEnv("Breakout", 2))
    a.reset(5)
    for x in acts[:25]:
        a.step(x)
    b = ReplayableTrainEnv(minatar.MinAtarEnv("Breakout", 2))
    obs_b, _ = b.load_state_dict(a.state_dict())
    for x in acts[25:]:
        oa, ra, da, _ = a.step(x)
        ob, rb, db, _ = b.step(x)
        assert np.array_equal(oa, ob) and np.array_equal(ra, rb) and np.array_equal(da, db)


def test_sticky_actions_repeat_the_previous_action():
    # with sticky 1 every action is the first one (0: no-op), so the paddle never moves
    env = minatar.MinAtarEnv("Breakout", 1, sticky=1.0)
    obs = env.reset(seed=0)
    paddle = obs[0, 0, 9].copy()                 # Breakout channel 0: the paddle, row 9
    for _ in range(3):
        obs, *_ = env.step(np.array([1]))        # 'left'
    assert np.array_equal(obs[0, 0, 9], paddle)
    moved = minatar.MinAtarEnv("Breakout", 1, sticky=0.0)
    obs = moved.reset(seed=0)
    for _ in range(3):
        obs2, *_ = moved.step(np.array([1]))
    assert not np.array_equal(obs2[0, 0, 9], obs[0, 0, 9])


def test_evaluate_full_games_deterministic():
    def policy(obs):
        return np.tile([0.0, 1.0, 0.5], (len(obs), 1))
    s1 = minatar.evaluate(policy, "Breakout", episodes=3, seed=4, max_steps=200)
    s2 = minatar.evaluate(policy, "Breakout", episodes=3, seed=4, max_steps=200)
    assert s1 == s2 and len(s1[1]) == 3
    sampled = minatar.evaluate(policy, "Breakout", episodes=3, seed=4, greedy=False,
                               max_steps=200)
    assert sampled == minatar.evaluate(policy, "Breakout", episodes=3, seed=4, greedy=False,
                                       max_steps=200)


def test_network_and_agscl_groups_found_without_special_code():
    model = MinAtarActorCritic([3, 4])
    layers = find_node_layers(model)
    assert [L.name for L in layers] == ["conv1", "fc"]
    assert [L.num_nodes for L in layers] == [16, 128]
    assert layers[1].in_repeat == 64                          # 8x8 positions per conv channel
    x = torch.zeros(2, *minatar.OBS_SHAPE, dtype=torch.uint8)
    logits, value = model(x, 1)
    assert logits.shape == (2, 4) and value.shape == (2,)
    # independent forward: conv 3x3 -> relu -> flatten channel-major -> fc -> relu
    x = torch.randint(0, 2, (5, *minatar.OBS_SHAPE), dtype=torch.uint8)
    h = F.relu(F.conv2d(x.float(), model.conv1.weight, model.conv1.bias))
    h = F.relu(h.reshape(5, -1) @ model.fc.weight.T + model.fc.bias)
    torch.testing.assert_close(model.features(x), h)
    reg = regularizers.make("agscl", model, mu=0.1, lam=100.0)
    assert [len(o) for o in reg.omega] == [16, 128]


def test_ppo_on_minatar_learns_units_and_agscl_end_task():
    cfg = tiny()
    learner = PPOLearner(cfg, "Breakout,Freeway", device=DEVICE, env="minatar")
    reg = regularizers.make("agscl", learner.model, mu=0.1, lam=100.0)
    learner.begin_task(0)
    reg.begin_task(0)
    out = learner.train_unit(0, 0, reg)
    assert np.isfinite(out["policy_loss"]) and out["sps"] > 0
    batches, loss_fn = learner.importance_data(0)
    reg.end_task(0, batches, loss_fn)
    assert sum(int((o > 0).sum()) for o in reg.omega) > 0
    assert set(learner.evaluate(0)) == {"score", "score_sampled"}
    with pytest.raises(ValueError, match="arch"):
        PPOLearner(PPOConfig.from_preset("cpu"), "Breakout", env="minatar")
    with pytest.raises(ValueError, match="arch"):
        PPOLearner(cfg, "Boxing", env="atari")


def test_resume_is_bit_identical_after_any_unit(monkeypatch):
    import envs.replay
    monkeypatch.setattr(envs.replay, "SEGMENT_STEPS", 10)
    cfg = tiny(num_steps=8)
    a = PPOLearner(cfg, "Seaquest", device=DEVICE, env="minatar")
    a.begin_task(0)
    out_a = [a.train_unit(0, u, Regularizer(a.model)) for u in range(3)]
    b = PPOLearner(cfg, "Seaquest", device=DEVICE, env="minatar")
    b.begin_task(0)
    out_b = []
    for u in range(3):
        out_b.append(b.train_unit(0, u, Regularizer(b.model)))
        state = roundtrip(b.state_dict())
        b = PPOLearner(cfg, "Seaquest", device=DEVICE, env="minatar")
        b.begin_task(0)
        b.load_state_dict(state)
    drop = ("sps", "time_env", "time_inference", "time_update", "time_total")
    assert [{k: v for k, v in o.items() if k not in drop} for o in out_a] == \
        [{k: v for k, v in o.items() if k not in drop} for o in out_b]
    for (n, p), (_, q) in zip(a.model.named_parameters(), b.model.named_parameters()):
        assert torch.equal(p, q), n


def test_runconfig_minatar_defaults_flags_and_refusals():
    c = runconfig.from_dict("minatar", {})
    assert c.games == list(minatar.GAMES) and c.ppo.preset == "minatar"
    assert c.ppo.arch == "minatar" and c.sticky == 0.1
    assert c.regularizer_hparams == {"mu": 0.1, "lam": 100.0, "eta": 0.9, "rho": 1.0,
                                     "prox": "step"}
    d = runconfig.to_dict(c)
    assert d["command"] == "minatar" and runconfig.to_dict(runconfig.from_dict("minatar", d)) == d
    c = flags.resolve("minatar", {"games": "Breakout", "sticky": "0", "preset": "minatar_tiny"})
    assert (c.games, c.sticky, c.ppo.num_envs) == (["Breakout"], 0.0, 2)
    with pytest.raises(ValueError, match="arch"):
        flags.resolve("minatar", {"preset": "cpu"})
    with pytest.raises(ValueError, match="arch"):
        flags.resolve("atari", {"preset": "minatar"})
    with pytest.raises(ValueError, match="sticky"):
        flags.resolve("minatar", {"sticky": "2"})
    with pytest.raises(ValueError, match="hat"):
        flags.resolve("minatar", {"regularizer": "hat"})
    with pytest.raises(ValueError, match="drop --env-threads"):       # an Atari-only flag
        flags.resolve("minatar", {"env_threads": "2"})
    assert flags.resolve("atari", {"env_threads": "2"}).machine.env_threads == 2


@pytest.mark.slow
def test_train_py_minatar_run_writes_a_complete_run_folder(tmp_path):
    import train
    args = ["minatar", "--preset", "minatar_tiny", "--games", "Breakout,Freeway",
            "--regularizer", "ewc", "--no-progress", "--checkpoint-every", "1"]
    assert train.main(args + ["--out", str(tmp_path / "a")]) == 0
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    assert len(ra["reward_matrix"]) == 2 and ra["status"] == "complete"
    assert json.loads((tmp_path / "a" / "config.json").read_text())["command"] == "minatar"


def test_random_policy_floor_is_the_uniform_policy_under_the_eval_protocol():
    from tests.tiny import load_script
    rnd = load_script("experiments", "minatar_random")
    s = rnd.random_scores("Breakout", episodes=5, max_steps=200, seed=3, batch=3)
    assert s.shape == (5,)
    assert np.array_equal(s, rnd.random_scores("Breakout", 5, 200, seed=3, batch=3))
    # batches of 3 then 2 games, seeded 3 and 1003, each a zero-logits sampled evaluation
    n = minatar.num_actions("Breakout")
    zero = lambda o: np.zeros((len(o), n), np.float32)      # noqa: E731
    _, a = minatar.evaluate(zero, "Breakout", episodes=3, seed=3, greedy=False, max_steps=200)
    _, b = minatar.evaluate(zero, "Breakout", episodes=2, seed=1003, greedy=False, max_steps=200)
    assert s.tolist() == a + b
    out = rnd.main(["--games", "Freeway", "--episodes", "2", "--max-steps", "30"])
    assert out["Freeway"]["episodes"] == 2 and out["Freeway"]["mean"] >= 0


def test_constant_action_baseline_plays_one_action():
    rnd = load_script("experiments", "minatar_random")
    n = minatar.num_actions("Freeway")
    up = rnd.constant_scores("Freeway", 1, episodes=3, max_steps=400, seed=5, batch=2)
    # independently: an evaluation whose greedy policy always picks action 1
    one = lambda o: np.eye(n, dtype=np.float32)[np.ones(len(o), int)]     # noqa: E731
    _, a = minatar.evaluate(one, "Freeway", episodes=2, seed=5, greedy=True, max_steps=400)
    _, b = minatar.evaluate(one, "Freeway", episodes=1, seed=1005, greedy=True, max_steps=400)
    assert up.tolist() == a + b and up.mean() > 0
    assert rnd.constant_scores("Freeway", 0, 2, 400).tolist() == [0.0, 0.0]   # no-op
    with pytest.raises(ValueError, match="not in Freeway"):
        rnd.constant_scores("Freeway", n, 1, 10)
    out = rnd.main(["--games", "Freeway", "--episodes", "2", "--max-steps", "400", "--constant"])
    c = out["Freeway"]["constant"]
    assert c["best_action"] == 1 and c["per_action"][0] == 0 and c["mean"] == max(c["per_action"])
