"""Continual-learning regularizers behind one hook interface (see ``base.Regularizer``).

    reg = regularizers.make("agscl", model, seed=0, mu=0.1, lam=100)
    reg = regularizers.make("ewc+redo", model, seed=0, lam=5000, redo_tau=0.025)   # a stack

Two kinds of method: stability methods (forgetting: ``finetune``, EWC, SI, MAS, RWALK, HAT,
AGS-CL) and plasticity methods (loss of plasticity: ``redo``, ``snp``, ``l2init``, ``cbp``;
their classes say ``KIND = "plasticity"``). A run names at most one stability method and any
plasticity methods joined by ``+`` (``stack.Stack``: the hooks' order); a plasticity method
alone runs on fine-tuning. A plasticity method's hyperparameters carry its name
(``redo_tau``), so they never clash with a stability method's.

``make`` raises ValueError for an unknown name or a bad hyperparameter; the regularizer it
returns holds every hyperparameter value in use, its defaults and the registry's fixed ones
included, in ``reg.hparams``. ``seed`` is the run's
seed, not a hyperparameter: it goes to the methods that draw random numbers of their own
(AGS-CL's (I.2) re-initialisation) and is ignored by the others. This package imports nothing
from the rest of the project.
"""
from __future__ import annotations

import importlib
import inspect

from torch import nn

from .base import Regularizer

# name -> (module, class, fixed keyword arguments)
_REGISTRY: dict[str, tuple[str, str, dict]] = {
    "finetune": ("finetune", "Finetune", {}),
    "agscl": ("agscl", "AGSCL", {}),
    "agscl_no_reinit": ("agscl", "AGSCL", {"reinit": "none"}),     # 'w/o re-init'
    "agscl_no_randinit": ("agscl", "AGSCL", {"reinit": "zero"}),   # 'w/o rand-init': (I.1) only
    "agscl_no_zeroinit": ("agscl", "AGSCL", {"reinit": "rand"}),   # 'w/o zero-init': (I.2) only
    "ewc": ("ewc", "EWC", {}),
    "ewc_online": ("ewc", "EWC", {"online": True}),
    "si": ("si", "SI", {}),
    "mas": ("mas", "MAS", {}),
    "rwalk": ("rwalk", "RWALK", {}),
    "hat": ("hat", "HAT", {}),
    # plasticity methods
    "redo": ("redo", "ReDo", {}),
    "snp": ("shrink_perturb", "ShrinkPerturb", {}),
    "l2init": ("l2_init", "L2Init", {}),
    "cbp": ("cbp", "ContinualBackprop", {}),
}

NAMES = tuple(_REGISTRY)

# Constructor arguments that are not hyperparameters: the network, and the run's seed.
_NOT_HYPERPARAMETERS = ("self", "model", "seed")


def get_class(name: str) -> type[Regularizer]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown regularizer {name!r}; choose one of: {', '.join(NAMES)}")
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def is_plasticity(name: str) -> bool:
    return getattr(get_class(name), "KIND", "stability") == "plasticity"


PLASTICITY = tuple(n for n in NAMES if is_plasticity(n))
STABILITY = tuple(n for n in NAMES if n not in PLASTICITY)


def parse(name: str) -> list[str]:
    """A run's method name -> its methods, stability method first: 'ewc+redo' -> ['ewc',
    'redo']; 'redo' -> ['finetune', 'redo']. ValueError for an unknown name, two stability
    methods or a method named twice."""
    parts = [p.strip() for p in str(name).split("+")]
    for p in parts:
        if p not in _REGISTRY:
            raise ValueError(f"unknown regularizer {p!r} in {name!r}; stability methods: "
                             f"{', '.join(STABILITY)}; plasticity methods: "
                             f"{', '.join(PLASTICITY)} (stack them as ewc+redo)")
    if len(set(parts)) != len(parts):
        raise ValueError(f"{name!r} names a method twice")
    stab = [p for p in parts if p not in PLASTICITY]
    if len(stab) > 1:
        raise ValueError(f"{name!r} stacks {len(stab)} stability methods ({', '.join(stab)}); "
                         f"a run takes one, plus any plasticity methods "
                         f"({', '.join(PLASTICITY)})")
    return (stab or ["finetune"]) + [p for p in parts if p in PLASTICITY]


def _own_hyperparameters(name: str) -> dict:
    cls = get_class(name)
    fixed = _REGISTRY[name][2]
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if k not in _NOT_HYPERPARAMETERS and k not in fixed
            and p.kind is not p.VAR_KEYWORD and p.default is not p.empty}


def _key(method: str, k: str) -> str:
    """A hyperparameter's name in a run: a plasticity method's carries the method's name."""
    return f"{method}_{k}" if is_plasticity(method) else k


def hyperparameters(name: str) -> dict:
    """The hyperparameters ``make(name, ...)`` accepts, with their defaults (a stack: all of
    its methods'; a plasticity method's named ``<method>_<name>``)."""
    return {_key(m, k): v for m in parse(name) for k, v in _own_hyperparameters(m).items()}


def describe(name: str) -> dict[str, str]:
    """What each hyperparameter of ``name`` means (the classes' ``HELP``), for --help."""
    out = {}
    for m in parse(name):
        cls = get_class(m)
        out.update({_key(m, k): cls.HELP.get(k, k) for k in _own_hyperparameters(m)})
    return out


def network_options(name: str) -> dict:
    """What method ``name`` needs the network built with (its classes' ``NETWORK``; HAT:
    {"hat": True}), for whoever builds the model."""
    return {k: v for m in parse(name) for k, v in get_class(m).NETWORK.items()}


def _make_one(name: str, model: nn.Module, seed: int, hparams: dict) -> Regularizer:
    cls = get_class(name)
    if "seed" in inspect.signature(cls.__init__).parameters:
        hparams = dict(hparams, seed=seed)
    reg = cls(model, **_REGISTRY[name][2], **hparams)
    reg.name = name
    return reg


def make(name: str, model: nn.Module, seed: int = 0, **hparams) -> Regularizer:
    """Regularizer ``name`` (one method, or a stack such as 'ewc+redo') on ``model`` with
    ``hparams``; ``seed`` seeds the methods' own random draws where a constructor takes one."""
    methods = parse(name)
    accepted = hyperparameters(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise ValueError(f"regularizer {name!r} has no hyperparameter {', '.join(unknown)}; "
                         f"accepted: {', '.join(accepted) or '(none)'}")
    if len(methods) == 1:
        reg = _make_one(methods[0], model, seed, hparams)
    else:
        regs = []
        for m in methods:
            mine = {k: hparams[_key(m, k)] for k in _own_hyperparameters(m)
                    if _key(m, k) in hparams}
            regs.append(_make_one(m, model, seed, mine))
        from .stack import Stack
        reg = Stack(regs)
        reg.name = name
    # every value in use: the defaults, the registry's fixed ones (ewc_online's online=True)
    # and the given ones
    fixed = {_key(m, k): v for m in methods for k, v in _REGISTRY[m][2].items()}
    reg.hparams = {**accepted, **fixed, **hparams}
    return reg


__all__ = ["describe", "make", "NAMES", "PLASTICITY", "Regularizer", "STABILITY", "get_class",
           "hyperparameters", "network_options", "parse"]
