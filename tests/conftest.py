import os
import sys
from pathlib import Path

import torch

# the project root on sys.path (tests import `tests.tiny`, `regularizers`, ...)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# tiny models: one thread is faster than two fighting over a small, shared machine
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
