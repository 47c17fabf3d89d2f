"""Metric arithmetic (eq. 15-16, BWT, Figure 7) on hand-made matrices, the report's text
tables on hand-made report dicts, and the whole report on hand-made run folders."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import bootstrap, grouping, metrics
from analysis.report import ReportError
from analysis.rl import training_windows
from analysis.text import format_rl, format_supervised
from continual.runfolder import CHECKPOINT_FORMAT
from tests.tiny import load_script, report

A = [[0.9], [0.7, 0.8], [0.6, 0.75, 0.5]]
FT = [[1.0], [0.5, 0.9], [0.4, 0.3, 1.0]]


def test_average_plasticity_stability_bwt():
    assert metrics.average_accuracy(A) == pytest.approx((0.6 + 0.75 + 0.5) / 3)
    assert metrics.average_accuracy_curve(A) == pytest.approx([0.9, 0.75, 1.85 / 3])
    assert metrics.plasticity(A, FT) == pytest.approx((0.9 / 1.0 + 0.8 / 0.9 + 0.5 / 1.0) / 3)
    # S: A[T-1][j] / max_{j<=i} A[i][j]
    assert metrics.stability(A) == pytest.approx((0.6 / 0.9 + 0.75 / 0.8 + 0.5 / 0.5) / 3)
    assert metrics.backward_transfer(A) == pytest.approx(((0.6 - 0.9) + (0.75 - 0.8)) / 2)


def test_pad():
    M = metrics.pad([[1.0], [2.0, None]], 3)          # None (null in JSON) reads as NaN
    assert M.shape == (2, 3)
    np.testing.assert_array_equal(M, [[1.0, np.nan, np.nan], [2.0, np.nan, np.nan]])
    assert metrics.pad([[1.0], [2.0, 3.0, 4.0], []]).shape == (3, 3)   # default: longest row
    assert metrics.pad([]).shape == (0, 0)
    with pytest.raises(ValueError, match="more than the 2 tasks"):
        metrics.pad([[1.0, 2.0, 3.0]], 2)


def test_metrics_of_an_unfinished_matrix():
    # two of three tasks learned: the curve covers them; the matrix reads as T = 2
    assert metrics.average_accuracy_curve(A[:2]) == pytest.approx([0.9, 0.75])
    assert metrics.average_accuracy(A[:2]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="one stream"):
        metrics.plasticity(A, FT[:2])


def test_mean_diagonal():
    # entry i: the mean of A[i][i] over the runs that finished task i, NaN where none has
    ref = metrics.mean_diagonal([A, FT, FT[:1]], 4)
    assert [len(r) for r in ref] == [1, 2, 3, 4]
    assert sum(ref[:3], []) == pytest.approx([(0.9 + 1.0 + 1.0) / 3, 0.0, (0.8 + 0.9) / 2,
                                              0.0, 0.0, (0.5 + 1.0) / 2])
    assert ref[3][:3] == [0.0, 0.0, 0.0] and np.isnan(ref[3][3])
    assert metrics.plasticity(A, metrics.mean_diagonal([FT], 3)) == \
        pytest.approx(metrics.plasticity(A, FT))


def test_normalised_accumulated_reward():
    R = [[10.0], [5.0, 40.0]]
    assert metrics.normalised_accumulated_reward(R, [20.0, 80.0]) == pytest.approx(
        [0.5, 5 / 20 + 40 / 80])


def _write_run(folder, method, R, curve):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"command": "atari", "regularizer": method}))
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
    assert f"{'ags':<28}{'agscl':<12}{0.8:>12.3f}{1.25:>12.3f}" in rep["table"].splitlines()
    # eq. 16 / eq. 15 on the reward matrices, by hand
    assert ags["stability"] == pytest.approx((15 / 16 + 50 / 50) / 2)
    assert ags["plasticity"] == pytest.approx((16 / 10 + 50 / 100) / 2)
    assert ft["stability"] == pytest.approx((2 / 10 + 1) / 2)
    assert ft["plasticity"] == pytest.approx(1.0)
    assert ags["stability_sampled"] is None          # these runs have no sampled evaluations
    assert "stability S and plasticity P" in rep["table"]


def test_rl_plasticity_stability_of_reward_matrices():
    R = [[10.0], [5.0, 40.0]]
    out = metrics.rl_plasticity_stability(R, [[[20.0], [1.0, 80.0]]])
    assert out["stability"] == pytest.approx((5 / 10 + 40 / 40) / 2)          # eq. 16
    assert out["plasticity"] == pytest.approx((10 / 20 + 40 / 80) / 2)        # eq. 15
    # the best score of a task may come after it: S divides by max_{i>=j} R[i][j]
    out = metrics.rl_plasticity_stability([[10.0], [20.0, 40.0]], [[[20.0], [1.0, 80.0]]])
    assert out["stability"] == pytest.approx((20 / 20 + 1) / 2)


def test_rl_plasticity_stability_needs_positive_scores():
    rl_plasticity_stability = metrics.rl_plasticity_stability
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
    with pytest.raises(ReportError, match="fine-tuning run"):
        report([tmp_path / "ags"], out=str(tmp_path / "rep"), plots=False)
    with pytest.raises(ReportError, match="no results.json"):
        report([tmp_path / "nothing"])
    (tmp_path / "young").mkdir()                    # started, no checkpoint yet: left out
    (tmp_path / "young" / "config.json").write_text("{}")
    _write_run(tmp_path / "ft", "finetune", [[1.0]], [])
    rep = report([tmp_path / "ft", tmp_path / "ags", tmp_path / "young"],
                 out=str(tmp_path / "r"), plots=False)
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
        (d / "config.json").write_text(json.dumps({"command": "atari", "regularizer": method,
                                                   "format_version": CHECKPOINT_FORMAT}))
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
    rep = report([tmp_path / "ft", tmp_path / "ags"], out=str(tmp_path / "rep"), plots=False)
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
    rep = report([tmp_path / n for n in ("ft", "a0", "a1")], out=str(tmp_path / "rep"), plots=False)
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
        rep = report([tmp_path / n for n in order], out=str(tmp_path / "rep"), plots=False)
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
    from torch.utils.tensorboard import SummaryWriter
    tb_means = load_script("experiments", "tb_means")
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


def test_training_windows():
    # two tasks: steps (0, 40] and (40, 60]; a point at step s is the unit ending at s
    points = [(10, 1.0, 1), (20, 3.0, 3), (30, 5.0, 0), (40, 2.0, 2), (50, 7.0, 1)]
    ws = training_windows(points, [(0, 40), (40, 60)], ["Boxing", "Gopher"], window=30)
    assert [(w["task"], w["from_step"], w["to_step"], w["games"]) for w in ws] == [
        (0, 0, 30, 4), (0, 30, 40, 2), (1, 0, 20, 1)]
    assert [w["mean_return"] for w in ws] == pytest.approx([10 / 4, 2.0, 7.0])
    assert training_windows([(10, 1.0, 0)], [(0, 20)], ["Boxing"], 20)[0]["mean_return"] is None


def _rl_rep():
    """A report dict as ``rl.rl_report`` makes it, by hand."""
    run = lambda label, method, nar, curve_value, S, P, R: {
        "label": label, "method": method, "progress": "complete, 2/2 tasks, step 300",
        "normalised_accumulated_reward": nar, "normalised_accumulated_reward_sampled": [],
        "normalised_accumulated_reward_curve": [{"step": 300, "value": curve_value}],
        "stability": S, "plasticity": P, "stability_sampled": None, "plasticity_sampled": None,
        "reward_matrix": R, "reward_matrix_sampled": [],
        "eval_curve": [{"step": 300, "score": R[-1]}] if R else [],
        "training_windows": [{"task": 0, "mean_return": 4.4}, {"task": 0, "mean_return": None}]}
    return {"tasks": ["Boxing", "Gopher"], "finetune_max_reward": [20.0, None],
            "finetune_max_reward_sampled": [None, None], "training_window": 1000,
            "runs": [run("ft", "finetune", [0.5], 0.5, 0.6, 1.0, [[10.0], [12.0, 3.0]]),
                     run("ags", "agscl", [0.75], float("nan"), None, None, [])],
            "summary": {"finetune": {"n": [1]}, "agscl": {"n": [2],
                        "normalised_accumulated_reward": [0.7],
                        "normalised_accumulated_reward_std": [0.05]}}}


def test_format_rl_on_a_hand_made_report():
    lines = format_rl(_rl_rep()).splitlines()
    row = lambda *cells: "".join(cells)
    assert lines[:6] == [
        "normalised accumulated reward after each task (Figure 7, greedy actions: the paper's "
        "protocol; reference: fine-tuning's best score per task = Boxing 20)",
        row(f"{'run':<28}{'method':<12}", f"{'Boxing':>12}", f"{'Gopher':>12}"),
        "-" * 64,
        row(f"{'ft':<28}{'finetune':<12}", f"{0.5:>12.3f}"),
        row(f"{'ags':<28}{'agscl':<12}", f"{0.75:>12.3f}"),
        row(f"{'mean +- std (seeds)':<28}{'agscl':<12}", f"{'0.70+-0.05':>12}")]
    assert "sampled actions" not in "\n".join(lines)          # no run has sampled matrices
    i = lines.index("stability S and plasticity P of the finished runs (eq. 16 and 15 on the "
                    "raw-score reward matrices; P's reference: fine-tuning's task-end scores):")
    assert lines[i + 2] == row(f"{'ft':<28}{'finetune':<12}", f"{0.6:>10.3f}{1.0:>10.3f}",
                               f"{'-':>10}" * 2)
    assert lines[i + 3] == row(f"{'ags':<28}{'agscl':<12}", f"{'-':>10}" * 4)
    assert f"  {'ft':<28}complete, 2/2 tasks, step 300; at step 300: 12 3 " \
           f"(normalised accumulated 0.500)" in lines
    assert f"  {'ags':<28}complete, 2/2 tasks, step 300" in lines     # no evaluation yet
    assert "training games: mean raw score per 1,000 env steps of each task (games that ended " \
           "in the window; the last window may be partial):" in lines
    assert f"  {'ft':<28}{'Boxing':<14}4, -" in lines


def test_format_rl_reward_matrices_and_unreached_reference():
    lines = format_rl(_rl_rep()).splitlines()
    assert lines[-7:] == ["", "ft (finetune) reward matrix (greedy, raw score):",
                          f"  after {'Boxing':<14}{10.0:>10.1f}",
                          f"  after {'Gopher':<14}{12.0:>10.1f}{3.0:>10.1f}",
                          "", "ags (agscl) reward matrix (greedy, raw score):",
                          "  (no task finished yet)"]
    rep = _rl_rep()
    rep["runs"][1]["eval_curve"] = [{"step": 100, "score": [7.0], "score_sampled": [9.0]}]
    rep["finetune_max_reward"] = [None, None]
    lines = format_rl(rep).splitlines()
    assert lines[0].endswith("best score per task = none yet)")
    assert f"  {'ags':<28}complete, 2/2 tasks, step 300; at step 100: 7 / 9 (normalised " \
           f"accumulated: n/a until fine-tuning has a positive score on every game seen)" in lines


def test_format_supervised_on_a_hand_made_report():
    sm = lambda runs, complete, **v: dict({"runs": runs, "complete": complete},
                                          **{k: x for k, x in v.items()})
    rep = {"summary": {
        "finetune": sm(1, 1, average_accuracy=0.9, average_accuracy_std=0.0, plasticity=1.0,
                       plasticity_std=0.0, relative_memory=None, relative_memory_std=None,
                       time_relative_to_finetune=1.0),
        "agscl": sm(3, 2, average_accuracy=0.8, average_accuracy_std=0.05, plasticity=0.95,
                    plasticity_std=0.01, relative_memory=0.5, relative_memory_std=0.0)}}
    lines = format_supervised(rep).splitlines()
    cols = ["avg acc", "P", "S", "BWT", "mem/EWC", "time/FT"]
    assert lines[0] == f"{'group':<20}{'runs':>5}" + "".join(f"{c:>16}" for c in cols)
    assert lines[1] == "-" * 121
    dash = f"{'-':>16}"
    assert lines[2] == f"{'finetune':<20}{1:>5}{0.9:>16.3f}{1.0:>16.3f}" + dash * 3 + \
        f"{1.0:>16.3f}"
    assert lines[3] == f"{'agscl':<20}{'2/3':>5}{0.8:>9.3f} ± 0.050{0.95:>9.3f} ± 0.010" + \
        dash * 2 + f"{0.5:>9.3f} ± 0.000" + dash
    assert lines[4].startswith("(k/n: only k of the group's n runs")
    rep["summary"]["agscl"]["complete"] = 3
    assert len(format_supervised(rep).splitlines()) == 4        # no k/n note when all finished


# --- groups (method and hyperparameters, seeds pooled) and their confidence intervals ---------
def _config(command, method, seed, machine=None, **hparams):
    """A run's config.json as train.py writes it (every value resolved, format_version 2)."""
    from continual import flags, runconfig
    given = {"regularizer": method, "seed": str(seed), **{k: str(v) for k, v in hparams.items()}}
    if command == "atari":
        given["games"] = "Boxing,Gopher,StarGunner"
    cfg = runconfig.to_dict(flags.resolve(command, given))
    assert cfg["format_version"] == CHECKPOINT_FORMAT == 2
    cfg["machine"].update(machine or {})
    return cfg


