"""Metric arithmetic (eq. 15-16, BWT, Figure 7) on hand-made matrices and runs."""
import json
from pathlib import Path

import pytest

from continual import metrics
from continual.report import report
from continual.runfolder import RunError

A = [[0.9], [0.7, 0.8], [0.6, 0.75, 0.5]]
FT = [[1.0], [0.5, 0.9], [0.4, 0.3, 1.0]]


def test_average_plasticity_stability_bwt():
    assert metrics.average_accuracy(A) == pytest.approx((0.6 + 0.75 + 0.5) / 3)
    assert metrics.average_accuracy_curve(A) == pytest.approx([0.9, 0.75, 1.85 / 3])
    assert metrics.plasticity(A, FT) == pytest.approx((0.9 / 1.0 + 0.8 / 0.9 + 0.5 / 1.0) / 3)
    # S: A[T-1][j] / max_{j<=i} A[i][j]
    assert metrics.stability(A) == pytest.approx((0.6 / 0.9 + 0.75 / 0.8 + 0.5 / 0.5) / 3)
    assert metrics.backward_transfer(A) == pytest.approx(((0.6 - 0.9) + (0.75 - 0.8)) / 2)


def test_normalised_accumulated_reward():
    R = [[10.0], [5.0, 40.0]]
    assert metrics.normalised_accumulated_reward(R, [20.0, 80.0]) == pytest.approx(
        [0.5, 5 / 20 + 40 / 80])


def _write_run(folder, method, R, curve):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"regularizer": method}))
    (folder / "results.json").write_text(json.dumps({
        "tasks": ["Boxing", "Gopher"], "regularizer": method, "reward_matrix": R,
        "eval_curve": curve, "regularizer_memory_bytes": 8}))


def test_rl_report_on_hand_made_pair(tmp_path):
    # fine-tuning: best Boxing score 20 (periodic eval), best Gopher 100
    _write_run(tmp_path / "ft", "finetune", [[10.0], [2.0, 100.0]],
               [{"step": 1, "score": [20.0]}, {"step": 2, "score": [10.0]},
                {"step": 3, "score": [2.0, 100.0]}])
    _write_run(tmp_path / "ags", "agscl", [[16.0], [15.0, 50.0]],
               [{"step": 2, "score": [16.0]}, {"step": 3, "score": [15.0, 50.0]}])
    rep = report([tmp_path / "ft", tmp_path / "ags"], out=str(tmp_path / "rep"))
    assert rep["finetune_max_reward"] == [20.0, 100.0]
    ags = [r for r in rep["runs"] if r["method"] == "agscl"][0]
    assert ags["normalised_accumulated_reward"] == pytest.approx([0.8, 0.75 + 0.5])
    ft = [r for r in rep["runs"] if r["method"] == "finetune"][0]
    assert ft["normalised_accumulated_reward"] == pytest.approx([0.5, 0.1 + 1.0])
    assert (tmp_path / "rep" / "report.json").exists()
    assert (tmp_path / "rep" / "normalised_accumulated_reward.png").exists()
    assert "agscl" in rep["table"]
    # eq. 16 / eq. 15 on the reward matrices, by hand
    assert ags["stability"] == pytest.approx((15 / 16 + 50 / 50) / 2)
    assert ags["plasticity"] == pytest.approx((16 / 10 + 50 / 100) / 2)
    assert ft["stability"] == pytest.approx((2 / 10 + 1) / 2)
    assert ft["plasticity"] == pytest.approx(1.0)
    assert ags["stability_sampled"] is None          # these runs have no sampled evaluations
    assert "stability S and plasticity P" in rep["table"]


def test_rl_plasticity_stability_needs_positive_scores():
    from continual.report import rl_plasticity_stability
    # Boxing scores can be negative: a ratio to a non-positive best means nothing, so no S is
    # made up; P divides by fine-tuning's (positive) scores, a negative score counts as such
    R = [[-5.0], [-20.0, 60.0]]
    out = rl_plasticity_stability(R, [[[10.0], [3.0, 80.0]]])
    assert out["stability"] is None and out["plasticity"] == pytest.approx((-0.5 + 0.75) / 2)
    assert rl_plasticity_stability(R, [[[-10.0], [3.0, 80.0]]])["plasticity"] is None
    # fine-tuning has not finished the second game: S exists, P waits for the reference
    R = [[10.0], [5.0, 40.0]]
    out = rl_plasticity_stability(R, [[[20.0]]])
    assert out["stability"] == pytest.approx((5 / 10 + 1) / 2) and out["plasticity"] is None
    # two fine-tuning seeds: the reference is their mean task-end score
    out = rl_plasticity_stability(R, [[[20.0], [1.0, 40.0]], [[10.0], [1.0, 120.0]]])
    assert out["plasticity"] == pytest.approx((10 / 15 + 40 / 80) / 2)


