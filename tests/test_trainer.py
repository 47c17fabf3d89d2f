"""The shared continual trainer with a small deterministic learner: matrix, results, resume."""
import json
import time

import pytest
import torch
import torch.nn.functional as F

import regularizers
from continual.runfolder import CHECKPOINT_FORMAT, RunError, RunFolder
from continual.trainer import ContinualTrainer, NaNLossError, Schedule
from tests.tiny import TinyMLP


class ToyLearner:
    """Two linearly separable tasks; a unit is one step on a random minibatch."""
    matrix_key = "accuracy_matrix"

    def __init__(self, units=6, nan_at=None):
        torch.manual_seed(0)
        self.model = TinyMLP(d_in=3, hidden=(8, 6), heads=(2, 2))
        self.task_names = ["a", "b"]
        self.units = units
        self.nan_at = nan_at
        g = torch.Generator().manual_seed(1)
        self.data = []
        for t in range(2):
            x = torch.randn(64, 3, generator=g)
            y = (x[:, t] > 0).long()
            self.data.append((x, y))
        self.opt = None

    def units_per_task(self, task):
        return self.units

    def steps_per_unit(self, task):
        return 16

    def begin_task(self, task):
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def _indices(self, task, unit):
        return torch.randint(0, 64, (16,))            # global RNG: resume must restore it

    def train_unit(self, task, unit, reg):
        x, y = self.data[task]
        idx = self._indices(task, unit)
        loss = F.cross_entropy(self.model(x[idx], task), y[idx]) + reg.penalty()
        if self.nan_at == (task, unit):
            loss = loss * float("nan")
        if not torch.isfinite(loss):
            raise FloatingPointError("loss is nan")
        self.opt.zero_grad()
        loss.backward()
        reg.before_step()
        self.opt.step()
        reg.after_step(0.1)
        return {"loss": float(loss.detach())}

    def end_task(self, task):
        pass

    def importance_data(self, task):
        x, y = self.data[task]
        return [(x[:32], y[:32]), (x[32:], y[32:])], \
            lambda m, b: F.cross_entropy(m(b[0], task), b[1])

    def evaluate(self, task):
        x, y = self.data[task]
        with torch.no_grad():
            return {"score": float((self.model(x, task).argmax(1) == y).float().mean())}

    def extra_results(self):
        return {}

    def state_dict(self):
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, s):       # at a task boundary: before begin_task, like PPO's
        self.model.load_state_dict(s["model"])
        self.opt = self.opt or torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.opt.load_state_dict(s["opt"])


class Crash(Exception):
    """A process killed mid-task: nothing gets a chance to be written."""


def crashing_at(task, unit):
    learner = ToyLearner()
    orig = learner.train_unit

    def crashing(t, u, reg):
        if (t, u) == (task, unit):
            raise Crash()
        return orig(t, u, reg)

    learner.train_unit = crashing
    return learner


CONFIG = {"format_version": CHECKPOINT_FORMAT, "x": 1}


def run(tmp, name="agscl", resume=False, learner=None, config=None, plots=False, **sched):
    """A toy run (plots only where a test looks at them: matplotlib is most of a toy run)."""
    learner = learner or ToyLearner()
    reg = regularizers.make(name, learner.model)
    tr = ContinualTrainer(learner, reg, RunFolder(tmp), config or CONFIG,
                          Schedule(**sched), resume=resume, progress=False, plots=plots)
    return tr, tr.run()


def test_results_and_files(tmp_path):
    tr, res = run(tmp_path, eval_every=2, checkpoint_every=3, plots=True)
    assert res["status"] == "complete"
    A = res["accuracy_matrix"]
    assert len(A) == 2 and len(A[0]) == 1 and len(A[1]) == 2
    assert res["average_accuracy"] == pytest.approx(sum(A[1]) / 2)
    assert len(res["sparsity"]) == 2 and len(res["used_capacity"]) == 2
    assert res["regularizer_memory_bytes"] > 0
    assert len(res["eval_curve"]) == 2 * 2 + 2     # units 2,4 per task + the two task ends
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["accuracy_matrix"] == A
    # every hyperparameter value the run used, the method's own defaults included
    assert on_disk["regularizer_hparams_in_use"] == regularizers.hyperparameters("agscl")
    assert on_disk["regularizer_hparams_in_use"]["reinit_from"] == "zero_norm"
    assert (tmp_path / "config.json").exists()
    assert (tmp_path / "checkpoints" / "task0.pt").exists()
    assert (tmp_path / "plots" / "accuracy_matrix.png").exists()
    assert list((tmp_path / "tb").glob("events.*"))
    import os
    umask = os.umask(0)
    os.umask(umask)
    for f in ("results.json", "config.json", "checkpoints/task0.pt"):  # not mkstemp's 0600
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o666 & ~umask


