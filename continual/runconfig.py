"""One config per command, and the one ``build`` that wires a run from it.

A run is a ``GameRun`` (continual PPO; one class per game stream, ``RUNS[name]``) or a
``VisionRun``. Either is made from a dict of the shape of a run's config.json (``from_dict``;
missing keys take their defaults), which is what the CLI (``flags.resolve``), a config file
(``--config FILE``, JSON or TOML), a run folder (``--resume``) and the study runner all
produce. ``to_dict`` is what config.json holds: every value resolved, so a run folder alone
says what ran. ``build(config)`` returns the learner, the regularizer and the schedule.
"""
from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, ClassVar

import regularizers
from agents.config import REG_PRESETS, ClassifierConfig, PPOConfig, knob, \
    replace_checked, resolve_bf16, strengths

from envs import streams

from .runfolder import CHECKPOINT_FORMAT, RunError, RunFolder, refuse_format
from .trainer import Schedule

# the methods each command can run (one that needs its own network, as HAT its gates: vision only)
GAME_METHODS = tuple(n for n in regularizers.NAMES if not regularizers.network_options(n))


@dataclass
class GameMachine:
    device: str = knob("cpu", "cpu, cuda, cuda:1, ...")
    threads: int = knob(0, "torch CPU threads (0: torch's default)")
    env_threads: int = knob(0, "emulator threads of the streams that have them (0: "
                               "min(num_envs, cores))")
    progress: bool = knob(True, "show a progress bar", flag="no-progress")
    # A machine setting: videos are outputs only (filming draws no randomness and changes
    # nothing of the run), so they may be switched on or off at a --resume, and two runs that
    # differ only in them are the same run to a study's grouping.
    capture_video: bool = knob(False, "at each task end, film one evaluation game of every "
                                      "seen game into videos/task<t>-<game>.mp4")

    def __post_init__(self):
        if not isinstance(self.capture_video, bool):
            raise ValueError(f"capture_video={self.capture_video!r} must be true or false")


@dataclass
class VisionMachine:
    device: str = knob("cpu", "cpu, cuda, cuda:1, ...")
    threads: int = knob(0, "torch CPU threads (0: torch's default)")
    progress: bool = knob(True, "show a progress bar", flag="no-progress")
    data_dir: str | None = knob(None, "where the data set lies (or goes with --download)")
    download: bool = knob(False, "download the data set (MD5-checked) if it is missing")


