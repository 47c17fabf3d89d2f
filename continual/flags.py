"""A command's flags and their parsing: the command line -> a run config.

Every field of a command's config (``runconfig.RUNS[command]``) has one flag, generated from the
dataclass fields with their help text (``FLAGS[command]``); a regularizer hyperparameter's flag
comes from the regularizer's own signature (``regularizers.hyperparameters``). ``resolve`` makes
the run config of a command line: defaults < a config file < the flags given. The "machine"
part of a config (device, threads, paths) may change when a run is resumed; any other flag given
with ``--resume`` must agree with the run's config.json, or the resume is refused, naming the
flag.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import regularizers
from agents.config import BoolOrAuto, ClassifierConfig, PPOConfig, strengths

from envs import streams

from .runconfig import METHODS, RUNS, PerCommand, from_dict, merge, saved_ppo, to_dict
from .runfolder import RunError, RunFolder, config_differences


def load_file(path: str | Path) -> dict:
    """A config file: JSON (a run's config.json) or TOML, of config.json's shape."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file")
    try:
        if path.suffix == ".toml":
            import tomllib
            return tomllib.loads(path.read_text())
        return json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"--config {path} is not valid {path.suffix[1:] or 'JSON'}: {e}") \
            from None


@dataclass
class Flag:
    name: str                   # without the leading dashes
    path: tuple[str, ...]       # where its value goes in the config dict
    kind: type
    help: str
    aliases: tuple[str, ...] = ()
    machine: bool = False


def _kind(f) -> type:
    if "kind" in f.metadata:
        return f.metadata["kind"]
    t = str(f.type)
    for name, kind in (("bool", bool), ("tuple", tuple), ("list", list), ("int", int),
                       ("float", float)):
        if name in t and not (kind is int and "float" in t):
            return kind
    return str


def _dataclass_flags(cls, path: tuple[str, ...], machine: bool = False,
                     presets: dict | None = None) -> list[Flag]:
    out = []
    for f in fields(cls):
        if not f.metadata.get("help") or f.metadata.get("cli", True) is False:
            continue
        flag = f.name.replace("_", "-")
        aliases = ()
        if "flag" in f.metadata:
            if f.metadata["flag"] == "no-progress":
                flag = "no-progress"
            else:
                aliases = (f.metadata["flag"],)
        text = _help(f, presets)
        if flag == "no-progress":       # the flag turns the knob off: say what it does
            text = f"do not {f.metadata['help']} (by default: shown)"
        out.append(Flag(flag, path + (f.name,), _kind(f), text, aliases, machine))
    return out


def _help(f, presets: dict | None = None) -> str:
    """A field's help with its default (and where a preset changes it, the preset's value)."""
    default = f.default if f.default is not dataclasses.MISSING else None
    notes = [] if default is None else [f"default: {default}"]
    for name, values in (presets or {}).items():
        if f.name in values and f.name != "preset":
            notes.append(f"{name} preset: {values[f.name]}")
    return f.metadata["help"] + (f" ({'; '.join(notes)})" if notes else "")


def _reg_flags(command: str, taken: set[str]) -> list[Flag]:
    """One flag per regularizer hyperparameter of the command's methods (the signatures'
    names; ``reg-<name>`` where a learner flag has that name, e.g. --reg-gamma)."""
    bench = command if command in streams.STREAMS else None
    by_name: dict[str, list[tuple[str, Any, str]]] = {}
    for m in METHODS[command]:
        meaning = regularizers.describe(m)
        for k, default in regularizers.hyperparameters(m).items():
            if bench:
                default = strengths(bench, m).get(k, default)
            by_name.setdefault(k, []).append((m, default, meaning[k]))
    out = []
    for k, uses in sorted(by_name.items()):
        kinds = {type(v) for _, v, _ in uses}
        kind = float if float in kinds else kinds.pop() if len(kinds) == 1 else str
        meanings = "; ".join(dict.fromkeys(h for _, _, h in uses))
        by_value: dict[str, list[str]] = {}
        for m, v, _ in uses:
            by_value.setdefault(repr(v), []).append(m)
        defaults = "; ".join(f"{v} ({', '.join(ms)})" for v, ms in by_value.items())
        where = f"on {bench}" if bench else "(each benchmark's own: agents/config.py)"
        name = f"reg-{k}" if k.replace("_", "-") in taken else k.replace("_", "-")
        out.append(Flag(name, ("regularizer_hparams", k), kind,
                        f"{meanings}. Defaults {where}: {defaults}"))
    return out