def test_report_needs_finetune_and_one_stream(tmp_path):
    _write_run(tmp_path / "ags", "agscl", [[1.0]], [])
    with pytest.raises(RunError, match="fine-tuning run"):
        report([tmp_path / "ags"], out=str(tmp_path / "rep"))
    with pytest.raises(RunError, match="no results.json"):
        report([tmp_path / "nothing"])
    (tmp_path / "young").mkdir()                    # started, no checkpoint yet: left out
    (tmp_path / "young" / "config.json").write_text("{}")
    _write_run(tmp_path / "ft", "finetune", [[1.0]], [])
    rep = report([tmp_path / "ft", tmp_path / "ags", tmp_path / "young"], out=str(tmp_path / "r"))
    assert [r["label"] for r in rep["runs"]] == ["ft", "ags"]


def test_supervised_report(tmp_path):
    for name, method, M, mem in [("ft", "finetune", FT, 0), ("a", "agscl", A, 100),
                                 ("e", "ewc", A, 1000)]:
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "tasks": ["t0", "t1", "t2"], "regularizer": method, "accuracy_matrix": M,
            "regularizer_memory_bytes": mem, "model_bytes": 1000, "task_seconds": [1, 1, 1],
            "sparsity": [0.5, 0.4, 0.3] if method == "agscl" else None,
            "used_capacity": [0.1, 0.2, 0.3] if method == "agscl" else None}))
    rep = report([tmp_path / n for n in ("ft", "a", "e")], out=str(tmp_path / "rep"))
    s = rep["summary"]
    assert s["agscl"]["plasticity"] == pytest.approx(metrics.plasticity(A, FT))
    assert s["agscl"]["relative_memory"] == pytest.approx(1100 / 2000)
    for f in ("fig3_average_accuracy", "fig4_sparsity_capacity",
              "fig5_plasticity_stability", "fig6_memory"):
        assert (tmp_path / "rep" / f"{f}.png").exists()


