"""Evaluating, filming and diagnosing agents: dormant units (agents/base.py), the streams'
videos (envs/video.py, envs/atari.py, envs/minatar.py), the trainer's records of both and
``train.py evaluate`` (continual/evaluate.py)."""
import json
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import regularizers
from agents.base import GameLearner, dormant_scores, dormant_units
from agents.config import PPOConfig
from agents.minatar_net import MinAtarActorCritic
from agents.ppo import PPOLearner
from continual import flags, runconfig
from continual.evaluate import seen_tasks
from continual.runfolder import CHECKPOINT_FORMAT, RunFolder
from continual.trainer import ContinualTrainer, Schedule
from envs import atari, minatar
from envs.common import derive_seed
from tests.test_trainer import ToyLearner
from tests.tiny import DEVICE

pytest.importorskip("minatar")


def read_video(path) -> list[np.ndarray]:
    import cv2
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f[:, :, ::-1])               # BGR -> RGB
    cap.release()
    return frames


# --- dormant units ----------------------------------------------------------------------------
def test_dormant_scores_and_fractions_on_hand_made_activations():
    # E_x|h| = (0, 2, 2, 0.02); the layer's mean 4.02 / 4 = 1.005
    h = torch.tensor([[0.0, 1.0, -2.0, 0.01], [0.0, 3.0, 2.0, 0.03]])
    s = dormant_scores(h)
    want = torch.tensor([0.0, 2.0, 2.0, 0.02], dtype=torch.float64) / 1.005
    torch.testing.assert_close(s, want)
    assert s.mean().item() == pytest.approx(1.0)     # scores average 1 by construction
    # conv channels: the mean over the batch and the positions; channel 1 fires at one of 4
    c = torch.zeros(2, 3, 2, 2)
    c[:, 0] = 1.0                                       # mean 1
    c[0, 1, 0, 0] = 0.4                                 # mean 0.4 / 8 = 0.05
    c[:, 2] = 2.0                                       # mean 2
    torch.testing.assert_close(dormant_scores(c), torch.tensor([1.0, 0.05, 2.0],
                                                               dtype=torch.float64) / (3.05 / 3))
    assert dormant_scores(torch.zeros(5, 3)).tolist() == [0.0, 0.0, 0.0]   # a silent layer


def _independent_scores(x, model):
    h1 = F.relu(F.conv2d(x.float(), model.conv1.weight, model.conv1.bias))
    h2 = F.relu(h1.flatten(1) @ model.fc.weight.T + model.fc.bias)
    out = []
    for h, dims in ((h1, (0, 2, 3)), (h2, (0,))):
        m = h.double().mean(dims)
        out.append(m / m.mean())
    return out


def test_dormant_units_of_a_network_against_an_independent_forward():
    torch.manual_seed(0)
    model = MinAtarActorCritic([3, 3])
    with torch.no_grad():                               # kill fc units 0-9 and conv channel 0
        model.fc.bias[:10] = -1e3
        model.conv1.weight[0] = 0.0
        model.conv1.bias[0] = -1.0
    x = torch.randint(0, 2, (64, *minatar.OBS_SHAPE), dtype=torch.uint8)
    g0 = [torch.arange(16) < 4, torch.arange(128) % 2 == 0]
    rec = dormant_units(model, x, 1, taus=(0.0, 0.025, 1.0), unimportant=g0)["layers"]
    s_conv, s_fc = _independent_scores(x, model)
    for name, s, g in (("conv1", s_conv, g0[0]), ("fc", s_fc, g0[1])):
        r = rec[name]
        assert r["units"] == len(s)
        for tau in (0.0, 0.025, 1.0):
            d = s <= tau
            assert r[f"tau{tau:g}"] == pytest.approx(d.double().mean().item())
            assert r[f"tau{tau:g}_g0"] == pytest.approx((d & g).double().mean().item())
        assert r["g0"] == pytest.approx(g.double().mean().item())
    assert rec["conv1"]["tau0"] >= 1 / 16 and rec["fc"]["tau0"] >= 10 / 128
    assert 0 < rec["fc"]["tau1"] < 1                    # a threshold that splits the layer
    d_all = torch.cat([s_conv <= 0.025, s_fc <= 0.025])
    assert rec["all"]["units"] == 144
    assert rec["all"]["tau0.025"] == pytest.approx(d_all.double().mean().item())
    assert not any(m._forward_hooks for m in model.modules())      # hooks removed
    with pytest.raises(ValueError, match="G0"):
        dormant_units(model, x, 0, unimportant=[g0[0]])


