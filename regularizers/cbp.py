"""Continual backprop (Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood & Sutton, "Loss of
plasticity in deep continual learning", Nature 2024; the authors' code:
shibhansh/loss-of-plasticity, `lop/algos/gnt.py`).

Per trunk unit i of layer l, after every optimizer step:
    age_i += 1
    u_i <- eta * u_i + (1 - eta) * mean_x |h_i(x)| * sum_k |w_{k,i}|        (contribution
           utility: the unit's activation times its outgoing weights' magnitude, on the
           step's minibatch as the forward pass saw it)
    n_l += rate * #{i : age_i > maturity}           (a replacement rate's worth of mature units)
    while n_l >= 1: the mature unit with the lowest u is replaced: fresh incoming weights,
        zero outgoing weights, zero optimizer moments (``units.recycle``), u_i = age_i = 0
Fresh weights are PyTorch's default init of the layer type, drawn from the method's own
generator (``seed``). The published RL values: rate 1e-4, maturity 10,000, eta 0.99.
"""
from __future__ import annotations

import operator

import torch
from torch import nn

from .base import Regularizer, check_int, check_range
from .groups import find_node_layers
from .units import columns, outgoing_weights, recycle


class ContinualBackprop(Regularizer):
    name = "cbp"
    KIND = "plasticity"
    HELP = {"rate": "continual backprop: replacement rate (units per mature unit per step)",
            "maturity": "continual backprop: steps before a unit may be replaced",
            "decay": "continual backprop: decay eta of the running contribution utility"}

    def __init__(self, model: nn.Module, rate: float = 1e-4, maturity: int = 10_000,
                 decay: float = 0.99, seed: int = 0):
        super().__init__(model)
        self.rate = check_range("rate", rate, lo=0, hi=1)
        self.decay = check_range("decay", decay, lo=0, hi=1)
        self.maturity = check_int("maturity", maturity, 0)
        self.layers = find_node_layers(model)
        self.generator = torch.Generator().manual_seed(operator.index(seed))
        dev = self.layers[0].module.weight.device
        self.utility = [torch.zeros(L.num_nodes, dtype=torch.float64, device=dev)
                        for L in self.layers]
        self.age = [torch.zeros(L.num_nodes, dtype=torch.long, device=dev) for L in self.layers]
        self.owed = [0.0] * len(self.layers)       # n_l: replacements accumulated, not yet made
        self.replaced_in_task = 0
        self.history: list[dict] = []
        self._acts: list[torch.Tensor | None] = [None] * len(self.layers)
        for i, L in enumerate(self.layers):
            L.activation_module.register_forward_hook(self._keep(i))

    def _keep(self, i: int):
        def fn(_module, _inp, out):
            if torch.is_grad_enabled():       # the training forward pass, not rollouts/evals
                a = torch.relu(out.detach().float())
                self._acts[i] = a.abs().mean(dim=[0, *range(2, a.dim())]).double()
        return fn

    def begin_task(self, task: int) -> None:
        if task != self.task:
            self.replaced_in_task = 0
        super().begin_task(task)

    @torch.no_grad()
    def after_step(self, lr: float) -> None:
        for i, L in enumerate(self.layers):
            a = self._acts[i]
            if a is None:
                continue
            cols = [columns(w.detach().abs(), L) for w in outgoing_weights(self.model,
                                                                         self.layers, L)]
            out_mag = sum(c.sum(dim=[0, *range(2, c.dim())]) for c in cols).double()
            self.age[i] += 1
            self.utility[i].mul_(self.decay).add_((1 - self.decay) * a * out_mag)
            mature = self.age[i] > self.maturity
            self.owed[i] += self.rate * int(mature.sum())
            k = int(self.owed[i])
            if k < 1:
                continue
            self.owed[i] -= k
            cand = mature.nonzero().flatten()
            k = min(k, cand.numel())
            idx = cand[torch.argsort(self.utility[i][cand], stable=True)[:k]]
            recycle(self.model, self.layers, L, idx, self.generator,
                    self.step.optimizer if self.step is not None else None)
            self.utility[i][idx] = 0
            self.age[i][idx] = 0
            self.replaced_in_task += k
        self._acts = [None] * len(self.layers)

    def end_task(self, task, batches, loss_fn) -> None:
        total = sum(L.num_nodes for L in self.layers)
        self.history.append({"task": task, "replaced": self.replaced_in_task / total})
        self.task = task

    def task_metrics(self) -> dict[str, float]:
        return {"replaced": self.history[-1]["replaced"]} if self.history else {}

    def state_dict(self) -> dict:
        return {"task": self.task, "utility": [u.clone() for u in self.utility],
                "age": [a.clone() for a in self.age], "owed": list(self.owed),
                "replaced": self.replaced_in_task, "history": list(self.history),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.task, self.owed = state["task"], list(state["owed"])
        dev = self.utility[0].device
        self.utility = [u.to(dev) for u in state["utility"]]
        self.age = [a.to(dev) for a in state["age"]]
        self.replaced_in_task, self.history = state["replaced"], list(state["history"])
        self.generator.set_state(state["generator"].cpu())