def test_group_runs_by_method_and_hyperparameters():
    runs = [("finetune", _config("atari", "finetune", 1)),
            ("agscl", _config("atari", "agscl", 1, lam=10)),
            ("agscl", _config("atari", "agscl", 2, lam=10, machine={"device": "cuda",
                                                                       "threads": 7})),
            ("agscl", _config("atari", "agscl", 3, lam=100)),
            ("finetune", _config("atari", "finetune", 2, machine={"env_threads": 3}))]
    gs = grouping.group_runs(runs)
    assert [(g["label"], g["members"]) for g in gs] == [
        ("finetune", [0, 4]), ("agscl lam=10", [1, 2]), ("agscl lam=100", [3])]
    assert gs[1]["varied"] == {"regularizer_hparams.lam": 10.0}
    assert gs[1]["hyperparameters"]["regularizer_hparams"]["lam"] == 10.0
    assert "seed" not in gs[1]["hyperparameters"]["ppo"]
    assert not {"machine", "format_version", "command", "regularizer"} & \
        set(gs[1]["hyperparameters"])
    # the seed and the machine part never split; anything else does, named in the label
    assert grouping.group_key("agscl", runs[1][1]) == grouping.group_key("agscl", runs[2][1])
    assert grouping.group_key("agscl", runs[1][1]) != grouping.group_key("agscl", runs[3][1])
    assert grouping.group_key("agscl", runs[1][1]) != grouping.group_key("ewc", runs[1][1])
    lr = _config("atari", "agscl", 1, lam=10, lr=0.001)
    two = grouping.group_runs([("agscl", runs[1][1]), ("agscl", lr)])
    assert [g["label"] for g in two] == ["agscl lr=0.00025", "agscl lr=0.001"]
    # a lam written as an integer (a TOML spec) is the same setting as the resolved 10.0
    as_int = json.loads(json.dumps(runs[1][1]).replace('"lam": 10.0', '"lam": 10'))
    assert as_int["regularizer_hparams"]["lam"] == 10
    assert grouping.group_key("agscl", as_int) == grouping.group_key("agscl", runs[1][1])
    # a vision run's seed is the classifier's
    v = [("ewc", _config("vision", "ewc", s, benchmark="split_digits", lam=lam))
         for s, lam in ((0, 1), (1, 1), (0, 5))]
    assert [(g["label"], g["members"]) for g in grouping.group_runs(v)] == [
        ("ewc lam=1", [0, 1]), ("ewc lam=5", [2])]


