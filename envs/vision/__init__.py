"""Supervised continual-learning task streams (paper section 4.1).

    stream = make_stream("omniglot", data_dir="data/", seed=0)
    for task in stream: task.name, task.num_classes, task.x_train, task.y_train, ...
    x = stream.prepare(task.x_train[:256], train=True, generator=g)   # model input

Benchmarks (``BENCHMARKS``):
    split_cifar100  10 tasks x 10 consecutive CIFAR-100 classes, the task order shuffled by ``seed``
    cifar10_100     CIFAR-10 (one 10-class task) then 10 such CIFAR-100 tasks
    omniglot        one task per alphabet found in ``data_dir``, sorted by name, 28x28
    cub200          10 tasks x 20 CUB-200-2011 classes (shuffled by ``seed``), 224x224 crops
    split_digits    scikit-learn's 8x8 digits, 5 tasks x 2 classes, offline

Every task holds out a seeded 10 % of its training images for validation; the official test
split is the test set (Omniglot and digits have none: see their modules). A missing data set
raises FileNotFoundError naming what was expected where; a malformed one ValueError.
``download=True`` fetches the official archives and verifies their MD5.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from .common import IMAGENET_MEAN, IMAGENET_STD, Task, TaskStream, channel_stats, relabel, \
    split_validation, task_rng

BENCHMARKS = ("split_cifar100", "cifar10_100", "omniglot", "cub200", "split_digits")

# the network each benchmark uses (agents/vision_nets.py names)
DEFAULT_NETWORK = {"split_cifar100": "cifar", "cifar10_100": "cifar", "omniglot": "omniglot",
                   "cub200": "resnet18", "split_digits": "mlp"}


def class_order(num_classes: int, seed: int, shuffle: bool) -> list[int]:
    if not shuffle:
        return list(range(num_classes))
    return [int(c) for c in np.random.default_rng(int(seed)).permutation(num_classes)]


def block_order(num_classes: int, num_tasks: int, seed: int, shuffle: bool) -> list[int]:
    """Tasks of consecutive classes (task k = classes k*C .. k*C + C - 1, the paper's "10
    consecutive classes"), the tasks in a seeded order, as the published dataloaders do."""
    per = num_classes // num_tasks
    blocks = list(range(num_tasks))
    if shuffle:
        blocks = [int(b) for b in np.random.default_rng(int(seed)).permutation(num_tasks)]
    return [b * per + c for b in blocks for c in range(per)]


def split_by_classes(prefix: str, x_train, y_train, x_test, y_test, names: list[str],
                     order: list[int], num_tasks: int, seed: int, val_fraction: float,
                     task_offset: int = 0) -> list[Task]:
    """Consecutive groups of ``order`` become tasks, labels relabelled 0..C-1 per task."""
    n = len(order)
    if num_tasks < 1 or n % num_tasks:
        raise ValueError(f"num_tasks={num_tasks} must divide the {n} classes of {prefix}")
    per = n // num_tasks
    tasks = []
    for i in range(num_tasks):
        classes = order[i * per:(i + 1) * per]
        cls = torch.tensor(classes)
        tr = torch.isin(y_train, cls)
        te = torch.isin(y_test, cls)
        ytr = torch.from_numpy(relabel(y_train[tr].numpy(), classes))
        yte = torch.from_numpy(relabel(y_test[te].numpy(), classes))
        rng = task_rng(seed, 11, task_offset + i)
        x_tr, y_tr, x_val, y_val = split_validation(x_train[tr], ytr, val_fraction, rng)
        name = prefix if num_tasks == 1 else f"{prefix}-{i}"
        tasks.append(Task(name, per, x_tr, y_tr, x_val, y_val, x_test[te], yte,
                          [names[c] for c in classes]))
    return tasks


def _split_cifar100(data_dir, seed, val_fraction, download, num_tasks=10, shuffle_classes=True):
    from .cifar import load_cifar
    xtr, ytr, xte, yte, names = load_cifar("cifar100", data_dir, download)
    if num_tasks < 1 or 100 % num_tasks:
        raise ValueError(f"num_tasks={num_tasks} must divide the 100 classes of cifar100")
    order = block_order(100, num_tasks, seed, shuffle_classes)
    tasks = split_by_classes("cifar100", xtr, ytr, xte, yte, names, order, num_tasks, seed,
                             val_fraction)
    return tasks, {"class_order": order}


def _cifar10_100(data_dir, seed, val_fraction, download, num_tasks=10, shuffle_classes=True):
    from .cifar import load_cifar
    x10, y10, x10t, y10t, n10 = load_cifar("cifar10", data_dir, download)
    tasks = split_by_classes("cifar10", x10, y10, x10t, y10t, n10, list(range(10)), 1, seed,
                             val_fraction)
    xtr, ytr, xte, yte, names = load_cifar("cifar100", data_dir, download)
    if num_tasks < 1 or 100 % num_tasks:
        raise ValueError(f"num_tasks={num_tasks} must divide the 100 classes of cifar100")
    order = block_order(100, num_tasks, seed, shuffle_classes)
    tasks += split_by_classes("cifar100", xtr, ytr, xte, yte, names, order, num_tasks, seed,
                              val_fraction, task_offset=1)
    return tasks, {"class_order": order}


def _omniglot(data_dir, seed, val_fraction, download, augment=0, max_rotation=15.0,
              max_shift=2.0, test_fraction=0.2, num_tasks=None):
    from .omniglot import load_omniglot
    return load_omniglot(data_dir, seed, val_fraction, test_fraction, augment, max_rotation,
                         max_shift, num_tasks, download)


def _cub200(data_dir, seed, val_fraction, download, num_tasks=10, image_size=224,
            shuffle_classes=True):
    from .cub import load_cub
    xtr, ytr, xte, yte, names, stored, root = load_cub(data_dir, image_size, download)
    n = len(names)
    order = class_order(n, seed, shuffle_classes)
    tasks = split_by_classes("cub200", xtr, ytr, xte, yte, names, order, num_tasks, seed,
                             val_fraction)
    return tasks, {"class_order": order, "stored_size": stored, "crop": image_size,
                   "root": root}


def _split_digits(data_dir, seed, val_fraction, download, num_tasks=5, test_fraction=0.2,
                  shuffle_classes=True):
    from .digits import load_digits
    xtr, ytr, xte, yte, names = load_digits(seed, test_fraction)
    order = class_order(10, seed, shuffle_classes)
    tasks = split_by_classes("digits", xtr, ytr, xte, yte, names, order, num_tasks, seed,
                             val_fraction)
    return tasks, {"class_order": order}


_BUILDERS = {"split_cifar100": _split_cifar100, "cifar10_100": _cifar10_100,
             "omniglot": _omniglot, "cub200": _cub200, "split_digits": _split_digits}


def stream_options(benchmark: str) -> dict:
    """Benchmark-specific keyword options of ``make_stream`` with their defaults."""
    if benchmark not in _BUILDERS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}")
    sig = inspect.signature(_BUILDERS[benchmark])
    return {k: p.default for k, p in list(sig.parameters.items())[4:]}


def make_stream(benchmark: str, data_dir=None, seed: int = 0, download: bool = False,
                val_fraction: float = 0.1, **options) -> TaskStream:
    accepted = stream_options(benchmark)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"benchmark {benchmark!r} has no option {', '.join(unknown)}; "
                         f"accepted: {', '.join(accepted) or '(none)'}")
    tasks, info = _BUILDERS[benchmark](data_dir, int(seed), float(val_fraction), bool(download),
                                       **options)
    info = {"seed": int(seed), "val_fraction": float(val_fraction), **info}
    if benchmark == "cub200":
        return TaskStream(benchmark, tasks, IMAGENET_MEAN, IMAGENET_STD,
                          crop=info["crop"], flip=True, info=info)
    mean, std = channel_stats([t.x_train for t in tasks])
    return TaskStream(benchmark, tasks, mean, std, info=info)


__all__ = ["BENCHMARKS", "DEFAULT_NETWORK", "Task", "TaskStream", "make_stream",
           "stream_options"]