def test_rl_report_on_runs_still_training(tmp_path):
    """A long run can be read before it ends: fine-tuning still on its first game (no reward
    matrix row yet), AGS-CL already on the second, for which there is no reference yet."""
    for name, method, step, curve in [
            ("ft", "finetune", 300, [{"step": 100, "score": [20.0], "score_sampled": [30.0]},
                                     {"step": 200, "score": [40.0], "score_sampled": [35.0]}]),
            ("ags", "agscl", 500, [{"step": 100, "score": [10.0], "score_sampled": [12.0]},
                                   {"step": 400, "score": [30.0], "task_end": True},
                                   {"step": 500, "score": [20.0, 7.0]}])]:
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"command": "atari", "regularizer": method}))
        (d / "results.json").write_text(json.dumps({     # written before an empty matrix was
            "tasks": ["Boxing", "Gopher"], "regularizer": method, "status": "running",
            "global_step": step, "tasks_completed": int(method == "agscl"),
            "eval_curve": curve, **({"reward_matrix": [[30.0]]} if method == "agscl" else {})}))
    from continual.runfolder import RunFolder
    holder = RunFolder(tmp_path / "ft")            # fine-tuning's process is still at work
    holder.open({"command": "atari", "regularizer": "finetune"}, resume=True)
    rep = report([tmp_path / "ft", tmp_path / "ags"], out=str(tmp_path / "rep"))
    holder.close()
    assert rep["finetune_max_reward"] == [40.0, None]
    ags = [r for r in rep["runs"] if r["method"] == "agscl"][0]
    assert ags["normalised_accumulated_reward"] == pytest.approx([0.75])
    values = [p["value"] for p in ags["normalised_accumulated_reward_curve"]]
    assert values[:2] == pytest.approx([0.25, 0.75]) and values[2] != values[2]   # NaN
    assert "running, task 1/2 (Boxing), step 300; at step 200: 40 / 35" in rep["table"]
    # AGS-CL's results say "running" but no process holds its folder: it was killed
    assert "stopped (no process holds it; --resume continues it), task 2/2 (Gopher), step 500" \
        in rep["table"]
    assert "(no task finished yet)" in rep["table"]
    assert "20 7 (normalised accumulated: n/a until fine-tuning" in rep["table"]
    for f in ("normalised_accumulated_reward.png", "scores_per_game.png", "report.json"):
        assert (tmp_path / "rep" / f).exists()
    # strict JSON: the NaN of the unreferenced task is written as null
    saved = json.loads((tmp_path / "rep" / "report.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    ags_saved = [r for r in saved["runs"] if r["method"] == "agscl"][0]
    assert ags_saved["normalised_accumulated_reward_curve"][2]["value"] is None


def test_rl_report_sampled_variant_uses_its_own_reference(tmp_path):
    for name, method, R, Rs, curve in [
            ("ft", "finetune", [[10.0], [2.0, 100.0]], [[30.0], [6.0, 50.0]],
             [{"step": 1, "score": [20.0], "score_sampled": [40.0]}]),
            ("ags", "agscl", [[16.0], [15.0, 50.0]], [[20.0], [20.0, 25.0]], [])]:
        _write_run(tmp_path / name, method, R, curve)
        res = json.loads((tmp_path / name / "results.json").read_text())
        res["reward_matrix_sampled"] = Rs
        (tmp_path / name / "results.json").write_text(json.dumps(res))
    rep = report([tmp_path / "ft", tmp_path / "ags"], out=str(tmp_path / "rep"))
    assert rep["finetune_max_reward"] == [20.0, 100.0]
    assert rep["finetune_max_reward_sampled"] == [40.0, 50.0]
    ags = [r for r in rep["runs"] if r["method"] == "agscl"][0]
    assert ags["normalised_accumulated_reward"] == pytest.approx([0.8, 0.75 + 0.5])
    assert ags["normalised_accumulated_reward_sampled"] == pytest.approx([0.5, 0.5 + 0.5])
    assert "sampled actions; reference: fine-tuning's best score per task = Boxing 40" \
        in rep["table"]


def test_rl_report_mean_and_std_over_seeds(tmp_path):
    _write_run(tmp_path / "ft", "finetune", [[10.0], [2.0, 100.0]], [])
    _write_run(tmp_path / "a0", "agscl", [[16.0], [15.0, 50.0]], [])
    _write_run(tmp_path / "a1", "agscl", [[8.0]], [])           # a seed still on task 2
    rep = report([tmp_path / n for n in ("ft", "a0", "a1")], out=str(tmp_path / "rep"))
    sm = rep["summary"]["agscl"]
    assert sm["n"] == [2, 1]
    assert sm["normalised_accumulated_reward"] == pytest.approx([(1.6 + 0.8) / 2, 1.5 + 0.5])
    assert sm["normalised_accumulated_reward_std"] == pytest.approx([0.4, 0.0])
    assert "1.20+-0.40" in rep["table"]
    assert rep["summary"]["finetune"]["n"] == [1, 1]


def _sup_run(folder, method, M, seed, sparsity=None):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "tasks": ["t0", "t1", "t2"], "regularizer": method, "accuracy_matrix": M,
        "regularizer_memory_bytes": 10, "model_bytes": 10, "task_seconds": [1] * len(M),
        "classifier_config": {"seed": seed}, "sparsity": sparsity,
        "used_capacity": sparsity}))


