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
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from envs.vision import BENCHMARKS, DEFAULT_NETWORK, TaskStream

from .vision_nets import build_model


@dataclass
class ClassifierConfig:
    benchmark: str = "split_digits"
    network: str | None = None          # None: the benchmark's network (envs.vision.DEFAULT_NETWORK)
    epochs: int = 20
    batch_size: int = 256
    eval_batch_size: int = 1024
    optimizer: str = "adam"             # 'adam' | 'sgd'
    lr: float = 1e-3
    momentum: float = 0.9               # sgd only
    weight_decay: float = 0.0
    lr_factor: float = 3.0
    lr_patience: int = 5
    reset_optimizer_on_decay: bool = True
    restore_best: bool = True
    clip_grad: float | None = None      # gradient-norm clipping after reg.before_step()
    hat: bool = False                   # build the network with HAT gates (regularizer 'hat')
    hat_s_max: float = 400.0
    pretrained: str | None = None       # ResNet-18: torchvision-format state_dict file
    mlp_hidden: tuple[int, ...] = (100, 100)
    seed: int = 0

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {self.benchmark!r}; choose one of: "
                             f"{', '.join(BENCHMARKS)}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer={self.optimizer!r} must be 'adam' or 'sgd'")
        for name, lo in (("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1),
                         ("lr_patience", 1)):
            if int(getattr(self, name)) < lo:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= {lo}")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} must be > 0")
        if not self.lr_factor >= 1:
            raise ValueError(f"lr_factor={self.lr_factor!r} must be >= 1")
        self.mlp_hidden = tuple(int(h) for h in self.mlp_hidden)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mlp_hidden"] = list(self.mlp_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"ClassifierConfig has no field {', '.join(unknown)}")
        return cls(**d)


# Published supervised setup (reference facts): Adam lr 1e-3, batch 256, 100 epochs per task,
# lr / 3 after 5 epochs without validation improvement, best weights restored. CUB-200: the
# published large-scale code used SGD (momentum 0.9, lr 0.005 for CUB, batch 128), 40 epochs.
# split_digits is ours (no published setting). 'quick' presets are for smoke runs.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "split_cifar100": {"published": {"epochs": 100},
                       "quick": {"epochs": 10}},
    "cifar10_100": {"published": {"epochs": 100},
                    "quick": {"epochs": 10}},
    "omniglot": {"published": {"epochs": 100},
                 "quick": {"epochs": 20}},
    "cub200": {"published": {"epochs": 40, "optimizer": "sgd", "lr": 0.005, "momentum": 0.9,
                             "batch_size": 128, "eval_batch_size": 256},
               "quick": {"epochs": 5, "optimizer": "sgd", "lr": 0.005, "momentum": 0.9,
                         "batch_size": 64, "eval_batch_size": 128}},
    "split_digits": {"published": {"epochs": 20, "batch_size": 64},
                     "quick": {"epochs": 5, "batch_size": 64}},
}

# Regularizer strengths per benchmark, for the CLI's defaults (reference facts; published
# AGS-CL values were tuned with the proximal step once per epoch). Keys are the regularizers'
# hyperparameter names: AGS-CL lam/mu/rho/eta/prox, EWC lam, SI c/epsilon, RWALK lam/alpha,
# MAS lam, HAT lam (its c)/s_max. split_digits values are ours and untuned. AGS-CL's (I.2)
# draws its rho fraction from the paper's candidates (zero-norm G0 nodes, reinit_from=
# 'zero_norm'); the published code, for which these rho were tuned, drew from all of G0:
# `--hp reinit_from=unimportant` reproduces that.
_AGSCL = {
    "split_cifar100": {"lam": 400.0, "mu": 10.0, "rho": 0.3, "eta": 0.9, "prox": "epoch"},
    "cifar10_100": {"lam": 7000.0, "mu": 20.0, "rho": 0.2, "eta": 0.9, "prox": "epoch"},
    "omniglot": {"lam": 1000.0, "mu": 7.0, "rho": 0.5, "eta": 0.9, "prox": "epoch"},
    "cub200": {"lam": 1.5, "mu": 0.5, "rho": 0.1, "eta": 0.9, "prox": "epoch"},
    "split_digits": {"lam": 100.0, "mu": 1.0, "rho": 0.3, "eta": 0.9, "prox": "epoch"},
}
_BASELINES = {   # EWC lam, SI c, RWALK lam, MAS lam
    "split_cifar100": (12000.0, 1.0, 8.0, 3.0),
    "cifar10_100": (25000.0, 0.9, 4.0, 1.0),
    "omniglot": (100000.0, 8.0, 3000.0, 10.0),
    "cub200": (300000.0, 50.0, 300.0, 50.0),
    "split_digits": (1000.0, 1.0, 1.0, 1.0),
}


