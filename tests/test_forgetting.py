"""Forgetting, forward transfer, normalised scores and Figure 7's reference rules, each
against a hand computation on made-up matrices and curves; then the report on hand-made run
folders and on tiny MinAtar runs."""
import json

import numpy as np
import pytest

from analysis import bootstrap, metrics, plots
from analysis.report import ReportError
from tests.tiny import report

R4 = [[10.0], [4.0, 20.0], [6.0, 15.0, 30.0], [2.0, 18.0, 25.0, 5.0]]


def _mammoth_forgetting(results):
    """Mammoth's utils/metrics.py forgetting, written out: pad rows with zeros, per task the
    column's maximum minus the final entry, averaged over tasks but the last."""
    n = len(results)
    rows = [list(r) + [0.0] * (n - len(r)) for r in results]
    best = np.max(np.array(rows), axis=0)
    return np.mean([best[i] - rows[-1][i] for i in range(n - 1)])


def test_forgetting_by_hand():
    # final row: task 0 best 10 -> 2, task 1 best 20 -> 18, task 2 best 30 -> 25
    assert metrics.forgetting(R4) == pytest.approx([8.0, 2.0, 5.0])
    F = metrics.forgetting_matrix(R4)
    assert F[1] == pytest.approx([6.0, 0.0])
    assert F[2] == pytest.approx([4.0, 5.0, 0.0])               # task 0: best 10, now 6
    assert F[3] == pytest.approx([8.0, 2.0, 5.0, 0.0])
    # non-negative scores: the mean is Mammoth's, whose zero padding cannot win a maximum
    assert np.mean(metrics.forgetting(R4)) == pytest.approx(_mammoth_forgetting(R4))
    # the final score is the best: 0 (Chaudhry et al.'s max over earlier rows would be -0.1)
    assert metrics.forgetting([[0.5], [0.6, 0.9]]) == pytest.approx([0.0])
    # the best counts only after the task was learned: a pre-training entry A[0][1] = 0.99
    # (an evaluation of task 1 before its training) is not a best to fall from
    assert metrics.forgetting([[0.5, 0.99], [0.4, 0.9], [0.3, 0.7, 0.8]]) == \
        pytest.approx([0.2, 0.2])
    # a run still training: the matrix as far as it goes
    assert metrics.forgetting_matrix(R4[:2]) == [[0.0], [6.0, 0.0]]


def test_forward_transfer_before_by_hand():
    # rows with the accuracy on the next task before its training (Mammoth's results[i-1][i])
    A = [[0.9, 0.3, 0.2], [0.8, 0.9, 0.4], [0.7, 0.8, 0.95]]
    fwt = metrics.forward_transfer_before(A, [0.1, 0.25, 0.5])
    assert fwt[0] is None and fwt[1:] == pytest.approx([0.3 - 0.25, 0.4 - 0.5])
    # the trainer's matrices hold seen tasks only: nothing to compute
    assert metrics.forward_transfer_before(R4, [1.0] * 4) == [None] * 4
    assert metrics.forward_transfer_before(A, [0.1, None, 0.5])[1] is None


def test_auc_and_continual_world_forward_transfer_by_hand():
    # each evaluation stands for the steps since the previous one (from the task's start)
    assert metrics.auc([(5, 1.0), (20, 3.0)]) == pytest.approx((1 * 5 + 3 * 15) / 20)
    assert metrics.auc([(10, 2.0), (20, 6.0), (30, 4.0)]) == pytest.approx(4.0)   # even: mean
    # lo = 0, hi = 6: run [1/3, 1] -> AUC 2/3; references [0, 2/3] and [1/3, 1/3] -> 1/3
    run = [(10, 2.0), (20, 6.0)]
    refs = [[(10, 0.0), (20, 4.0)], [(10, 2.0), (20, 2.0)]]
    out = metrics.continual_world_forward_transfer(run, refs)
    assert (out["lo"], out["hi"]) == (0.0, 6.0)
    assert out["auc"] == pytest.approx(2 / 3) and out["auc_reference"] == pytest.approx(1 / 3)
    assert out["ft"] == pytest.approx((2 / 3 - 1 / 3) / (1 - 1 / 3))
    # lo cancels: FT = (AUC_raw - AUC_ref_raw) / (hi - AUC_ref_raw) = (4 - 2) / (6 - 2)
    assert out["ft"] == pytest.approx(0.5)
    # no transfer against itself; worse than the reference is negative
    assert metrics.continual_world_forward_transfer(run, [run])["ft"] == pytest.approx(0.0)
    worse = metrics.continual_world_forward_transfer([(10, 0.0), (20, 2.0)], [run])
    assert worse["ft"] == pytest.approx((1 / 6 - 2 / 3) / (1 - 2 / 3))
    # no scale, or a reference at the best throughout: no number
    flat = metrics.continual_world_forward_transfer([(10, 3.0)], [[(10, 3.0)]])
    assert flat["ft"] is None and "scored 3" in flat["why"]
    top = metrics.continual_world_forward_transfer([(10, 0.0)], [[(10, 5.0)]])
    assert top["ft"] is None and "1 - AUC_ref = 0" in top["why"]
    with pytest.raises(ValueError, match="at least one"):
        metrics.auc([])
    with pytest.raises(ValueError, match="must be > 0"):
        metrics.auc([(0, 1.0)])
    with pytest.raises(ValueError, match="reference curve"):
        metrics.continual_world_forward_transfer(run, [])