def test_iqm_by_hand():
    assert bootstrap.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx((3 + 4 + 5 + 6) / 4)
    assert bootstrap.iqm([40, 0, 20, 1, 3, 0, 10, 2]) == pytest.approx((1 + 2 + 3 + 10) / 4)
    # 10 values: int(2.5) = 2 cut from each end, whatever their size
    assert bootstrap.iqm([-1000, 0, 1, 2, 3, 4, 5, 6, 7, 1000]) == pytest.approx(
        (1 + 2 + 3 + 4 + 5 + 6) / 6)
    # runs x games pooled, not per game
    assert bootstrap.iqm([[8, 1], [2, 7], [3, 6], [4, 5]]) == pytest.approx(4.5)
    assert bootstrap.iqm([[0, 9], [0, 9], [1, 9], [2, 9]]) == pytest.approx((1 + 2 + 9 + 9) / 4)


def test_bootstrap_ci_known_answers():
    # all runs equal: the interval collapses
    assert bootstrap.bootstrap_ci([[0.7, 0.7, 0.7]], np.mean) == pytest.approx([0.7, 0.7])
    # stratified: every resample keeps 4 runs of each game, so with games at 0 and 1 both the
    # mean and the IQM are 0.5 in every resample; resampling the pooled values would not be
    agg = bootstrap.aggregate_scores([[0.0, 1.0]] * 4)
    assert agg["iqm"] == {"iqm": 0.5, "ci95": [0.5, 0.5], "n": 4, "games": 2}
    assert agg["mean"] == {"mean": 0.5, "ci95": [0.5, 0.5], "n": 4, "games": 2}
    # one run: no interval
    assert bootstrap.mean_ci([0.3]) == {"mean": 0.3, "ci95": None, "n": 1}
    assert bootstrap.aggregate_scores([[0.2, 0.4, 0.6, 0.8]])["iqm"] == {
        "iqm": pytest.approx(0.5), "ci95": None, "n": 1, "games": 4}
    assert bootstrap.mean_ci([None, float("nan")]) == {"mean": None, "ci95": None, "n": 0}
    assert bootstrap.mean_ci([1.0, None, 3.0])["n"] == 2
    # reproducible: a fixed generator per call
    x = [0.1, 0.5, 0.2, 0.9, 0.4]
    assert bootstrap.mean_ci(x) == bootstrap.mean_ci(x)
    lo, hi = bootstrap.mean_ci(x)["ci95"]
    assert min(x) <= lo < np.mean(x) < hi <= max(x)


