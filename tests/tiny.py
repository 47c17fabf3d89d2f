"""Tiny multi-head models shared by the tests, the device the learners' tests run on, a
loader for the scripts in bench/ and experiments/, and the report as train.py makes it."""
import importlib.util
import io
import os
import sys
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F


# The learners' tests (PPO, classifier, CLI runs) put their models on this device:
# `AGSCL_TEST_DEVICE=cuda pytest` runs them on a GPU (bench/gpu_check.sh); the default is the CPU.
DEVICE = os.environ.get("AGSCL_TEST_DEVICE", "cpu")


def roundtrip(state):
    """``state`` through torch.save / torch.load, as a checkpoint written and read again."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def kill_ppo_at(monkeypatch, task: int, unit: int):
    """Make PPO's training raise KeyboardInterrupt (a kill) on entering unit ``unit`` of task
    ``task``; returns the function that lets it run again."""
    from agents.ppo import PPOLearner
    orig = PPOLearner.train_unit

    def crash(self, t, u, reg=None):
        if (t, u) == (task, unit):
            raise KeyboardInterrupt
        return orig(self, t, u, reg)

    monkeypatch.setattr(PPOLearner, "train_unit", crash)
    return lambda: monkeypatch.setattr(PPOLearner, "train_unit", orig)


def report(paths, *args, **kw) -> dict:
    """The report as ``train.py report`` makes it (``continual.report.report``)."""
    from continual.report import report as make
    return make(paths, *args, **kw)


def load_script(folder: str, name: str):
    """Import ``<project>/<folder>/<name>.py`` (a script folder, not a package); its folder
    goes on sys.path so that the script's own imports of its neighbours work."""
    path = Path(__file__).resolve().parents[1] / folder
    sys.path.insert(0, str(path))
    spec = importlib.util.spec_from_file_location(name, path / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class TinyMLP(nn.Module):
    def __init__(self, d_in=3, hidden=(4, 3), heads=(2, 2)):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.heads = nn.ModuleList(nn.Linear(hidden[1], c) for c in heads)

    def forward(self, x, task):
        h = F.relu(self.fc2(F.relu(self.fc1(x))))
        return self.heads[task](h)


class TinyCNN(nn.Module):
    """conv -> BN -> relu -> conv -> relu -> flatten (channel-major) -> linear -> relu -> heads."""

    def __init__(self, heads=(3, 2), bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(3, 2, 3, stride=2, padding=1)   # 6x6 -> 3x3
        self.fc = nn.Linear(2 * 3 * 3, 4)
        self.heads = nn.ModuleList(nn.Linear(4, c) for c in heads)

    def forward(self, x, task):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.conv2(h))
        h = F.relu(self.fc(h.flatten(1)))
        return self.heads[task](h)
