"""Shared pieces of the vision task streams: the Task / TaskStream containers, seeded splits,
checksummed downloads and the clear errors a missing or malformed data set raises.

Images are kept in memory as uint8 tensors (N, C, H, W) and converted per batch by
``TaskStream.prepare`` (float in [0, 1], per-channel normalisation, optional random crop and
horizontal flip at training time). This module imports nothing from the rest of the project.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- errors ------------------------------------------------------------------------------
def missing_data(what: str, where: Sequence[Path | str], fix: str) -> FileNotFoundError:
    places = ", ".join(str(p) for p in where) or "(no directory given)"
    return FileNotFoundError(f"{what} not found; looked in: {places}. {fix}")


def malformed(what: str, where: Path | str, detail: str, fix: str = "") -> ValueError:
    msg = f"{what} at {where} is malformed: {detail}."
    if fix:
        msg += f" {fix}"
    return ValueError(msg)


# --- containers --------------------------------------------------------------------------
@dataclass(eq=False)
class Task:
    """One classification task: labels are 0..num_classes-1 within the task."""
    name: str
    num_classes: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"task {self.name!r}: {split} has {x.shape[0]} images but "
                                 f"{y.shape[0]} labels")
            if y.dtype != torch.int64:
                setattr(self, f"y_{split}", y.long())
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"task {self.name!r}: {split} labels outside 0..{self.num_classes - 1}")

    def sizes(self) -> dict[str, int]:
        return {"train": int(self.y_train.numel()), "val": int(self.y_val.numel()),
                "test": int(self.y_test.numel())}


class TaskStream:
    """A sequence of tasks plus how to turn a stored uint8 batch into model input.

    ``input_shape`` is what the network sees (after any crop). ``crop``: stored images are
    larger and are randomly cropped (training) or centre-cropped (evaluation) to ``crop``;
    ``flip``: random horizontal flips at training time.
    """

    def __init__(self, benchmark: str, tasks: list[Task], mean: Sequence[float],
                 std: Sequence[float], crop: int | None = None, flip: bool = False,
                 info: dict | None = None):
        if not tasks:
            raise ValueError(f"benchmark {benchmark!r} produced no tasks")
        self.benchmark = benchmark
        self.tasks = list(tasks)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.crop = crop
        self.flip = bool(flip)
        self.info = dict(info or {})
        c, h, w = tasks[0].x_train.shape[1:]
        if crop is not None:
            h = w = crop
        self.input_shape = (int(c), int(h), int(w))
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError("mean/std must have one value per image channel")
        self._norm_cache: dict = {}

    # sequence protocol
    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i: int) -> Task:
        return self.tasks[i]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def class_counts(self) -> list[int]:
        return [t.num_classes for t in self.tasks]

    def describe(self) -> dict:
        """JSON-friendly summary (for config.json)."""
        return {"benchmark": self.benchmark, "input_shape": list(self.input_shape),
                "tasks": [{"name": t.name, "num_classes": t.num_classes, **t.sizes()}
                          for t in self.tasks],
                "mean": list(self.mean), "std": list(self.std), "crop": self.crop,
                "flip": self.flip, **self.info}

    # batch preparation
    def _mean_std(self, device, dtype):
        key = (str(device), dtype)
        if key not in self._norm_cache:
            m = torch.tensor(self.mean, device=device, dtype=dtype).view(1, -1, 1, 1)
            s = torch.tensor(self.std, device=device, dtype=dtype).view(1, -1, 1, 1)
            self._norm_cache[key] = (m, s)
        return self._norm_cache[key]

    def prepare(self, x: torch.Tensor, train: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (N, C, H, W) -> normalised float32 model input on x's device.

        Training-time randomness (crop offsets, flips) comes from ``generator`` (a CPU
        generator) so that a resumed run draws the same numbers."""
        if self.crop is not None:
            x = _crop(x, self.crop, train, generator)
        if train and self.flip:
            flip = torch.rand(x.shape[0], generator=generator) < 0.5
            if flip.any():
                x = x.clone()
                idx = flip.nonzero().flatten().to(x.device)
                x[idx] = x[idx].flip(-1)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        else:
            x = x.float()
        m, s = self._mean_std(x.device, x.dtype)
        return (x - m) / s


def _crop(x: torch.Tensor, size: int, train: bool, generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    if h < size or w < size:
        raise ValueError(f"stored images {h}x{w} are smaller than the crop {size}")
    if not train:
        top, left = (h - size) // 2, (w - size) // 2
        return x[..., top:top + size, left:left + size]
    tops = torch.randint(0, h - size + 1, (x.shape[0],), generator=generator).tolist()
    lefts = torch.randint(0, w - size + 1, (x.shape[0],), generator=generator).tolist()
    return torch.stack([x[i, :, t:t + size, l:l + size] for i, (t, l) in enumerate(zip(tops, lefts))])


# --- splits and normalisation ------------------------------------------------------------
def task_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]])


def split_validation(x: torch.Tensor, y: torch.Tensor, fraction: float,
                     rng: np.random.Generator):
    """Hold a seeded random ``fraction`` of (x, y) out: returns (x_tr, y_tr, x_val, y_val)."""
    n = int(y.shape[0])
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction={fraction} must be in [0, 1)")
    n_val = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        n_val = max(1, min(n_val, n - 1))
    perm = torch.from_numpy(rng.permutation(n))
    val_idx, tr_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return x[tr_idx], y[tr_idx], x[val_idx], y[val_idx]


def relabel(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Map original class ids to their position in ``classes`` (0..len-1)."""
    lut = np.full(int(max(max(classes), labels.max(initial=0))) + 1, -1, dtype=np.int64)
    lut[np.asarray(classes)] = np.arange(len(classes))
    return lut[labels]


def channel_stats(images: Sequence[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (in [0, 1] units) over uint8 image tensors (N, C, H, W)."""
    c = images[0].shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for x in images:
        if x.numel() == 0:
            continue
        for chunk in x.split(4096):
            f = chunk.to(torch.float64) / 255.0
            s += f.sum(dim=(0, 2, 3))
            s2 += f.pow(2).sum(dim=(0, 2, 3))
            n += f.shape[0] * f.shape[2] * f.shape[3]
    if n == 0:
        return (0.0,) * c, (1.0,) * c
    mean = s / n
    std = (s2 / n - mean.pow(2)).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(max(v, 1e-3) for v in std.tolist())


# --- downloads ----------------------------------------------------------------------------
def file_md5(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: Path | str, md5: str | None) -> Path:
    """Fetch ``url`` to ``dest`` (atomically), verifying its MD5; an existing file with the
    right checksum is kept. Raises ValueError on a checksum mismatch."""
    dest = Path(dest)
    if dest.exists() and (md5 is None or file_md5(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out, length=1 << 20)
        got = file_md5(tmp)
        if md5 is not None and got != md5:
            raise ValueError(f"download of {url} has MD5 {got}, expected {md5} (corrupted or "
                             f"changed upstream); nothing was written to {dest}")
        os.replace(tmp, dest)
    except Exception as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, ValueError):
            raise
        raise OSError(f"could not download {url} to {dest}: {e}. Download it by hand and pass "
                      f"its folder with --data-dir") from e
    return dest


def pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading Omniglot/CUB images needs Pillow: pip install pillow") from None
    return Image


def as_dir(data_dir) -> Path | None:
    if data_dir is None:
        return None
    return Path(os.path.expanduser(str(data_dir)))
