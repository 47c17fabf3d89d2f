"""AGS-CL: Adaptive Group Sparsity based Continual Learning (Jung et al., NeurIPS 2020).

Loss for task t (eq. 3-5):
    L_t(theta) = CE(theta) + mu * sum_{n in G0} ||theta_n||
                           + lam * sum_{n not in G0} Omega_n * ||theta_n - theta_hat_n||
minimised by proximal gradient descent (eq. 7-8): the optimizer takes the CE step, then
``after_step(lr)`` applies the closed-form proximal operator of the two group penalties with
step size alpha = lr (eq. 11-13). Nodes and groups: see ``groups.py``.

After each task (section 3.3.3, Algorithm 1), ``end_task`` calls, in this order:
    update_omega       Omega <- eta * Omega + mean ReLU activation over the task's data (eq. 14)
    unimportant_nodes  G0 = {n : Omega_n = 0}                                            (eq. 2)
    zero_outgoing      (I.1) zero the outgoing weights of every G0 node (next trunk layer + head)
    reinitialise       (I.2) fresh incoming weights for a fraction rho of the zero-norm G0 nodes
    set_anchor         theta_hat <- theta (after the re-initialisation), per-task constants

Between tasks the weights connecting an Omega == 0 node of layer l-1 into an Omega > 0 node
of layer l are held at exactly 0 after every optimizer step (the published code's hard
freeze: (I.1) made permanent while training).

Defaults: ``rho=1.0`` re-initialises every unimportant zero-norm node, the paper's (I.2)
rule (the published RL code also used rho = 1.0; its supervised code 0.1-0.5, see the
presets). ``reinit_from='zero_norm'`` draws the candidates from the paper's set
{n in G0 : ||theta_hat_n|| = 0}; ``'unimportant'`` from all of G0 as the published code did.
Fresh weights are PyTorch's default init of the layer type (``nn.Linear`` / ``nn.Conv2d``
``reset_parameters()``); a re-initialised BatchNorm channel gets scale 1, shift 0 and fresh
running statistics. Both the choice of the rho fraction and the fresh weights are drawn from
AGS-CL's own CPU ``torch.Generator`` (``self.generator``, seeded by ``seed``, saved in
``state_dict``), whatever the model's device: the global RNGs are neither read nor advanced,
and a resumed run draws what the uninterrupted one would have.
Omega is measured with the model in eval mode (``omega_train_mode=True`` reproduces the
published code, which measured it with dropout on).

``omega_scale`` multiplies each task's new importance before eq. (14) adds it. The paper's
rule is 1. The authors' RL code (`approaches/ppo_gs.py` of sangwon-jung94/AGS-CL,
``gs_cal_rl``) adds ``sbatch * mean activation`` for each of ``num_gs_steps`` rollout steps and
then divides the running sum by ``num_gs_steps`` once per pass, for ``gs_epochs`` passes over
the same steps; with its defaults (sbatch 20, 20 steps, 100 passes) that leaves
Omega = 20 * sum_{k<100} 20^-k * mean activation = 400/19 (about 21.05) * mean activation
(``LAB_RL_OMEGA_SCALE``).

Capacity diagnosis (``task_metrics``, per trunk layer ``<metric>/<layer>``), from which a reader
tells whether a task failed for lack of free nodes (mu) or because the important ones were
held (lam * Omega):
    g0_start           share of the layer's nodes in G0 when the task started
    g0_end             share in G0 after the task's eq. (14)
    g0_used            share of the task-start G0 nodes that the task put to use (Omega > 0 after)
    important_moved    share of the task-start important nodes whose group moved at all
    drift              mean ||theta_n - theta_hat_n|| of the task-start important nodes
    freeze_threshold   their mean alpha * lam * Omega_n (alpha: the task's first step size),
                       the drift below which eq. (12)-(13) snaps a node back
g0_used, important_moved, drift and freeze_threshold are left out where the set they average
over is empty (no G0 / no important node at the task's start).
"""
from __future__ import annotations

import operator
from typing import Iterable

import torch
from torch import nn

