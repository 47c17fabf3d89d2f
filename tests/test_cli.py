"""End to end through the CLI: tiny Atari and vision streams, resume, report, bad input."""
import json

import pytest
import torch

import train
from agents.ppo import PPOLearner
from tests.tiny import DEVICE, load_script

TINY_ATARI = ["atari", "--games", "Boxing,Gopher", "--num-envs", "2", "--num-steps", "16",
              "--update-epochs", "1", "--num-minibatches", "2", "--steps-per-task", "64",
              "--eval-episodes", "1", "--eval-max-steps", "30", "--eval-every", "32",
              "--importance-steps", "32", "--checkpoint-every", "1", "--no-progress",
              "--threads", "1", "--device", DEVICE]


def results(path):
    return json.loads((path / "results.json").read_text())


@pytest.mark.parametrize("reg", ["finetune", "agscl", "ewc"])
def test_atari_two_game_stream(tmp_path, reg):
    out = tmp_path / reg
    assert train.main(TINY_ATARI + ["--regularizer", reg, "--out", str(out)]) == 0
    res = results(out)
    assert res["tasks"] == ["Boxing", "Gopher"] and res["status"] == "complete"
    R = res["reward_matrix"]
    assert [len(r) for r in R] == [1, 2]
    assert [len(r) for r in res["reward_matrix_sampled"]] == [1, 2]
    assert res["sps"] > 0 and res["regularizer_memory_bytes"] >= 0
    assert any(not c["task_end"] for c in res["eval_curve"])        # periodic evaluations
    if reg == "agscl":
        assert len(res["sparsity"]) == 2 and len(res["used_capacity"]) == 2
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["regularizer"] == reg and cfg["games"] == ["Boxing", "Gopher"]
    assert (out / "checkpoints" / "task1.pt").exists()
    assert list((out / "tb").glob("events.*"))
    assert (out / "plots" / "reward_matrix.png").exists()


def test_atari_resume_equals_uninterrupted_and_report(tmp_path, monkeypatch, capsys):
    args = TINY_ATARI + ["--regularizer", "agscl"]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0

    orig = PPOLearner.train_unit

    def crash(self, task, unit, reg=None):
        if (task, unit) == (1, 1):
            raise KeyboardInterrupt                       # killed mid-task
        return orig(self, task, unit, reg)

    monkeypatch.setattr(PPOLearner, "train_unit", crash)
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(PPOLearner, "train_unit", orig)
    assert train.main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
    full, cut = results(tmp_path / "full"), results(tmp_path / "cut")
    assert cut["reward_matrix"] == full["reward_matrix"]
    assert [c["score"] for c in cut["eval_curve"]] == [c["score"] for c in full["eval_curve"]]
    assert cut["sparsity"] == full["sparsity"]

    # a different config is refused, and nothing is lost
    before = (tmp_path / "cut" / "results.json").read_text()
    assert train.main(TINY_ATARI + ["--regularizer", "ewc", "--out", str(tmp_path / "cut"),
                                    "--resume"]) == 2
    assert "another config" in capsys.readouterr().err
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


def test_atari_ctrl_c_saves_after_the_current_unit_and_resume_is_exact(tmp_path, monkeypatch,
                                                                      capsys):
    # 4 units per game, periodic checkpoints every 3: Ctrl-C in unit 1 saves after it (unit 2),
    # with Boxing's games in progress (a resume replays their actions)
    args = TINY_ATARI + ["--regularizer", "agscl", "--steps-per-task", "128",
                         "--checkpoint-every", "3"]
    assert train.main(args + ["--out", str(tmp_path / "full")]) == 0
    orig = PPOLearner.train_unit

    def ctrl_c(self, task, unit, reg=None):
        if (task, unit) == (0, 1):
            import os
            import signal
            os.kill(os.getpid(), signal.SIGINT)
        return orig(self, task, unit, reg)

    monkeypatch.setattr(PPOLearner, "train_unit", ctrl_c)
    assert train.main(args + ["--out", str(tmp_path / "cut")]) == 0
    assert "finishing the current unit" in capsys.readouterr().out
    cut = results(tmp_path / "cut")
    assert cut["status"] == "interrupted" and cut["global_step"] == 2 * 32
    monkeypatch.setattr(PPOLearner, "train_unit", orig)
    assert train.main(args + ["--out", str(tmp_path / "cut"), "--resume"]) == 0
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
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--hp", "lam=3",
                                    "--out", str(tmp_path / "e")]) == 2
    assert "no hyperparameter" in capsys.readouterr().err
    assert train.main(TINY_ATARI + ["--device", "gpu0", "--out", str(tmp_path / "f")]) == 2
    assert "not a torch device" in capsys.readouterr().err
    import torch
    if not torch.cuda.is_available():
        assert train.main(TINY_ATARI + ["--device", "cuda", "--out", str(tmp_path / "g")]) == 2
        assert "--device cpu" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "abcdefg")    # nothing was created


def test_corrupt_checkpoint_named(tmp_path, capsys):
    out = tmp_path / "r"
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--steps-per-task", "32",
                                    "--out", str(out)]) == 0
    (out / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    assert train.main(TINY_ATARI + ["--regularizer", "finetune", "--steps-per-task", "32",
                                    "--out", str(out), "--resume"]) == 2
    assert "unreadable" in capsys.readouterr().err


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
    assert [len(r) for r in A] == [1, 2] and all(0 <= a <= 1 for r in A for a in r)
    assert res["average_accuracy"] == pytest.approx(sum(A[1]) / 2)


def test_vision_missing_data_is_named(tmp_path, capsys):
    assert train.main(["vision", "--benchmark", "split_cifar100", "--data-dir",
                       str(tmp_path / "nothing"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "cifar-100" in err.lower() and "--data-dir" in err


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


def test_grad_split_and_reinit_fork_diagnostics(tmp_path):
    """experiments/grad_split.py and reinit_fork.py (RESULTS §3b): the gradient's parts
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
