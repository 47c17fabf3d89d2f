"""End to end through the CLI: tiny Atari and vision streams, resume, report, bad input."""
import json

import pytest
import torch

import train
from agents.ppo import PPOLearner
from tests.tiny import DEVICE, kill_ppo_at, load_script

TINY_ATARI = ["atari", "--games", "Boxing,Gopher", "--num-envs", "2", "--num-steps", "16",
              "--update-epochs", "1", "--num-minibatches", "2", "--steps-per-task", "64",
              "--eval-episodes", "1", "--eval-max-steps", "30", "--eval-every", "32",
              "--importance-steps", "32", "--checkpoint-every", "1", "--no-progress",
              "--threads", "1", "--device", DEVICE]


def results(path):
    return json.loads((path / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("reg", ["finetune", "agscl", "ewc"])
def test_atari_two_game_stream(tmp_path, reg):
    out = tmp_path / reg
    assert train.main(TINY_ATARI + ["--regularizer", reg, "--out", str(out)]) == 0
    res = results(out)
    assert res["tasks"] == ["Boxing", "Gopher"] and res["status"] == "complete"
    R = res["reward_matrix"]
    assert [len(r) for r in R] == [1, 2]
    assert [len(r) for r in res["reward_matrix_sampled"]] == [1, 2]
    assert res["sps"] > 0
    # Analysis 3's memory: nothing for fine-tuning; F and theta* for EWC; Omega and theta_hat
    # for AGS-CL (the nature trunk: conv 32-64-64, fc 512)
    trunk = 4 * (4 * 32 * 64 + 32 + 32 * 64 * 16 + 64 + 64 * 64 * 9 + 64 + 3136 * 512 + 512)
    assert res["regularizer_memory_bytes"] == {"finetune": 0, "ewc": 2 * trunk,
                                               "agscl": trunk + 4 * (32 + 64 + 64 + 512)}[reg]
    assert any(not c["task_end"] for c in res["eval_curve"])        # periodic evaluations
    if reg == "agscl":
        assert len(res["sparsity"]) == 2 and len(res["used_capacity"]) == 2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["regularizer"] == reg and cfg["games"] == ["Boxing", "Gopher"]
    assert (out / "checkpoints" / "task1.pt").exists()
    assert list((out / "tb").glob("events.*"))
    assert (out / "plots" / "reward_matrix.png").exists()


@pytest.mark.slow
def test_atari_resume_equals_uninterrupted_and_report(tmp_path, monkeypatch, capsys):
    args = TINY_ATARI + ["--regularizer", "agscl"]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0

    revive = kill_ppo_at(monkeypatch, 1, 1)               # killed mid-task
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 130
    revive()
    assert train.main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    full, cut = results(tmp_path / "full"), results(tmp_path / "cut")
    assert cut["reward_matrix"] == full["reward_matrix"]
    assert [c["score"] for c in cut["eval_curve"]] == [c["score"] for c in full["eval_curve"]]
    assert cut["sparsity"] == full["sparsity"]

    # a flag that disagrees with the run's config is refused, naming it; nothing is lost
    before = (tmp_path / "cut" / "results.json").read_text()
    for bad in (["--regularizer", "ewc"], ["--lam", "7"], ["--num-envs", "4"]):
        assert train.main(["atari", "--out", str(tmp_path / "cut"), "--resume", *bad]) == 2
        assert f"--resume refused: {bad[0]} disagree" in capsys.readouterr().err
    assert (tmp_path / "cut" / "results.json").read_text() == before

    # the report needs a fine-tuning run of the same stream
    assert train.main(["report", str(tmp_path / "full")]) == 2
    assert "fine-tuning run" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--out",
                                    str(tmp_path / "ft")]) == 0
    assert train.main(["report", str(tmp_path / "ft"), str(tmp_path / "full"),
                       "--out", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(rep["runs"]) == 2
    assert (tmp_path / "rep" / "normalised_accumulated_reward.png").exists()
    assert train.main(["report", str(tmp_path / "ft"), "--window", "0"]) == 2
    assert "window=0" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_atari_ctrl_c_saves_after_the_current_unit_and_resume_is_exact(tmp_path, monkeypatch,
                                                                      capsys, signame):
    # 4 units per game, periodic checkpoints every 3: Ctrl-C (or a scheduler's SIGTERM) in
    # unit 1 saves after it (unit 2), with Boxing's games in progress (a resume replays them)
    args = TINY_ATARI + ["--regularizer", "agscl", "--steps-per-task", "128",
                         "--checkpoint-every", "3"]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0
    orig = PPOLearner.train_unit

    def ctrl_c(self, task, unit, reg=None):
        if (task, unit) == (0, 1):
            import os
            import signal
            os.kill(os.getpid(), getattr(signal, signame))
        return orig(self, task, unit, reg)

    monkeypatch.setattr(PPOLearner, "train_unit", ctrl_c)
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 0
    assert f"{signame}: finishing the current unit" in capsys.readouterr().out
    cut = results(tmp_path / "cut")
    assert cut["status"] == "interrupted" and cut["global_step"] == 2 * 32
    monkeypatch.setattr(PPOLearner, "train_unit", orig)
    # --resume --out alone continues the run from its config.json (machine flags may change)
    assert train.main(["atari", "--resume", "--out", str(tmp_path / "cut"), "--no-progress",
                       "--env-threads", "1"]) == 0
    full, cut = results(tmp_path / "full"), results(tmp_path / "cut")
    assert cut["status"] == "complete"
    assert cut["reward_matrix"] == full["reward_matrix"]
    assert [c["score"] for c in cut["eval_curve"]] == [c["score"] for c in full["eval_curve"]]
    assert cut["sparsity"] == full["sparsity"]
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    for k, v in a["learner"]["model"].items():
        assert torch.equal(v, b["learner"]["model"][k]), k


def test_atari_bad_input(tmp_path, capsys):
    assert train.main(["atari", "--games", "Boxing,Pong", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "Pong" in err and "StarGunner" in err                    # names the valid games
    assert train.main(TINY_ATARI + ["--num-minibatches", "3", "--out", str(tmp_path / "b")]) == 2
    assert "divisible" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--regularizer", "agscl", "--eta", "0",
                                    "--out", str(tmp_path / "c")]) == 2
    assert "eta" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--regularizer", "nope", "--out", str(tmp_path / "d")]) == 2
    assert "unknown regularizer" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--lam", "3",
                                    "--out", str(tmp_path / "e")]) == 2
    assert "no hyperparameter lam" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--device", "gpu0", "--out", str(tmp_path / "f")]) == 2
    assert "not a torch device" in capsys.readouterr().err
    import torch
    if not torch.cuda.is_available():
        assert train.main(TINY_ATARI + ["--device", "cuda", "--out", str(tmp_path / "g")]) == 2
        assert "--device cpu" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--games", "", "--out", str(tmp_path / "h")]) == 2
    assert "empty game name" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--regularizer", "hat", "--out", str(tmp_path / "i")]) == 2
    assert "train.py vision" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--bf16", "maybe", "--out", str(tmp_path / "j")]) == 2
    assert "--bf16" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--config", str(tmp_path / "none.toml"),
                                    "--out", str(tmp_path / "k")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert train.main(["atari", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "abcdefghijk")    # nothing was created
    (tmp_path / "file").write_text("x")
    for out in ("file", "file/run"):
        assert train.main(TINY_ATARI + ["--out", str(tmp_path / out)]) == 2
        assert "is a file" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "x"


def test_help_shows_each_flag_with_its_meaning_and_default(capsys):
    with pytest.raises(SystemExit):
        train.main(["atari", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--num-envs INT parallel training games (default: 8; paper preset: 128)" in out
    assert "--mu FLOAT" in out and "--reg-gamma FLOAT" in out
    assert "hat" not in out.split("--regularizer TEXT")[1].split("--")[0]   # atari: no HAT
    with pytest.raises(SystemExit):
        train.main(["vision", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--epochs INT epochs per task (default: 20)" in out and "--s-max" in out


def test_config_file_and_a_run_config_start_the_same_run(tmp_path):
    """--config FILE (TOML) with flags on top; a run's config.json as --config repeats it."""
    from continual import flags, runconfig
    spec = tmp_path / "run.toml"
    spec.write_text('games = ["Boxing", "Gopher"]\nregularizer = "ewc"\n'
                    '[regularizer_hparams]\nlam = 10.0\n[ppo]\nnum_envs = 4\nseed = 9\n')
    cfg = flags.resolve("atari", {"num_steps": "8"}, str(spec))
    assert (cfg.games, cfg.regularizer, cfg.regularizer_hparams) == \
        (["Boxing", "Gopher"], "ewc", {"lam": 10.0})
    assert (cfg.ppo.num_envs, cfg.ppo.num_steps, cfg.ppo.seed, cfg.ppo.num_minibatches) == \
        (4, 8, 9, 4)
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(runconfig.to_dict(cfg)))
    assert runconfig.to_dict(flags.resolve("atari", {}, str(saved))) == \
        runconfig.to_dict(cfg)
    spec.write_text('games = ["Boxing"]\nregularizr = "ewc"\n')
    with pytest.raises(ValueError, match="unknown key.*regularizr"):
        flags.resolve("atari", {}, str(spec))


@pytest.mark.slow
def test_corrupt_checkpoint_named(tmp_path, capsys):
    out = tmp_path / "r"
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--steps-per-task", "32",
                                    "--out", str(out)]) == 0
    (out / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    res = results(out)                  # a run stopped before its end (a complete one is left
    res["status"] = "interrupted"       # as it is, checkpoint unread)
    (out / "results.json").write_text(json.dumps(res))
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--steps-per-task", "32",
                                    "--out", str(out), "--resume"]) == 2
    assert "unreadable" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("reg", ["finetune", "agscl", "agscl_no_reinit", "agscl_no_randinit",
                                 "agscl_no_zeroinit", "ewc", "ewc_online", "si", "mas", "rwalk",
                                 "hat"])
def test_vision_each_method_offline(tmp_path, reg):
    out = tmp_path / reg
    assert train.main(["vision", "--benchmark", "split_digits", "--regularizer", reg,
                       "--epochs", "1", "--max-tasks", "2", "--no-progress", "--threads", "1",
                       "--device", DEVICE, "--out", str(out)]) == 0
    res = results(out)
    A = res["accuracy_matrix"]
    assert [len(r) for r in A] == [1, 2]
    assert res["average_accuracy"] == pytest.approx(sum(A[1]) / 2)


def test_vision_missing_data_is_named(tmp_path, capsys):
    assert train.main(["vision", "--benchmark", "split_cifar100", "--data-dir",
                       str(tmp_path / "nothing"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "cifar-100" in err.lower() and "--data-dir" in err


@pytest.mark.slow
def test_vision_same_seed_same_run(tmp_path):
    """--seed fixes everything: the model's initialisation, shuffling, (I.2)'s re-init draws
    (a process that used the global RNG before must not change the run)."""
    import torch
    args = ["vision", "--benchmark", "split_digits", "--regularizer", "agscl", "--epochs", "1",
            "--max-tasks", "2", "--no-progress", "--threads", "1", "--seed", "3",
            "--device", DEVICE]
    assert train.main(args + ["--out", str(tmp_path / "a")]) == 0
    torch.rand(7)                                   # the global RNG moved on in between
    assert train.main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = results(tmp_path / "a"), results(tmp_path / "b")
    assert a["accuracy_matrix"] == b["accuracy_matrix"]
    assert a["sparsity"] == b["sparsity"]


@pytest.mark.slow
def test_grad_split_and_reinit_fork_diagnostics(tmp_path):
    """experiments/grad_split.py and reinit_fork.py: the gradient's parts
    partition the clipped gradient; the fork's 'unimportant' variant revives every G0 node,
    'zero_norm' only zero-norm ones; neither touches the run folder."""
    gs, fk = load_script("experiments", "grad_split"), load_script("experiments", "reinit_fork")
    for reg in ("agscl", "ewc"):
        out = tmp_path / reg
        assert train.main(TINY_ATARI + ["--regularizer", reg, "--out", str(out)]) == 0
        before = {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()}
        parts = gs.split(out, "task0.pt", units=1)
        assert {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()} == before
        share = {k: v["share"] for k, v in parts.items() if k != "features"}
        assert share["total"] == pytest.approx(1.0)
        assert share["head"] + share["trunk"] == pytest.approx(1.0)
        assert share["head:actor"] + share["head:critic"] == pytest.approx(share["head"])
        assert parts["features"] > 0
        if reg == "agscl":
            assert share["trunk:important"] + share.get("trunk:cut", 0) + share["trunk:free"] \
                == pytest.approx(share["trunk"], rel=1e-4, abs=1e-9)
            runs = {v: fk.fork(out, "task0.pt", 1, v) for v in ("zero_norm", "unimportant")}
            assert {f: f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file()} == before
            g0 = runs["unimportant"]["g0_nodes_before"]
            assert g0 > 0 and runs["unimportant"]["revived_at_start"] == g0
            assert runs["zero_norm"]["revived_at_start"] == 0
            for r in runs.values():
                assert set(r["scores"]) == {"Boxing", "Gopher"} and r["task"] == 1
        else:
            assert parts["penalty"]["norm"] > 0      # EWC's penalty after task 0's Fisher


def _snapshot(folder):
    """Every file and folder under ``folder``: its bytes and modification time."""
    import hashlib
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest()
                                         if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


FINISHED = {   # a tiny complete run of each command
    "atari": TINY_ATARI + ["--regularizer", "agscl", "--steps-per-task", "32"],
    "minatar": ["minatar", "--preset", "minatar_tiny", "--games", "Breakout,Freeway",
                "--regularizer", "ewc", "--no-progress", "--checkpoint-every", "1",
                "--threads", "1", "--device", DEVICE],
    "vision": ["vision", "--benchmark", "split_digits", "--regularizer", "agscl", "--epochs",
               "1", "--max-tasks", "2", "--no-progress", "--threads", "1", "--device", DEVICE],
}


@pytest.mark.parametrize("command", sorted(FINISHED))
def test_resume_of_a_complete_run_folder_changes_nothing(tmp_path, capsys, command):
    """The no-op reads config.json and results.json only: a folder that says "complete" (made
    here by hand, no training) gets no lock file, no session, no TensorBoard file."""
    from continual import flags, runconfig
    from continual.runfolder import write_json
    if command == "minatar":
        pytest.importorskip("minatar")
    out = tmp_path / command
    write_json(out / "config.json", runconfig.to_dict(flags.resolve(command, {})))
    write_json(out / "results.json", {"status": "complete", "tasks": ["a", "b"], "sessions": [1]})
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.pt").write_bytes(b"not read")
    before = _snapshot(out)
    assert train.main([command, "--resume", "--out", str(out)]) == 0
    assert f"{out} is already complete" in capsys.readouterr().out
    assert _snapshot(out) == before
    # a run that is not complete is still resumed (here: refused, its checkpoint is garbage)
    write_json(out / "results.json", {"status": "interrupted"})
    assert train.main([command, "--resume", "--out", str(out)]) == 2
    assert "unreadable" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(FINISHED))
def test_resume_of_a_finished_run_leaves_it_byte_identical(tmp_path, capsys, command):
    if command == "minatar":
        pytest.importorskip("minatar")
    out = tmp_path / command
    assert train.main(FINISHED[command] + ["--out", str(out)]) == 0
    assert results(out)["status"] == "complete"
    before = _snapshot(out)
    assert {"config.json", "results.json", "checkpoints/last.pt", "plots"} <= set(before)
    assert any(k.startswith("tb/events") for k in before)
    capsys.readouterr()
    assert train.main([command, "--resume", "--out", str(out)]) == 0
    assert f"{out} is already complete" in capsys.readouterr().out
    assert _snapshot(out) == before
    assert results(out)["status"] == "complete" and len(results(out)["sessions"]) == 1


def test_a_held_run_folder_is_a_transient_refusal(tmp_path, capsys):
    """--resume of a folder another process holds exits 75 (EX_TEMPFAIL: try again later; a
    study's runner waits for the folder), before anything is built, changing nothing."""
    import os
    from continual import flags, runconfig
    from continual.runfolder import IN_USE_EXIT, RunFolder, write_json
    out = tmp_path / "run"
    write_json(out / "config.json", runconfig.to_dict(flags.resolve("atari", {})))
    write_json(out / "results.json", {"status": "interrupted"})
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.pt").write_bytes(b"not read")
    holder = RunFolder(out)
    holder.lock()                                       # e.g. a run still saving
    before = _snapshot(out)
    assert IN_USE_EXIT == 75
    assert train.main(["atari", "--resume", "--out", str(out)]) == 75
    assert f"in use by another process (pid {os.getpid()})" in capsys.readouterr().err
    assert _snapshot(out) == before
    holder.close()
    assert train.main(["atari", "--resume", "--out", str(out)]) == 2    # free: on to the resume
    assert "unreadable" in capsys.readouterr().err
