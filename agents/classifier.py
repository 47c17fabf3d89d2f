"""Supervised classification learner for the shared continual trainer (see ``agents/base.py``).

One *unit* is one training epoch over the task's training split, with the regularizer hooks
at their documented points::

    reg.begin_epoch(num_batches)
    for each minibatch:  loss = CE + reg.penalty(); backward; reg.before_step();
                         [clip]; optimizer.step(); reg.after_step(lr)
    reg.after_epoch(lr)
    validation loss -> best-weights tracking and the plateau schedule

Schedule (the published code): a fresh optimizer per task; the learning rate is divided by
``lr_factor`` (3) after ``lr_patience`` (5) epochs without a validation-loss improvement (the
published code then started a fresh optimizer at the new rate: ``reset_optimizer_on_decay``);
``end_task`` restores the best-validation weights.

Data stay in memory as tensors (the current task's training and validation splits are moved
to the device once per task); shuffling, crops and flips draw from the learner's own
``torch.Generator`` whose state is in ``state_dict`` so that a resumed run is exact.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from envs.vision import DEFAULT_NETWORK, TaskStream

from .base import minibatch_step
from .config import ClassifierConfig
from .vision_nets import build_model


class _Batches:
    """Re-iterable (x, y) batches of one task's split, as model input on the device."""

    def __init__(self, learner: "ClassifierLearner", x: torch.Tensor, y: torch.Tensor,
                 batch_size: int):
        self.learner, self.x, self.y, self.bs = learner, x, y, batch_size

    def __len__(self) -> int:
        return math.ceil(self.y.shape[0] / self.bs)

    def __iter__(self):
        dev = self.learner.device
        for i in range(0, self.y.shape[0], self.bs):
            xb = self.learner.stream.prepare(self.x[i:i + self.bs].to(dev, non_blocking=True))
            yield xb, self.y[i:i + self.bs].to(dev, non_blocking=True)


