"""Plain fine-tuning: no regularisation at all (the lower bound and the reference A* of eq. 15)."""
from .base import Regularizer


class Finetune(Regularizer):
    name = "finetune"
