"""The supervised learner through a hand-written mini continual loop (the shared trainer's
order of calls, see agents/base.py)."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch

import regularizers
from agents.base import Learner
from agents.classifier import ClassifierLearner
from agents.config import VISION_PRESETS, VISION_STRENGTHS, ClassifierConfig, strengths
from envs.vision import BENCHMARKS, make_stream
from regularizers.base import Regularizer
from tests.tiny import DEVICE

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return make_stream("split_digits", seed=0, num_tasks=5)


def _learner(stream, reg_name="finetune", **over):
    over.setdefault("epochs", 3)
    over.setdefault("batch_size", 32)
    torch.manual_seed(0)
    cfg = ClassifierConfig.from_preset("split_digits", "quick", hat=reg_name == "hat", **over)
    learner = ClassifierLearner(stream, cfg, device=DEVICE)
    hp = {"agscl": dict(mu=0.5, lam=10.0, prox="epoch")}.get(reg_name, {})
    return learner, regularizers.make(reg_name, learner.model, **hp)


def run_stream(learner, reg, tasks):
    matrix = []
    for t in tasks:
        learner.begin_task(t)
        reg.begin_task(t)
        for u in range(learner.units_per_task(t)):
            scalars = learner.train_unit(t, u, reg)
            assert {"loss", "val_loss", "lr", "val_accuracy"} <= set(scalars)
        learner.end_task(t)
        batches, loss_fn = learner.importance_data(t)
        reg.end_task(t, batches, loss_fn)
        matrix.append([learner.evaluate(j)["score"] for j in range(t + 1)])
    return matrix


def test_protocol_and_two_task_run(digits):
    learner, reg = _learner(digits)
    assert isinstance(learner, Learner)
    assert learner.matrix_key == "accuracy_matrix" and learner.task_names == digits.names
    assert learner.units_per_task(0) == 3
    assert learner.steps_per_unit(1) == digits[1].y_train.numel()
    m = run_stream(learner, reg, [0, 1])
    learner.model.eval()
    for j, a in enumerate(m[1]):          # the matrix entries are test accuracies, recomputed
        x, y = digits[j].x_test, digits[j].y_test
        with torch.no_grad():
            hits = (learner.model(digits.prepare(x.to(learner.device)), j).argmax(1).cpu() == y)
        assert a == pytest.approx(float(hits.float().mean()))
    assert m[0][0] > 0.8 and m[1][1] > 0.8
    extra = learner.extra_results()
    assert extra["epochs_trained"] == 6 and extra["seconds_per_epoch"] > 0


@pytest.mark.parametrize("reg_name", ["agscl", "hat"])
def test_two_task_run_with_regularizers(digits, reg_name):
    learner, reg = _learner(digits, reg_name)
    m = run_stream(learner, reg, [0, 1])
    assert m[1][1] > 0.7 and m[1][0] > 0.7
    assert reg.task_metrics()


def test_importance_data(digits):
    learner, _ = _learner(digits, batch_size=100)
    batches, loss_fn = learner.importance_data(2)
    got = list(batches)
    assert len(got) == len(batches) == math.ceil(digits[2].y_train.numel() / 100)
    assert sum(b[1].numel() for b in got) == digits[2].y_train.numel()
    x, y = got[0]
    assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8)
    loss = loss_fn(learner.model, got[0])
    assert loss.dim() == 0 and loss.requires_grad
    assert len(list(batches)) == len(got)                 # re-iterable


def test_lr_schedule_and_best_weights(digits, monkeypatch):
    learner, reg = _learner(digits, epochs=4, lr_patience=1)
    vals = iter([1.0, 2.0, 0.5, 3.0])                       # val losses of the 4 epochs
    monkeypatch.setattr(learner, "_loss_acc", lambda t, x, y: (next(vals), 0.5))
    learner.begin_task(0)
    reg.begin_task(0)
    lrs, snapshots = [], []
    for u in range(4):
        lrs.append(learner.train_unit(0, u, reg)["lr"])
        snapshots.append({k: v.clone() for k, v in learner.model.state_dict().items()})
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3 / 3, 1e-3 / 3])
    assert learner.lr == pytest.approx(1e-3 / 9)
    learner.end_task(0)                                      # best = epoch 3 (val 0.5)
    for k, v in learner.model.state_dict().items():
        assert torch.equal(v, snapshots[2][k])


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("reg_name", ["finetune", "agscl"])
def test_exact_resume(digits, reg_name):
    """Interrupt after 2 of 4 epochs of task 1, resume in a fresh learner: same weights."""
    learner, reg = _learner(digits, reg_name, epochs=4, lr_patience=1)
    run_stream(learner, reg, [0])
    learner.begin_task(1)
    reg.begin_task(1)
    for u in range(2):
        learner.train_unit(1, u, reg)
    l_state, r_state = learner.state_dict(), reg.state_dict()
    for u in range(2, 4):
        learner.train_unit(1, u, reg)
    learner.end_task(1)
    want = _params(learner.model)

    fresh, freg = _learner(digits, reg_name, epochs=4, lr_patience=1)
    torch.manual_seed(123)                      # global RNG must not matter
    fresh.begin_task(1)
    freg.begin_task(1)
    fresh.load_state_dict(l_state)
    freg.load_state_dict(r_state)
    for u in range(2, 4):
        fresh.train_unit(1, u, freg)
    fresh.end_task(1)
    for a, b in zip(want, _params(fresh.model)):
        assert torch.equal(a, b)
    assert fresh.lr == learner.lr


def test_nan_loss_raises(digits):
    class Bad(Regularizer):
        def penalty(self):
            return torch.tensor(float("nan"))

    learner, _ = _learner(digits)
    learner.begin_task(0)
    with pytest.raises(FloatingPointError):
        learner.train_unit(0, 0, Bad(learner.model))


def test_nan_from_the_end_of_epoch_step_raises(digits):
    """A divergence in after_epoch (e.g. a once-per-epoch prox) must not hide behind the
    best-validation weights."""
    class BadEpoch(Regularizer):
        def after_epoch(self, lr):
            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))

    learner, _ = _learner(digits)
    learner.begin_task(0)
    with pytest.raises(FloatingPointError, match="validation loss"):
        learner.train_unit(0, 0, BadEpoch(learner.model))


def test_presets_and_strengths():
    for b in BENCHMARKS:
        assert ClassifierConfig.from_preset(b).benchmark == b
        assert set(VISION_STRENGTHS[b]) >= {"agscl", "ewc", "si", "rwalk", "mas", "hat"}
    for b in ("split_cifar100", "cifar10_100", "omniglot"):
        cfg = ClassifierConfig.from_preset(b)
        assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.epochs) == ("adam", 1e-3, 256, 100)
        assert (cfg.lr_factor, cfg.lr_patience) == (3.0, 5)
    cub = ClassifierConfig.from_preset("cub200")
    assert (cub.epochs, cub.optimizer, cub.lr, cub.batch_size) == (40, "sgd", 0.005, 128)
    assert strengths("split_cifar100", "agscl") == {
        "lam": 400.0, "mu": 10.0, "rho": 0.3, "eta": 0.9, "prox": "epoch"}
    assert strengths("omniglot", "agscl_no_reinit") == strengths("omniglot", "agscl")
    assert strengths("omniglot", "ewc") == {"lam": 100000.0, "fisher_batch": 20, "merge": "mean"}
    assert strengths("cub200", "si")["c"] == 50.0
    assert strengths("cifar10_100", "mas") == {"lam": 0.5, "estimator": "lab"}
    assert strengths("omniglot", "rwalk") == {"lam": 3000.0, "alpha": 0.9, "normalize": False}
    assert strengths("atari", "agscl") == {"mu": 0.1, "lam": 100.0, "eta": 0.9, "rho": 1.0,
                                           "prox": "step"}
    assert strengths("atari", "ewc") == {"lam": 5000.0} and strengths("atari", "si") == {}
    assert all(v["agscl"]["prox"] == "epoch" for v in VISION_STRENGTHS.values())
    assert ClassifierConfig.from_preset("omniglot", epochs=7).epochs == 7
    with pytest.raises(ValueError, match="unknown preset"):
        ClassifierConfig.from_preset("omniglot", "nope")
    with pytest.raises(ValueError, match="unknown benchmark"):
        ClassifierConfig.from_preset("mnist")
    with pytest.raises(ValueError, match="optimizer"):
        ClassifierConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="no field"):
        ClassifierConfig.from_preset("omniglot", epochz=3)
    assert set(VISION_PRESETS) == set(BENCHMARKS)


def test_every_strength_is_a_hyperparameter_its_method_accepts():
    """The table is validated where every hyperparameter is: regularizers.make."""
    from tests.tiny import TinyMLP
    from envs.streams import STREAMS
    for bench in [*VISION_STRENGTHS, *STREAMS]:
        for method in regularizers.NAMES:
            hp = strengths(bench, method)
            assert set(hp) <= set(regularizers.hyperparameters(method)), (bench, method)
            if method != "hat":
                regularizers.make(method, TinyMLP(), **hp)


def test_trainer_records_scores_before_training_and_report_uses_them(tmp_path):
    # Mammoth's forward transfer: FWT_j = acc on task j just before its training minus the
    # untrained model's acc on it; the trainer records both, the report subtracts them
    from analysis.supervised import run_forward_transfer
    from continual.runfolder import RunFolder
    from continual.trainer import ContinualTrainer, Schedule
    stream = make_stream("split_digits", seed=0, num_tasks=5)
    stream.tasks = stream.tasks[:3]
    learner, reg = _learner(stream, epochs=1)
    untrained = [learner.evaluate(j)["score"] for j in range(3)]
    trainer = ContinualTrainer(learner, reg, RunFolder(tmp_path / "run"), {"command": "vision"},
                               Schedule(), progress=False)
    res = trainer.run()
    before = res["before_training"]
    assert before["random_init"] == untrained
    assert before["score"][0] is None and all(v is not None for v in before["score"][1:])
    fwt = run_forward_transfer(res, 3)
    assert fwt["why_missing"] is None
    for j in (1, 2):
        assert fwt["per_task"][j] == pytest.approx(before["score"][j] - untrained[j])
    assert fwt["mean"] == pytest.approx(np.mean([fwt["per_task"][1], fwt["per_task"][2]]))
