"""Every number of a run in one place: the learners' configs, the vision presets, and each
regularizer's strengths per benchmark (a game stream's PPO presets are its module's PRESETS,
``envs/streams.py``).

A dataclass field's default is the base value; a preset names only what it changes. Each field
carries its help text (``metadata["help"]``), from which the CLI builds its flags.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from envs import streams
from envs.vision import BENCHMARKS


def knob(default, help: str, **kw):
    """A config field with its help text (shown by ``--help``)."""
    return field(default=default, metadata={"help": help, **kw})


def replace_checked(cls, base: dict, overrides: dict, where: str | None = None):
    """``cls(**base, **overrides)``, refusing a key that is not one of its fields."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{where or cls.__name__} has no field {', '.join(unknown)}; fields: "
                         f"{', '.join(sorted(names))}")
    return cls(**{**base, **overrides})


class BoolOrAuto:
    """A field's kind for the CLI (``metadata["kind"]``): true, false or auto."""


# --- PPO (agents/ppo.py) ---------------------------------------------------------------------
@dataclass
class PPOConfig:
    """PPO's hyperparameters; the defaults are the ``cpu`` preset (CleanRL's ppo_atari.py)."""
    preset: str = knob("cpu", "PPO preset: the stream's named settings (each game stream's "
                              "PRESETS, envs/)")
    num_envs: int = knob(8, "parallel training games")
    num_steps: int = knob(128, "env steps per game per rollout")
    update_epochs: int = knob(4, "passes over each rollout")
    num_minibatches: int = knob(4, "minibatches per pass")
    lr: float = knob(2.5e-4, "Adam learning rate at a task's start")
    anneal_lr: bool = knob(True, "anneal the learning rate linearly to 0 within each task")
    adam_eps: float = knob(1e-5, "Adam epsilon")
    gamma: float = knob(0.99, "discount factor")
    gae_lambda: float = knob(0.95, "GAE lambda")
    clip_coef: float = knob(0.1, "PPO clip range of the ratio (and of the value change)")
    clip_vloss: bool = knob(True, "clip the value loss as PPO's reference code does")
    vf_coef: float = knob(0.5, "value-loss coefficient")
    ent_coef: float = knob(0.01, "entropy-bonus coefficient")
    max_grad_norm: float = knob(0.5, "global gradient-norm clip (after reg.before_step)")
    norm_adv: bool = knob(True, "normalise advantages per minibatch")
    target_kl: float | None = knob(None, "stop a unit's epochs once approx. KL exceeds this")
    steps_per_task: int = knob(1_000_000, "env steps per game")
    arch: str = knob("nature", "network (agents/ppo.py's NETWORKS): one the stream reads "
                               "(its NETWORKS, envs/)")
    seed: int = knob(1, "seed of the model, the games and every random draw")
    # Games capped at 10k agent steps (40k frames) on the CPU to bound evaluation time: long
    # games score lower than under the usual 27k cap of `paper`.
    eval_episodes: int = knob(10, "full games per evaluation of each seen game")
    eval_max_steps: int = knob(10_000, "agent-step cap of an evaluation game")
    eval_sampled: bool = knob(True, "also evaluate with sampled actions (score_sampled)")
    importance_steps: int = knob(0, "env steps of end-of-task importance data (0: one rollout)")
    importance_batch_size: int = knob(32, "batch size of the importance data")
    channels_last: bool = knob(True, "channels-last activations in the update (faster on CPU)")
    # bf16 pays only where the CPU has BF16 instructions (AVX-512-BF16, AMX); elsewhere it is
    # emulated and many times slower. 'auto' is resolved once, by resolve_bf16.
    bf16: bool | str = knob("auto", "bfloat16 autocast of the model's forward passes (losses, "
                                    "optimizer and regularizers stay float32): true, false, or "
                                    "auto = on where the CPU has AVX512-BF16 or AMX-BF16, off "
                                    "elsewhere (GPUs included); config.json records which",
                          kind=BoolOrAuto)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @classmethod
    def from_preset(cls, name: str = "cpu", **overrides) -> "PPOConfig":
        presets = ppo_presets()
        if name not in presets:
            raise ValueError(f"unknown PPO preset {name!r}; choose one of: {', '.join(presets)}")
        return replace_checked(cls, {**presets[name], "preset": name}, overrides).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> "PPOConfig":
        def need(ok: bool, what: str):
            if not ok:
                raise ValueError(f"bad PPO config: {what}")
        for k in ("num_envs", "num_steps", "update_epochs", "num_minibatches", "steps_per_task",
                  "eval_episodes", "eval_max_steps", "importance_batch_size"):
            v = getattr(self, k)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                 f"{k}={v!r} must be an integer >= 1")
        need(isinstance(self.importance_steps, int) and self.importance_steps >= 0,
             f"importance_steps={self.importance_steps!r} must be an integer >= 0")
        need(self.batch_size % self.num_minibatches == 0,
             f"num_envs * num_steps = {self.batch_size} must be divisible by num_minibatches="
             f"{self.num_minibatches}")
        need(self.minibatch_size >= 2, f"minibatch size {self.minibatch_size} must be >= 2")
        for k in ("lr", "adam_eps", "clip_coef", "max_grad_norm"):
            v = float(getattr(self, k))
            need(math.isfinite(v) and v > 0, f"{k}={getattr(self, k)!r} must be > 0")
        for k in ("gamma", "gae_lambda"):
            v = float(getattr(self, k))
            need(0 <= v <= 1, f"{k}={getattr(self, k)!r} must be in [0, 1]")
        for k in ("vf_coef", "ent_coef"):
            v = float(getattr(self, k))
            need(math.isfinite(v) and v >= 0, f"{k}={getattr(self, k)!r} must be >= 0")
        need(self.target_kl is None or float(self.target_kl) > 0,
             f"target_kl={self.target_kl!r} must be None or > 0")
        need(isinstance(self.bf16, bool) or self.bf16 == "auto",
             f"bf16={self.bf16!r} must be true, false or auto")
        for k in ("channels_last", "anneal_lr", "clip_vloss", "norm_adv", "eval_sampled"):
            v = getattr(self, k)
            need(isinstance(v, bool), f"{k}={v!r} must be true or false")
        need(self.arch in streams.networks(),
             f"arch={self.arch!r} must be one of {', '.join(streams.networks())}")
        return self