def test_normalised_scores_by_hand():
    assert metrics.human_normalised(4.3, 0.1, 4.3) == pytest.approx(1.0)
    assert metrics.human_normalised(0.1, 0.1, 4.3) == 0.0
    assert metrics.human_normalised(20.0, -10.0, 30.0) == pytest.approx(30 / 40)
    assert metrics.random_normalised(60.0, 10.0, 110.0) == pytest.approx(0.5)
    assert np.isnan(metrics.random_normalised(60.0, 10.0, 5.0))     # reference below random
    assert np.isnan(metrics.random_normalised(60.0, 10.0, float("-inf")))
    # the published table (Mnih et al. 2015, Extended Data Table 2) covers the paper's stream
    from envs.atari import GAMES, SCORES
    assert set(SCORES["random"]) == set(SCORES["human"]) == set(GAMES)
    assert all(SCORES["human"][g] > SCORES["random"][g] for g in GAMES)


def test_figure7_leaves_out_a_nonpositive_reference():
    # Boxing's reference -2 is left out of the sum; Gopher's 80 is kept
    assert metrics.figure7_sum([5.0, 40.0], [-2.0, 80.0]) == pytest.approx(0.5)
    assert metrics.figure7_sum([5.0, 40.0], [0.0, 80.0]) == pytest.approx(0.5)
    assert metrics.normalised_accumulated_reward([[5.0], [-3.0, 40.0]], [-2.0, 80.0]) == \
        pytest.approx([0.0, 0.5])
    # a reference not known yet (fine-tuning has not reached the task) is not a zero
    assert np.isnan(metrics.figure7_sum([5.0, 40.0], [20.0, float("-inf")]))
    assert np.isnan(metrics.figure7_sum([5.0, 40.0], [20.0, None]))


def test_best_running_mean_by_hand():
    x = [1.0, 9.0, 2.0, 3.0, 8.0, 7.0]
    assert metrics.best_running_mean(x, 1) == 9.0
    # means of 3: 4, 14/3, 13/3, 6
    assert metrics.best_running_mean(x, 3) == pytest.approx(6.0)
    assert metrics.best_running_mean(x[:2], 3) == float("-inf")
    with pytest.raises(ValueError, match="window"):
        metrics.best_running_mean(x, 0)


# --- through the report, on hand-made run folders --------------------------------------------
def _run(folder, method, tasks, curve, R=None, command=None, global_step=None, config=None):
    """A run folder as train.py leaves it: eval_curve records (step, task_end, score) and
    the reward matrix (the task-end rows of the curve unless given); ``config``: more of
    config.json."""
    folder.mkdir(parents=True)
    cfg = {"regularizer": method, "command": command or "atari", **(config or {})}
    (folder / "config.json").write_text(json.dumps(cfg))
    if R is None:
        R = [c["score"] for c in curve if c.get("task_end")]
    (folder / "results.json").write_text(json.dumps({
        "tasks": tasks, "regularizer": method, "reward_matrix": R, "eval_curve": curve,
        "global_step": global_step or max((c["step"] for c in curve), default=0),
        "status": "complete" if len(R) == len(tasks) else "running",
        "regularizer_memory_bytes": 8}))
    return folder


def _c(step, score, end=False):
    return {"step": step, "task_end": end, "score": score}


