"""scikit-learn's bundled 8x8 digits (offline, no download): 1797 images, 10 classes.

No official split exists: per class a seeded random ``test_fraction`` (20 %) is the test set.
Pixel values 0..16 are stored as uint8 0..255 (N, 1, 8, 8).
"""
from __future__ import annotations

import numpy as np
import torch

from .common import task_rng


def load_digits(seed: int = 0, test_fraction: float = 0.2):
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError("split_digits needs scikit-learn: pip install scikit-learn") from None
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    d = _load()
    x = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    rng = task_rng(seed, 3)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        n_test = max(1, int(round(test_fraction * len(idx))))
        test[rng.permutation(idx)[:n_test]] = True
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    tr = torch.from_numpy(~test)
    names = [str(c) for c in range(10)]
    return xt[tr], yt[tr], xt[~tr], yt[~tr], names
