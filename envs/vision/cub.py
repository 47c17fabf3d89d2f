"""CUB-200-2011 from its official layout:

    CUB_200_2011/images.txt              "<image id> <relative path>"
    CUB_200_2011/image_class_labels.txt  "<image id> <class id 1..200>"
    CUB_200_2011/train_test_split.txt    "<image id> <1 = train, 0 = test>"
    CUB_200_2011/classes.txt             "<class id> <name>"   (optional)
    CUB_200_2011/images/<relative path>

``data_dir`` may be ``CUB_200_2011/`` itself or its parent; a ``CUB_200_2011.tgz`` next to it
is extracted once (after an MD5 check), and ``download=True`` fetches it from CaltechDATA.
The official train/test split is used (the published code used its own 80/20 split).

Images: RGB, the shorter side resized to ``round(image_size * 256 / 224)`` and centre-cropped
to a square of that size, stored uint8; the stream crops ``image_size`` from them (random crop
+ horizontal flip for training, centre crop for evaluation).
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import torch

from .common import as_dir, download, file_md5, malformed, missing_data, pil

FOLDER = "CUB_200_2011"
TARBALL = "CUB_200_2011.tgz"
URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
MD5 = "97eceeb196236b17998738112f37df78"
REQUIRED = ("images.txt", "image_class_labels.txt", "train_test_split.txt")


def _locate(data_dir: Path | None, download_ok: bool) -> Path:
    roots = [] if data_dir is None else [data_dir, data_dir / "cub200", data_dir / "CUB200"]
    for r in roots:
        for cand in (r, r / FOLDER):
            if cand.is_dir() and (cand / "images.txt").is_file():
                return cand
    for r in roots:
        if (r / TARBALL).is_file():
            return _extract(r / TARBALL, r)
    if download_ok:
        if data_dir is None:
            raise ValueError("download=True needs a data directory (--data-dir) to save into")
        return _extract(download(URL, data_dir / TARBALL, MD5), data_dir)
    raise missing_data(
        f"{FOLDER}/ (with {', '.join(REQUIRED)} and images/) or {TARBALL}", roots,
        f"Pass --data-dir pointing at {FOLDER}/ or its parent, or add --download to fetch "
        f"{URL.split('?')[0]}.")


def _extract(tgz: Path, into: Path) -> Path:
    if file_md5(tgz) != MD5:
        raise malformed("CUB archive", tgz, "its MD5 does not match the official archive's",
                        "Delete it and download it again.")
    try:
        with tarfile.open(tgz, "r:*") as tar:
            try:
                tar.extractall(into, filter="data")
            except TypeError:               # Python without extraction filters
                tar.extractall(into)
    except (tarfile.TarError, OSError) as e:
        raise malformed("CUB archive", tgz, f"cannot be extracted ({e})") from None
    if not (into / FOLDER / "images.txt").is_file():
        raise malformed("CUB archive", tgz, f"it holds no {FOLDER}/images.txt")
    return into / FOLDER


def _table(root: Path, name: str) -> dict[int, str]:
    p = root / name
    if not p.is_file():
        raise missing_data(f"CUB file {name}", [root],
                           f"{root} must be the official {FOLDER}/ folder.")
    out = {}
    for ln, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise malformed(f"CUB file {name}", p, f"line {ln} is not '<id> <value>': {line!r}")
        out[int(parts[0])] = parts[1].strip()
    return out


def _load_image(path: Path, stored: int) -> np.ndarray:
    Image = pil()
    try:
        with Image.open(path) as img:
            img.draft("RGB", (stored, stored))
            img = img.convert("RGB")
            w, h = img.size
            scale = stored / min(w, h)
            nw, nh = max(stored, round(w * scale)), max(stored, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - stored) // 2, (nh - stored) // 2
            img = img.crop((left, top, left + stored, top + stored))
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise missing_data(f"CUB image {path.name}", [path.parent],
                           "The images/ folder is incomplete: re-extract the archive.") from None
    except Exception as e:
        raise malformed("CUB image", path, f"cannot be decoded ({e})") from None


def load_cub(data_dir=None, image_size: int = 224, download_ok: bool = False):
    """Returns (x_train uint8 (N,3,S,S), y_train 0..199, x_test, y_test, class_names, stored S)."""
    root = _locate(as_dir(data_dir), download_ok)
    images = _table(root, "images.txt")
    labels = _table(root, "image_class_labels.txt")
    split = _table(root, "train_test_split.txt")
    classes = _table(root, "classes.txt") if (root / "classes.txt").is_file() else {}
    if set(images) != set(labels) or set(images) != set(split):
        raise malformed("CUB metadata", root, "images.txt, image_class_labels.txt and "
                        "train_test_split.txt do not list the same image ids")
    try:
        lab = {i: int(v) - 1 for i, v in labels.items()}
        is_train = {i: int(v) == 1 for i, v in split.items()}
    except ValueError as e:
        raise malformed("CUB metadata", root, f"non-integer class or split ({e})") from None
    n_classes = max(lab.values()) + 1
    if min(lab.values()) < 0:
        raise malformed("CUB metadata", root, "class ids must start at 1")
    names = [classes.get(c + 1, f"class_{c + 1:03d}") for c in range(n_classes)]

    stored = int(round(image_size * 256 / 224))
    ids = sorted(images)
    x = np.empty((len(ids), 3, stored, stored), dtype=np.uint8)
    for k, i in enumerate(ids):
        x[k] = _load_image(root / "images" / images[i], stored)
    y = np.array([lab[i] for i in ids], dtype=np.int64)
    tr = np.array([is_train[i] for i in ids])
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    tr_t = torch.from_numpy(tr)
    return x_t[tr_t], y_t[tr_t], x_t[~tr_t], y_t[~tr_t], names, stored, str(root)
