"""Omniglot, one task per alphabet (the official ``images_background`` / ``images_evaluation``
layout: ``images_*/<Alphabet>/characterNN/*.png``).

``data_dir`` (or ``data_dir/omniglot``, ``data_dir/omniglot-py``) may hold several
``images_*`` folders and/or ``images_*.zip`` files; zips are read in place. Every alphabet
found is a task, tasks sorted by alphabet name; an alphabet present in several sources is
taken from the first source in sorted order (a folder before its zip). Classes are the
alphabet's characters in sorted order.

Images: 105x105 binary PNGs -> grayscale, resized to 28x28 (Lanczos), inverted so strokes are
bright on a dark background, stored as uint8 (N, 1, 28, 28).

Split (Omniglot has no official one): per character, a seeded random ``test_fraction`` (20 %:
4 of the 20 drawings) is the test set; 10 % of the rest (seeded) is validation.

Augmentation (paper 4.1, after Schwarz et al. 2018): ``augment=K`` adds K randomly rotated
(uniform in +-``max_rotation`` degrees) and shifted (uniform in +-``max_shift`` pixels) copies of
every *training* image (the paper used K = 20); validation and test images are never
augmented.
"""
from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .common import (Task, as_dir, download, malformed, missing_data, pil, split_validation,
                     task_rng)

URLS = {
    "images_background": ("https://github.com/brendenlake/omniglot/raw/master/python/"
                          "images_background.zip", "68d2efa1b9178cc56df9314c21c6e718"),
    "images_evaluation": ("https://github.com/brendenlake/omniglot/raw/master/python/"
                          "images_evaluation.zip", "6b91aef0f799c5bb55b94e3f2daec811"),
}
IMAGE_SIZE = 28