def tiny_minatar(**kw) -> PPOConfig:
    return PPOConfig.from_preset("minatar_tiny", **{"seed": 3, **kw})


def test_ppo_dormant_units_read_the_last_rollout_and_agscl_g0():
    learner = PPOLearner(tiny_minatar(), "Breakout,Freeway", device=DEVICE, env="minatar")
    assert isinstance(learner, GameLearner)
    reg = regularizers.make("agscl", learner.model)
    assert learner.dormant_units(0, reg) is None                  # no rollout yet
    learner.begin_task(0)
    reg.begin_task(0)
    learner.train_unit(0, 0, reg)
    obs = learner._dormant_obs
    assert obs.shape == (32, *minatar.OBS_SHAPE)                  # all of a 2 x 16 rollout
    rec = learner.dormant_units(0, reg)
    assert rec["observations"] == 32
    want = dormant_units(learner.model, obs, 0, unimportant=reg.unimportant_nodes())
    assert rec["layers"] == want["layers"]
    # before AGS-CL's first task end every node has Omega == 0: all of G0
    assert rec["layers"]["all"]["g0"] == 1.0
    assert rec["layers"]["fc"]["tau0_g0"] == rec["layers"]["fc"]["tau0"]
    assert "g0" not in learner.dormant_units(0, regularizers.make("ewc", learner.model))[
        "layers"]["fc"]
    assert learner.model.training                                 # the mode is restored


# --- videos -------------------------------------------------------------------------------------
def test_minatar_render_palette_and_scale():
    obs = np.zeros(minatar.OBS_SHAPE, dtype=np.uint8)
    obs[0, 0, 0] = 1
    obs[1, 2, 5] = obs[3, 2, 5] = 1                     # two channels: the higher one shows
    img = minatar.render(obs, scale=3)
    assert img.shape == (30, 30, 3) and img.dtype == np.uint8
    assert (img[0:3, 0:3] == minatar.PALETTE[1]).all()
    assert (img[6:9, 15:18] == minatar.PALETTE[4]).all()
    mask = np.ones((30, 30), bool)
    mask[0:3, 0:3] = mask[6:9, 15:18] = False
    assert (img[mask] == 0).all()                       # background black
    assert len({tuple(c) for c in minatar.PALETTE}) == minatar.CHANNELS + 1
    with pytest.raises(ValueError, match="shape"):
        minatar.render(np.zeros((4, 10, 10)))


def _policy(obs):
    return np.tile([0.0, 1.0, 0.5], (len(obs), 1))


def test_minatar_videos_are_the_evaluated_games(tmp_path):
    kw = dict(game="Breakout", episodes=2, seed=4, max_steps=60, greedy=False)
    plain = minatar.evaluate(_policy, **kw)
    paths = [tmp_path / "v" / f"{i}.mp4" for i in range(2)]
    assert minatar.evaluate(_policy, video=paths, **kw) == plain   # filming changes nothing
    # replay game 0 step by step with the same actions: the video shows its observations
    env = minatar.MinAtarEnv("Breakout", 2, max_steps=60)
    rng = np.random.default_rng([4, 0x5EED])
    obs = env.reset(seed=4)
    want, active = [[minatar.render(obs[0])], [minatar.render(obs[1])]], np.ones(2, bool)
    for _ in range(60):
        idx = np.flatnonzero(active)
        a = np.zeros(2, np.int64)
        a[idx] = (np.tile([0.0, 1.0, 0.5], (len(idx), 1)) + rng.gumbel(size=(len(idx), 3))
                  ).argmax(1)
        obs, _, done, _ = env.step(a)
        active &= ~done
        for i in np.flatnonzero(active):
            want[i].append(minatar.render(obs[i]))
        if not active.any():
            break
    for i, p in enumerate(paths):
        frames = read_video(p)
        assert len(frames) == len(want[i]) > 1
        assert frames[0].shape == (200, 200, 3)
        for f, w in zip(frames, want[i]):               # mp4v is lossy: the nearest colours
            assert np.abs(f.astype(int) - w).mean() < 12


