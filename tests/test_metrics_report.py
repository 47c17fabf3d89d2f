"""Metric arithmetic (eq. 15-16, BWT, Figure 7) on hand-made matrices, the report's text
tables on hand-made report dicts, and the whole report on hand-made run folders."""
import json

import numpy as np
import pytest

from continual import metrics
from continual.report import report
from continual.report_rl import format_rl, training_windows
from continual.report_supervised import format_supervised
from continual.runfolder import CHECKPOINT_FORMAT, RunError
from tests.tiny import load_script

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
    """A report dict as ``report_rl.rl_report`` makes it, by hand."""
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
    assert lines[0] == f"{'method':<20}{'runs':>5}" + "".join(f"{c:>16}" for c in cols)
    assert lines[1] == "-" * 121
    dash = f"{'-':>16}"
    assert lines[2] == f"{'finetune':<20}{1:>5}{0.9:>16.3f}{1.0:>16.3f}" + dash * 3 + \
        f"{1.0:>16.3f}"
    assert lines[3] == f"{'agscl':<20}{'2/3':>5}{0.8:>9.3f} ± 0.050{0.95:>9.3f} ± 0.010" + \
        dash * 2 + f"{0.5:>9.3f} ± 0.000" + dash
    assert lines[4].startswith("(k/n: only k of the method's n runs")
    rep["summary"]["agscl"]["complete"] = 3
    assert len(format_supervised(rep).splitlines()) == 4        # no k/n note when all finished