def _skip(parts: list[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


class _Source:
    def __init__(self, path: Path):
        self.path = path
        self.is_zip = path.suffix.lower() == ".zip"
        self._zip = None

    @property
    def name(self) -> str:
        return self.path.name

    def index(self) -> dict[str, dict[str, list[str]]]:
        """alphabet -> character -> sorted image paths (members or files)."""
        out: dict[str, dict[str, list[str]]] = {}
        if self.is_zip:
            try:
                names = self.zip().namelist()
            except (zipfile.BadZipFile, OSError) as e:
                raise malformed("Omniglot zip", self.path, f"cannot be read ({e})",
                                "Delete it and download it again.") from None
            items = [(n, n.split("/")) for n in names]
        else:
            items = [(str(p), list(p.relative_to(self.path).parts))
                     for p in self.path.rglob("*.png")]
        for name, parts in items:
            if not name.lower().endswith(".png") or len(parts) < 3 or _skip(parts):
                continue
            out.setdefault(parts[-3], {}).setdefault(parts[-2], []).append(name)
        for chars in out.values():
            for files in chars.values():
                files.sort()
        return out

    def zip(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def read(self, name: str) -> bytes:
        if self.is_zip:
            return self.zip().read(name)
        return Path(name).read_bytes()

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def find_sources(data_dir) -> tuple[list[_Source], list[Path]]:
    d = as_dir(data_dir)
    if d is None:
        return [], []
    if d.is_file():
        return ([_Source(d)] if d.suffix.lower() == ".zip" else []), [d]
    roots = [d, d / "omniglot", d / "omniglot-py"]
    found: list[_Source] = []
    seen: set[Path] = set()
    if d.name.startswith("images_") and d.is_dir():
        found.append(_Source(d))
        seen.add(d.resolve())
    for r in roots:
        if not r.is_dir():
            continue
        for e in r.iterdir():
            if not e.name.startswith("images_") or e.resolve() in seen:
                continue
            if e.is_dir() or (e.is_file() and e.suffix.lower() == ".zip"):
                found.append(_Source(e))
                seen.add(e.resolve())
    # sorted by name, a folder before the zip of the same name
    found.sort(key=lambda s: (s.path.stem if s.is_zip else s.path.name, s.is_zip, str(s.path)))
    return found, roots


def decode(blob: bytes, where: str, size: int = IMAGE_SIZE) -> np.ndarray:
    Image = pil()
    try:
        img = Image.open(io.BytesIO(blob))
        img = img.convert("L")
    except Exception as e:
        raise malformed("Omniglot image", where, f"cannot be decoded ({e})") from None
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return 255 - np.asarray(img, dtype=np.uint8)


def augment_images(x: torch.Tensor, y: torch.Tensor, copies: int, rng: np.random.Generator,
                   max_rotation: float = 15.0, max_shift: float = 2.0):
    """Originals followed by ``copies`` randomly rotated + shifted versions of each image."""
    if copies <= 0 or x.shape[0] == 0:
        return x, y
    n, _, h, w = x.shape
    xs, ys = [x], [y]
    src = x.float()
    for _ in range(copies):
        ang = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
        sx = rng.uniform(-max_shift, max_shift, n) * 2.0 / w
        sy = rng.uniform(-max_shift, max_shift, n) * 2.0 / h
        cos, sin = np.cos(ang), np.sin(ang)
        theta = torch.tensor(np.stack([np.stack([cos, -sin, sx], 1),
                                       np.stack([sin, cos, sy], 1)], 1), dtype=torch.float32)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        xs.append(out.round().clamp_(0, 255).to(torch.uint8))
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def load_omniglot(data_dir=None, seed: int = 0, val_fraction: float = 0.1,
                  test_fraction: float = 0.2, augment: int = 0, max_rotation: float = 15.0,
                  max_shift: float = 2.0, num_tasks: int | None = None,
                  download_ok: bool = False) -> tuple[list[Task], dict]:
    sources, roots = find_sources(data_dir)
    if not sources and download_ok:
        d = as_dir(data_dir)
        if d is None:
            raise ValueError("download=True needs a data directory (--data-dir) to save into")
        for name, (url, md5) in URLS.items():
            download(url, d / f"{name}.zip", md5)
        sources, roots = find_sources(d)
    if not sources:
        raise missing_data(
            "Omniglot (images_background/ or images_evaluation/ folders or their .zip files, "
            "layout images_*/<Alphabet>/characterNN/*.png)", roots,
            "Pass --data-dir pointing at the folder holding them, or add --download to fetch "
            "the official zips from github.com/brendenlake/omniglot.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")

    alphabets: dict[str, tuple[_Source, dict[str, list[str]]]] = {}
    try:
        for src in sources:
            for alpha, chars in src.index().items():
                if alpha in alphabets:
                    if alphabets[alpha][0] is not src:
                        warnings.warn(f"Omniglot alphabet {alpha!r} is in both "
                                      f"{alphabets[alpha][0].name} and {src.name}; using the "
                                      f"first")
                    continue
                alphabets[alpha] = (src, chars)
        if not alphabets:
            raise malformed("Omniglot data", ", ".join(str(s.path) for s in sources),
                            "no images_*/<Alphabet>/<character>/*.png files inside",
                            "Use the official images_background/images_evaluation archives.")
        names = sorted(alphabets)
        if num_tasks is not None:
            if num_tasks < 1:
                raise ValueError(f"num_tasks={num_tasks} must be >= 1")
            names = names[:num_tasks]

        tasks = []
        for ti, alpha in enumerate(names):
            src, chars = alphabets[alpha]
            char_names = sorted(chars)
            rng = task_rng(seed, 7, ti)
            tr_x, tr_y, te_x, te_y = [], [], [], []
            for ci, ch in enumerate(char_names):
                files = chars[ch]
                imgs = np.stack([decode(src.read(f), f"{src.path}:{f}") for f in files])
                perm = rng.permutation(len(files))
                n_test = int(round(test_fraction * len(files)))
                if len(files) >= 2:
                    n_test = min(max(n_test, 1), len(files) - 1)
                te_x.append(imgs[perm[:n_test]])
                te_y += [ci] * n_test
                tr_x.append(imgs[perm[n_test:]])
                tr_y += [ci] * (len(files) - n_test)
            x_train = torch.from_numpy(np.concatenate(tr_x))[:, None]
            x_test = torch.from_numpy(np.concatenate(te_x))[:, None]
            y_train = torch.tensor(tr_y, dtype=torch.int64)
            y_test = torch.tensor(te_y, dtype=torch.int64)
            x_tr, y_tr, x_val, y_val = split_validation(x_train, y_train, val_fraction, rng)
            x_tr, y_tr = augment_images(x_tr, y_tr, augment, rng, max_rotation, max_shift)
            tasks.append(Task(alpha, len(char_names), x_tr, y_tr, x_val, y_val, x_test, y_test,
                              char_names))
    finally:
        for s in sources:
            s.close()
    info = {"sources": [str(s.path) for s in sources],
            "split": f"per character {test_fraction:.0%} test (seeded), "
                     f"{val_fraction:.0%} of the rest validation",
            "augment": {"copies": augment, "max_rotation": max_rotation, "max_shift": max_shift}}
    return tasks, info