CPUINFO = "/proc/cpuinfo"


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this machine's CPU computes bfloat16 natively: the AVX512-BF16 or AMX-BF16 flag
    in Linux's /proc/cpuinfo (``cpuinfo``: another file of its format; elsewhere: False)."""
    try:
        with open(cpuinfo or CPUINFO) as f:
            text = f.read()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", text) is not None


def resolve_bf16(bf16: bool | str, device: str) -> bool:
    """PPOConfig.bf16 as a run uses it: 'auto' is on for a CPU with native bf16 and off on
    any other device (bf16's effect on learning was measured on such a CPU only:
    docs/RESULTS.md); true and false stay."""
    if bf16 == "auto":
        return str(device).split(":")[0] == "cpu" and native_bf16()
    return bool(bf16)


def ppo_presets() -> dict[str, dict[str, Any]]:
    """The PPO presets: each game stream's own (its module's ``PRESETS``, envs/streams.py)."""
    return streams.presets()


# --- supervised classifier (agents/classifier.py) ----------------------------------------------
@dataclass
class ClassifierConfig:
    """The supervised learner's settings; the defaults are the published setup (Adam 1e-3,
    batch 256, lr / 3 after 5 epochs without a validation improvement, best weights restored)."""
    benchmark: str = knob("split_digits", f"the task stream: {' | '.join(BENCHMARKS)}")
    preset: str = knob("published", "published | quick (a smoke run)")
    network: str | None = knob(None, "network (agents/vision_nets.py); default: the benchmark's")
    epochs: int = knob(20, "epochs per task")
    batch_size: int = knob(256, "training batch size")
    eval_batch_size: int = knob(1024, "evaluation batch size")
    optimizer: str = knob("adam", "adam | sgd")
    lr: float = knob(1e-3, "learning rate at a task's start")
    momentum: float = knob(0.9, "SGD momentum")
    weight_decay: float = knob(0.0, "weight decay")
    lr_factor: float = knob(3.0, "divide the lr by this after lr_patience epochs without a "
                                 "validation-loss improvement")
    lr_patience: int = knob(5, "epochs without improvement before the lr decays")
    reset_optimizer_on_decay: bool = knob(True, "a fresh optimizer at each lr decay (as the "
                                                "published code)")
    restore_best: bool = knob(True, "restore the best-validation weights at a task's end")
    clip_grad: float | None = knob(None, "gradient-norm clipping after reg.before_step")
    hat: bool = knob(False, "the network with HAT gates (set by --regularizer hat)", cli=False)
    hat_s_max: float = knob(400.0, "HAT's s_max for the gates")
    pretrained: str | None = knob(None, "CUB-200: torchvision-format ResNet-18 state_dict file")
    mlp_hidden: tuple[int, ...] = knob((100, 100), "split_digits MLP: hidden widths")
    seed: int = knob(0, "seed of the task split, the model and every random draw")

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

    @classmethod
    def from_preset(cls, benchmark: str, name: str = "published", **overrides) -> "ClassifierConfig":
        if benchmark not in VISION_PRESETS:
            raise ValueError(f"unknown benchmark {benchmark!r}; choose one of: "
                             f"{', '.join(BENCHMARKS)}")
        if name not in VISION_PRESETS[benchmark]:
            raise ValueError(f"unknown preset {name!r} for {benchmark}; choose one of: "
                             f"{', '.join(VISION_PRESETS[benchmark])}")
        base = {"benchmark": benchmark, "preset": name, **VISION_PRESETS[benchmark][name]}
        return replace_checked(cls, base, overrides)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["mlp_hidden"] = list(self.mlp_hidden)
        return d