from .base import Batch, LossFn, Regularizer, check_range, tensor_bytes
from .groups import NodeLayer, find_node_layers, head_input_layers
from .units import DEFAULT_INITS, default_init, reinit_rows  # noqa: F401 (default_init: API)

# The Omega scale of the authors' RL code (see the module docstring): 20 * sum_{k<100} 20^-k.
LAB_RL_OMEGA_SCALE = 400.0 / 19.0

REINIT_MODES = {
    "both": (True, True),    # AGS-CL
    "none": (False, False),  # ablation 'w/o re-init'
    "zero": (True, False),   # ablation 'w/o rand-init': only (I.1)
    "rand": (False, True),   # ablation 'w/o zero-init': only (I.2)
}


def _rows(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-node vector over the rows (dim 0) of a parameter tensor."""
    return v.view(-1, *([1] * (like.dim() - 1)))


class AGSCL(Regularizer):
    name = "agscl"
    HELP = {"mu": "AGS-CL group-Lasso strength on the unimportant nodes G0 (eq. 4)",
            "lam": "AGS-CL strength of the drift penalty on important nodes (eq. 5)",
            "eta": "AGS-CL decay of Omega in (0, 1] (eq. 14)",
            "rho": "AGS-CL fraction of (I.2)'s candidate nodes re-initialised",
            "prox": "AGS-CL proximal step: 'step' (every optimizer step) or 'epoch'",
            "reinit": "AGS-CL re-initialisation: both | none | zero (I.1) | rand (I.2)",
            "reinit_from": "AGS-CL (I.2) candidates: zero_norm (paper) | unimportant (lab)",
            "hard_freeze": "AGS-CL: hold the weights from G0 into important nodes at 0",
            "omega_train_mode": "AGS-CL: measure Omega in train mode (the lab's dropout on)",
            "omega_scale": "AGS-CL factor on each task's new Omega in eq. (14): 1 (paper) | "
                           "400/19 = 21.05 (the authors' RL code)"}

    def __init__(self, model: nn.Module, mu: float = 0.1, lam: float = 100.0, eta: float = 0.9,
                 rho: float = 1.0, prox: str = "step", reinit: str = "both",
                 reinit_from: str = "zero_norm", hard_freeze: bool = True,
                 omega_train_mode: bool = False, omega_scale: float = 1.0, seed: int = 0):
        super().__init__(model)
        self.mu = check_range("mu", mu, lo=0)
        self.lam = check_range("lam", lam, lo=0)
        self.eta = check_range("eta", eta, lo=0, hi=1, lo_open=True)
        self.rho = check_range("rho", rho, lo=0, hi=1)
        if prox not in ("step", "epoch"):
            raise ValueError(f"hyperparameter prox={prox!r} must be 'step' (after every "
                             f"optimizer step, Algorithm 1) or 'epoch' (once per epoch)")
        if reinit not in REINIT_MODES:
            raise ValueError(f"hyperparameter reinit={reinit!r} must be one of "
                             f"{sorted(REINIT_MODES)}")
        if reinit_from not in ("zero_norm", "unimportant"):
            raise ValueError(f"hyperparameter reinit_from={reinit_from!r} must be 'zero_norm' "
                             f"(the paper) or 'unimportant' (the published code)")
        self.prox_when, self.reinit, self.reinit_from = prox, reinit, reinit_from
        self.zero_init, self.rand_init = REINIT_MODES[reinit]
        self.hard_freeze = bool(hard_freeze) and self.zero_init
        self.omega_train_mode = bool(omega_train_mode)
        self.omega_scale = check_range("omega_scale", omega_scale, lo=0, lo_open=True)

        self.layers: list[NodeLayer] = find_node_layers(model)
        if self.rand_init:
            for L in self.layers:
                if type(L.module).reset_parameters not in DEFAULT_INITS:
                    raise ValueError(
                        f"trunk layer {L.name!r} ({type(L.module).__name__}) has its own "
                        f"reset_parameters(); AGS-CL's (I.2) draws PyTorch's default init of "
                        f"nn.Linear / nn.Conv2d from its own generator")
        # The (I.2) draws' own RNG, on the CPU for models on any device (see the docstring).
        try:
            self.seed = operator.index(seed)
        except TypeError:
            raise ValueError(f"seed={seed!r} must be an integer") from None
        self.generator = torch.Generator().manual_seed(self.seed)
        self.omega = [torch.zeros(L.num_nodes, device=L.module.weight.device)
                      for L in self.layers]
        self.history: list[dict] = []
        self._alpha0: float | None = None     # the task's first step size (diagnosis)
        self.set_anchor()

    # --- per-task constants ----------------------------------------------------------------
    @torch.no_grad()
    def set_anchor(self) -> None:
        """theta_hat <- theta (the anchor of eq. 12-13), then the per-task constants that
        depend on Omega and theta_hat (prox targets, strengths, hard-freeze masks)."""
        self.theta_hat = [[p.detach().clone() for p in L.group_params] for L in self.layers]
        self._prepare()

    def freeze_masks(self) -> list[torch.Tensor | None]:
        """Copies of the hard-freeze masks, one per node layer: None where nothing is cut,
        else a (nodes, previous layer's nodes, 1) tensor of 0/1 multiplying
        ``L.input_columns(L.module.weight)``, 0 on the weights from an Omega == 0 node of the
        previous layer into an Omega > 0 node of this one ((I.1) held while training)."""
        return [None if k is None else k.clone() for k in self._keep]

    def _prepare(self) -> None:
        """Precompute, per layer, the prox target, the per-node strength and the freeze mask.

        Both proximal maps have the form theta <- ref + gamma * (theta - ref) with
        gamma = (1 - alpha * c / ||theta - ref||)_+ (Lemma 1): for n in G0 ref = 0 and c = mu
        (eq. 11), otherwise ref = theta_hat and c = lam * Omega_n (eq. 12-13).
        """
        self._c, self._ref, self._keep = [], [], []
        for L, om, th in zip(self.layers, self.omega, self.theta_hat):
            important = om > 0
            self._c.append(torch.where(important, self.lam * om, torch.full_like(om, self.mu)))
            self._ref.append([t * _rows(important.to(t.dtype), t) for t in th])
            keep = None
            if self.hard_freeze and L.prev is not None:
                prev_unimp = self.omega[self.layers.index(L.prev)] == 0
                cut = important[:, None] & prev_unimp[None, :]          # (out, prev_nodes)
                if cut.any():
                    keep = (~cut).to(L.module.weight.dtype)[:, :, None]   # (out, prev, 1)
            self._keep.append(keep)
        self._zero_ref = [bool((om == 0).all()) for om in self.omega]
        self._graph, self._graph_ptrs = None, ()
        if not hasattr(self, "_buf") or len(self._buf) != len(self.layers):
            self._buf = [[torch.empty_like(p) for p in L.group_params] for L in self.layers]

    # --- hooks --------------------------------------------------------------------------
    def begin_task(self, task: int) -> None:
        if task != self.task:
            self._alpha0 = None
        super().begin_task(task)
        self._prepare()

    def _note_alpha(self, lr) -> None:
        if self._alpha0 is None:
            self._alpha0 = float(lr)

    # The hard freeze acts before the prox: it returns the cut weights to their theta_hat
    # value (0), so ||theta_n - theta_hat_n|| in eq. (12)-(13) measures only the node's real
    # drift and a node within alpha * lam * Omega_n snaps back exactly. The prox keeps the cut
    # weights at 0 (there theta = ref = 0), so no second freeze is needed.
    def after_step(self, lr: float) -> None:
        if self._alpha0 is None:
            self._note_alpha(lr)
        if self.prox_when == "step" and self._graph_ready():
            with torch.cuda.device(self._alpha.device):   # the model's GPU, not the current one
                self._alpha.fill_(lr)
                self._graph.replay()    # the same freeze and prox, replayed as one CUDA graph
            return
        if self.prox_when == "step":
            self._freeze_and_prox(lr)
        else:
            self._apply_hard_freeze()

    def _freeze_and_prox(self, alpha: float | torch.Tensor) -> None:
        self._apply_hard_freeze()
        self.prox(alpha)

    # On a GPU the freeze + prox is about 60 small kernels per optimizer step, so its cost is
    # the launches (PPO's paper preset: 640 steps per update). There, the first after_step of
    # a task captures them once into a CUDA graph, with alpha read from a device scalar, and
    # later steps replay it: the same kernels on the same tensors. _prepare() drops the graph
    # (new theta_hat, Omega, masks); it is also re-captured if a parameter's storage moved.
    # Set use_cuda_graph = False for the plain eager path (the CPU always takes it).
    use_cuda_graph = True

    def _graph_ready(self) -> bool:
        w = self.layers[0].module.weight
        if not (self.use_cuda_graph and w.is_cuda and torch.cuda.is_available()):
            return False
        params = [p for L in self.layers for p in L.group_params]
        ptrs = tuple(p.data_ptr() for p in params)
        if self._graph is None or self._graph_ptrs != ptrs:
            self._capture(w.device, params, ptrs)
        return True

    @torch.no_grad()
    def _capture(self, device: torch.device, params: list[torch.Tensor], ptrs: tuple) -> None:
        with torch.cuda.device(device):         # capture on the model's GPU's streams
            saved = [p.detach().clone() for p in params]
            self._alpha = torch.zeros((), dtype=self._c[0].dtype, device=device)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):       # warm-up outside the graph (lazy inits)
                self._freeze_and_prox(self._alpha)
            torch.cuda.current_stream(device).wait_stream(side)
            for p, s in zip(params, saved):     # the warm-up must not count as a step
                p.copy_(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=side):
                self._freeze_and_prox(self._alpha)
        self._graph, self._graph_ptrs = graph, ptrs

    def after_epoch(self, lr: float) -> None:
        if self.prox_when == "epoch":
            self.prox(lr)           # after_step has frozen the epoch's last step already

    @torch.no_grad()
    def prox(self, alpha: float | torch.Tensor) -> None:
        """theta <- prox_{alpha * L_Reg}(theta), eq. (11)-(13), vectorised per layer.

        ``alpha`` is the step size: a number, or a 0-dim tensor on the parameters' device."""
        for L, c, refs, bufs, zero_ref in zip(self.layers, self._c, self._ref, self._buf,
                                              self._zero_ref):
            params = L.group_params
            if zero_ref:            # every node in G0: d = theta itself, no copy needed
                ds = params
            else:                   # d = theta - ref, into a preallocated buffer
                ds = [torch.sub(p, r, out=b) for p, r, b in zip(params, refs, bufs)]
            sq = None
            for d in ds:
                s = torch.linalg.vector_norm(d.reshape(d.shape[0], -1), dim=1).square_()
                sq = s if sq is None else sq.add_(s)
            norm = sq.sqrt_()
            thresh = alpha * c
            gamma = torch.where(norm > thresh, 1 - thresh / norm.clamp_min(1e-30),
                                torch.zeros_like(norm))
            for p, r, d in zip(params, refs, ds):
                if zero_ref:
                    p.mul_(_rows(gamma, p))                      # eq. (11)
                else:
                    torch.addcmul(r, d, _rows(gamma, d), out=p)  # ref + gamma * (theta - ref)

    @torch.no_grad()
    def _apply_hard_freeze(self) -> None:
        for L, keep in zip(self.layers, self._keep):
            if keep is not None:
                w = L.module.weight
                L.input_columns(w).mul_(keep)

    # --- end of task ------------------------------------------------------------------
    @torch.no_grad()
    def mean_activations(self, task: int, batches: Iterable[Batch]) -> list[torch.Tensor]:
        """(1/N_t) sum_m a_n(x_m): mean ReLU output of every node (conv: also over H, W)."""
        sums = [torch.zeros(L.num_nodes, dtype=torch.float64, device=om.device)
                for L, om in zip(self.layers, self.omega)]
        counts = [0] * len(self.layers)

        def hook(i):
            def fn(_module, _inp, out):
                a = torch.relu(out.detach())
                dims = [0] + list(range(2, a.dim()))                     # batch (+ spatial)
                sums[i] += a.sum(dim=dims).to(torch.float64)
                counts[i] += a.numel() // a.shape[1]
            return fn

        handles = [L.activation_module.register_forward_hook(hook(i))
                   for i, L in enumerate(self.layers)]
        was_training = self.model.training
        self.model.train(self.omega_train_mode)
        try:
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                self.model(x, task)
        finally:
            for h in handles:
                h.remove()
            self.model.train(was_training)
        if min(counts) == 0:
            raise ValueError("end_task got no batches: AGS-CL needs the task's inputs to "
                             "measure node importance (eq. 14)")
        return [(s / n).to(om.dtype) for s, n, om in zip(sums, counts, self.omega)]

    def group_norms(self, diff_from_hat: bool = False) -> list[torch.Tensor]:
        out = []
        with torch.no_grad():
            for L, th in zip(self.layers, self.theta_hat):
                sq = 0
                for p, h in zip(L.group_params, th):
                    d = (p - h) if diff_from_hat else p
                    sq = sq + d.reshape(p.shape[0], -1).pow(2).sum(1)
                out.append(sq.sqrt())
        return out

    @torch.no_grad()
    def update_omega(self, task: int, batches: Iterable[Batch]) -> None:
        """Eq. (14): Omega_n <- eta * Omega_n + (1/N_t) sum_m a_n(x_m), over ``batches``
        of task ``task`` (``mean_activations``)."""
        act = self.mean_activations(task, batches)
        if self.omega_scale != 1.0:
            act = [self.omega_scale * a for a in act]
        self.omega = [self.eta * om + a for om, a in zip(self.omega, act)]

    def unimportant_nodes(self) -> list[torch.Tensor]:
        """Eq. (2): G0 = {n : Omega_n = 0}, as one boolean mask per node layer."""
        return [om == 0 for om in self.omega]

    @torch.no_grad()
    def end_task(self, task: int, batches: Iterable[Batch], loss_fn: LossFn) -> None:
        """Algorithm 1 after task ``task``: eq. (14), eq. (2), (I.1), (I.2), theta_hat."""
        # Analysis 1: used capacity = nodes whose incoming weights did not move this task.
        moved = self.group_norms(diff_from_hat=True)
        unchanged = sum(int((m == 0).sum()) for m in moved)
        omega_before = self.omega

        self.update_omega(task, batches)                                         # eq. (14)
        unimportant = self.unimportant_nodes()                                   # eq. (2)
        total = sum(L.num_nodes for L in self.layers)
        layers = self.capacity_diagnosis(omega_before, self.omega, moved)

        if self.zero_init:
            self.zero_outgoing(task, unimportant)                                # (I.1)
        # G0 nodes whose incoming weights are exactly 0 (driven there by the sparsity term);
        # the other G0 nodes are only inactive (e.g. dead ReLUs). The paper's (I.2) rule
        # re-initialises only the former, so this says how much of G0 it can reach.
        norms = self.group_norms()
        zero_norm = sum(int((u & (n == 0)).sum()) for u, n in zip(unimportant, norms))
        reinitialised = self.reinitialise(unimportant, norms) if self.rand_init else 0  # (I.2)
        self.set_anchor()
        self.history.append({
            "task": task,
            "sparsity": sum(int(u.sum()) for u in unimportant) / total,
            "used_capacity": unchanged / total,
            "reinitialised": reinitialised / total,
            "zero_norm": zero_norm / total,
            "layers": layers,
        })
        self.task = task

    def capacity_diagnosis(self, omega_before: list[torch.Tensor],
                           omega_after: list[torch.Tensor], drift: list[torch.Tensor]
                           ) -> dict[str, dict[str, float]]:
        """Per node layer, the task's capacity record (module docstring): ``omega_before``
        is Omega at the task's start, ``omega_after`` after its eq. (14), ``drift`` the
        nodes' ||theta_n - theta_hat_n|| at the task's end."""
        alpha = self._alpha0 if self._alpha0 is not None else 0.0
        out = {}
        for L, ob, oa, d in zip(self.layers, omega_before, omega_after, drift):
            g0, imp = ob == 0, ob > 0
            rec = {"g0_start": float(g0.float().mean()), "g0_end": float((oa == 0).float().mean())}
            if g0.any():
                rec["g0_used"] = float((oa[g0] > 0).float().mean())
            if imp.any():
                rec["important_moved"] = float((d[imp] > 0).float().mean())
                rec["drift"] = float(d[imp].double().mean())
                rec["freeze_threshold"] = float((alpha * self.lam * ob[imp].double()).mean())
            out[L.name] = rec
        return out

    @torch.no_grad()
    def zero_outgoing(self, task: int, unimportant: list[torch.Tensor]) -> None:
        """(I.1): theta_{n,i} = 0 for every input i in G0 (``unimportant``, one mask per node
        layer): the columns it feeds in the next trunk layer and in head ``task``."""
        for i, L in enumerate(self.layers):
            keep = (~unimportant[i]).to(L.module.weight.dtype)
            for nxt in self.layers:
                if nxt.prev is L:
                    nxt.input_columns(nxt.module.weight).mul_(keep[None, :, None])
            if L.feeds_heads:
                for head in head_input_layers(self.model, task, L):
                    w = head.weight
                    w.view(w.shape[0], L.num_nodes, -1).mul_(keep[None, :, None])

    @torch.no_grad()
    def reinitialise(self, unimportant: list[torch.Tensor],
                     norms: list[torch.Tensor] | None = None) -> int:
        """(I.2): Rand-Init of the incoming weights of a fraction rho of the candidates, the
        nodes of G0 (``unimportant``) with zero norm (``reinit_from='zero_norm'``) or all of
        G0 (``'unimportant'``); ``norms`` are the current group norms, if the caller has them.
        Per layer, the chosen nodes (a random subset of round(rho * #candidates)) and their
        fresh weights (``default_init``) are drawn from ``self.generator``; their BatchNorm
        channel is reset. Returns the number of nodes re-initialised."""
        norms = self.group_norms() if norms is None else norms
        count = 0
        for L, unimp, norm in zip(self.layers, unimportant, norms):
            cand = unimp & (norm == 0) if self.reinit_from == "zero_norm" else unimp
            idx = cand.nonzero().flatten()
            k = int(round(self.rho * idx.numel()))
            if k == 0:
                continue
            pick = torch.randperm(idx.numel(), generator=self.generator)[:k]
            reinit_rows(L, idx[pick.to(idx.device)], self.generator)
            count += k
        return count

    # --- measurements & persistence -------------------------------------------------------
    def sparsity(self) -> float:
        return self.history[-1]["sparsity"] if self.history else 0.0

    def used_capacity(self) -> float:
        return self.history[-1]["used_capacity"] if self.history else 0.0

    def task_metrics(self) -> dict[str, float]:
        if not self.history:
            return {}
        h = self.history[-1]
        out = {"sparsity": h["sparsity"], "used_capacity": h["used_capacity"],
               "reinitialised": h["reinitialised"], "zero_norm": h["zero_norm"]}
        for layer, rec in h.get("layers", {}).items():
            for k, v in rec.items():
                out[f"{k}/{layer}"] = v
        return out

    def state_tensors(self) -> list[torch.Tensor]:
        return list(self.omega) + [t for th in self.theta_hat for t in th]

    def state_dict(self) -> dict:
        return {"task": self.task, "omega": [o.clone() for o in self.omega],
                "theta_hat": [[t.clone() for t in th] for th in self.theta_hat],
                "history": list(self.history), "generator": self.generator.get_state(),
                "alpha0": self._alpha0}

    def load_state_dict(self, state: dict) -> None:
        if len(state["omega"]) != len(self.layers) or any(
                o.shape != om.shape for o, om in zip(state["omega"], self.omega)) or any(
                len(th) != len(mine) or any(t.shape != m.shape for t, m in zip(th, mine))
                for th, mine in zip(state["theta_hat"], self.theta_hat)):
            raise ValueError("AGS-CL state does not match this model's node layers "
                             "(a checkpoint from another network?)")
        self.task = state["task"]
        dev = self.omega[0].device
        self.omega = [o.to(dev) for o in state["omega"]]
        self.theta_hat = [[t.to(dev) for t in th] for th in state["theta_hat"]]
        self.history = list(state["history"])
        self.generator.set_state(state["generator"].cpu())
        self._alpha0 = state["alpha0"]
        self._prepare()