def test_supervised_report_pairs_seeds_and_reads_unfinished_runs(tmp_path):
    """P's reference A* is the fine-tuning run of the same seed (the seed fixes the class
    order); runs still training (here a fine-tuning seed and an AGS-CL seed) do not break it."""
    FT2 = [[0.5], [0.5, 0.6], [0.4, 0.3, 0.8]]
    _sup_run(tmp_path / "ft0", "finetune", FT, 0)
    _sup_run(tmp_path / "ft1", "finetune", FT2, 1)
    _sup_run(tmp_path / "ft2", "finetune", FT[:1], 2)                 # unfinished
    _sup_run(tmp_path / "a0", "agscl", A, 0, [0.5, 0.4, 0.3])
    _sup_run(tmp_path / "a1", "agscl", A, 1, [0.5, 0.4, 0.3])
    _sup_run(tmp_path / "a2", "agscl", A[:2], 2, [0.5, 0.4])          # unfinished
    rep = report([tmp_path / n for n in ("ft0", "ft1", "ft2", "a0", "a1", "a2")],
                 out=str(tmp_path / "rep"))
    by = {r["label"]: r for r in rep["runs"]}
    assert by["a0"]["plasticity"] == pytest.approx(metrics.plasticity(A, FT))
    assert by["a1"]["plasticity"] == pytest.approx(metrics.plasticity(A, FT2))
    assert by["a2"]["plasticity"] is None and by["a2"]["average_accuracy"] is None
    assert by["a1"]["plasticity_reference"] == "fine-tuning, seed 1"
    sm = rep["summary"]["agscl"]
    assert (sm["runs"], sm["complete"]) == (3, 2)
    assert "2/3" in rep["table"]
    assert (tmp_path / "rep" / "fig4_sparsity_capacity.png").exists()


def test_rl_report_reference_is_the_best_of_all_finetuning_runs(tmp_path):
    _write_run(tmp_path / "ft0", "finetune", [[10.0], [2.0, 100.0]], [])
    _write_run(tmp_path / "ft1", "finetune", [[30.0], [2.0, 50.0]], [])
    _write_run(tmp_path / "ags", "agscl", [[15.0]], [])
    for order in (("ft0", "ft1", "ags"), ("ags", "ft1", "ft0")):
        rep = report([tmp_path / n for n in order], out=str(tmp_path / "rep"))
        assert rep["finetune_max_reward"] == [30.0, 100.0]


def test_rl_report_training_scores_per_window_from_tensorboard(tmp_path):
    """The training games' score per window of each task, weighted by games, from the run's
    TensorBoard events; a unit's point at step s covers (s - unit, s]."""
    from torch.utils.tensorboard import SummaryWriter
    _write_run(tmp_path / "ft", "finetune", [[10.0]],
               [{"step": 40, "score": [10.0], "task_end": True}])
    res = json.loads((tmp_path / "ft" / "results.json").read_text())
    (tmp_path / "ft" / "results.json").write_text(json.dumps(dict(res, global_step=60)))
    w = SummaryWriter(str(tmp_path / "ft" / "tb"))
    for step, ret, games in ((10, 1.0, 1), (20, 3.0, 3), (40, 2.0, 2), (50, 7.0, 1)):
        w.add_scalar("train/episode_return", ret, step)
        w.add_scalar("train/episodes", games, step)
    w.close()
    rep = report([tmp_path / "ft"], out=str(tmp_path / "rep"), window=20)
    ws = rep["runs"][0]["training_windows"]
    assert [(x["game"], x["from_step"], x["to_step"], x["games"]) for x in ws] == [
        ("Boxing", 0, 20, 4), ("Boxing", 20, 40, 2), ("Gopher", 0, 20, 1)]
    assert [x["mean_return"] for x in ws] == pytest.approx([(1 * 1 + 3 * 3) / 4, 2.0, 7.0])
    assert "training games: mean raw score per 20 env steps" in rep["table"]
    assert (tmp_path / "rep" / "training_scores.png").exists()


def test_tb_means_script(tmp_path, capsys):
    """experiments/tb_means.py: per-window means of logged scalars, windows (lo, hi]."""
    import importlib.util
    from torch.utils.tensorboard import SummaryWriter
    spec = importlib.util.spec_from_file_location(
        "tb_means", Path(__file__).resolve().parents[1] / "experiments" / "tb_means.py")
    tb_means = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tb_means)
    w = SummaryWriter(str(tmp_path / "run" / "tb"))
    for step, g in ((10, 1.0), (20, 3.0), (30, 10.0)):
        w.add_scalar("train/grad_norm", g, step)
    w.close()
    assert tb_means.main([str(tmp_path / "run"), "--windows", "0:20,20:30,30:40",
                          "--tags", "train/grad_norm,train/absent"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "train/grad_norm" in x][0]
    assert line.split()[2:] == ["2", "10", "nan"]
    with pytest.raises(SystemExit, match="lo < hi"):
        tb_means.main([str(tmp_path / "run"), "--windows", "5:5"])
    with pytest.raises(SystemExit, match="no TensorBoard folder"):
        tb_means.main([str(tmp_path), "--windows", "0:5"])