# Published supervised setup (Jung et al. 2020): 100 epochs per task. CUB-200: the published
# large-scale code used SGD (momentum 0.9, lr 0.005, batch 128), 40 epochs. split_digits is
# ours (no published setting).
_CUB = {"optimizer": "sgd", "lr": 0.005, "momentum": 0.9}
VISION_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "split_cifar100": {"published": {"epochs": 100}, "quick": {"epochs": 10}},
    "cifar10_100": {"published": {"epochs": 100}, "quick": {"epochs": 10}},
    "omniglot": {"published": {"epochs": 100}, "quick": {"epochs": 20}},
    "cub200": {"published": {"epochs": 40, "batch_size": 128, "eval_batch_size": 256, **_CUB},
               "quick": {"epochs": 5, "batch_size": 64, "eval_batch_size": 128, **_CUB}},
    "split_digits": {"published": {"epochs": 20, "batch_size": 64},
                     "quick": {"epochs": 5, "batch_size": 64}},
}


# --- regularizer strengths per benchmark -------------------------------------------------------
# Keys are each regularizer's own hyperparameter names (its constructor's signature, validated
# by regularizers.make); a method missing here runs with its constructor's defaults.
#
# The game streams (every stream of envs/streams.py): the paper's Atari values (Jung et al.
# 2020): AGS-CL mu 0.1, lam 100; EWC lam 5000. Our EWC's Fisher is the per-sample one of the
# policy's own actions; the published RL code scaled its own differently, so lam 5000 is a
# starting point, not a match. On MinAtar they are untuned starting points.
_RL_AGSCL = {"mu": 0.1, "lam": 100.0, "eta": 0.9, "rho": 1.0, "prox": "step"}
_RL = {"agscl": _RL_AGSCL, "ewc": {"lam": 5000.0},
       "ewc_online": {"lam": 5000.0, "gamma": 0.9}}

# The game streams' named strength sets (``--reg-preset``). 'paper' (the default) is the paper's
# equations with the proximal step after every PPO minibatch (Algorithm 1). 'lab' is AGS-CL as
# the authors' RL code ran it (sangwon-jung94/AGS-CL: `approaches/ppo_gs.py`, `main_rl.py`,
# the README's `--gs-mu 0.1 --gs-lamb 1000`): the proximal step once per PPO epoch, Omega scaled
# by 400/19 (its gs_cal_rl loop), no hard freeze (its freeze mask was applied to the old copy
# of the model), (I.2) over every Omega == 0 node with rho 1.0 (PPO_GS's gamma = 1.0). main_rl.py
# passes only mu and lamb to PPO_GS, so eta is its constructor's 0.9: the 1.0 of
# `arguments_rl.py`'s --gs-eta (like its --gs-mu 0.5, --gs-lamb 100 and --gs-rho) never reaches
# the method. The other methods have one published RL setting (EWC lam 5000): 'lab' = 'paper'.
LAB_RL_OMEGA_SCALE = 400.0 / 19.0      # = regularizers.agscl.LAB_RL_OMEGA_SCALE (tested)
_LAB_AGSCL = {"mu": 0.1, "lam": 1000.0, "eta": 0.9, "rho": 1.0, "prox": "epoch",
              "reinit_from": "unimportant", "hard_freeze": False,
              "omega_scale": LAB_RL_OMEGA_SCALE}
REG_PRESETS = {"paper": "the paper's equations, proximal step after every PPO minibatch",
               "lab": "AGS-CL as the authors' RL code ran it (prox per PPO epoch, Omega x 400/19, "
                      "no hard freeze, (I.2) on all of G0, mu 0.1, lam 1000)"}
