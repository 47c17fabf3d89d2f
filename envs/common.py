"""What every game stream shares: one seed derivation and the conversion of a policy's logits
to numpy. Imports nothing from ``agents``, ``regularizers`` or ``continual``."""
from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(*parts) -> int:
    """A stable seed in [0, 2**31 - 2**16) from any tuple of ints/strings (room for +num_envs)."""
    h = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(h[:8], "little") % (2 ** 31 - 2 ** 16)


def to_numpy(logits) -> np.ndarray:
    """A policy's logits (a torch tensor or an array) as float64 numpy, without importing torch."""
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().numpy()
    return np.asarray(logits, dtype=np.float64)