def test_resume_equals_uninterrupted(tmp_path):
    _, full = run(tmp_path / "full", checkpoint_every=2)
    # interrupted run: stop after the first checkpoint of task 1 by raising in train_unit
    with pytest.raises(Crash):
        run(tmp_path / "cut", learner=crashing_at(1, 3), checkpoint_every=2)
    _, resumed = run(tmp_path / "cut", resume=True, checkpoint_every=2)
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    assert resumed["sparsity"] == full["sparsity"]


def test_existing_folder_and_other_formats_are_refused(tmp_path):
    run(tmp_path)
    with pytest.raises(RunError, match="already holds a run"):
        run(tmp_path)
    # a checkpoint of another format: refused, naming the last commit that can resume it
    last = tmp_path / "checkpoints" / "last.pt"
    ck = torch.load(last, weights_only=False)
    ck.pop("format_version")
    torch.save(ck, last)
    with pytest.raises(RunError, match=r"format 1; this code reads format 2: the last commit "
                                       r"that can resume it is 5d4c92f"):
        run(tmp_path, resume=True)
    # and a config.json of another format, before anything is touched
    before = (tmp_path / "results.json").read_bytes()
    (tmp_path / "config.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(RunError, match="format 1.*5d4c92f"):
        run(tmp_path, resume=True)
    assert (tmp_path / "results.json").read_bytes() == before
    (tmp_path / "config.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(RunError, match="format 99.*no commit"):
        run(tmp_path, resume=True)
    with pytest.raises(RunError, match="is a file"):
        run(tmp_path / "results.json")


def test_corrupt_checkpoint_is_named_and_the_advice_works(tmp_path):
    _, full = run(tmp_path / "full", checkpoint_every=2)
    with pytest.raises(Crash):
        run(tmp_path / "cut", learner=crashing_at(1, 3), checkpoint_every=2)
    last = tmp_path / "cut" / "checkpoints" / "last.pt"
    last.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=r"unreadable .*copy .*task0\.pt over it"):
        run(tmp_path / "cut", resume=True, checkpoint_every=2)
    last.write_bytes((tmp_path / "cut" / "checkpoints" / "task0.pt").read_bytes())
    _, resumed = run(tmp_path / "cut", resume=True, checkpoint_every=2)
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]


def test_nothing_to_resume_says_how_to_start_again(tmp_path):
    with pytest.raises(Crash):
        run(tmp_path, learner=crashing_at(0, 0), checkpoint_every=2)
    with pytest.raises(RunError, match="before its first checkpoint.*delete"):
        run(tmp_path, resume=True, checkpoint_every=2)


def test_nan_stops_and_keeps_checkpoint(tmp_path):
    with pytest.raises(NaNLossError, match="non-finite|nan"):
        run(tmp_path, learner=ToyLearner(nan_at=(1, 2)))
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"].startswith("failed")
    assert (tmp_path / "checkpoints" / "last.pt").exists()   # the task-0 checkpoint survives


def test_run_folder_is_locked_while_a_run_holds_it(tmp_path):
    import os
    run(tmp_path)                                  # finished: its lock was released
    before = (tmp_path / "results.json").read_bytes()
    holder = RunFolder(tmp_path)
    holder.open(CONFIG, resume=True)               # e.g. a background run still going
    with pytest.raises(RunError, match=rf"in use by another process \(pid {os.getpid()}\)"):
        run(tmp_path, resume=True)
    assert (tmp_path / "results.json").read_bytes() == before      # nothing touched
    holder.close()
    again = RunFolder(tmp_path)
    again.open(CONFIG, resume=True)                # free again
    again.close()


def test_results_follow_every_periodic_checkpoint(tmp_path):
    """A run killed mid-task (no chance to write anything) still leaves results.json as of its
    last periodic checkpoint, e.g. for reading a long background run's evaluation curve."""
    with pytest.raises(Crash):
        run(tmp_path, learner=crashing_at(0, 5), eval_every=2, checkpoint_every=4)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "running" and res["global_step"] == 4 * 16
    assert [p["unit"] for p in res["eval_curve"]] == [2, 4]
    assert res["tasks_completed"] == 0


class SignalToy(ToyLearner):
    """Sends itself a signal in unit 1 of task 0, as Ctrl-C or a scheduler's SIGTERM would."""

    def __init__(self, sig, **kw):
        super().__init__(**kw)
        self.sig = sig

    def _indices(self, task, unit):
        if (task, unit) == (0, 1):
            import os
            os.kill(os.getpid(), self.sig)
        return super()._indices(task, unit)


