"""The Atari stream's environments (envs/atari.py), on the real ROMs shipped with ale-py."""
import numpy as np
import pytest
import torch

from envs.atari import (GAMES, NUM_ACTIONS, AtariTrainEnv, evaluate, make_eval_env, make_train_env,
                        num_actions, parse_games)


def test_games_in_paper_order():
    assert GAMES == ("StarGunner", "Boxing", "VideoPinball", "CrazyClimber", "Gopher",
                     "Robotank", "DemonAttack", "NameThisGame")


def test_parse_games():
    assert parse_games("Boxing,Gopher") == ["Boxing", "Gopher"]
    assert parse_games(" boxing , GOPHER,name_this_game") == ["Boxing", "Gopher", "NameThisGame"]
    assert parse_games(["DemonAttack", "starGunner"]) == ["DemonAttack", "StarGunner"]
    assert parse_games(None) == list(GAMES)


@pytest.mark.parametrize("spec", ["Pong", "Boxing,Breakout", "Boxing,,Gopher", "", " ", [],
                                  "Boxing,Boxing"])
def test_parse_games_rejects(spec):
    with pytest.raises(ValueError) as e:
        parse_games(spec)
    if "twice" not in str(e.value):
        for g in GAMES:                      # the message lists the valid names
            assert g in str(e.value)


def test_minimal_action_sets_from_roms():
    sizes = [num_actions(g) for g in GAMES]
    assert sizes == [18, 18, 9, 9, 8, 18, 6, 6]
    assert sizes == [NUM_ACTIONS[g] for g in GAMES]


def test_train_env_observations_and_steps():
    env = make_train_env("Gopher", 2, seed=3)
    try:
        assert env.num_actions == 8
        obs = env.reset()
        assert obs.dtype == np.uint8 and obs.shape == (2, 4, 84, 84)
        obs, rew, done, over = env.step(np.array([0, 1]))
        assert obs.dtype == np.uint8 and obs.shape == (2, 4, 84, 84)
        assert rew.dtype == np.float32 and rew.shape == (2,)
        assert done.dtype == bool and over.dtype == bool
    finally:
        env.close()


def test_seeded_reset_is_reproducible():
    outs = []
    for _ in range(2):
        env = make_train_env("Boxing", 2, seed=11)
        o = env.reset()
        for a in range(20):
            o = env.step(np.array([a % 18, (3 * a) % 18]))[0]
        outs.append(o.copy())
        env.close()
    np.testing.assert_array_equal(outs[0], outs[1])


def test_reseeded_env_equals_new_env():
    """What a new segment of games relies on: reset(seed) of a used env == a new env's reset."""
    rng = np.random.default_rng(1)
    used = make_train_env("Gopher", 2, seed=1)
    used.reset()
    for _ in range(150):
        used.step(rng.integers(0, 8, 2))
    fresh = make_train_env("Gopher", 2, seed=42)
    try:
        np.testing.assert_array_equal(used.reset(seed=42), fresh.reset())
        for _ in range(100):
            a = rng.integers(0, 8, 2)
            for x, y in zip(used.step(a), fresh.step(a)):
                np.testing.assert_array_equal(x, y)
    finally:
        used.close()
        fresh.close()


def test_life_loss_ends_episode_but_not_game_and_raw_returns_are_logged():
    """DemonAttack: a lost life gives done (for bootstrapping) while the game goes on; the
    logged return of a finished game is its raw (unclipped) score summed over all lives."""
    env = AtariTrainEnv("DemonAttack", 2, seed=0, clip_rewards=False)
    rng = np.random.default_rng(0)
    try:
        env.reset()
        raw = np.zeros(2)
        life_losses = 0
        finished = []
        for _ in range(4000):
            _, r, done, over = env.step(rng.integers(0, 6, 2))
            raw += r
            life_losses += int((done & ~over).sum())
            for i in np.flatnonzero(over):
                finished.append(raw[i])
                raw[i] = 0
            if finished:
                break
        assert finished, "no game finished in 4000 random steps"
        assert life_losses >= 1
        logged = [ret for ret, _ in env.pop_finished()]
        assert logged == finished
        assert max(logged) > 1                     # raw scores, not clipped to +-1 per step
    finally:
        env.close()


def _fixed_policy(obs):
    # Deterministic logits from the frames (no RNG): some actions favoured by image content.
    m = obs.reshape(len(obs), -1)[:, ::997].astype(np.float64)
    return np.stack([m[:, i % m.shape[1]] / 64.0 for i in range(6)], axis=1)


def test_evaluate_deterministic_and_rng_free():
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    kw = dict(game="DemonAttack", episodes=2, seed=5, max_steps=150)
    a = evaluate(_fixed_policy, greedy=False, **kw)
    env = make_eval_env("DemonAttack", 2, 150)           # a reused env is re-seeded each call
    try:
        b = evaluate(_fixed_policy, greedy=False, env=env, **kw)
        g = evaluate(_fixed_policy, greedy=True, env=env, **kw)
    finally:
        env.close()
    assert a == b
    assert isinstance(a[0], float) and len(a[1]) == 2 and a[0] == pytest.approx(np.mean(a[1]))
    assert isinstance(g[0], float)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])


def test_evaluate_rejects_bad_arguments():
    with pytest.raises(ValueError):
        evaluate(_fixed_policy, "Boxing", episodes=0)
    with pytest.raises(ValueError):
        evaluate(_fixed_policy, "NoSuchGame", episodes=1)


def test_replayable_env_rebuilds_the_running_games():
    """envs/replay.py: a new env loaded from a state continues exactly as the one saved."""
    from envs.replay import ReplayableTrainEnv
    rng = np.random.default_rng(2)
    a = ReplayableTrainEnv(AtariTrainEnv("Boxing", 2, seed=0))
    a.reset(seed=7)
    for _ in range(60):
        a.step(rng.integers(0, 18, 2))
    a.pop_finished()
    state = a.state_dict()
    assert state["actions"].shape == (60, 2) and state["actions"].dtype == np.uint8
    b = ReplayableTrainEnv(AtariTrainEnv("Boxing", 2, seed=0), segment_steps=61)
    try:
        b.load_state_dict(state)
        assert not b.segment_full
        for _ in range(40):
            act = rng.integers(0, 18, 2)
            for x, y in zip(a.step(act), b.step(act)):
                np.testing.assert_array_equal(x, y)
        assert b.segment_full and a.pop_finished() == b.pop_finished()
        with pytest.raises(ValueError, match="Boxing"):
            ReplayableTrainEnv(AtariTrainEnv("Gopher", 2, seed=0)).load_state_dict(state)
    finally:
        a.close()
        b.close()