_RL_LAB = {**_RL, "agscl": _LAB_AGSCL}

# Vision (Jung et al. 2020; the published AGS-CL values were tuned with the proximal step once
# per epoch). AGS-CL's (I.2) draws its rho fraction from the paper's candidates (zero-norm G0
# nodes); the published code, for which these rho were tuned, drew from all of G0:
# reinit_from='unimportant' reproduces that. split_digits values are ours and untuned.
_VISION_AGSCL = {
    "split_cifar100": {"lam": 400.0, "mu": 10.0, "rho": 0.3},
    "cifar10_100": {"lam": 7000.0, "mu": 20.0, "rho": 0.2},
    "omniglot": {"lam": 1000.0, "mu": 7.0, "rho": 0.5},
    "cub200": {"lam": 1.5, "mu": 0.5, "rho": 0.1},
    "split_digits": {"lam": 100.0, "mu": 1.0, "rho": 0.3},
}
_VISION_BASELINES = {   # EWC lam, SI c, RWALK lam, MAS lam (the lab's values)
    "split_cifar100": (12000.0, 1.0, 8.0, 3.0),
    "cifar10_100": (25000.0, 0.9, 4.0, 1.0),
    "omniglot": (100000.0, 8.0, 3000.0, 10.0),
    "cub200": (300000.0, 50.0, 300.0, 50.0),
    "split_digits": (1000.0, 1.0, 1.0, 1.0),
}


def _vision(bench: str) -> dict[str, dict[str, Any]]:
    ewc, si, rwalk, mas = _VISION_BASELINES[bench]
    return {
        "agscl": {**_VISION_AGSCL[bench], "eta": 0.9, "prox": "epoch"},
        # the lab's Fisher: squared gradients of 20-sample means (utils.fisher_matrix_diag),
        # ~1/20 of the per-sample Fisher, averaged over tasks (update_fisher); its lam goes
        # with that estimate and that merge
        "ewc": {"lam": ewc, "fisher_batch": 20, "merge": "mean"},
        "ewc_online": {"lam": ewc, "fisher_batch": 20, "gamma": 0.9},
        # the lab's SI integrates the penalised loss's gradient; its c goes with that
        "si": {"c": si, "epsilon": 0.01, "path_gradient": "total"},
        # the lab's RWALK did not normalise F and s, so its lam only fits normalize=False
        "rwalk": {"lam": rwalk, "alpha": 0.9, "normalize": False},
        # the lab's MAS penalty had a 1/2 that ours (the paper's) has not: lam halved; its
        # importance was |gradient| of the summed un-squared output norms of 20-sample batches
        # (estimator='lab'), and the lab's lam goes with that estimate
        "mas": {"lam": mas / 2, "estimator": "lab"},
        "hat": {"lam": 0.75, "s_max": 400.0},
    }


VISION_STRENGTHS: dict[str, dict[str, dict[str, Any]]] = {b: _vision(b) for b in BENCHMARKS}

# the AGS-CL ablations run with AGS-CL's strengths
_SAME_AS = {"agscl_no_reinit": "agscl", "agscl_no_randinit": "agscl",
            "agscl_no_zeroinit": "agscl"}


def strengths(benchmark: str, regularizer: str, preset: str = "paper") -> dict[str, Any]:
    """The default hyperparameters of ``regularizer`` on ``benchmark`` (a game stream or a
    vision benchmark), a copy; {} where the constructor's defaults apply. ``preset``: one of
    ``REG_PRESETS`` (the game streams only)."""
    game = benchmark in streams.STREAMS
    if not game and benchmark not in VISION_STRENGTHS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of: "
                         f"{', '.join([*streams.STREAMS, *VISION_STRENGTHS])}")
    if preset not in REG_PRESETS:
        raise ValueError(f"unknown regularizer preset {preset!r}; choose one of: "
                         f"{', '.join(REG_PRESETS)}")
    if "+" in regularizer:      # a stack: its stability method's strengths (the plasticity
        out: dict[str, Any] = {}        # methods' defaults are their constructors')
        for part in regularizer.split("+"):
            out.update(strengths(benchmark, part.strip(), preset))
        return out
    table = _RL if game else VISION_STRENGTHS[benchmark]
    if preset == "lab":
        if not game:
            raise ValueError(f"regularizer preset 'lab' is the authors' RL code's; the vision "
                             f"benchmark {benchmark!r} has one set (agents/config.py)")
        table = _RL_LAB
    return dict(table.get(_SAME_AS.get(regularizer, regularizer), {}))
