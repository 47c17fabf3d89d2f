"""Grouping runs into experiments: a method and its hyperparameters, seeds pooled
(``group_runs``; two runs share a group iff they share ``group_key``), and Figure 5's sweep
over lam of a report's groups (``lam_sweeps``). No I/O.
"""
from __future__ import annotations

import json

# config.json parts that do not define a method's setting: bookkeeping, the machine (device,
# threads, paths) and the method's name (a group's "method"); the learner's seed is dropped too
NOT_HYPERPARAMETERS = ("format_version", "command", "machine", "regularizer")
SEEDED = ("ppo", "classifier")         # the learner parts whose "seed" is the run's seed


def hyperparameters(config: dict) -> dict:
    """What makes two runs of one method the same experiment: config.json without
    ``NOT_HYPERPARAMETERS`` and without the learner's seed (``ppo.seed``, ``classifier.seed``).
    Everything else counts (regularizer strengths, PPO / classifier settings, the stream)."""
    out = {k: v for k, v in config.items() if k not in NOT_HYPERPARAMETERS}
    for part in SEEDED:
        if isinstance(out.get(part), dict):
            out[part] = {k: v for k, v in out[part].items() if k != "seed"}
    return out


def _canonical(v):
    """Numbers as floats (a TOML ``lam = 10`` and a resolved 10.0 are one setting), dicts with
    sorted keys, for a JSON key."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in sorted(v.items())}
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    return repr(v)


def group_key(method: str, config: dict) -> str:
    """The key two runs share iff they are seeds of one experiment: the method and its
    ``hyperparameters``, as canonical JSON."""
    return json.dumps([method, _canonical(hyperparameters(config))], sort_keys=True)


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested dict as {"a.b": value}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _value_text(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_value_text(x) for x in v)
    return "unset" if v is _UNSET else str(v)


_UNSET = object()


def group_runs(runs) -> list[dict]:
    """Runs grouped by method and hyperparameters. ``runs``: (method, config.json dict) per
    run. Returns one dict per group, in the order of each group's first run:
    {"method", "label", "hyperparameters" (the first run's), "varied" (the flattened
    hyperparameters in which the group differs from the other groups of its method; a key a
    group lacks shows as "unset"), "members" (indices into ``runs``)}. The label is the method
    plus its varied hyperparameters, e.g. "agscl lam=10" (regularizer strengths by their own
    name, other settings by their last name, or their dotted path where that is ambiguous);
    the method alone when it has one group."""
    groups: dict[str, dict] = {}
    for i, (method, config) in enumerate(runs):
        g = groups.setdefault(group_key(method, config or {}), {
            "method": method, "hyperparameters": hyperparameters(config or {}), "members": []})
        g["members"].append(i)
    out = list(groups.values())
    for method in dict.fromkeys(g["method"] for g in out):
        mine = [g for g in out if g["method"] == method]
        flat = [flatten(g["hyperparameters"]) for g in mine]
        keys = list(dict.fromkeys(k for f in flat for k in f))
        varied = [k for k in keys if len({json.dumps(_canonical(f.get(k, "\0unset")))
                                          for f in flat}) > 1]
        short = {k: k.split(".")[-1] for k in varied}
        names = {k: s if list(short.values()).count(s) == 1 else
                 k.removeprefix("regularizer_hparams.") for k, s in short.items()}
        for g, f in zip(mine, flat):
            g["varied"] = {k: f.get(k) for k in varied}
            g["label"] = " ".join([method] + [f"{names[k]}={_value_text(f.get(k, _UNSET))}"
                                              for k in varied])
        labels = [g["label"] for g in mine]
        for k, g in enumerate(mine):       # values that print alike (e.g. beyond 6 digits)
            if labels.count(g["label"]) > 1:
                g["label"] += f" #{labels[:k].count(g['label']) + 1}"
    return [{k: g[k] for k in ("method", "label", "hyperparameters", "varied", "members")}
            for g in out]


def lam_sweeps(gs: list[dict]) -> dict:
    """Figure 5's plasticity-stability trade-off over lam (the paper fixes mu and varies lam
    for AGS-CL, varies lam for EWC) of a report's groups (supervised or RL: each with
    "method", "label", "hyperparameters" and "plasticity" / "stability" ``mean_ci``s): per
    method with more than one lam among the groups,
    {"points": [{"label", "lam", "plasticity", "stability"}] (sorted by lam; each a
    ``mean_ci`` over the group's seeds), "best": the label and lam of the point with the
    highest P + S (means; the paper marks the optimum lam), "criterion"}. Groups without P or
    S (no complete run) are no point."""
    out = {}
    for method in dict.fromkeys(g["method"] for g in gs):
        pts = [{"label": g["label"], "lam": g["hyperparameters"]["regularizer_hparams"]["lam"],
                "plasticity": g["plasticity"], "stability": g["stability"]}
               for g in gs if g["method"] == method
               and "lam" in (g["hyperparameters"].get("regularizer_hparams") or {})
               and g["plasticity"]["mean"] is not None and g["stability"]["mean"] is not None]
        if len({float(p["lam"]) for p in pts}) < 2:
            continue
        pts.sort(key=lambda p: float(p["lam"]))
        best = max(pts, key=lambda p: p["plasticity"]["mean"] + p["stability"]["mean"])
        out[method] = {"points": pts, "best": {"label": best["label"], "lam": best["lam"]},
                       "criterion": "highest P + S (means over seeds)"}
    return out