def test_video_paths_are_checked(tmp_path):
    with pytest.raises(ValueError, match="one per game"):
        minatar.evaluate(_policy, "Breakout", episodes=2, max_steps=5, video=[tmp_path / "a.mp4"])
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot write the video"):
        minatar.evaluate(_policy, "Breakout", episodes=1, max_steps=5,
                         video=[tmp_path / "a.txt"])
    with pytest.raises(OSError):                        # a folder where a file lies
        minatar.evaluate(_policy, "Breakout", episodes=1, max_steps=5,
                         video=[tmp_path / "file" / "a.mp4"])


def test_atari_screen_twin_plays_the_evaluated_games_and_films_them(tmp_path):
    import cv2
    eval_env = atari.make_eval_env("Boxing", 1, 25, num_threads=1)
    screens = atari.make_eval_env("Boxing", 1, 25, num_threads=1, screen=True)
    try:
        o, _ = eval_env.reset(seed=9)
        rgb, _ = screens.reset(seed=9)
        assert rgb.shape == (1, 1, *atari.SCREEN, 3) and o.shape == (1, *atari.OBS_SHAPE)
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(60):                             # two games cut at 25 steps, and more
            a = rng.integers(0, 18, 1)
            o, r, te, tr, info = eval_env.step(a)
            rgb, r2, te2, tr2, info2 = screens.step(a)
            assert np.array_equal(r, r2) and np.array_equal(te | tr, te2 | tr2)
            assert np.array_equal(info["frame_number"], info2["frame_number"])
            ends += int((te | tr).sum())
        assert ends == 2
        # the screen, grey and 84x84, is the agent's newest frame (which max-pools 2 frames)
        g = cv2.resize(cv2.cvtColor(rgb[0, 0], cv2.COLOR_RGB2GRAY), (84, 84),
                       interpolation=cv2.INTER_AREA)
        assert np.corrcoef(g.ravel(), o[0, -1].ravel())[0, 1] > 0.95

        def policy(obs):
            return np.tile(np.arange(18.0) % 5, (len(obs), 1))
        kw = dict(game="Boxing", episodes=1, seed=3, max_steps=25, env=eval_env)
        path = tmp_path / "boxing.mp4"
        assert atari.evaluate(policy, video=[path], **kw) == atari.evaluate(policy, **kw)
    finally:
        eval_env.close()
        screens.close()
    frames = read_video(path)
    assert len(frames) == 25 and frames[0].shape == (*atari.SCREEN, 3)   # reset + 24 steps
    assert frames[0].std() > 10                                          # a picture, not blank


# --- the trainer ----------------------------------------------------------------------------
class FilmedToy(ToyLearner):
    """The toy learner with the optional GameLearner methods, returning known values."""

    def __init__(self, fail_video=False):
        super().__init__(units=4)
        self.fail_video, self.filmed = fail_video, []

    def record_video(self, task, path, seed=None):
        if self.fail_video:
            raise RuntimeError("no codec")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"mp4")
        self.filmed.append((task, path.name))
        return 10.0 + task

    def dormant_units(self, task, reg=None):
        return {"layers": {"fc1": {"units": 8, "tau0": 0.25 + task, "g0": 0.5},
                           "all": {"units": 14, "tau0": 0.125}}, "observations": 3}