def test_difference_ci_against_numpy():
    """difference_ci: mean(b) - mean(a), each group's seeds resampled on their own, against the
    percentile bootstrap written out in numpy (another generator: equal to the Monte Carlo
    error)."""
    a, b = [0.1, 0.5, 0.2, 0.9, 0.4], [1.2, 0.8, 1.5, 1.1, 0.9]
    d = bootstrap.difference_ci(a, b, n_resamples=20000)
    assert d["mean"] == pytest.approx(np.mean(b) - np.mean(a)) and d["n"] == [5, 5]
    rng = np.random.default_rng(1)
    A, B = np.asarray(a), np.asarray(b)
    draws = B[rng.integers(0, 5, (20000, 5))].mean(1) - A[rng.integers(0, 5, (20000, 5))].mean(1)
    assert d["ci95"] == pytest.approx(np.percentile(draws, [2.5, 97.5]), abs=0.02)
    assert d["ci95"][0] > 0                          # these two groups are apart
    # Welch's t interval, by hand: the mean difference -+ t(0.975, Welch df) x its SE
    from scipy.stats import t
    va, vb = np.var(A, ddof=1) / 5, np.var(B, ddof=1) / 5
    df = (va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 4)
    half = t.ppf(0.975, df) * np.sqrt(va + vb)
    assert d["welch_ci95"] == pytest.approx([d["mean"] - half, d["mean"] + half])
    # Welch's two-sided p, by hand: the t statistic on the same df
    assert d["welch_p"] == pytest.approx(2 * t.sf(abs(d["mean"]) / np.sqrt(va + vb), df))
    assert bootstrap.difference_ci([1.0, 1.0], [2.0, 2.0])["welch_ci95"] == [1.0, 1.0]
    # no spread in either group: the difference is exact, and Welch's t (0/0) gives no p
    assert bootstrap.difference_ci([1.0, 1.0], [2.0, 2.0])["welch_p"] is None
    same = bootstrap.difference_ci([0.1] * 3, [0.1] * 2)         # means an ulp apart
    assert (same["mean"], same["ci95"], same["welch_ci95"], same["welch_p"]) == \
        (0.0, [0.0, 0.0], [0.0, 0.0], None)
    flip = bootstrap.difference_ci(b, a, n_resamples=20000)
    assert flip["mean"] == pytest.approx(-d["mean"])
    # unequal sizes, None and NaN left out, one value: no interval
    assert bootstrap.difference_ci([1.0, None, 3.0, float("nan")], [2.0, 2.0, 2.0])["n"] == [2, 3]
    assert bootstrap.difference_ci([1.0], [2.0, 3.0]) == {"mean": 1.5, "ci95": None,
                                                          "welch_ci95": None, "welch_p": None,
                                                          "n": [1, 2]}
    assert bootstrap.difference_ci([], [2.0])["mean"] is None


def test_holm_by_hand():
    """Holm's step-down adjustment worked out by hand: the i-th smallest of m times (m - i),
    non-decreasing along the order, capped at 1; None left out of m."""
    assert bootstrap.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert bootstrap.holm([None, 0.01, 0.04]) == [None, pytest.approx(0.02), pytest.approx(0.04)]
    assert bootstrap.holm([0.6, 0.7]) == [1.0, 1.0]              # 1.2 and 0.7 uncapped
    assert bootstrap.holm([0.02]) == [0.02] and bootstrap.holm([]) == []
    # at family-wise 5% the step-down stops at the first sorted p above 0.05 / (m - i)
    p = [0.001, 0.0125, 0.03, 0.3]     # 0.001 <= 0.05/4, 0.0125 <= 0.05/3, 0.03 > 0.05/2: stop
    assert [q <= 0.05 for q in bootstrap.holm(p)] == [True, True, False, False]


def _numpy_stratified_bootstrap(S, statistic, resamples, seed):
    """Percentile bootstrap written out in numpy: each game's runs resampled with replacement,
    independently per game; ``statistic`` of each resample's pooled runs x games."""
    rng = np.random.default_rng(seed)
    n, g = S.shape
    X = np.empty((resamples, n, g))
    for j in range(g):
        X[:, :, j] = S[rng.integers(0, n, (resamples, n)), j]
    return np.percentile(statistic(X.reshape(resamples, n * g)), [2.5, 97.5])


