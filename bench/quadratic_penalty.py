"""Cost of the quadratic penalty (EWC/SI/MAS/RWALK) per minibatch: the fused autograd function
of regularizers/quadratic.py against the plain autograd expression, over the Nature CNN trunk (1.7M
weights), forward + backward, interleaved, median over rounds.

    python bench/quadratic_penalty.py --threads 2 --rounds 40
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from agents.atari_net import ActorCritic
    from regularizers.quadratic import _QuadraticPenalty
    torch.manual_seed(0)
    m = ActorCritic([18, 18])
    params = [q for n, q in m.named_parameters() if not n.startswith("heads")]
    w = [torch.rand_like(q) for q in params]
    a = [q.detach() + 0.01 * torch.randn_like(q) for q in params]

    def plain():
        torch.stack([(wi * (q - ai).square()).sum() for wi, q, ai in zip(w, params, a)]).sum().backward()

    def fused():
        _QuadraticPenalty.apply(w, a, *params).backward()

    res: dict[str, list[float]] = {"plain autograd": [], "fused": []}
    for r in range(args.rounds + 5):
        for k, f in (("plain autograd", plain), ("fused", fused)):
            m.zero_grad(set_to_none=True)
            t = time.perf_counter()
            f()
            if r >= 5:                                   # 5 warm-up rounds
                res[k].append(time.perf_counter() - t)
    print(f"command: python bench/quadratic_penalty.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"{sum(q.numel() for q in params)} trunk weights, {args.threads} threads, "
          f"median of {args.rounds}")
    out = {}
    for k, v in res.items():
        v = sorted(v)
        out[k] = v[len(v) // 2]
        print(f"  {k:15s} penalty forward+backward {out[k] * 1e3:7.2f} ms (min {v[0] * 1e3:.2f})")
    return out


if __name__ == "__main__":
    main()