def test_trainer_records_dormant_units_and_videos(tmp_path, capsys):
    from analysis.tensorboard_events import load_scalars
    learner = FilmedToy()
    reg = regularizers.make("agscl", learner.model)
    tr = ContinualTrainer(learner, reg, RunFolder(tmp_path), {"format_version": CHECKPOINT_FORMAT},
                          Schedule(eval_every=2, capture_video=True), progress=False,
                          plots=False)
    res = tr.run()
    # one record per evaluation: unit 2 of each task (periodic) and each task end (unit 4)
    assert [(d["task"], d["unit"], d["task_end"], d["step"]) for d in res["dormant"]] == \
        [(0, 2, False, 32), (0, 4, True, 64), (1, 2, False, 96), (1, 4, True, 128)]
    assert res["dormant"][-1]["layers"]["fc1"]["tau0"] == 1.25
    assert [(c["step"], c["task_end"]) for c in res["eval_curve"]] == \
        [(d["step"], d["task_end"]) for d in res["dormant"]]
    tb = load_scalars(str(tmp_path))
    assert tb["dormant/fc1/tau0"] == [(32, 0.25), (64, 0.25), (96, 1.25), (128, 1.25)]
    assert [v for _, v in tb["dormant/fc1/g0"]] == [0.5] * 4 and "dormant/fc1/units" not in tb
    # videos: every seen game at each task end, in the run's videos/
    assert learner.filmed == [(0, "task0-a.mp4"), (0, "task1-a.mp4"), (1, "task1-b.mp4")]
    assert res["videos"] == [
        {"task": 0, "game": "a", "path": "videos/task0-a.mp4", "score": 10.0},
        {"task": 1, "game": "a", "path": "videos/task1-a.mp4", "score": 10.0},
        {"task": 1, "game": "b", "path": "videos/task1-b.mp4", "score": 11.0}]
    assert (tmp_path / "videos" / "task1-b.mp4").exists()
    assert json.loads((tmp_path / "results.json").read_text())["dormant"] == res["dormant"]
    # a video that fails is a warning, never a lost run; a learner without the methods: none
    failing = FilmedToy(fail_video=True)
    res = ContinualTrainer(failing, regularizers.make("agscl", failing.model),
                           RunFolder(tmp_path / "b"), {"format_version": CHECKPOINT_FORMAT},
                           Schedule(capture_video=True), progress=False, plots=False).run()
    assert res["status"] == "complete" and res["videos"] == []
    assert "no codec" in capsys.readouterr().out
    toy = ToyLearner()
    res = ContinualTrainer(toy, regularizers.make("ewc", toy.model), RunFolder(tmp_path / "c"),
                           {"format_version": CHECKPOINT_FORMAT}, Schedule(eval_every=2),
                           progress=False, plots=False).run()
    assert res["dormant"] == [] and res["videos"] == []


def test_capture_video_is_a_machine_flag_off_by_default():
    c = flags.resolve("minatar", {"preset": "minatar_tiny"})
    assert c.machine.capture_video is False
    c = flags.resolve("minatar", {"preset": "minatar_tiny", "capture_video": "true"})
    assert c.machine.capture_video is True
    fl = [f for f in flags.FLAGS["atari"] if f.name == "capture-video"]
    assert len(fl) == 1 and fl[0].machine and fl[0].path == ("machine", "capture_video")
    with pytest.raises(ValueError, match="capture_video"):
        runconfig.from_dict("minatar", {"machine": {"capture_video": "yes"}})
    assert "capture-video" not in {f.name for f in flags.FLAGS["vision"]}


# --- train.py evaluate ----------------------------------------------------------------------
GAMES3 = "Breakout,Freeway,Asterix"


def saved_run(path, task, unit, games=GAMES3):
    """A run folder with an untrained learner's checkpoint at (task, unit): no training."""
    cfg = flags.resolve("minatar", {"preset": "minatar_tiny", "games": games,
                                        "regularizer": "agscl", "device": DEVICE})
    learner, reg, _ = runconfig.build(cfg)
    folder = RunFolder(path)
    folder.open(runconfig.to_dict(cfg), resume=False)
    state = {"task": task, "unit": unit, "global_step": 32 * (2 * task + unit)}
    folder.save_checkpoint({"format_version": CHECKPOINT_FORMAT, "config": runconfig.to_dict(cfg),
                            "trainer": state, "learner": learner.state_dict(),
                            "regularizer": reg.state_dict(), "rng": None})
    folder.close()
    return cfg, learner


def test_seen_tasks_counts_the_task_being_trained():
    assert seen_tasks({"task": 1, "unit": 0}, 3) == 1     # a task boundary: task 1 not begun
    assert seen_tasks({"task": 1, "unit": 1}, 3) == 2     # mid-task 1
    assert seen_tasks({"task": 3, "unit": 0}, 3) == 3     # complete


