import os
import sys
from pathlib import Path

import torch

# the project root on sys.path (tests import `tests.tiny`, `regularizers`, ...)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# tiny models: one thread is faster than two fighting over a small, shared machine
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch):
    """In-process tests see a CPU without native bf16 (no cpuinfo to read), so
    ``bf16='auto'`` (the default) is float32 and a test's numbers do not depend on the machine
    it runs on; the tests of the autocast set bf16 themselves, those of 'auto' their own
    cpuinfo."""
    import agents.config
    monkeypatch.setattr(agents.config, "CPUINFO", "/nonexistent/cpuinfo")
