"""Vision task streams on small generated files in each official format (and the real shared
Omniglot zip when present)."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.vision import BENCHMARKS, make_stream, stream_options
from envs.vision import cifar as cifar_mod
from envs.vision.common import TaskStream, download

torch.set_num_threads(1)
PIL = pytest.importorskip("PIL.Image")
SHARED_OMNIGLOT = Path(__file__).resolve().parents[2] / "shared/data/omniglot/images_background_small1.zip"


# --- generators of official formats ------------------------------------------------------
def _pickle(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def _cifar_files(kind: str, rng: np.random.Generator, n_train: int, n_test: int):
    """name -> bytes of the official python pickles (byte-string keys, as in the originals)."""
    if kind == "cifar10":
        per = n_train // 5
        files = {}
        for i in range(1, 6):
            files[f"data_batch_{i}"] = _pickle({
                b"data": rng.integers(0, 256, (per, 3072), dtype=np.uint8),
                b"labels": [int(v) for v in rng.integers(0, 10, per)]})
        files["test_batch"] = _pickle({b"data": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
                                       b"labels": [int(v) for v in rng.integers(0, 10, n_test)]})
        files["batches.meta"] = _pickle({b"label_names": [f"c{i}".encode() for i in range(10)]})
        return "cifar-10-batches-py", files
    def split(n):
        labels = np.arange(n) % 100                      # every class present
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"fine_labels": [int(v) for v in labels],
                b"coarse_labels": [int(v) // 5 for v in labels]}
    files = {"train": _pickle(split(n_train)), "test": _pickle(split(n_test)),
             "meta": _pickle({b"fine_label_names": [f"f{i}".encode() for i in range(100)]})}
    return "cifar-100-python", files


def make_cifar(root: Path, kinds=("cifar10", "cifar100"), tarball=False, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for kind in kinds:
        folder, files = _cifar_files(kind, rng, 300 if kind == "cifar100" else 100,
                                     200 if kind == "cifar100" else 40)
        if tarball:
            spec = cifar_mod.SPECS[kind]
            with tarfile.open(root / spec["tarball"], "w:gz") as tar:
                for name, blob in files.items():
                    info = tarfile.TarInfo(f"{folder}/{name}")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
        else:
            (root / folder).mkdir(parents=True, exist_ok=True)
            for name, blob in files.items():
                (root / folder / name).write_bytes(blob)
    return root


def _png(rng, mode="1") -> bytes:
    a = np.ones((105, 105), dtype=bool)
    r, c = rng.integers(10, 90, 2)
    a[r:r + 12, c:c + 3] = False                           # a dark stroke on white
    img = PIL.fromarray(a.astype(np.uint8) * 255).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_omniglot_zip(path: Path, top: str, alphabets: dict[str, int], drawings=5, seed=0):
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{top}/", b"")
        for alpha, n_chars in alphabets.items():
            for c in range(1, n_chars + 1):
                for d in range(1, drawings + 1):
                    z.writestr(f"{top}/{alpha}/character{c:02d}/{c:04d}_{d:02d}.png", _png(rng))
    return path


def make_omniglot_dir(root: Path, top: str, alphabets: dict[str, int], drawings=5, seed=1):
    rng = np.random.default_rng(seed)
    for alpha, n_chars in alphabets.items():
        for c in range(1, n_chars + 1):
            d_ = root / top / alpha / f"character{c:02d}"
            d_.mkdir(parents=True)
            for d in range(1, drawings + 1):
                (d_ / f"{c:04d}_{d:02d}.png").write_bytes(_png(rng))


def make_cub(root: Path, n_classes=4, per_class=6, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "CUB_200_2011"
    (base / "images").mkdir(parents=True)
    images, labels, split, classes = [], [], [], []
    i = 0
    for c in range(1, n_classes + 1):
        cname = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {cname}")
        (base / "images" / cname).mkdir()
        for k in range(per_class):
            i += 1
            rel = f"{cname}/Bird_{c}_{k:04d}.jpg"
            h, w = int(rng.integers(20, 40)), int(rng.integers(20, 40))
            PIL.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(base / "images" / rel)
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c}")
            split.append(f"{i} {1 if k < per_class - 2 else 0}")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("classes.txt", classes)):
        (base / name).write_text("\n".join(lines) + "\n")
    return base


def _check_stream(s: TaskStream):
    for t in s:
        for split in ("train", "val", "test"):
            x, y = getattr(t, f"x_{split}"), getattr(t, f"y_{split}")
            assert x.shape[0] == y.shape[0]
            assert y.dtype == torch.int64
            if y.numel():
                assert 0 <= int(y.min()) and int(y.max()) < t.num_classes


# --- CIFAR ------------------------------------------------------------------------------
def test_split_cifar100_from_folders(tmp_path):
    make_cifar(tmp_path)
    s = make_stream("split_cifar100", tmp_path, seed=3)
    assert len(s) == 10 and s.class_counts == [10] * 10 and s.input_shape == (3, 32, 32)
    _check_stream(s)
    assert s[0].x_train.dtype == torch.uint8 and s[0].x_train.shape[1:] == (3, 32, 32)
    # 30 train images per task, 10 % held out; 20 test images per task
    assert [t.sizes() for t in s][0] == {"train": 27, "val": 3, "test": 20}
    order = s.info["class_order"]
    assert sorted(order) == list(range(100)) and order != list(range(100))
    # tasks of 10 consecutive classes (the paper's), in a seeded task order
    assert all(order[10 * k:10 * k + 10] == list(range(order[10 * k], order[10 * k] + 10))
               and order[10 * k] % 10 == 0 for k in range(10))
    assert s[0].class_names == [f"f{c}" for c in order[:10]]
    # same seed -> same stream; other seed -> other class order
    s2 = make_stream("split_cifar100", tmp_path, seed=3)
    assert torch.equal(s2[4].x_val, s[4].x_val) and torch.equal(s2[4].y_train, s[4].y_train)
    assert make_stream("split_cifar100", tmp_path, seed=4).info["class_order"] != order
    x = s.prepare(s[0].x_train[:5])
    assert x.dtype == torch.float32 and x.shape == (5, 3, 32, 32)


def test_cifar10_100_from_tarballs(tmp_path):
    make_cifar(tmp_path, tarball=True)
    s = make_stream("cifar10_100", tmp_path, seed=0)
    assert len(s) == 11 and s.names[0] == "cifar10" and s.class_counts == [10] * 11
    assert s[0].sizes() == {"train": 90, "val": 10, "test": 40}
    _check_stream(s)


def test_cifar_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python.*--data-dir"):
        make_stream("split_cifar100", tmp_path)
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="malformed"):
        make_stream("split_cifar100", tmp_path)


def test_cifar_download_checks_md5(tmp_path, monkeypatch):
    (tmp_path / "server").mkdir()
    src = make_cifar(tmp_path / "server", kinds=("cifar100",), tarball=True)
    tgz = src / "cifar-100-python.tar.gz"
    md5 = hashlib.md5(tgz.read_bytes()).hexdigest()
    spec = dict(cifar_mod.CIFAR100, url=tgz.as_uri(), md5="0" * 32)
    monkeypatch.setitem(cifar_mod.SPECS, "cifar100", spec)
    dest = tmp_path / "data"
    with pytest.raises(ValueError, match="MD5"):
        make_stream("split_cifar100", dest, download=True)
    assert not (dest / "cifar-100-python.tar.gz").exists()
    monkeypatch.setitem(cifar_mod.SPECS, "cifar100", dict(spec, md5=md5))
    s = make_stream("split_cifar100", dest, download=True)
    assert len(s) == 10 and (dest / "cifar-100-python.tar.gz").is_file()
    assert download(tgz.as_uri(), dest / "cifar-100-python.tar.gz", md5).is_file()   # kept


# --- Omniglot ------------------------------------------------------------------------------
def test_omniglot_zip_and_folder_sources(tmp_path):
    make_omniglot_zip(tmp_path / "images_background.zip", "images_background",
                      {"Zeta": 2, "Alpha": 3})
    make_omniglot_dir(tmp_path, "images_evaluation", {"Mid": 2})
    s = make_stream("omniglot", tmp_path, seed=0)
    assert s.names == ["Alpha", "Mid", "Zeta"] and s.class_counts == [3, 2, 2]
    assert s.input_shape == (1, 28, 28) and s[0].x_train.dtype == torch.uint8
    _check_stream(s)
    # per character 1 of 5 drawings is test; 10 % of the 12 remaining (-> 1) validation
    assert s[0].sizes() == {"train": 11, "val": 1, "test": 3}
    x = s[0].x_train.float()
    assert x.mean() < 60 and x.max() > 100            # inverted: bright strokes on dark
    assert s[0].class_names == ["character01", "character02", "character03"]


def test_omniglot_augmentation_only_on_train(tmp_path):
    make_omniglot_zip(tmp_path / "images_background.zip", "images_background", {"A": 2})
    plain = make_stream("omniglot", tmp_path, seed=0)
    aug = make_stream("omniglot", tmp_path, seed=0, augment=3)
    assert aug[0].x_train.shape[0] == 4 * plain[0].x_train.shape[0]
    assert torch.equal(aug[0].x_test, plain[0].x_test) and torch.equal(aug[0].x_val, plain[0].x_val)
    n = plain[0].x_train.shape[0]
    assert torch.equal(aug[0].x_train[:n], plain[0].x_train)
    assert not torch.equal(aug[0].x_train[n:2 * n], plain[0].x_train)
    assert torch.equal(aug[0].y_train, plain[0].y_train.repeat(4))


def test_omniglot_duplicate_alphabet_warns(tmp_path):
    make_omniglot_zip(tmp_path / "images_background.zip", "images_background", {"A": 1})
    make_omniglot_zip(tmp_path / "images_background_small1.zip", "images_background_small1",
                      {"A": 1, "B": 1})
    with pytest.warns(UserWarning, match="'A'"):
        s = make_stream("omniglot", tmp_path)
    assert s.names == ["A", "B"]


def test_omniglot_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"images_background.*--data-dir"):
        make_stream("omniglot", tmp_path)
    (tmp_path / "images_background.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="malformed"):
        make_stream("omniglot", tmp_path)


@pytest.mark.skipif(not SHARED_OMNIGLOT.is_file(), reason="shared Omniglot zip not present")
def test_omniglot_real_shared_zip():
    s = make_stream("omniglot", SHARED_OMNIGLOT.parent, seed=0)
    assert len(s) == 5
    assert s.names == sorted(s.names)
    assert s.names == ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]
    assert s.input_shape == (1, 28, 28)
    assert s[0].x_test.shape[1:] == (1, 28, 28)
    for t in s:                                      # 20 drawings per character: 4 test each
        assert t.y_test.numel() == 4 * t.num_classes
        assert t.sizes()["train"] + t.sizes()["val"] == 16 * t.num_classes


# --- CUB ---------------------------------------------------------------------------------
def test_cub_official_layout(tmp_path):
    make_cub(tmp_path)
    s = make_stream("cub200", tmp_path, seed=0, num_tasks=2, image_size=16)
    assert len(s) == 2 and s.class_counts == [2, 2]
    assert s.input_shape == (3, 16, 16) and s[0].x_train.shape[1:] == (3, 18, 18)
    assert s[0].sizes()["test"] == 4                      # official split: 2 test per class
    assert s[0].sizes()["train"] + s[0].sizes()["val"] == 8
    _check_stream(s)
    g = torch.Generator().manual_seed(0)
    xt = s.prepare(s[0].x_train, train=True, generator=g)
    xe = s.prepare(s[0].x_train, train=False)
    assert xt.shape == xe.shape == (s[0].x_train.shape[0], 3, 16, 16)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(xt, s.prepare(s[0].x_train, train=True, generator=g2))
    # the same path given as the CUB folder itself
    assert make_stream("cub200", tmp_path / "CUB_200_2011", num_tasks=2,
                       image_size=16).names == s.names


def test_cub_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CUB_200_2011.*--data-dir"):
        make_stream("cub200", tmp_path)
    base = make_cub(tmp_path)
    (base / "train_test_split.txt").write_text("1 1\n")
    with pytest.raises(ValueError, match="malformed"):
        make_stream("cub200", tmp_path, num_tasks=2, image_size=16)


# --- digits and generic ----------------------------------------------------------------------
def test_split_digits_offline():
    s = make_stream("split_digits", seed=0)
    assert len(s) == 5 and s.class_counts == [2] * 5 and s.input_shape == (1, 8, 8)
    _check_stream(s)
    total = sum(t.sizes()["train"] + t.sizes()["val"] + t.sizes()["test"] for t in s)
    assert total == 1797
    assert abs(s[0].sizes()["val"] / (s[0].sizes()["val"] + s[0].sizes()["train"]) - 0.1) < 0.02
    assert make_stream("split_digits", seed=1).info["class_order"] != s.info["class_order"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown benchmark"):
        make_stream("mnist")
    with pytest.raises(ValueError, match="no option"):
        make_stream("split_digits", augment=2)
    with pytest.raises(ValueError, match="divide"):
        make_stream("split_digits", num_tasks=3)
    assert set(BENCHMARKS) == {"split_cifar100", "cifar10_100", "omniglot", "cub200",
                               "split_digits"}
    assert "augment" in stream_options("omniglot")