def _iqm_rows(X):
    """IQM by hand: sort, drop a quarter (rounded down) from each end, average."""
    k = int(0.25 * X.shape[1])
    return np.sort(X, 1)[:, k:X.shape[1] - k].mean(1)


def test_stratified_bootstrap_matches_a_numpy_loop():
    # games on different scales: a bootstrap that pooled the games would be about 0.3 wider
    # on each side than the stratified one, far outside the Monte-Carlo tolerance
    S = np.array([[0.1, 1.0, 2.3], [0.4, 1.4, 2.0], [0.0, 0.8, 2.9], [0.3, 1.1, 2.2],
                  [0.2, 1.9, 2.6]])
    mean_rows = lambda X: X.mean(1)
    per_game = [S[:, j] for j in range(S.shape[1])]
    for ours, stat in ((bootstrap.bootstrap_ci(per_game, bootstrap._iqm_along, 20000), _iqm_rows),
                       (bootstrap.bootstrap_ci(per_game, np.mean, 20000), mean_rows)):
        np.testing.assert_allclose(ours, _numpy_stratified_bootstrap(S, stat, 20000, seed=1),
                                   atol=0.02)
    agg = bootstrap.aggregate_scores(S)                  # the report's default: 2000 resamples
    assert agg["iqm"]["iqm"] == pytest.approx(_iqm_rows(S.reshape(1, -1))[0])
    assert agg["mean"]["mean"] == pytest.approx(S.mean())
    np.testing.assert_allclose(agg["iqm"]["ci95"],
                               _numpy_stratified_bootstrap(S, _iqm_rows, 20000, seed=2),
                               atol=0.04)
    # the mean over seeds against the same resampling of one "game"
    x = np.array([[0.61], [0.72], [0.55], [0.80], [0.67], [0.70]])
    np.testing.assert_allclose(bootstrap.bootstrap_ci([x[:, 0]], np.mean, 20000),
                               _numpy_stratified_bootstrap(x, mean_rows, 20000, seed=3),
                               atol=0.01)


def _atari_run(folder, method, seed, R, machine=None, **hparams):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(_config("atari", method, seed, machine,
                                                           **hparams)))
    (folder / "results.json").write_text(json.dumps({
        "tasks": ["Boxing", "Gopher", "StarGunner"], "regularizer": method, "reward_matrix": R,
        "eval_curve": [], "regularizer_memory_bytes": 8, "status": "complete"}))


def test_rl_report_groups_by_hyperparameters_with_rliable_aggregate(tmp_path, capsys):
    """Two lam values of AGS-CL are two groups, two seeds of one lam one group (their machine
    parts differ); the IQM and mean of normalised scores pool complete runs x games, with
    Boxing (fine-tuning's best score is negative) left out."""
    ft = {"ft1": [[-2.0], [-5.0, 800.0], [-8.0, 300.0, 1000.0]],
          "ft2": [[-3.0], [-4.0, 900.0], [-6.0, 200.0, 1200.0]]}
    ags10 = {"a10s1": [[1.0], [0.0, 700.0], [-1.0, 600.0, 900.0]],
             "a10s2": [[2.0], [1.0, 650.0], [0.0, 500.0, 950.0]],
             "a10s3": [[2.0], [1.0, 750.0], [0.0, 640.0, 1010.0]]}
    for s, (name, R) in enumerate(ft.items(), 1):
        _atari_run(tmp_path / name, "finetune", s, R)
    for s, (name, R) in enumerate(ags10.items(), 1):
        _atari_run(tmp_path / name, "agscl", s, R, {"device": "cuda"} if s == 2 else None, lam=10)
    _atari_run(tmp_path / "a100s1", "agscl", 1, [[1.0], [0.0, 500.0], [-1.0, 450.0, 700.0]],
               lam=100)
    _atari_run(tmp_path / "a100s2", "agscl", 2, [[1.0], [0.0, 500.0]], lam=100)   # unfinished
    names = ["ft1", "a10s1", "a100s1", "ft2", "a10s2", "a10s3", "a100s2"]
    rep = report([tmp_path / n for n in names], out=str(tmp_path / "rep"))
    assert "left out of the groups' IQM and mean" in capsys.readouterr().out
    g = {x["label"]: x for x in rep["groups"]}
    assert list(g) == ["finetune", "agscl lam=10", "agscl lam=100"]
    assert g["agscl lam=10"]["runs"] == [str(tmp_path / n) for n in ("a10s1", "a10s2", "a10s3")]
    assert g["agscl lam=100"]["complete_runs"] == [str(tmp_path / "a100s1")]
    assert g["agscl lam=100"]["hyperparameters"]["regularizer_hparams"]["lam"] == 100.0
    assert g["agscl lam=10"]["method"] == "agscl"
    assert rep["aggregate_games"] == ["Gopher", "StarGunner"]
    assert list(rep["aggregate_left_out"]) == ["Boxing"]
    # normalised score = final row / fine-tuning's best (Gopher 900, StarGunner 1200)
    scores = np.array([[R[-1][1] / 900, R[-1][2] / 1200] for R in ags10.values()])
    np.testing.assert_allclose(g["agscl lam=10"]["normalised_scores"], scores)
    from scipy.stats import trim_mean
    iqm = g["agscl lam=10"]["iqm"]
    assert iqm["iqm"] == pytest.approx(trim_mean(scores.ravel(), 0.25))
    assert (iqm["n"], iqm["games"]) == (3, 2)
    assert iqm["ci95"] == pytest.approx(bootstrap.aggregate_scores(scores)["iqm"]["ci95"])
    assert scores.min() <= iqm["ci95"][0] <= iqm["iqm"] <= iqm["ci95"][1] <= scores.max()
    mean = g["agscl lam=10"]["mean_normalised_score"]
    assert mean["mean"] == pytest.approx(scores.mean()) and mean["ci95"][0] < mean["ci95"][1]
    assert g["agscl lam=100"]["iqm"]["ci95"] is None                  # one complete run
    # Figure 7, S and P over seeds: lam 10's three seeds, never lam 100's
    nar = [rr["normalised_accumulated_reward"][-1] for rr in rep["runs"]
           if rr["group"] == "agscl lam=10"]
    assert len(nar) == 3
    assert g["agscl lam=10"]["normalised_accumulated_reward"][-1] == bootstrap.mean_ci(nar)
    assert g["agscl lam=10"]["stability"]["n"] == 3
    assert rep["summary"]["agscl lam=100"]["n"] == [2, 2, 1]
    # the table: one row per group, "estimate [lo, hi]", "[-]" without an interval
    lines = rep["table"].splitlines()
    row = [x for x in lines if x.startswith("agscl lam=10 ")][0]
    assert row.split()[2] == "3"
    assert bootstrap.interval_text(iqm["iqm"], iqm["ci95"]) in row
    row100 = [x for x in lines if x.startswith("agscl lam=100 ")][0]
    assert row100.split()[2] == "1/2" and f"{g['agscl lam=100']['iqm']['iqm']:.3f} [-]" in row100
    assert any(x.startswith("left out of IQM and mean: Boxing (fine-tuning's best score -2 is "
                            "not positive)") for x in lines)
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [x["label"] for x in saved["groups"]] == list(g)
    assert saved["groups"][1]["iqm"]["ci95"] == pytest.approx(iqm["ci95"])
    for f in ("aggregate_normalised_scores.png", "normalised_accumulated_reward_groups.png",
              "normalised_accumulated_reward.png"):
        assert (tmp_path / "rep" / f).exists()
    assert rep["lam_sweeps"] == {}        # no P here (Boxing's fine-tuning scores are < 0)


