"""The step context: a method that needs the minibatch, the model's outputs or the optimizer
is a regularizer defined here, in the test, and runs through both learners with no project
file edited."""
import copy

import torch

from agents.classifier import ClassifierLearner
from agents.config import ClassifierConfig, PPOConfig
from agents.ppo import PPOLearner
from envs.vision import make_stream
from regularizers.base import Regularizer, Step
from regularizers.groups import find_node_layers


def _tensors(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


class Distill(Regularizer):
    """Distillation toward the previous tasks' outputs (LwF-like): lam * mean squared
    difference between the model's and a frozen copy's outputs of every earlier head, on the
    step's minibatch."""
    def __init__(self, model, lam=1.0):
        super().__init__(model)
        self.lam, self.old, self.seen = lam, None, []

    def penalty(self):
        s = self.step
        assert isinstance(s, Step) and s.task == self.task
        self.seen.append((s.task, _tensors(s.outputs)[0].shape[0],
                          _tensors(s.inputs)[0].shape[0]))
        if self.old is None:
            return super().penalty()
        total = 0.0
        for j in range(s.task):
            new = _tensors(self.model(s.inputs, j))
            with torch.no_grad():
                ref = _tensors(self.old(s.inputs, j))
            total = total + sum(((a - b) ** 2).mean() for a, b in zip(new, ref))
        return self.lam * total

    def end_task(self, task, batches, loss_fn):
        self.old = copy.deepcopy(self.model).eval()


class ResetMoments(Regularizer):
    """After every step, zero Adam's moments of the first trunk layer's first unit (what a
    method that re-initialises units must do), through the step's optimizer."""
    def __init__(self, model):
        super().__init__(model)
        self.layer = find_node_layers(model)[0].module
        self.resets = 0

    def after_step(self, lr):
        st = self.step.optimizer.state[self.layer.weight]
        st["exp_avg"][0].zero_()
        st["exp_avg_sq"][0].zero_()
        self.resets += 1


def _ppo():
    cfg = PPOConfig.from_preset("minatar_tiny", update_epochs=2, num_minibatches=2)
    return PPOLearner(cfg, "Breakout,Asterix", env="minatar")


def _classifier():
    cfg = ClassifierConfig.from_preset("split_digits", "quick", epochs=1)
    return ClassifierLearner(make_stream("split_digits", seed=0, num_tasks=2), cfg)


def _two_tasks(learner, reg):
    for t in range(2):
        learner.begin_task(t)
        reg.begin_task(t)
        learner.train_unit(t, 0, reg)
        learner.end_task(t)
        reg.end_task(t, *learner.importance_data(t))


def test_a_distillation_penalty_sees_the_minibatch_and_the_outputs():
    for make in (_ppo, _classifier):
        learner = make()
        reg = Distill(learner.model, lam=2.0)
        _two_tasks(learner, reg)
        assert reg.seen and all(n_out == n_in for _, n_out, n_in in reg.seen)
        assert {t for t, _, _ in reg.seen} == {0, 1}
        # in task 1 the penalty is live: it has a gradient toward the old head-0 outputs
        reg.begin_task(1)
        x = reg.step.inputs
        out = learner.model(x, 1)
        reg.begin_step(Step(1, x, out, learner.optimizer, 0.1))
        head0 = list(learner.model.heads[0].parameters())
        with torch.no_grad():
            for q in head0:
                q += 0.5                        # move head 0 away from the frozen copy
        learner.model.zero_grad()
        p = reg.penalty()
        assert float(p.detach()) > 0
        p.backward()
        assert all(q.grad is not None and q.grad.abs().sum() > 0 for q in head0)
        getattr(learner, "close", lambda: None)()


def test_a_method_resets_optimizer_state_through_the_step():
    for make in (_ppo, _classifier):
        learner = make()
        reg = ResetMoments(learner.model)
        learner.begin_task(0)
        reg.begin_task(0)
        learner.train_unit(0, 0, reg)
        st = learner.optimizer.state[reg.layer.weight]
        assert reg.resets > 0
        assert torch.count_nonzero(st["exp_avg"][0]) == 0
        assert torch.count_nonzero(st["exp_avg"][1:]) > 0       # only the chosen unit
        getattr(learner, "close", lambda: None)()