@dataclass
class GameRun:
    """Continual PPO over a stream of games (``envs/streams.py``). Each stream's run class
    (``RUNS[name]``, made by ``game_run``) adds the stream's ``Options`` fields and its games
    and PPO preset as defaults."""
    games: list[str] = field(default_factory=list)
    regularizer: str = knob("agscl", "the continual-learning method")
    reg_preset: str = knob("paper", "the regularizer's strength set: " + "; ".join(
        f"{k}: {v}" for k, v in REG_PRESETS.items()) + ". Flags override it")
    regularizer_hparams: dict = field(default_factory=dict, metadata={"cli": False})
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval_every: int | None = knob(None, "env steps between evaluations of every seen game "
                                        "(0: at task ends only; default: a tenth of a task)")
    checkpoint_every: int | None = knob(None, "PPO iterations between periodic checkpoints "
                                              "(default: a quarter of a task, at most 50)")
    machine: GameMachine = field(default_factory=GameMachine)
    command: ClassVar[str]
    stream: ClassVar[Any]

    def __post_init__(self):
        s = self.stream
        self.games = s.parse_games(self.games)
        options = s.Options(**{f.name: getattr(self, f.name) for f in fields(s.Options)})
        for f in fields(s.Options):                       # validated, normalised
            setattr(self, f.name, getattr(options, f.name))
        self._options = options
        if self.machine.env_threads and not s.ENV_THREADS:
            raise ValueError(f"env_threads={self.machine.env_threads} sets emulator threads, "
                             f"and the {self.command} stream has none: drop --env-threads")
        if self.ppo.arch not in s.NETWORKS:
            raise ValueError(f"PPO arch {self.ppo.arch!r} (preset {self.ppo.preset!r}) does not "
                             f"fit train.py {self.command}: it runs the {', '.join(s.PRESETS)} "
                             f"presets (arch {', '.join(s.NETWORKS)})")
        check_method(self.command, self.regularizer)
        # config.json records the autocast the run uses, never 'auto'
        self.ppo = dataclasses.replace(self.ppo, bf16=resolve_bf16(self.ppo.bf16,
                                                                   self.machine.device))
        self.regularizer_hparams = {**strengths(self.command, self.regularizer, self.reg_preset),
                                    **self.regularizer_hparams}
        units = max(1, self.ppo.steps_per_task // self.ppo.batch_size)
        if self.eval_every is None:
            self.eval_every = self.ppo.steps_per_task // 10
        if self.checkpoint_every is None:
            self.checkpoint_every = max(1, min(50, units // 4))
        _check_int("eval_every", self.eval_every, 0)
        _check_int("checkpoint_every", self.checkpoint_every, 1)

    def env_options(self) -> dict:
        """Keyword arguments of the stream's env constructors."""
        return self._options.env_options()

    def net_options(self) -> dict:
        """Keyword arguments of the stream's network."""
        return self._options.net_options()

    @property
    def seed(self) -> int:
        return self.ppo.seed


def game_run(command: str) -> type:
    """The run class of a game stream: ``GameRun`` with the stream's games and PPO preset as
    defaults and its ``Options`` fields (config.json's top-level keys, flags of their own)."""
    s = streams.get(command)
    games = ", ".join(s.GAMES)
    return make_dataclass(
        f"{command.capitalize()}Run",
        [("games", list[str], field(default_factory=lambda: list(s.GAMES), metadata={
            "help": f"comma-separated games, in stream order (default: {games})",
            "kind": str})),
         ("ppo", PPOConfig, field(default_factory=lambda: PPOConfig.from_preset(
             s.DEFAULT_PRESET))),
         *[(f.name, f.type, f) for f in _copied_fields(s.Options)]],
        bases=(GameRun,), namespace={"command": command, "stream": s,
                                     "default_preset": s.DEFAULT_PRESET})


def _copied_fields(cls) -> list:
    """Fresh copies of a dataclass's fields (a Field belongs to one class)."""
    out = []
    for f in fields(cls):
        kw = {"default": f.default} if f.default is not dataclasses.MISSING else \
            {"default_factory": f.default_factory}
        out.append(field(metadata=dict(f.metadata), **kw))
        out[-1].name, out[-1].type = f.name, f.type
    return out


@dataclass
class VisionRun:
    """Continual supervised learning on a vision task stream."""
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    regularizer: str = knob("agscl", "the continual-learning method")
    regularizer_hparams: dict = field(default_factory=dict, metadata={"cli": False})
    max_tasks: int | None = knob(None, "use only the first N tasks of the stream")
    augment: int = knob(0, "Omniglot: rotated/shifted copies per training image (paper: 20)")
    checkpoint_every: int = knob(5, "epochs between periodic checkpoints")
    machine: VisionMachine = field(default_factory=VisionMachine)
    command = "vision"

    def __post_init__(self):
        check_method(self.command, self.regularizer)
        self.classifier = dataclasses.replace(
            self.classifier, **{"hat": False, **regularizers.network_options(self.regularizer)})
        self.regularizer_hparams = {**strengths(self.classifier.benchmark, self.regularizer),
                                    **self.regularizer_hparams}
        if self.max_tasks is not None:
            _check_int("max_tasks", self.max_tasks, 1)
        _check_int("augment", self.augment, 0)
        if self.augment and self.classifier.benchmark != "omniglot":
            raise ValueError(f"--augment applies to omniglot only, not to "
                             f"{self.classifier.benchmark}")
        _check_int("checkpoint_every", self.checkpoint_every, 1)

    @property
    def seed(self) -> int:
        return self.classifier.seed


class PerCommand(Mapping):
    """{command: make(command)} for every game stream of ``envs.streams.STREAMS`` (read when
    asked, so a stream registered later has its entry) and "vision"; made once per stream."""

    def __init__(self, make):
        self._make, self._made = make, {}

    def __getitem__(self, command: str):
        if command not in self:
            raise KeyError(command)
        key = (command, streams.STREAMS.get(command))
        if key not in self._made:
            self._made[key] = self._make(command)
        return self._made[key]

    def __contains__(self, command) -> bool:
        return command == "vision" or command in streams.STREAMS

    def __iter__(self):
        return iter([*streams.STREAMS, "vision"])

    def __len__(self) -> int:
        return len(streams.STREAMS) + 1


RUNS = PerCommand(lambda c: VisionRun if c == "vision" else game_run(c))
METHODS = PerCommand(lambda c: regularizers.NAMES if c == "vision" else GAME_METHODS)


def check_method(command: str, name: str) -> None:
    """A method, or a stack of one stability and any plasticity methods ('ewc+redo'), that
    the command can run."""
    try:
        parts = regularizers.parse(name)
    except ValueError as e:
        raise ValueError(f"{e} (train.py {command}: {', '.join(METHODS[command])})") from None
    for p in parts:
        if p not in METHODS[command]:
            raise ValueError(f"regularizer {p!r} needs a network of its own (HAT: its gates): "
                             f"train.py vision; {command} runs {', '.join(METHODS[command])}")


def _check_int(name: str, v, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name}={v!r} must be an integer >= {lo}")


# --- dicts <-> configs ------------------------------------------------------------------------
def from_dict(command: str, d: dict, where: str = "the config"):
    """A run config from a (partial) dict of config.json's shape; unknown keys are errors."""
    if command not in RUNS:
        raise ValueError(f"unknown command {command!r}; choose one of: {', '.join(RUNS)}")
    d = dict(d)
    version = d.pop("format_version", CHECKPOINT_FORMAT)
    if version != CHECKPOINT_FORMAT:
        refuse_format(where, version)
    if d.pop("command", command) != command:
        raise ValueError(f"{where} is a config for another command than {command!r}")
    cls = RUNS[command]
    kw = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d.pop(f.name)
        if f.name == "ppo":
            v = ppo_keys(dict(v))
            v = PPOConfig.from_preset(v.pop("preset", cls.default_preset), **v)
        elif f.name == "classifier":
            v = dict(v)
            v = ClassifierConfig.from_preset(v.pop("benchmark", "split_digits"),
                                             v.pop("preset", "published"), **v)
        elif f.name == "machine":
            v = replace_checked(f.default_factory, {}, v, f"{where}: machine")
        kw[f.name] = v
    if d:
        raise ValueError(f"{where} has unknown key(s) {', '.join(sorted(d))}; keys: "
                         f"{', '.join(f.name for f in fields(cls))}")
    return cls(**kw)


def ppo_keys(ppo: dict) -> dict:
    """PPO's learning rate is "lr", as the classifier's; a config.json that names it
    "learning_rate" is read as "lr"."""
    if "learning_rate" in ppo:
        ppo.setdefault("lr", ppo.pop("learning_rate"))
    return ppo


def saved_ppo(ppo: dict) -> dict:
    """A config.json's ppo part as this code reads it (``ppo_keys``); one written before bf16
    existed ran float32, so it never takes the 'auto' default."""
    ppo = ppo_keys(dict(ppo))
    ppo.setdefault("bf16", False)
    return ppo


def to_dict(config) -> dict:
    d = {"format_version": CHECKPOINT_FORMAT, "command": config.command}
    for f in fields(config):
        v = getattr(config, f.name)
        d[f.name] = v.to_dict() if hasattr(v, "to_dict") else \
            dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
    return json.loads(json.dumps(d))


def with_defaults(saved: dict) -> dict:
    """A run's config.json as this code reads it: every field a later version added filled in
    with its default and renamed keys read under their new names, so that the runs of one
    setting group together whichever version wrote them (what a report passes to
    ``analysis.report.report`` as ``resolve``). The file as it is where this code cannot read
    it (another format, a hand-made folder)."""
    try:
        if isinstance(saved.get("ppo"), dict):
            saved = {**saved, "ppo": saved_ppo(saved["ppo"])}
        return to_dict(from_dict(saved["command"], saved))
    except (KeyError, TypeError, ValueError, RunError):
        return saved


def merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# --- build ------------------------------------------------------------------------------------
def check_device(name: str) -> None:
    """A device this torch build can use, or an error naming the fix (before any folder exists)."""
    import torch
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:1, "
                         f"...") from None
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise ValueError(f"--device {name}: this torch ({torch.__version__}) is a CPU-only "
                             f"build; install a CUDA build of torch (README, 'GPU users') or "
                             f"use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n or n == 0:
            raise ValueError(f"--device {name}: {n} CUDA device(s) visible; use one of "
                             f"{', '.join(f'cuda:{i}' for i in range(n)) or 'cpu'}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available here; use --device cpu")


def seed_everything(seed: int) -> None:
    """The global RNGs from the run's seed: the vision models' initialisation and dropout.
    (A resumed run restores them from its checkpoint.)"""
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build(config):
    """(learner, regularizer, schedule) of a run config; errors before anything is written."""
    import torch
    m = config.machine
    check_device(m.device)
    if m.threads:
        torch.set_num_threads(m.threads)
    seed_everything(config.seed)
    if isinstance(config, GameRun):
        from agents.ppo import PPOLearner
        learner = PPOLearner(config.ppo, config.games, device=m.device,
                             env_threads=m.env_threads, env=config.command,
                             env_options=config.env_options(),
                             net_options=config.net_options())
        per_unit = config.ppo.batch_size
        schedule = Schedule(eval_every=max(1, config.eval_every // per_unit)
                            if config.eval_every else 0,
                            checkpoint_every=config.checkpoint_every,
                            capture_video=m.capture_video)
    else:
        from agents.classifier import ClassifierLearner
        from envs.vision import make_stream
        c = config.classifier
        options = {"augment": config.augment} if config.augment else {}
        stream = make_stream(c.benchmark, data_dir=m.data_dir, seed=c.seed,
                             download=m.download, **options)
        if config.max_tasks:
            stream.tasks = stream.tasks[:config.max_tasks]
        learner = ClassifierLearner(stream, c, device=m.device)
        schedule = Schedule(eval_every=0, checkpoint_every=config.checkpoint_every)
    reg = regularizers.make(config.regularizer, learner.model, seed=config.seed,
                            **config.regularizer_hparams)
    return learner, reg, schedule


def load(run_dir: str | Path, checkpoint: str = "last.pt", machine: dict | None = None):
    """A saved run at one of its checkpoints, read only: (config, learner, regularizer, the
    trainer's state), with the learner's and the regularizer's states loaded. ``machine``
    overrides the saved machine part (e.g. {"device": "cpu"})."""
    folder = RunFolder(run_dir)
    saved = folder.read_config()
    config = from_dict(saved["command"], merge(saved, {"machine": machine or {}}),
                       str(folder.config_path))
    ck = folder.load_checkpoint(folder.ckpt_dir / checkpoint)
    learner, reg, _ = build(config)
    learner.load_state_dict(ck["learner"])
    reg.load_state_dict(ck["regularizer"])
    return config, learner, reg, ck["trainer"]
