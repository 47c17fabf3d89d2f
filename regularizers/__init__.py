"""Continual-learning regularizers behind one hook interface (see ``base.Regularizer``).

    reg = regularizers.make("agscl", model, seed=0, mu=0.1, lam=100)

``make`` raises ValueError for an unknown name or a bad hyperparameter. ``seed`` is the run's
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
}

NAMES = tuple(_REGISTRY)

# Constructor arguments that are not hyperparameters: the network, and the run's seed.
_NOT_HYPERPARAMETERS = ("self", "model", "seed")


def get_class(name: str) -> type[Regularizer]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown regularizer {name!r}; choose one of: {', '.join(NAMES)}")
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def hyperparameters(name: str) -> dict:
    """The hyperparameters ``make(name, ...)`` accepts, with their defaults."""
    cls = get_class(name)
    fixed = _REGISTRY[name][2]
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if k not in _NOT_HYPERPARAMETERS and k not in fixed
            and p.kind is not p.VAR_KEYWORD and p.default is not p.empty}


def describe(name: str) -> dict[str, str]:
    """What each hyperparameter of ``name`` means (the class's ``HELP``), for --help."""
    cls = get_class(name)
    return {k: cls.HELP.get(k, k) for k in hyperparameters(name)}


def network_options(name: str) -> dict:
    """What method ``name`` needs the network built with (its class's ``NETWORK``; HAT:
    {"hat": True}), for whoever builds the model."""
    return dict(get_class(name).NETWORK)


def make(name: str, model: nn.Module, seed: int = 0, **hparams) -> Regularizer:
    """Regularizer ``name`` on ``model`` with ``hparams``; ``seed`` seeds the method's own
    random draws where its constructor takes one."""
    cls = get_class(name)
    fixed = _REGISTRY[name][2]
    accepted = hyperparameters(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise ValueError(f"regularizer {name!r} has no hyperparameter {', '.join(unknown)}; "
                         f"accepted: {', '.join(accepted) or '(none)'}")
    if "seed" in inspect.signature(cls.__init__).parameters:
        hparams = dict(hparams, seed=seed)
    reg = cls(model, **fixed, **hparams)
    reg.name = name
    return reg


__all__ = ["describe", "make", "NAMES", "Regularizer", "get_class", "hyperparameters",
           "network_options"]