def test_evaluate_plays_the_seen_games_and_writes_evaluation_json(tmp_path, capsys):
    import train
    run = tmp_path / "run"
    cfg, learner = saved_run(run, task=1, unit=1)          # mid-task 1: Breakout, Freeway seen
    assert train.main(["evaluate", str(run), "--both"]) == 0
    out = capsys.readouterr().out
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["tasks_seen"] == ["Breakout", "Freeway"] and list(ev["games"]) == ev["tasks_seen"]
    assert (ev["episodes"], ev["max_steps"], ev["checkpoint"]) == (2, 50, "last.pt")
    assert ev["command_line"] == f"python train.py evaluate {run} --both"
    for task, game in enumerate(ev["tasks_seen"]):
        e = ev["games"][game]
        assert e["seed"] == derive_seed(cfg.seed, "eval", task)   # the run's own eval seed
        for mode, greedy in (("greedy", True), ("sampled", False)):
            want = minatar.evaluate(learner.policy_fn(task), game, 2, e["seed"], greedy=greedy,
                                    max_steps=50, sticky=cfg.sticky)[1]
            m = e[mode]
            assert m["scores"] == want
            assert m["mean"] == pytest.approx(statistics.fmean(want))
            assert m["std"] == pytest.approx(statistics.pstdev(want))
            assert (m["min"], m["max"]) == (min(want), max(want))
            row = next(line.split() for line in out.splitlines()
                       if line.startswith(game) and mode in line)
            assert row == [game, mode, f"{m['mean']:.2f}", f"{m['std']:.2f}",
                           f"{m['min']:.6g}", f"{m['max']:.6g}", "2"]
    assert "game" in out and "episodes" in out
    # flags: one game (any spelling), its episodes, cap and seed; --out; videos
    assert train.main(["evaluate", str(run), "--games", "freeway", "--episodes", "3",
                       "--max-steps", "20", "--seed", "7", "--sampled", "--out",
                       str(tmp_path / "o"), "--video", str(tmp_path / "v")]) == 0
    ev = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    e = ev["games"]["Freeway"]
    assert list(ev["games"]) == ["Freeway"] and set(e) == {"task", "seed", "sampled"}
    assert e["seed"] == 7 and len(e["sampled"]["scores"]) == 3 and ev["max_steps"] == 20
    assert e["sampled"]["scores"] == minatar.evaluate(
        learner.policy_fn(1), "Freeway", 3, 7, greedy=False, max_steps=20, sticky=cfg.sticky)[1]
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == \
        [f"Freeway-sampled-{i}.mp4" for i in range(3)]
    assert all(len(read_video(p)) >= 1 for p in e["sampled"]["videos"])