def _recommended(bench: str) -> dict[str, dict[str, Any]]:
    ewc, si, rwalk, mas = _BASELINES[bench]
    ags = _AGSCL[bench]
    return {
        "finetune": {},
        "agscl": dict(ags), "agscl_no_reinit": dict(ags), "agscl_no_randinit": dict(ags),
        "agscl_no_zeroinit": dict(ags),
        # the lab's Fisher: squared gradients of 20-sample means (utils.fisher_matrix_diag),
        # ~1/20 of the per-sample Fisher; its lam goes with that estimate
        "ewc": {"lam": ewc, "fisher_batch": 20},
        "ewc_online": {"lam": ewc, "fisher_batch": 20, "gamma": 0.9},
        "si": {"c": si, "epsilon": 0.01},
        # the lab's RWALK did not normalise F and s, so its lam only fits normalize=False
        "rwalk": {"lam": rwalk, "alpha": 0.9, "normalize": False},
        # the lab's MAS penalty had a 1/2 that ours (the paper's) has not: lam halved; and its
        # importance was another quantity (|gradient| of the summed un-squared output norms of
        # 20-sample batches), which estimator='lab' computes: the lab's lam goes with that
        "mas": {"lam": mas / 2, "estimator": "lab"},
        "hat": {"lam": 0.75, "s_max": 400.0},
    }


RECOMMENDED_HPARAMS: dict[str, dict[str, dict[str, Any]]] = {b: _recommended(b) for b in BENCHMARKS}


def recommended_hyperparameters(benchmark: str, regularizer: str) -> dict[str, Any]:
    """Default hyperparameters of ``regularizer`` on ``benchmark`` (a copy; {} if none known).
    The CLI should drop keys that ``regularizers.hyperparameters(name)`` does not accept."""
    if benchmark not in RECOMMENDED_HPARAMS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    return dict(RECOMMENDED_HPARAMS[benchmark].get(regularizer, {}))


def preset(benchmark: str, name: str = "published", regularizer: str | None = None,
           **overrides) -> ClassifierConfig:
    """The benchmark's preset config; ``regularizer='hat'`` turns on the model's HAT gates."""
    if benchmark not in PRESETS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    if name not in PRESETS[benchmark]:
        raise ValueError(f"unknown preset {name!r} for {benchmark}; choose one of: "
                         f"{', '.join(PRESETS[benchmark])}")
    values = {"benchmark": benchmark, **PRESETS[benchmark][name]}
    if regularizer == "hat":
        values["hat"] = True
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ClassifierConfig.from_dict(values)


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
            pen = reg.penalty()
            total = loss + pen
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            reg.before_step()
            if c.clip_grad:
                nn.utils.clip_grad_norm_(self.model.parameters(), c.clip_grad)
            self.optimizer.step()
            reg.after_step(self.lr)
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

    def checkpoint_boundary(self) -> None:
        pass

    def checkpoint_anywhere(self) -> bool:
        return True

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


def make_learner(stream: TaskStream, config: ClassifierConfig,
                 device: str | torch.device = "cpu") -> ClassifierLearner:
    return ClassifierLearner(stream, config, device=device)


__all__ = ["ClassifierConfig", "ClassifierLearner", "PRESETS", "RECOMMENDED_HPARAMS",
           "make_learner", "preset", "recommended_hyperparameters"]