class TwoSigterms(ToyLearner):
    """Gets SIGTERM twice in unit 1 of task 0, as a run whose multi-threaded parent died does
    (its death signal comes once per thread of the parent)."""

    def _indices(self, task, unit):
        if (task, unit) == (0, 1):
            import os
            import signal
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)                         # the first one handled
            os.kill(os.getpid(), signal.SIGTERM)
        return super()._indices(task, unit)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_save_after_the_current_unit(tmp_path, capsys, signame):
    import signal
    sig = getattr(signal, signame)
    before = signal.getsignal(sig)
    _, full = run(tmp_path / "full", eval_every=1, checkpoint_every=4)
    _, cut = run(tmp_path / "cut", learner=SignalToy(sig), eval_every=1, checkpoint_every=4)
    assert signal.getsignal(sig) == before                    # the handler is put back
    assert f"{signame}: finishing the current unit" in capsys.readouterr().out
    assert cut["status"] == "interrupted" and cut["global_step"] == 2 * 16    # not unit 4
    _, resumed = run(tmp_path / "cut", resume=True, eval_every=1, checkpoint_every=4)
    assert resumed["status"] == "complete"
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]
    assert [c["score"] for c in resumed["eval_curve"]] == [c["score"] for c in full["eval_curve"]]


def test_a_repeated_sigterm_still_saves_and_a_second_ctrl_c_stops_at_once(tmp_path):
    _, cut = run(tmp_path / "term", learner=TwoSigterms(), eval_every=1, checkpoint_every=4)
    assert cut["status"] == "interrupted" and cut["global_step"] == 2 * 16
    import signal

    class TwoCtrlC(TwoSigterms):
        def _indices(self, task, unit):
            if (task, unit) == (0, 1):
                import os
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGINT)
            return ToyLearner._indices(self, task, unit)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "int", learner=TwoCtrlC(), eval_every=1, checkpoint_every=4)


def test_each_session_of_a_run_is_recorded(tmp_path, monkeypatch, capsys):
    from continual import provenance
    with pytest.raises(Crash):
        run(tmp_path, learner=crashing_at(1, 3), checkpoint_every=2)
    first = provenance.session(0)
    changed = dict(first, commit="0" * 40, packages=dict(first["packages"], torch="9.9"))
    monkeypatch.setattr(provenance, "session", lambda step: dict(changed, from_step=step))
    _, res = run(tmp_path, resume=True, checkpoint_every=2)
    s = res["sessions"]
    assert [x["from_step"] for x in s] == [0, (6 + 2) * 16]     # task 0 done + 2 units of task 1
    assert s[0]["commit"] == first["commit"] and s[0]["packages"]["torch"] == torch.__version__
    out = capsys.readouterr().out
    assert "warning: resuming" in out and "torch" in out and "9.9 now" in out
    assert "code commit" in out and "0000000000 now" in out


def test_provenance_names_what_changed():
    from continual.provenance import differs
    a = {"commit": "abc", "dirty": False, "packages": {"torch": "2.13.0", "ale-py": "0.12.1"}}
    assert differs(a, dict(a)) == []
    assert differs(a, dict(a, dirty=True)) == ["the code has uncommitted changes"]
    assert differs(a, dict(a, packages={"torch": "2.13.0", "ale-py": "0.11"})) == \
        ["ale-py 0.12.1 then, 0.11 now"]
    assert differs(dict(a, torch_threads=1), dict(a, torch_threads=2)) == \
        ["torch threads 1 then, 2 now"]
    # a build tag only one side records (metadata vs torch.__version__) is not a change
    tag = {"torch": "2.13.0+cpu", "ale-py": "0.12.1"}
    assert differs(a, dict(a, packages=tag)) == []
    assert differs(dict(a, packages=tag), dict(a, packages={**tag, "torch": "2.13.0+cu130"})) \
        == ["torch 2.13.0+cpu then, 2.13.0+cu130 now"]


class SlowLearner(ToyLearner):
    def train_unit(self, task, unit, reg):
        import time
        time.sleep(0.1)
        return super().train_unit(task, unit, reg)


def test_task_seconds_of_a_resumed_task_include_the_time_before_the_interruption(tmp_path):
    slow = SlowLearner()
    orig = slow.train_unit

    def crashing(t, u, reg):
        if (t, u) == (1, 3):
            raise Crash()
        return orig(t, u, reg)

    slow.train_unit = crashing
    with pytest.raises(Crash):
        run(tmp_path, learner=slow, checkpoint_every=2)
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert ck["trainer"]["task_clock"] >= 0.2                  # units 0-1 of task 1
    _, res = run(tmp_path, resume=True, learner=SlowLearner(), checkpoint_every=2)
    assert res["task_seconds"][1] >= 0.2 + 4 * 0.1            # + units 2-5 after the resume