def test_rl_report_lam_sweep_is_figure_5_of_the_groups_p_and_s(tmp_path):
    """Figure 5 over lam from the RL groups' P (eq. 15) and S (eq. 16): one point per lam,
    sorted, the best by P + S."""
    runs = {"ft": ("finetune", 1, None, [[2.0], [1.0, 800.0], [1.0, 300.0, 1000.0]]),
            "a10": ("agscl", 1, 10, [[1.0], [1.0, 700.0], [1.0, 600.0, 900.0]]),
            "a100": ("agscl", 1, 100, [[1.5], [1.5, 400.0], [1.5, 400.0, 500.0]])}
    for name, (method, seed, lam, R) in runs.items():
        _atari_run(tmp_path / name, method, seed, R, **({"lam": lam} if lam else {}))
    rep = report([tmp_path / n for n in runs], out=str(tmp_path / "rep"))
    g = {x["label"]: x for x in rep["groups"]}
    sw = rep["lam_sweeps"]["agscl"]
    assert [p["lam"] for p in sw["points"]] == [10.0, 100.0]
    assert sw["points"][1]["plasticity"] == g["agscl lam=100"]["plasticity"]
    P = {k: g[k]["plasticity"]["mean"] for k in ("agscl lam=10", "agscl lam=100")}
    S = {k: g[k]["stability"]["mean"] for k in P}
    assert sw["best"]["label"] == max(P, key=lambda k: P[k] + S[k])
    assert (tmp_path / "rep" / "fig5_lam_sweep.png").exists()


def _vision_run(folder, method, seed, A, **hparams):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(_config("vision", method, seed,
                                                           benchmark="split_digits", **hparams)))
    (folder / "results.json").write_text(json.dumps({
        "tasks": ["t0", "t1", "t2"], "regularizer": method, "accuracy_matrix": A,
        "regularizer_memory_bytes": 10, "model_bytes": 10, "task_seconds": [1] * len(A),
        "sparsity": [0.5, 0.4, 0.3] if method == "agscl" else None,
        "used_capacity": [0.1, 0.2, 0.3] if method == "agscl" else None}))