# Boxing then Gopher, 20 steps each, an evaluation every 10
FT_CURVE = [_c(10, [1.0]), _c(20, [3.0], True), _c(30, [2.0, 10.0]), _c(40, [1.0, 30.0], True)]
AGS_CURVE = [_c(10, [2.0]), _c(20, [4.0], True), _c(30, [3.0, 20.0]), _c(40, [3.0, 40.0], True)]
TASKS = ["Boxing", "Gopher"]


def _pair(tmp_path):
    return [_run(tmp_path / "ft", "finetune", TASKS, FT_CURVE),
            _run(tmp_path / "ags", "agscl", TASKS, AGS_CURVE)]


def test_rl_forward_transfer_with_and_without_single_task_runs(tmp_path):
    runs = _pair(tmp_path)
    gopher = _run(tmp_path / "gopher", "finetune", ["Gopher"],
                  [_c(10, [0.0]), _c(20, [20.0], True)])
    rep = report(runs, out=str(tmp_path / "rep"), plots=False, single_task=[gopher])
    by = {rr["label"]: rr for rr in rep["runs"]}
    # Boxing against fine-tuning's Boxing curve: lo 1, hi 4; run [1/3, 1] -> 2/3, ref
    # [0, 2/3] -> 1/3; FT = (2/3 - 1/3) / (1 - 1/3)
    # Gopher against the single-task run: lo 0, hi 40; run [1/2, 1] -> 3/4, ref [0, 1/2] ->
    # 1/4; FT = (3/4 - 1/4) / (3/4)
    ft_ags = by["ags"]["forward_transfer"]
    assert ft_ags["per_task"] == pytest.approx([0.5, 2 / 3])
    assert ft_ags["auc"] == pytest.approx([2 / 3, 3 / 4])
    assert ft_ags["auc_reference"] == pytest.approx([1 / 3, 1 / 4])
    assert ft_ags["mean"] == pytest.approx((0.5 + 2 / 3) / 2)
    # fine-tuning against itself on Boxing: 0; on Gopher (lo 0, hi 30): (2/3 - 1/3) / (2/3)
    assert by["ft"]["forward_transfer"]["per_task"] == pytest.approx([0.0, 0.5])
    assert rep["forward_transfer_reference"]["Gopher"].startswith("single-task run(s)")
    assert rep["forward_transfer_reference"]["Boxing"].startswith("fine-tuning (no single")
    assert rep["single_task_runs"] == [str(gopher)]
    g = {x["label"]: x for x in rep["groups"]}
    assert g["agscl"]["forward_transfer"]["mean"]["mean"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert g["agscl"]["forward_transfer"]["per_task"][1]["mean"] == pytest.approx(2 / 3)
    assert "reference of FT: Boxing: fine-tuning" in rep["table"]
    plots.plot_forgetting_forward_transfer(rep, tmp_path)
    assert (tmp_path / "forgetting_forward_transfer.png").exists()
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["runs"][1]["forward_transfer"]["per_task"] == pytest.approx([0.5, 2 / 3])

    # no single-task runs: Gopher's reference is fine-tuning's (lo 10, hi 40): run [1/3, 1]
    # -> 2/3, ref [0, 2/3] -> 1/3: 0.5; the report says what the reference is
    rep = report(runs, out=str(tmp_path / "rep2"), plots=False)
    ags = [rr for rr in rep["runs"] if rr["label"] == "ags"][0]
    assert ags["forward_transfer"]["per_task"] == pytest.approx([0.5, 0.5])
    assert set(rep["forward_transfer_reference"].values()) == {
        "fine-tuning (no single-task run of this game given): transfer relative to "
        "fine-tuning, not to learning from scratch"}
    assert "reference of FT: fine-tuning (no single-task run" in rep["table"]


def test_rl_forward_transfer_reference_too_short_and_bad_single_task_runs(tmp_path):
    runs = _pair(tmp_path)
    short = _run(tmp_path / "short", "finetune", ["Gopher"], [_c(10, [5.0])])   # 10 of 20
    rep = report(runs, out=str(tmp_path / "rep"), plots=False, single_task=[short])
    ags = [rr for rr in rep["runs"] if rr["label"] == "ags"][0]["forward_transfer"]
    assert ags["per_task"][1] is None
    assert "no reference has trained this game for the run's 20 steps: short (10 steps)" \
        in ags["why_missing"]["Gopher"]
    two = _run(tmp_path / "two", "finetune", TASKS, FT_CURVE[:2])
    with pytest.raises(ReportError, match="trains one game of the stream"):
        report(runs, out=str(tmp_path / "rep"), plots=False, single_task=[two])
    pong = _run(tmp_path / "pong", "finetune", ["Pong"], [_c(10, [1.0], True)])
    with pytest.raises(ReportError, match="it trains Pong"):
        report(runs, out=str(tmp_path / "rep"), plots=False, single_task=[pong])
    # MinAtar's Breakout is not Atari's Breakout
    mini = _run(tmp_path / "mini", "finetune", ["Gopher"], [_c(10, [1.0], True)],
                command="minatar")
    with pytest.raises(ReportError, match="a minatar run; the stream's runs are atari"):
        report(runs, out=str(tmp_path / "rep"), plots=False, single_task=[mini])
    # given among the stream's runs, a single-task run is pointed to --single-task
    with pytest.raises(ReportError, match="--single-task"):
        report(runs + [short], out=str(tmp_path / "rep"), plots=False)


def test_rl_forgetting_raw_and_normalised(tmp_path):
    runs = _pair(tmp_path)
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    # fine-tuning's best: Boxing 3 (its evaluations 1, 3, 2, 1), Gopher 30
    assert rep["finetune_max_reward"] == [3.0, 30.0]
    by = {rr["label"]: rr["forgetting"] for rr in rep["runs"]}
    # Boxing: agscl 4 after Boxing, 3 at the end; fine-tuning 3 -> 1
    assert by["ags"]["per_task"] == pytest.approx([1.0]) and by["ags"]["mean"] == 1.0
    assert by["ags"]["normalised"]["per_task"] == pytest.approx([1 / 3])
    assert by["ft"]["per_task"] == pytest.approx([2.0])
    assert by["ft"]["normalised"]["mean"] == pytest.approx(2 / 3)
    assert by["ags"]["matrix"] == [[0.0], [1.0, 0.0]]
    # human-normalised: over human - random of Boxing (4.3 - 0.1)
    assert by["ags"]["human_normalised"]["per_task"] == pytest.approx([1.0 / 4.2])
    g = {x["label"]: x for x in rep["groups"]}
    assert g["agscl"]["forgetting"]["mean"]["mean"] == 1.0
    assert g["finetune"]["forgetting"]["normalised"]["per_task"][0]["mean"] == \
        pytest.approx(2 / 3)
    # a run still training has its forgetting matrix so far, no per-task forgetting yet
    young = _run(tmp_path / "young", "agscl", TASKS, AGS_CURVE[:3])
    rep = report(runs + [young], out=str(tmp_path / "rep"), plots=False)
    y = [rr for rr in rep["runs"] if rr["label"] == "young"][0]
    assert y["forgetting"]["matrix"] == [[0.0]] and y["forgetting"]["per_task"] is None
    assert y["forward_transfer"]["per_task"][1] is None and y["forward_transfer"]["mean"] is None
    assert y["forward_transfer"]["why_missing"] == {"Gopher": "the run has not finished this "
                                                              "task"}


def test_rl_human_and_random_normalised_with_a_made_up_table(tmp_path, monkeypatch):
    from envs import atari
    monkeypatch.setattr(atari, "SCORES", {"random": {"Boxing": -10.0, "Gopher": 5.0},
                                          "human": {"Boxing": 30.0, "Gopher": 105.0}})
    runs = _pair(tmp_path)
    a2 = _run(tmp_path / "ags2", "agscl", TASKS,
              [_c(20, [2.0], True), _c(40, [1.0, 15.0], True)])
    rep = report(runs + [a2], out=str(tmp_path / "rep"), plots=False)
    by = {rr["label"]: rr for rr in rep["runs"]}
    # ags's final row [3, 40]: human (3 + 10) / 40, (40 - 5) / 100; random: Boxing's
    # reference 3 over random -10: (3 + 10) / 13; Gopher's 30 over 5: (40 - 5) / 25
    assert by["ags"]["human_normalised_matrix"][-1] == pytest.approx([13 / 40, 35 / 100])
    assert by["ags"]["human_normalised_matrix"][0] == pytest.approx([14 / 40])
    assert by["ags"]["random_normalised_matrix"][-1] == pytest.approx([13 / 13, 35 / 25])
    g = {x["label"]: x for x in rep["groups"]}["agscl"]
    scores = np.array([[13 / 40, 35 / 100], [11 / 40, 10 / 100]])
    hn = g["human_normalised"]
    assert hn["games"] == TASKS
    np.testing.assert_allclose(hn["scores"], scores)
    from scipy.stats import trim_mean
    assert hn["iqm"]["iqm"] == pytest.approx(trim_mean(scores.ravel(), 0.25))
    assert hn["mean"]["mean"] == pytest.approx(scores.mean())
    assert hn["per_game"][1]["mean"] == pytest.approx((0.35 + 0.10) / 2)
    assert g["random_normalised"]["per_game"][0]["mean"] == pytest.approx((13 / 13 + 11 / 13)
                                                                          / 2)
    assert rep["reference_scores"]["human"] == {"Boxing": 30.0, "Gopher": 105.0}
    assert "human-normalised (score - random) / (human - random)" in rep["table"]
    plots.plot_normalised_scores_per_game(rep, tmp_path)
    assert (tmp_path / "normalised_scores_per_game.png").exists()


def test_rl_report_minatar_random_scores_only_under_their_protocol(tmp_path):
    from envs.minatar import SCORES
    MINATAR_RANDOM = SCORES["random"]
    # no protocol in config.json (or another one): no normalised scores, and the report says why
    runs = [_run(tmp_path / n, m, ["Breakout", "Freeway"], FT_CURVE, command="minatar",
                 config={"sticky": 0.0, "ppo": {"eval_max_steps": 10_000}})
            for n, m in (("ft", "finetune"), ("ewc", "ewc"))]
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    assert rep["reference_scores"]["human"] == {} and rep["reference_scores"]["random"] == {}
    assert "MinAtar" in rep["reference_scores"]["note"]
    assert all(v is None for row in rep["runs"][0]["human_normalised_matrix"] for v in row)
    assert rep["groups"][0]["human_normalised"]["games"] == []
    assert "publishes no human or random scores" in rep["table"]
    # sticky 0.1 and the 10k cap: the measured random scores, random-normalised by hand
    proto = {"sticky": 0.1, "ppo": {"eval_max_steps": 10_000}}
    runs = [_run(tmp_path / f"p{n}", m, ["Breakout", "Freeway"], FT_CURVE, command="minatar",
                 config=proto) for n, m in (("ft", "finetune"), ("ewc", "ewc"))]
    rep = report(runs, out=str(tmp_path / "rep2"), plots=False)
    rb, rf = MINATAR_RANDOM["Breakout"], MINATAR_RANDOM["Freeway"]
    assert rep["reference_scores"]["random"] == {"Breakout": rb, "Freeway": rf}
    assert rep["reference_scores"]["human"] == {}
    # FT_CURVE's final row [1, 30]; fine-tuning's best: Breakout 3, Freeway 30
    rn = rep["runs"][0]["random_normalised_matrix"]
    assert rn[-1] == pytest.approx([(1 - rb) / (3 - rb), 1.0])
    assert rep["groups"][0]["human_normalised"]["games"] == []
    assert "measured here, not published" in rep["table"]
    # the constant-action floor beside it, from the measured table
    assert rep["reference_scores"]["constant"] == {
        "Breakout": SCORES["constant"]["Breakout"], "Freeway": 15.97}
    assert "best constant action's score" in rep["table"] and "Freeway 15.97" in rep["table"]


def test_rl_report_capacity_per_layer_and_its_plot(tmp_path):
    """AGS-CL's per-layer diagnosis goes from results.json into the report's runs and
    capacity.png; a run without it (fine-tuning) has none and no plot needs it."""
    runs = [_run(tmp_path / "ft", "finetune", TASKS, FT_CURVE),
            _run(tmp_path / "ags", "agscl", TASKS, AGS_CURVE)]
    res = json.loads((runs[1] / "results.json").read_text())
    cap = {"g0_start/fc": [1.0, 0.25], "g0_used/fc": [0.5, None],
           "important_moved/fc": [None, 0.5], "drift/fc": [None, 0.2],
           "freeze_threshold/fc": [None, 0.4]}
    (runs[1] / "results.json").write_text(json.dumps({**res, **cap, "sparsity": [0.5, 0.0]}))
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    assert rep["runs"][0]["capacity"] == {} and rep["runs"][1]["capacity"] == cap
    plots.plot_capacity(rep, tmp_path / "rep")
    assert (tmp_path / "rep" / "capacity.png").stat().st_size > 0
    (tmp_path / "rep" / "capacity.png").unlink()
    plots.plot_capacity({"runs": [{**rep["runs"][0], "group": "ft"}]}, tmp_path / "rep")
    assert not (tmp_path / "rep" / "capacity.png").exists()


def test_rl_report_nonpositive_reference_is_left_out_and_said(tmp_path, capsys):
    runs = [_run(tmp_path / "ft", "finetune", TASKS, [], R=[[-5.0], [-2.0, 800.0]]),
            _run(tmp_path / "ags", "agscl", TASKS, [], R=[[1.0], [-1.0, 400.0]])]
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    assert rep["figure7_left_out"] == {"Boxing": "fine-tuning's best score -2 is not positive"}
    ags = [rr for rr in rep["runs"] if rr["label"] == "ags"][0]
    assert ags["normalised_accumulated_reward"] == pytest.approx([0.0, 0.5])
    assert "Figure 7's sum leaves those tasks out" in capsys.readouterr().out
    assert "left out of the sum (no ratio to a non-positive reference; see its " \
           "random-normalised score): Boxing (fine-tuning's best score -2 is not positive)" \
        in rep["table"]
    # random-normalised: Boxing's reference -2 is below random play (0.1): no score either
    assert ags["random_normalised_matrix"][-1][0] is None
    assert ags["random_normalised_matrix"][-1][1] == pytest.approx((400 - 257.6) / (800 - 257.6))
    # nor below it: a reference of 80 on Gopher (random play 257.6) gives no scale
    runs[0].joinpath("results.json").write_text(runs[0].joinpath("results.json").read_text()
                                                .replace("800.0", "80.0"))
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    assert [rr["random_normalised_matrix"][-1] for rr in rep["runs"]] == [[None, None]] * 2
    assert rep["groups"][0]["random_normalised"]["games"] == []


def test_rl_report_robust_reference_best_mean_of_3(tmp_path):
    # fine-tuning's Boxing evaluations 10, 50 (lucky), 10, 20, 30, 25: best single 50, best
    # mean of 3 consecutive (50 + 10 + 20) / 3
    boxing = [10.0, 50.0, 10.0, 20.0, 30.0, 25.0]
    ft = _run(tmp_path / "ft", "finetune", ["Boxing"],
              [_c(10 * (i + 1), [v], i == 5) for i, v in enumerate(boxing)])
    ags = _run(tmp_path / "ags", "agscl", ["Boxing"], [_c(60, [20.0], True)])
    assert report([ft, ags], out=str(tmp_path / "r1"), plots=False)["finetune_max_reward"] \
        == [50.0]
    rep = report([ft, ags], out=str(tmp_path / "r3"), plots=False, reference_window=3)
    assert rep["finetune_max_reward"] == pytest.approx([80 / 3])
    assert rep["figure7_reference"] == {
        "window": 3, "rule": "fine-tuning's best mean of 3 consecutive evaluations"}
    a = [rr for rr in rep["runs"] if rr["label"] == "ags"][0]
    assert a["normalised_accumulated_reward"] == pytest.approx([20 / (80 / 3)])
    assert "reference: fine-tuning's best mean of 3 consecutive evaluations per task = " \
           "Boxing 26.67" in rep["table"]
    for bad in (0, 1.5, True):
        with pytest.raises(ReportError, match="reference_window"):
            report([ft, ags], out=str(tmp_path / "r"), plots=False, reference_window=bad)


def test_supervised_forgetting_and_forward_transfer(tmp_path):
    A = [[0.9], [0.7, 0.8], [0.6, 0.75, 0.5]]
    FT = [[1.0], [0.5, 0.9], [0.4, 0.3, 1.0]]
    stream = {"tasks": [{"name": f"t{j}", "num_classes": c} for j, c in enumerate((2, 4, 5))]}
    for name, method, M in (("ft", "finetune", FT), ("a", "agscl", A),
                            ("b", "ewc", [[0.9, 0.3, 0.1], [0.8, 0.9, 0.4], [0.7, 0.85, 0.6]])):
        d = tmp_path / name
        d.mkdir()
        (d / "results.json").write_text(json.dumps({
            "tasks": ["t0", "t1", "t2"], "regularizer": method, "accuracy_matrix": M,
            "regularizer_memory_bytes": 10, "task_seconds": [1, 1, 1], "stream": stream}))
    rep = report([tmp_path / n for n in ("ft", "a", "b")], out=str(tmp_path / "rep"),
                 plots=False)
    by = {r["label"]: r for r in rep["runs"]}
    # Mammoth's forgetting: (0.9 - 0.6 + 0.8 - 0.75) / 2
    assert by["a"]["forgetting"]["per_task"] == pytest.approx([0.3, 0.05])
    assert by["a"]["forgetting"]["mean"] == pytest.approx(0.175)
    assert by["ft"]["forgetting"]["mean"] == pytest.approx(((1.0 - 0.4) + (0.9 - 0.3)) / 2)
    # the trainer's matrices have no accuracy before a task's training: no FWT, and why
    assert by["a"]["forward_transfer"]["per_task"] == [None, None, None]
    assert "was not evaluated before its training" in by["a"]["forward_transfer"]["why_missing"]
    # a matrix that has it: A[j-1][j] - 1/classes, chance level named as the reference
    assert by["b"]["forward_transfer"]["per_task"][1:] == pytest.approx([0.3 - 0.25,
                                                                          0.4 - 0.2])
    assert by["b"]["forward_transfer"]["mean"] == pytest.approx((0.05 + 0.2) / 2)
    assert by["b"]["forward_transfer"]["reference_values"] == pytest.approx([0.5, 0.25, 0.2])
    assert "untrained model" in rep["forward_transfer_reference"]
    assert "chance level 1/classes" in rep["forward_transfer_reference"]
    g = {x["label"]: x for x in rep["groups"]}
    assert g["agscl"]["forgetting"]["mean"]["mean"] == pytest.approx(0.175)
    assert g["ewc"]["forward_transfer"]["per_task"][2]["mean"] == pytest.approx(0.2)
    assert "FWT reference: the untrained model's accuracy" in rep["table"]
    plots.plot_forgetting_forward_transfer(rep, tmp_path)
    assert (tmp_path / "forgetting_forward_transfer.png").exists()
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["runs"][1]["forgetting"]["matrix"][2] == pytest.approx([0.3, 0.05, 0.0])
    with pytest.raises(ReportError, match="supervised report has neither"):
        report([tmp_path / "ft", tmp_path / "a"], out=str(tmp_path / "r"),
               single_task=[tmp_path / "a"])


@pytest.mark.slow
def test_report_on_tiny_minatar_runs_writes_the_new_keys(tmp_path):
    """Two tiny MinAtar runs (fine-tuning, EWC) and a single-task Freeway run through
    train.py, then the report with the single-task reference and the robust reference."""
    import train
    tiny = ["minatar", "--preset", "minatar_tiny", "--no-progress"]
    for name, games, method in (("ft", "Breakout,Freeway", "finetune"),
                                ("ewc", "Breakout,Freeway", "ewc"),
                                ("freeway", "Freeway", "finetune")):
        assert train.main(tiny + ["--games", games, "--regularizer", method,
                                  "--out", str(tmp_path / name)]) == 0
    rep = report([tmp_path / "ft", tmp_path / "ewc"], out=str(tmp_path / "rep"),
                 reference_window=3, single_task=[tmp_path / "freeway"])
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    for k in ("figure7_reference", "figure7_left_out", "reference_scores",
              "forward_transfer_reference", "single_task_runs"):
        assert k in saved, k
    assert saved["figure7_reference"]["window"] == 3
    assert saved["forward_transfer_reference"]["Freeway"].startswith("single-task")
    for rr in saved["runs"]:
        for k in ("forgetting", "forward_transfer", "human_normalised_matrix",
                  "random_normalised_matrix", "forgetting_sampled", "forward_transfer_sampled"):
            assert k in rr, k
        assert len(rr["forgetting"]["per_task"]) == 1
        assert len(rr["forward_transfer"]["per_task"]) == 2
    for g in saved["groups"]:
        for k in ("forgetting", "forward_transfer", "human_normalised", "random_normalised"):
            assert k in g, k
    assert "forgetting and forward transfer (greedy)" in rep["table"]
    assert (tmp_path / "rep" / "forgetting_forward_transfer.png").exists()


def test_rl_report_group_bands_and_plasticity_plots(tmp_path):
    """A study's per-game scores as one mean line and CI band per group, and one plot per
    plasticity measure from the runs' records."""
    runs = [_run(tmp_path / f"ft{i}", "finetune", TASKS, FT_CURVE) for i in (1, 2)] + \
        [_run(tmp_path / "ags", "agscl", TASKS, AGS_CURVE)]
    rec = lambda step, v: {"step": step, "task": 0, "unit": 1, "task_end": False,   # noqa: E731
                           "layers": {"fc": {m: v for m in plots.PLASTICITY_MEASURES}}}
    for i, f in enumerate(runs):
        res = json.loads((f / "results.json").read_text())
        res["plasticity"] = [rec(10, 1.0 + i), rec(20, 2.0 + i)]
        (f / "results.json").write_text(json.dumps(res))
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    out = tmp_path / "rep"
    plots.plot_group_scores_per_game(rep, out)
    plots.plot_plasticity(rep, out)
    assert (out / "scores_per_game_groups.png").stat().st_size > 0
    for m in plots.PLASTICITY_MEASURES:
        assert (out / f"plasticity_{m}.png").stat().st_size > 0
    # the band: per step, the mean and bootstrap CI over the runs that have the step
    steps, ests = plots._by_step([[(10, 1.0), (20, 2.0)], [(10, 3.0)]])
    assert steps == [10, 20] and ests[0]["mean"] == 2.0 and ests[0]["n"] == 2
    assert ests[1] == bootstrap.mean_ci([2.0])
    assert len(rep["runs"][0]["plasticity_measures"]) == 2


def test_runs_written_before_a_field_existed_group_with_todays(tmp_path):
    """config.json as an earlier version wrote it (PPO's 'learning_rate', no reg_preset, no
    fc_width) groups with today's, whose defaults it had."""
    old = {"ppo": {"learning_rate": 3e-4}, "games": ["Breakout", "Asterix"]}
    new = {"ppo": {"lr": 3e-4}, "games": ["Breakout", "Asterix"], "reg_preset": "paper",
           "fc_width": 128}
    runs = [_run(tmp_path / "ft", "finetune", TASKS, FT_CURVE, command="minatar", config=new),
            _run(tmp_path / "e1", "ewc", TASKS, AGS_CURVE, command="minatar", config=old),
            _run(tmp_path / "e2", "ewc", TASKS, AGS_CURVE, command="minatar", config=new)]
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    assert sorted((g["label"], len(g["runs"])) for g in rep["groups"]) == [("ewc", 2), ("finetune", 1)]


def test_rl_report_of_a_study_whose_group_has_no_sampled_evaluation_yet(tmp_path):
    proto = {"sticky": 0.1, "ppo": {"eval_max_steps": 10_000}}
    runs = [_run(tmp_path / n, m, ["Breakout", "Freeway"], FT_CURVE, command="minatar",
                 config=proto) for n, m in (("ft", "finetune"), ("ewc", "ewc"))]
    res = json.loads((runs[0] / "results.json").read_text())
    res["reward_matrix_sampled"] = res["reward_matrix"]
    (runs[0] / "results.json").write_text(json.dumps(res))
    rep = report(runs, out=str(tmp_path / "rep"), plots=False)
    plots.plot_rl_report(rep, tmp_path / "rep")          # the plots take such a group too
    assert "random_normalised_sampled" not in rep["groups"][0 if rep["groups"][0]["method"] ==
                                                           "ewc" else 1]
    assert "random-normalised" in rep["table"]


def test_error_bars_are_never_negative(tmp_path):
    """Seeds that all score alike (or an IQM just outside its percentile interval) give an
    estimate an ulp outside its CI: the bar's length is 0 there, not negative (matplotlib
    refuses a negative one and the whole report failed)."""
    m, err = plots._err([{"mean": 0.30000000000000004, "ci95": [0.3000000000000001, 0.4]},
                         {"mean": 0.5, "ci95": [0.25, 0.75]}, {"mean": None, "ci95": None}])
    assert err[:, 0] == pytest.approx([0.0, 0.1]) and (err >= 0).all()
    assert err[:, 1] == pytest.approx([0.25, 0.25]) and np.isnan(m[2])
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    assert plots._group_bars(ax, [{"label": "g"}], lambda g: [
        {"mean": 0.30000000000000004, "ci95": [0.3000000000000001, 0.4]}], ["Breakout"])
    plt.close(fig)