def test_evaluate_bad_input_is_named(tmp_path, capsys):
    import train
    run = tmp_path / "run"
    saved_run(run, task=1, unit=0)                          # a task boundary: Breakout only

    def err(*args):
        assert train.main(["evaluate", *map(str, args)]) == 2
        return capsys.readouterr().err

    for games in ("Freeway", "Pong", "Breakout,SpaceInvaders"):       # unseen, unknown, other
        e = err(run, "--games", games)
        assert e.strip().endswith("seen: Breakout"), e
    e = err(run, "--checkpoint", "task5.pt")
    assert "task5.pt" in e and "it has: last.pt" in e
    assert "--episodes 0" in err(run, "--episodes", "0")
    assert "--max-steps -1" in err(run, "--max-steps", "-1")
    assert "no such run folder" in err(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    assert "no config.json" in err(tmp_path / "empty")
    (tmp_path / "vision").mkdir()
    (tmp_path / "vision" / "config.json").write_text(
        json.dumps({"format_version": CHECKPOINT_FORMAT, "command": "vision"}))
    assert "vision run" in err(tmp_path / "vision")
    (tmp_path / "f").write_text("")
    assert "is a file" in err(run, "--out", tmp_path / "f")
    assert not (run / "evaluation.json").exists()


@pytest.mark.slow
def test_minatar_run_dormant_videos_and_evaluate_reproduce_its_matrix(tmp_path, capsys):
    """A whole tiny MinAtar run with --capture-video: its dormant records and videos, and
    train.py evaluate at its checkpoints scoring the rows of its reward matrices again."""
    import train
    from analysis.tensorboard_events import load_scalars
    run = tmp_path / "run"
    assert train.main(["minatar", "--preset", "minatar_tiny", "--games", "Breakout,Freeway",
                       "--regularizer", "agscl", "--eval-every", "32", "--capture-video",
                       "--no-progress", "--device", DEVICE, "--out", str(run)]) == 0
    res = json.loads((run / "results.json").read_text())
    # a record at every evaluation: unit 1 (periodic) and the task end of each task
    assert [(d["task"], d["task_end"], d["step"]) for d in res["dormant"]] == \
        [(0, False, 32), (0, True, 64), (1, False, 96), (1, True, 128)]
    assert [d["step"] for d in res["dormant"]] == [c["step"] for c in res["eval_curve"]]
    d = res["dormant"]
    assert set(d[0]["layers"]) == {"conv1", "fc", "all"} and d[0]["observations"] == 32
    assert d[0]["layers"]["all"]["g0"] == 1.0        # task 0: Omega == 0 everywhere
    # during task 1, G0 is the one AGS-CL's first task end left: its sparsity
    assert d[2]["layers"]["all"]["g0"] == pytest.approx(res["sparsity"][0])
    for rec in d:
        for L in rec["layers"].values():
            assert 0 <= L["tau0_g0"] <= min(L["tau0"], L["g0"]) and L["tau0"] <= L["tau0.025"]
    tb = load_scalars(str(run))
    assert [s for s, _ in tb["dormant/fc/tau0.025"]] == [32, 64, 96, 128]
    assert "dormant/all/tau0_g0" in tb
    # videos: every seen game at each task end
    assert [(v["task"], v["game"]) for v in res["videos"]] == \
        [(0, "Breakout"), (1, "Breakout"), (1, "Freeway")]
    for v in res["videos"]:
        assert len(read_video(run / v["path"])) >= 1
    # evaluate, defaults: the run's own evaluation at that checkpoint, greedy and sampled
    for ckpt, row in (("last.pt", 1), ("task0.pt", 0)):
        assert train.main(["evaluate", str(run), "--checkpoint", ckpt, "--both", "--out",
                           str(tmp_path / ckpt)]) == 0
        ev = json.loads((tmp_path / ckpt / "evaluation.json").read_text())
        assert ev["tasks_seen"] == ["Breakout", "Freeway"][:row + 1]
        assert [ev["games"][g]["greedy"]["mean"] for g in ev["tasks_seen"]] == \
            res["reward_matrix"][row]
        assert [ev["games"][g]["sampled"]["mean"] for g in ev["tasks_seen"]] == \
            res["reward_matrix_sampled"][row]
    # a video is the evaluation's first game (greedy, the task's evaluation seed)
    assert train.main(["evaluate", str(run), "--episodes", "1", "--out", str(tmp_path / "e1")]) == 0
    ev = json.loads((tmp_path / "e1" / "evaluation.json").read_text())
    assert [ev["games"][g]["greedy"]["scores"][0] for g in ("Breakout", "Freeway")] == \
        [v["score"] for v in res["videos"] if v["task"] == 1]
    capsys.readouterr()


@pytest.mark.slow
def test_dormant_records_of_a_resumed_run_equal_the_uninterrupted_ones(tmp_path, monkeypatch):
    import train
    args = ["minatar", "--preset", "minatar_tiny", "--games", "Breakout,Freeway",
            "--regularizer", "agscl", "--eval-every", "32", "--no-progress", "--device", DEVICE]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0
    orig = PPOLearner.train_unit

    def crash(self, task, unit, reg=None):
        if (task, unit) == (1, 1):
            raise KeyboardInterrupt                   # killed mid-task, after a checkpoint
        return orig(self, task, unit, reg)

    monkeypatch.setattr(PPOLearner, "train_unit", crash)
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(PPOLearner, "train_unit", orig)
    assert train.main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    full, cut = (json.loads((tmp_path / r / "results.json").read_text())
                 for r in ("full", "cut"))
    assert len(full["dormant"]) == 4 and cut["dormant"] == full["dormant"]