def test_supervised_report_groups_and_lam_sweep(tmp_path):
    """Groups per lam with bootstrap CIs over seeds; Figure 5 over the lam sweep marks the
    lam with the highest P + S; a method with a single lam is no sweep."""
    A2 = [[0.8], [0.75, 0.9], [0.7, 0.8, 0.6]]
    A3 = [[0.95], [0.5, 0.95], [0.3, 0.4, 0.95]]             # plastic, forgetting
    for s in (0, 1):
        _vision_run(tmp_path / f"ft{s}", "finetune", s, FT)
        _vision_run(tmp_path / f"a1-{s}", "agscl", s, A3 if s else A, lam=1)
        _vision_run(tmp_path / f"a9-{s}", "agscl", s, A2 if s else A, lam=9)
        _vision_run(tmp_path / f"e-{s}", "ewc", s, A2, lam=3)
    rep = report(sorted(tmp_path.iterdir()), out=str(tmp_path / "rep"))
    g = {x["label"]: x for x in rep["groups"]}
    assert set(g) == {"finetune", "agscl lam=1", "agscl lam=9", "ewc"}
    a9 = g["agscl lam=9"]
    assert a9["runs"] == [str(tmp_path / "a9-0"), str(tmp_path / "a9-1")]
    for k, f in (("average_accuracy", metrics.average_accuracy),
                 ("stability", metrics.stability), ("bwt", metrics.backward_transfer)):
        vals = [f(A), f(A2)]
        assert a9[k] == bootstrap.mean_ci(vals)
        assert a9[k]["ci95"] == pytest.approx([min(vals), max(vals)])   # 2 seeds: their span
    assert a9["plasticity"]["mean"] == pytest.approx(
        (metrics.plasticity(A, FT) + metrics.plasticity(A2, FT)) / 2)
    assert rep["summary"]["agscl lam=9"]["average_accuracy_ci95"] == a9["average_accuracy"]["ci95"]
    sw = rep["lam_sweeps"]
    assert list(sw) == ["agscl"]                                 # ewc has one lam
    assert [p["lam"] for p in sw["agscl"]["points"]] == [1.0, 9.0]
    best = max(sw["agscl"]["points"],
               key=lambda p: p["plasticity"]["mean"] + p["stability"]["mean"])
    assert sw["agscl"]["best"] == {"label": best["label"], "lam": best["lam"]}
    assert best["label"] == "agscl lam=9"
    lines = rep["table"].splitlines()
    assert lines[0].split()[:5] == ["group", "runs", "avg", "acc", "[95%"]
    row = [x for x in lines if x.startswith("agscl lam=9 ")][0]
    assert bootstrap.interval_text(a9["average_accuracy"]["mean"],
                                 a9["average_accuracy"]["ci95"]) in row
    for f in ("fig3_average_accuracy", "fig4_sparsity_capacity", "fig5_plasticity_stability",
              "fig5_lam_sweep", "fig6_memory"):
        assert (tmp_path / "rep" / f"{f}.png").exists()


def test_no_lam_sweep_without_two_lams(tmp_path):
    _vision_run(tmp_path / "ft0", "finetune", 0, FT)
    _vision_run(tmp_path / "a0", "agscl", 0, A, lam=1)
    _vision_run(tmp_path / "a1", "agscl", 1, A, lam=1)
    rep = report(sorted(tmp_path.iterdir()), out=str(tmp_path / "rep"))
    assert rep["lam_sweeps"] == {}
    assert [x["label"] for x in rep["groups"]] == ["agscl", "finetune"]
    assert not (tmp_path / "rep" / "fig5_lam_sweep.png").exists()
    row = [x for x in rep["table"].splitlines() if x.startswith("agscl ")][0]
    assert row.split()[:2] == ["agscl", "2"]