def _flags(command: str) -> list[Flag]:
    cls = RUNS[command]
    out = [Flag("config", (), str, "a config file (JSON, e.g. a run's config.json, or TOML) "
                                   "of config.json's shape; flags override it")]
    for f in fields(cls):
        if f.name == "ppo":
            s = streams.get(command)
            mine = {k: v for k, v in s.PRESETS.items() if v}
            flags = _dataclass_flags(PPOConfig, ("ppo",), presets=mine)
            for fl in flags:
                if fl.name == "preset":
                    fl.help = (f"PPO preset: {' | '.join(s.PRESETS)} (default: "
                               f"{s.DEFAULT_PRESET})")
            out += flags
        elif f.name == "classifier":
            out += _dataclass_flags(ClassifierConfig, ("classifier",))
        elif f.name == "machine":
            out += _dataclass_flags(f.default_factory, ("machine",), machine=True)
        elif f.metadata.get("help") and f.metadata.get("cli", True):
            help_ = _help(f) + (
                f": {', '.join(m for m in METHODS[command] if m not in regularizers.PLASTICITY)}"
                f"; plasticity methods {', '.join(regularizers.PLASTICITY)} stack on one of "
                f"them with + (ewc+redo; alone: on fine-tuning)" if f.name == "regularizer"
                else "")
            out.append(Flag(f.name.replace("_", "-"), (f.name,), _kind(f), help_))
    taken = {fl.name for fl in out} | {a for fl in out for a in fl.aliases}
    return out + _reg_flags(command, taken)


FLAGS = PerCommand(_flags)


def flag_of(command: str, path: tuple[str, ...]) -> str:
    for fl in FLAGS[command]:
        if fl.path == path:
            return "--" + fl.name
    return ".".join(path)


def parse_value(kind: type, text):
    """A flag's text as its field's type: 'true'/'false' for booleans, 'a,b' for lists."""
    if not isinstance(text, str):
        return text
    if kind is BoolOrAuto and text.strip().lower() == "auto":
        return "auto"
    if kind in (bool, BoolOrAuto):
        t = text.strip().lower()
        if t not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{text!r} is not a boolean: use true or false"
                             + (" or auto" if kind is BoolOrAuto else ""))
        return t in ("1", "true", "yes", "on")
    if kind in (list, tuple):
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or not all(parts):
            raise ValueError(f"{text!r} is not a comma-separated list")
        return parts
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    if text.lower() in ("none", "null"):
        return None
    return text


def flags_to_dict(command: str, given: dict[str, Any]) -> dict:
    """{flag name (dashes or underscores, no leading '--'): value} -> a partial config dict.
    Values may be text (parsed as the field's type) or already typed."""
    by_name = {}
    for fl in FLAGS[command]:
        for n in (fl.name, *fl.aliases):
            by_name[n] = fl
    out: dict = {}
    for name, value in given.items():
        fl = by_name.get(name.replace("_", "-"))
        if fl is None or not fl.path:
            raise ValueError(f"{command} has no flag --{name.replace('_', '-')}; see "
                             f"`train.py {command} --help`")
        try:
            v = parse_value(fl.kind, value)
        except ValueError as e:
            raise ValueError(f"--{fl.name}: {e}") from None
        if fl.name == "no-progress":
            v = not v
        if fl.path == ("classifier", "mlp_hidden") and v is not None:
            v = [int(x) for x in v]
        node = out
        for k in fl.path[:-1]:
            node = node.setdefault(k, {})
        node[fl.path[-1]] = v
    return out


def resolve(command: str, given: dict[str, Any], config_file: str | None = None,
            resume_from: str | Path | None = None):
    """The run config of a command line: defaults < ``config_file`` < ``given`` flags; with
    ``resume_from`` (a run folder) the run's config.json instead of the defaults and the
    file, and a non-machine flag that disagrees with it is refused, naming the flag."""
    cli = flags_to_dict(command, given)
    if resume_from is None:
        base = load_file(config_file) if config_file else {}
        return from_dict(command, merge(base, cli), config_file or "the command line")
    if config_file:
        raise ValueError("--config with --resume: a resumed run's config is its config.json; "
                         "drop --config")
    run = RunFolder(resume_from)
    saved = run.read_config()
    if isinstance(saved.get("ppo"), dict):
        saved["ppo"] = saved_ppo(saved["ppo"])
    if saved.get("command") != command:
        raise RunError(f"{resume_from} is a {saved.get('command')} run: resume it with "
                       f"`train.py {saved.get('command')} --resume --out {resume_from}`")
    merged = to_dict(from_dict(command, merge(saved, cli), str(run.config_path)))
    diff = config_differences(saved, merged)
    if diff:
        paths = [tuple(d.split(":")[0].split(".")) for d in diff]
        names = ", ".join(flag_of(command, p) for p in paths)
        raise RunError(f"--resume refused: {names} disagree(s) with the run in {resume_from} "
                       f"({'; '.join(diff)}); resume without them, or pass another --out to "
                       f"start a new run")
    return from_dict(command, merged)
