"""CIFAR-10 / CIFAR-100 from the official python pickles.

Accepted layouts inside ``data_dir`` (or ``data_dir/cifar``):
    cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    cifar-100-python/{train, test, meta}
or the official tarballs ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``, read in
place without extracting. ``download=True`` fetches the tarballs from the official URLs and
checks their MD5.
"""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .common import as_dir, download, malformed, missing_data

CIFAR10 = {
    "folder": "cifar-10-batches-py",
    "tarball": "cifar-10-python.tar.gz",
    "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "md5": "c58f30108f718f92721af3b95e74349a",
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
    "meta": "batches.meta",
    "label_key": "labels",
    "names_key": "label_names",
}
CIFAR100 = {
    "folder": "cifar-100-python",
    "tarball": "cifar-100-python.tar.gz",
    "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "md5": "eb9058c3a382ffc7106e4002c42a8d85",
    "train": ["train"],
    "test": ["test"],
    "meta": "meta",
    "label_key": "fine_labels",
    "names_key": "fine_label_names",
}
SPECS = {"cifar10": CIFAR10, "cifar100": CIFAR100}


def _get(d: dict, key: str):
    if key in d:
        return d[key]
    return d[key.encode()]


def _unpickle(blob: bytes, where: str):
    try:
        return pickle.loads(blob, encoding="bytes")
    except Exception as e:
        raise malformed("CIFAR pickle", where, f"cannot unpickle ({e})",
                        "Re-download the official python version.") from None


class _Source:
    """Reads the member files either from the extracted folder or from the tarball."""

    def __init__(self, spec: dict, folder: Path | None, tarball: Path | None):
        self.spec, self.folder, self.tarball = spec, folder, tarball
        self._tar = None

    def read(self, name: str) -> bytes:
        if self.folder is not None:
            p = self.folder / name
            if not p.is_file():
                raise malformed("CIFAR folder", self.folder, f"file {name!r} is missing",
                                f"Expected {', '.join(self.spec['train'] + self.spec['test'])} "
                                f"and {self.spec['meta']}.")
            return p.read_bytes()
        try:
            if self._tar is None:
                self._tar = tarfile.open(self.tarball, "r:*")
            member = self._tar.extractfile(f"{self.spec['folder']}/{name}")
            if member is None:
                raise KeyError(name)
            return member.read()
        except KeyError:
            raise malformed("CIFAR tarball", self.tarball,
                            f"member {self.spec['folder']}/{name} is missing") from None
        except (tarfile.TarError, OSError, EOFError) as e:
            raise malformed("CIFAR tarball", self.tarball, f"cannot be read ({e})",
                            "Delete it and download again.") from None

    def close(self):
        if self._tar is not None:
            self._tar.close()


def _locate(spec: dict, data_dir: Path | None, download_ok: bool) -> _Source:
    roots = [] if data_dir is None else [data_dir, data_dir / "cifar"]
    for r in roots:
        if r.name == spec["folder"] and r.is_dir():
            return _Source(spec, r, None)
        if (r / spec["folder"]).is_dir():
            return _Source(spec, r / spec["folder"], None)
        if (r / spec["tarball"]).is_file():
            return _Source(spec, None, r / spec["tarball"])
    if download_ok:
        if data_dir is None:
            raise ValueError("download=True needs a data directory (--data-dir) to save into")
        path = download(spec["url"], data_dir / spec["tarball"], spec["md5"])
        return _Source(spec, None, path)
    raise missing_data(
        f"{spec['folder']}/ (or {spec['tarball']})", roots,
        f"Pass --data-dir pointing at the folder that holds it, or add --download to fetch "
        f"{spec['url']}.")


def load_cifar(which: str, data_dir=None, download_ok: bool = False):
    """Returns (x_train uint8 (N,3,32,32), y_train int64, x_test, y_test, class_names)."""
    spec = SPECS[which]
    src = _locate(spec, as_dir(data_dir), download_ok)
    where = str(src.folder or src.tarball)
    try:
        out = []
        for split in ("train", "test"):
            xs, ys = [], []
            for name in spec[split]:
                d = _unpickle(src.read(name), f"{where}/{name}")
                try:
                    data = np.asarray(_get(d, "data"), dtype=np.uint8)
                    labels = np.asarray(_get(d, spec["label_key"]), dtype=np.int64)
                except (KeyError, TypeError, ValueError) as e:
                    raise malformed("CIFAR pickle", f"{where}/{name}",
                                    f"missing or bad key ({e})") from None
                if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
                    raise malformed("CIFAR pickle", f"{where}/{name}",
                                    f"data has shape {data.shape}, expected (N, 3072) with "
                                    f"{labels.shape[0]} labels")
                xs.append(data.reshape(-1, 3, 32, 32))
                ys.append(labels)
            out += [torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))]
        meta = _unpickle(src.read(spec["meta"]), f"{where}/{spec['meta']}")
        try:
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in _get(meta, spec["names_key"])]
        except KeyError:
            raise malformed("CIFAR meta", f"{where}/{spec['meta']}",
                            f"no {spec['names_key']!r}") from None
    finally:
        src.close()
    n_classes = 10 if which == "cifar10" else 100
    for y in (out[1], out[3]):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
            raise malformed(which, where, f"labels outside 0..{n_classes - 1}")
    return out[0], out[1], out[2], out[3], names