def test_analysis_reads_run_folders_without_the_run_package():
    """analysis/ lies below the run package: all of it imports nothing of continual/, agents/,
    regularizers/ (nor torch); the report gets what only the run knows as callables."""
    code = ("import sys, analysis.report, analysis.plots, analysis.tensorboard_events; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'continual', 'agents', "
            "'regularizers', 'torch', 'train', 'study'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_last_game_script(tmp_path, capsys):
    """experiments/last_game.py: the last game's score per group over its complete runs, every
    task-end score, and a layer's plasticity measures at each task's end."""
    last_game = load_script("experiments", "last_game")
    layer = lambda a: {"fc": {"active": a, "stable_rank": 10 * a, "effective_rank": 2 * a,
                              "weight_norm": 3 * a, "init_distance": a / 2, "grad_norm": a}}
    run = lambda path, rm, rn, m: {
        "run": path, "reward_matrix": rm, "reward_matrix_sampled": rm,
        "random_normalised_matrix": rn, "random_normalised_matrix_sampled": rn,
        "plasticity_measures": [{"task_end": False, "layers": layer(9.0)}] +
                               [{"task_end": True, "layers": layer(v)} for v in m]}
    rep = {"tasks": ["A", "B"], "groups": [{"label": "ewc", "runs": ["r1", "r2", "r3"]}],
           "runs": [run("r1", [[1.0, 0.0], [2.0, 4.0]], [[0.1, 0.0], [0.2, 0.4]], [0.5, 0.7]),
                    run("r2", [[3.0, 0.0], [2.0, 8.0]], [[0.3, 0.0], [0.2, 0.8]], [0.3, 0.1]),
                    # an unfinished run: one row of the matrix; left out of the scores
                    run("r3", [[5.0, 0.0]], [[0.5, 0.0]], [0.9])]}
    (row,) = last_game.last_game(rep)
    g = row["greedy"]
    assert g["raw_per_seed"] == [4.0, 8.0] and g["raw"]["mean"] == pytest.approx(6.0)
    assert g["random_normalised"]["mean"] == pytest.approx(0.6)
    assert [e["mean"] for e in g["task_end"]] == pytest.approx([2.0, 6.0])  # the diagonal
    # every run's task-end measures, the unfinished one's first task included
    assert [[m["layers"]["fc"]["active"] for m in ms] for ms in row["measures"]] == [
        [0.5, 0.7], [0.3, 0.1], [0.9]]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    assert last_game.main([str(path), "--layer", "fc"]) == 0
    out = capsys.readouterr().out
    assert "fc at A's end: active 0.567" in out            # (0.5 + 0.3 + 0.9) / 3
    assert "fc at B's end: active 0.400" in out and "stable_rank 4.000" in out


def test_group_difference_script(capsys, tmp_path):
    """experiments/group_difference.py: B minus A per measure, over complete runs only."""
    gd = load_script("experiments", "group_difference")
    run = lambda path, far, last, forg: {
        "run": path, "reward_matrix": [[1.0, 0.0], [1.0, 10 * last[-1][-1]]][:len(last)],
        "reward_matrix_sampled": [[1.0, 0.0], [1.0, 2.0]],
        "normalised_accumulated_reward": far, "normalised_accumulated_reward_sampled": far,
        "random_normalised_matrix": last, "random_normalised_matrix_sampled": last,
        "forgetting": {"normalised": {"mean": forg}},
        "forgetting_sampled": {"normalised": {"mean": forg}},
        "stability": 1.0, "plasticity": 0.5, "stability_sampled": None, "plasticity_sampled": 0.5}
    rep = {"tasks": ["A", "B"],
           "groups": [{"label": "ft", "runs": ["a1", "a2"]},
                      {"label": "ewc lam=5", "runs": ["b1", "b2", "b3"]}],
           "runs": [run("a1", [0.5, 1.0], [[0.1, 0.0], [0.2, 0.4]], 0.3),
                    run("a2", [0.5, 2.0], [[0.1, 0.0], [0.2, 0.6]], 0.1),
                    run("b1", [0.5, 1.0], [[0.1, 0.0], [0.2, 0.1]], 0.0),
                    run("b2", [0.5, 1.2], [[0.1, 0.0], [0.2, 0.1]], 0.0),
                    run("b3", [9.0], [[9.0, 0.0]], 9.0)]}       # unfinished: left out greedy
    d = gd.differences(rep, "ft", "ewc lam=5")
    assert d["greedy"]["figure7_final"]["mean"] == pytest.approx(1.1 - 1.5)
    assert d["greedy"]["last_game_random_normalised"]["mean"] == pytest.approx(0.1 - 0.5)
    assert d["greedy"]["forgetting_normalised"]["mean"] == pytest.approx(-0.2)
    assert d["greedy"]["figure7_final"]["n"] == [2, 2]
    assert d["greedy"]["stability"]["mean"] == 0.0
    assert d["sampled"]["stability"]["mean"] is None        # no run has it
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    assert gd.main([str(path), "--pair", "ft:ewc lam=5"]) == 0
    out = capsys.readouterr().out
    assert "greedy   last_game_random_normalised  -0.400" in out
    assert "greedy   last_game_raw                -4.000" in out    # (1 + 1) / 2 - (4 + 6) / 2
    # Holm's family is every printed row with a p: 2 protocols x 6 measures, less the rows
    # whose groups both lack spread (greedy stability, greedy and sampled plasticity, sampled
    # last_game_raw) and the sampled stability (no values)
    d = gd.differences(rep, "ft", "ewc lam=5")
    ps = [x["welch_p"] for rows in d.values() for x in rows.values()]
    assert sum(p is not None for p in ps) == 7
    assert "Holm's p over all 7 rows" in out
    line = next(x for x in out.splitlines() if "greedy   figure7_final" in x)
    pf = d["greedy"]["figure7_final"]["welch_p"]
    assert f"p {pf:.3f} holm {bootstrap.holm(ps)[ps.index(pf)]:.3f}" in line
    assert gd.main([str(path), "--pair", "ft:ewc lam=5", "--measures", "figure7_final"]) == 0
    out = capsys.readouterr().out
    assert "last_game_raw" not in out and "over all 2 rows" in out     # greedy and sampled
    line = next(x for x in out.splitlines() if "greedy   figure7_final" in x)
    both = [d["greedy"]["figure7_final"]["welch_p"], d["sampled"]["figure7_final"]["welch_p"]]
    assert f"holm {bootstrap.holm(both)[0]:.3f}" in line
    with pytest.raises(SystemExit):
        gd.main([str(path), "--pair", "ft:nope"])
    assert "no group labelled 'nope'" in capsys.readouterr().err


def test_group_difference_holm_family_spans_every_pair(capsys, tmp_path):
    """Holm's family is every printed row of every pair: two pairs x two protocols of one
    measure here, adjusted by hand from scipy's Welch p-values; a separated row is flagged."""
    from scipy.stats import ttest_ind
    gd = load_script("experiments", "group_difference")
    far = {"ft": [1.0, 1.1, 0.9], "x": [2.0, 2.1, 1.9], "y": [1.0, 1.2, 0.95]}
    runs, groups = [], []
    for label, values in far.items():
        names = [f"{label}{i}" for i in range(len(values))]
        groups.append({"label": label, "runs": names})
        for name, v in zip(names, values):
            runs.append({"run": name, "reward_matrix": [[1.0, 0.0], [1.0, 1.0]],
                         "reward_matrix_sampled": [[1.0, 0.0], [1.0, 1.0]],
                         "normalised_accumulated_reward": [0.5, v],
                         "normalised_accumulated_reward_sampled": [0.5, v]})
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"tasks": ["A", "B"], "groups": groups, "runs": runs}))
    assert gd.main([str(path), "--pair", "ft:x", "--pair", "ft:y",
                    "--measures", "figure7_final"]) == 0
    out = capsys.readouterr().out
    p_x = ttest_ind(far["x"], far["ft"], equal_var=False).pvalue
    p_y = ttest_ind(far["y"], far["ft"], equal_var=False).pvalue
    assert p_x < p_y
    # sorted: p_x, p_x, p_y, p_y -> 4 p_x, max(4 p_x, 3 p_x), 2 p_y, max(2 p_y, p_y); cap 1
    holm_x, holm_y = 4 * p_x, min(1.0, 2 * p_y)
    assert holm_x <= 0.05 < holm_y
    rows = [x for x in out.splitlines() if "figure7_final" in x]
    assert len(rows) == 4 and "over all 4 rows" in out
    for row in rows[:2]:                                   # ft:x, greedy and sampled
        assert f"p {p_x:.3f} holm {holm_x:.3f}" in row and "apart  Holm" in row
    for row in rows[2:]:                                   # ft:y
        assert f"p {p_y:.3f} holm {holm_y:.3f}" in row and "Holm" not in row