class ClassifierLearner:
    """Implements ``agents.base.Learner`` for the supervised streams of ``envs.vision``."""

    matrix_key = "accuracy_matrix"
    # the trainer may score a task before its training (forward transfer): a test pass, cheap
    evaluates_unseen = True

    def __init__(self, stream: TaskStream, config: ClassifierConfig | None = None,
                 model: nn.Module | None = None, device: str | torch.device = "cpu"):
        self.stream = stream
        self.config = config or ClassifierConfig(benchmark=stream.benchmark)
        self.device = torch.device(device)
        self.task_names = list(stream.names)
        if model is None:
            network = self.config.network or DEFAULT_NETWORK[stream.benchmark]
            model = build_model(network, stream.class_counts, stream.input_shape,
                                hat=self.config.hat, pretrained=self.config.pretrained,
                                hat_s_max=self.config.hat_s_max,
                                mlp_hidden=self.config.mlp_hidden)
        heads = getattr(model, "heads", None)
        if not isinstance(heads, nn.ModuleList) or len(heads) != len(stream):
            raise ValueError(f"the model needs one head per task in model.heads "
                             f"({len(stream)} tasks)")
        self.model = model.to(self.device)
        self.generator = torch.Generator().manual_seed(int(self.config.seed))
        self.optimizer: torch.optim.Optimizer | None = None
        self.task: int | None = None
        self.lr = float(self.config.lr)
        self.best_val = math.inf
        self.best_state: dict | None = None
        self.bad_epochs = 0
        self.epochs_trained = 0
        self.train_seconds = 0.0
        self._data: tuple[int, tuple[torch.Tensor, ...]] | None = None

    # --- helpers -------------------------------------------------------------------------------
    def _make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        c = self.config
        params = list(self.model.parameters())
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=c.momentum, weight_decay=c.weight_decay)
        return torch.optim.Adam(params, lr=lr, weight_decay=c.weight_decay)

    def _task_data(self, task: int) -> tuple[torch.Tensor, ...]:
        if self._data is None or self._data[0] != task:
            t = self.stream[task]
            self._data = (task, tuple(v.to(self.device) for v in
                                      (t.x_train, t.y_train, t.x_val, t.y_val)))
        return self._data[1]

    @torch.no_grad()
    def _loss_acc(self, task: int, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        was = self.model.training
        self.model.eval()
        n = int(y.shape[0])
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        hits = torch.zeros((), device=self.device, dtype=torch.int64)
        try:
            for i in range(0, n, self.config.eval_batch_size):
                xb = self.stream.prepare(x[i:i + self.config.eval_batch_size].to(self.device))
                yb = y[i:i + self.config.eval_batch_size].to(self.device)
                out = self.model(xb, task)
                loss_sum += F.cross_entropy(out, yb, reduction="sum").double()
                hits += (out.argmax(1) == yb).sum()
        finally:
            self.model.train(was)
        if n == 0:
            return math.nan, math.nan
        return float(loss_sum) / n, float(hits) / n

    def _set_lr(self, lr: float) -> None:
        self.lr = lr
        if self.config.reset_optimizer_on_decay:
            self.optimizer = self._make_optimizer(lr)
        else:
            for g in self.optimizer.param_groups:
                g["lr"] = lr

    # --- Learner protocol -------------------------------------------------------------------
    def units_per_task(self, task: int) -> int:
        return int(self.config.epochs)

    def steps_per_unit(self, task: int) -> int:
        return int(self.stream[task].y_train.shape[0])

    def begin_task(self, task: int) -> None:
        if not 0 <= task < len(self.stream):
            raise IndexError(f"task {task} out of range: the stream has {len(self.stream)} tasks")
        self.task = task
        self.lr = float(self.config.lr)
        self.optimizer = self._make_optimizer(self.lr)
        self.best_val = math.inf
        self.best_state = None
        self.bad_epochs = 0

    def train_unit(self, task: int, unit: int, reg: Any) -> dict[str, float]:
        if self.task != task or self.optimizer is None:
            self.begin_task(task)
        t0 = time.perf_counter()
        c = self.config
        x, y, x_val, y_val = self._task_data(task)
        n = int(y.shape[0])
        if n == 0:
            raise ValueError(f"task {self.task_names[task]!r} has no training images")
        perm = torch.randperm(n, generator=self.generator).to(self.device)
        nb = math.ceil(n / c.batch_size)
        self.model.train()
        reg.begin_epoch(nb)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        pen_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        hits = torch.zeros((), device=self.device, dtype=torch.int64)
        for b in range(nb):
            idx = perm[b * c.batch_size:(b + 1) * c.batch_size]
            xb = self.stream.prepare(x[idx], train=True, generator=self.generator)
            yb = y[idx]
            out = self.model(xb, task)
            loss = F.cross_entropy(out, yb)
            _, pen, _ = minibatch_step(loss, reg, self.optimizer, self.model.parameters(),
                                       self.lr, c.clip_grad, task=task, inputs=xb, outputs=out)
            with torch.no_grad():
                loss_sum += loss.detach().double() * idx.numel()
                pen_sum += pen.detach().double() * idx.numel()
                hits += (out.argmax(1) == yb).sum()
        train_loss, train_pen = float(loss_sum) / n, float(pen_sum) / n
        if not (math.isfinite(train_loss) and math.isfinite(train_pen)):
            raise FloatingPointError(f"non-finite training loss ({train_loss}, penalty "
                                     f"{train_pen}) on task {task}, epoch {unit}")
        reg.after_epoch(self.lr)

        if y_val.shape[0] > 0:
            val_loss, val_acc = self._loss_acc(task, x_val, y_val)
        else:
            val_loss, val_acc = self._loss_acc(task, x, y)
        if not math.isfinite(val_loss):     # e.g. the regularizer's after_epoch step diverged
            raise FloatingPointError(f"non-finite validation loss ({val_loss}) on task {task}, "
                                     f"epoch {unit} (after the regularizer's end-of-epoch step)")
        lr_used = self.lr
        if val_loss < self.best_val:
            self.best_val = val_loss
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= c.lr_patience:
                self.bad_epochs = 0
                self._set_lr(self.lr / c.lr_factor)
        dt = time.perf_counter() - t0
        self.train_seconds += dt
        self.epochs_trained += 1
        return {"loss": train_loss, "penalty": train_pen, "accuracy": float(hits) / n,
                "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr_used,
                "epoch_seconds": dt}

    def end_task(self, task: int) -> None:
        if self.config.restore_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.best_state = None
        self._data = None

    def importance_data(self, task: int):
        t = self.stream[task]

        def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
            return F.cross_entropy(model(batch[0], task), batch[1])

        return _Batches(self, t.x_train, t.y_train, self.config.batch_size), loss_fn

    def evaluate(self, task: int) -> dict[str, float]:
        t = self.stream[task]
        _, acc = self._loss_acc(task, t.x_test, t.y_test)
        return {"score": acc}

    def extra_results(self) -> dict[str, Any]:
        return {"epochs_trained": self.epochs_trained,
                "seconds_per_epoch": (self.train_seconds / self.epochs_trained
                                      if self.epochs_trained else None),
                "classifier_config": self.config.to_dict(),
                "stream": self.stream.describe()}

    def state_dict(self) -> dict:
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": None if self.optimizer is None else copy.deepcopy(self.optimizer.state_dict()),
            "task": self.task,
            "lr": self.lr,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "generator": self.generator.get_state(),
            "epochs_trained": self.epochs_trained,
            "train_seconds": self.train_seconds,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.task = state["task"]
        self.lr = float(state["lr"])
        self.best_val = float(state["best_val"])
        bs = state.get("best_state")
        self.best_state = None if bs is None else {k: v.to(self.device) for k, v in bs.items()}
        self.bad_epochs = int(state["bad_epochs"])
        self.generator.set_state(state["generator"])
        self.epochs_trained = int(state.get("epochs_trained", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if state.get("optimizer") is not None:
            self.optimizer = self._make_optimizer(self.lr)
            self.optimizer.load_state_dict(state["optimizer"])
        else:
            self.optimizer = None
        self._data = None
