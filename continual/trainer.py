"""The continual trainer: one task loop for every learner and every regularizer.

    for task t in the stream:
        learner.begin_task(t); reg.begin_task(t)
        for unit in the task:        (PPO iteration / supervised epoch)
            learner.train_unit(t, unit, reg)   -> scalars to TensorBoard, progress bar
            periodically: evaluate every task seen so far (curve); checkpoint
        learner.end_task(t)
        reg.end_task(t, *learner.importance_data(t))
        row t of the matrix = learner.evaluate(j) for j <= t; checkpoint; results.json; plots

The trainer never knows which regularizer or learner it runs. Where the learner has them
(``agents.base.GameLearner``), it also logs the dormant units at every evaluation (periodic
ones and the task end, measured on the network as trained, before ``reg.end_task`` changes
it), and with ``Schedule.capture_video`` films one evaluation game of every seen task at each
task end into ``videos/task<t>-<name>.mp4``. Interruption: Ctrl-C or SIGTERM
finishes the current unit, saves a checkpoint and stops (a second Ctrl-C stops at once, without
saving; a second SIGTERM changes nothing); ``resume=True`` continues from the last checkpoint
and repeats the uninterrupted run exactly. Each session of a run (the first, every resume) is
recorded in ``results.json`` under ``sessions`` (code commit, packages, machine; see
provenance.py).
"""
from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from agents.base import GameLearner
from analysis import metrics

from . import provenance
from .runfolder import CHECKPOINT_FORMAT, RunFolder, write_json


class NaNLossError(RuntimeError):
    pass


@dataclass
class Schedule:
    eval_every: int = 0          # units between evaluations of all seen tasks (0: task ends only)
    checkpoint_every: int = 0    # units between periodic checkpoints (0: task ends only)
    capture_video: bool = False  # film one evaluation game per seen task at each task end


def _rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
         "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():   # GPU runs: dropout, re-init
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available() and len(s["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(s["cuda"])


class ContinualTrainer:
    def __init__(self, learner, regularizer, run: RunFolder, config: dict,
                 schedule: Schedule = Schedule(), resume: bool = False, progress: bool = True,
                 plots: bool = True):
        self.learner, self.reg, self.run_folder = learner, regularizer, run
        self.config, self.schedule, self.resume, self.progress = config, schedule, resume, progress
        self.plots = plots            # plots/ after every task (False: results.json only)
        self.tasks = list(learner.task_names)
        self.state = {
            "task": 0, "unit": 0, "global_step": 0, "status": "running",
            "matrices": {},           # key -> list of rows
            "curve": [],              # periodic evaluations
            "task_metrics": [],       # regularizer's per-task metrics (AGS-CL: sparsity, ...)
            "dormant": [],            # dormant units at every evaluation (GameLearner)
            "plasticity": [],         # plasticity measures at every evaluation (GameLearner)
            "videos": [],             # the filmed games (capture_video)
            "memory_bytes": [],       # regularizer state size after each task
            "task_seconds": [],
            "elapsed": 0.0,
            "sessions": [],           # provenance.session() per start / resume
        }
        self._stop = False
        self._writer = None

    # --- bookkeeping -----------------------------------------------------------------------
    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            # a resumed run drops what the interrupted one logged after its checkpoint (steps
            # > the checkpoint's) and keeps what it logged at the checkpoint's own step
            gs = self.state["global_step"]
            self._writer = SummaryWriter(str(self.run_folder.tb_dir),
                                         purge_step=gs + 1 if gs else None)
        return self._writer

    def _checkpoint(self, name: str = "last.pt") -> None:
        state = {"format_version": CHECKPOINT_FORMAT, "config": self.config,
                 "trainer": self.state, "learner": self.learner.state_dict(),
                 "regularizer": self.reg.state_dict(), "rng": _rng_state()}
        self.run_folder.save_checkpoint(state, name)

    def _restore(self) -> None:
        ck = self.run_folder.load_checkpoint()
        self.state = ck["trainer"]
        self.state["status"] = "running"
        t = self.state["task"]
        if self.state["unit"] > 0:      # mid-task: the task was begun before the checkpoint
            self.learner.begin_task(t)
            self.reg.begin_task(t)
        self.learner.load_state_dict(ck["learner"])
        self.reg.load_state_dict(ck["regularizer"])
        _set_rng_state(ck["rng"])
        self.resume = self.state["unit"] > 0   # at a task boundary the loop begins the task

    def _record_session(self) -> None:
        sessions = self.state["sessions"]
        now = provenance.session(self.state["global_step"])
        if sessions:
            changed = provenance.differs(sessions[-1], now)
            if changed:
                print(f"warning: resuming {self.run_folder.path} at step "
                      f"{self.state['global_step']} with {'; '.join(changed)}: the rest of the "
                      f"run is exact only if the training code and its numerics are unchanged "
                      f"(each session is listed under 'sessions' in results.json)")
        sessions.append(now)

    def _evaluate_seen(self, t: int) -> dict[str, list[float]]:
        rows: dict[str, list[float]] = {}
        for j in range(t + 1):
            for k, v in self.learner.evaluate(j).items():
                rows.setdefault(k, []).append(float(v))
        return rows

    def _matrix_name(self, key: str) -> str:
        base = self.learner.matrix_key
        return base if key == "score" else f"{base}_{key.removeprefix('score_')}"

    def results(self) -> dict:
        s = self.state
        out = {"tasks": self.tasks, "status": s["status"],
               "tasks_completed": len(s["task_metrics"]), "global_step": s["global_step"]}
        out[self.learner.matrix_key] = []         # present (empty) before the first task ends
        for key, rows in s["matrices"].items():
            out[self._matrix_name(key)] = rows
        main = s["matrices"].get("score")
        if main:
            out["average_score_curve"] = metrics.average_accuracy_curve(main)
            if self.learner.matrix_key == "accuracy_matrix":
                out["average_accuracy"] = metrics.average_accuracy(main) \
                    if len(main) == len(self.tasks) else None
                out["average_accuracy_curve"] = out["average_score_curve"]
        out["eval_curve"] = s["curve"]
        if "random_init" in s:
            out["before_training"] = {"random_init": s["random_init"],
                                      "score": s["before_training"]}
        out["dormant"] = s.get("dormant", [])
        out["plasticity"] = s.get("plasticity", [])
        out["videos"] = s.get("videos", [])
        out["regularizer"] = getattr(self.reg, "name", type(self.reg).__name__)
        # every value the run used (config.json's regularizer_hparams: those set by a flag, a
        # preset or the stream's table; the methods' own defaults are their signatures')
        out["regularizer_hparams_in_use"] = getattr(self.reg, "hparams", None)
        out["regularizer_memory_bytes"] = s["memory_bytes"][-1] if s["memory_bytes"] \
            else self.reg.memory_bytes()
        out["regularizer_memory_bytes_per_task"] = s["memory_bytes"]
        out["model_bytes"] = sum(p.numel() * p.element_size()
                                 for p in self.learner.model.parameters())
        for k in sorted({k for m in s["task_metrics"] for k in m}):
            out[k] = [m.get(k) for m in s["task_metrics"]]
        out["task_seconds"] = s["task_seconds"]
        out["elapsed_seconds"] = s["elapsed"]
        out["sessions"] = s.get("sessions", [])
        out.update(self.learner.extra_results())
        return out

    def _write_results(self, plots: bool = True) -> dict:
        res = self.results()
        write_json(self.run_folder.results_path, res)
        if not (plots and self.plots):
            return res
        try:
            from analysis.plots import plot_run
            plot_run(res, self.run_folder.plot_dir)
        except Exception as e:      # a plot must never lose a run
            print(f"warning: plotting failed: {e}")
        return res

    # --- the loop --------------------------------------------------------------------------
    def _on_interrupt(self, signum, frame):
        if self._stop:
            if signum == signal.SIGINT:     # Ctrl-C again: stop at once
                raise KeyboardInterrupt
            return      # SIGTERM again: the same request (a parent's death signal, e.g., comes
            #             once for each thread of the dying parent)
        self._stop = True
        print(f"\n{signal.Signals(signum).name}: finishing the current unit, then saving a "
              f"checkpoint (--resume continues exactly); Ctrl-C again to stop at once (--resume "
              f"then restarts from the last checkpoint)")

    def run(self) -> dict:
        self.run_folder.open(self.config, self.resume)
        try:
            if self.resume:
                self._restore()
            self._record_session()
        except BaseException:
            self.run_folder.close()
            raise
        total = sum(self.learner.units_per_task(t) * self.learner.steps_per_unit(t)
                    for t in range(len(self.tasks)))
        bar = tqdm(total=total, initial=self.state["global_step"], unit="step",
                   disable=not self.progress, dynamic_ncols=True, smoothing=0.05)
        old = {sig: signal.signal(sig, self._on_interrupt) for sig in (signal.SIGINT,
                                                                       signal.SIGTERM)}
        try:
            return self._loop(bar)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            bar.close()
            self.run_folder.close()
            if self._writer is not None:
                self._writer.close()

    def _loop(self, bar) -> dict:
        s, L, reg, sch = self.state, self.learner, self.reg, self.schedule
        w = self.writer
        if getattr(L, "evaluates_unseen", False) and s["global_step"] == 0 and s["task"] == 0:
            # forward transfer's inputs (Mammoth, Avalanche): the untrained model's score on
            # every task, and below each task's score just before its training
            s["random_init"] = [float(L.evaluate(j)["score"]) for j in range(len(self.tasks))]
            s["before_training"] = [None] * len(self.tasks)
        while s["task"] < len(self.tasks):
            t = s["task"]
            name = self.tasks[t]
            if s["unit"] == 0 and not self.resume:
                L.begin_task(t)
                reg.begin_task(t)
            self.resume = False
            n_units, per_unit = L.units_per_task(t), L.steps_per_unit(t)
            # wall time of the task so far (a resumed task goes on from its checkpoint's)
            task_start = time.perf_counter() - s.get("task_clock", 0.0)
            recent = None
            while s["unit"] < n_units:
                t0 = time.perf_counter()
                try:
                    scalars = L.train_unit(t, s["unit"], reg)
                except FloatingPointError as e:
                    s["status"] = "failed: non-finite loss"
                    self._write_results()
                    raise NaNLossError(
                        f"task {t} ({name}), unit {s['unit']}: {e}. The run is stopped; the "
                        f"last good checkpoint {self.run_folder.last_checkpoint} is kept (lower "
                        f"the learning rate or the regularisation strength, then --resume or "
                        f"start again)") from None
                dt = time.perf_counter() - t0
                s["elapsed"] += dt
                s["unit"] += 1
                s["global_step"] += per_unit
                gs = s["global_step"]
                for k, v in scalars.items():
                    if v is not None:
                        w.add_scalar(f"train/{k}", v, gs)
                w.add_scalar("train/steps_per_second", per_unit / dt, gs)
                recent = scalars.get("episode_return", scalars.get("val_accuracy", recent))
                post = {"task": f"{t + 1}/{len(self.tasks)} {name}",
                        "sps": f"{per_unit / dt:.0f}"}
                if recent is not None:
                    post["score"] = f"{recent:.3g}"
                bar.set_postfix(post, refresh=False)
                bar.update(per_unit)
                last_unit = s["unit"] == n_units
                if sch.eval_every and s["unit"] % sch.eval_every == 0 and not last_unit:
                    self._periodic_eval(t, gs)
                periodic = bool(sch.checkpoint_every) and s["unit"] % sch.checkpoint_every == 0
                if not last_unit and (periodic or self._stop):
                    s["task_clock"] = time.perf_counter() - task_start
                    self._checkpoint()
                    if not self._stop:      # results.json follows every checkpoint
                        self._write_results(plots=False)
                    else:
                        s["status"] = "interrupted"
                        self._write_results()
                        bar.write(f"checkpoint saved to {self.run_folder.last_checkpoint}; "
                                  f"continue with --resume")
                        return self.results()
            # end of task: restore best weights -> regularizer -> evaluate all seen tasks
            L.end_task(t)
            dormant = self._dormant(t, s["global_step"], task_end=True)
            self._plasticity(t, s["global_step"], task_end=True)
            batches, loss_fn = L.importance_data(t)
            reg.end_task(t, batches, loss_fn)
            rows = self._evaluate_seen(t)
            if "before_training" in s and t + 1 < len(self.tasks):
                s["before_training"][t + 1] = float(L.evaluate(t + 1)["score"])
            for k, row in rows.items():
                s["matrices"].setdefault(k, []).append(row)
                for j, v in enumerate(row):
                    w.add_scalar(f"eval_{k}/{self.tasks[j]}", v, s["global_step"])
            s["curve"].append({"step": s["global_step"], "task": t, "unit": s["unit"],
                               "task_end": True, **rows})
            if sch.capture_video:
                self._capture_videos(t)
            tm = reg.task_metrics()
            s["task_metrics"].append(tm)
            for k, v in tm.items():
                w.add_scalar(f"regularizer/{k}", v, t + 1)
            s["memory_bytes"].append(int(reg.memory_bytes()))
            s["task_seconds"].append(time.perf_counter() - task_start)
            bar.write(f"task {t + 1}/{len(self.tasks)} {name} done: "
                      + ", ".join(f"{self.tasks[j]} {v:.4g}" for j, v in enumerate(rows["score"]))
                      + (f" | {', '.join(f'{k} {v:.3f}' for k, v in tm.items() if '/' not in k)}"
                         if tm else "")
                      + (" | dormant " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                   dormant["layers"]["all"].items()
                                                   if k.startswith("tau") and "_" not in k)
                         if dormant else ""))
            s["task"] += 1
            s["unit"] = 0
            s["task_clock"] = 0.0
            if s["task"] == len(self.tasks):
                s["status"] = "complete"
            self._checkpoint(f"task{t}.pt")
            self._checkpoint()
            self._write_results()
            if self._stop and s["task"] < len(self.tasks):
                s["status"] = "interrupted"
                self._write_results()
                return self.results()
        return self._write_results()

    def _periodic_eval(self, t: int, gs: int) -> None:
        rows = self._evaluate_seen(t)
        self.state["curve"].append({"step": gs, "task": t, "unit": self.state["unit"],
                                    "task_end": False, **rows})
        for k, row in rows.items():
            for j, v in enumerate(row):
                self.writer.add_scalar(f"eval_{k}/{self.tasks[j]}", v, gs)
        self._dormant(t, gs, task_end=False)
        self._plasticity(t, gs, task_end=False)

    def _plasticity(self, t: int, gs: int, task_end: bool) -> None:
        """The learner's plasticity measures per trunk layer (``agents.base.plasticity_metrics``)
        -> results' ``plasticity`` and TensorBoard ``plasticity/<layer>/<measure>``."""
        if not hasattr(self.learner, "plasticity_metrics"):
            return
        rec = self.learner.plasticity_metrics(t)
        if rec is None:
            return
        self.state.setdefault("plasticity", []).append(
            {"step": gs, "task": t, "unit": self.state["unit"], "task_end": task_end, **rec})
        for layer, stats in rec["layers"].items():
            for k, v in stats.items():
                if v is not None:
                    self.writer.add_scalar(f"plasticity/{layer}/{k}", v, gs)

    def _dormant(self, t: int, gs: int, task_end: bool) -> dict | None:
        """The learner's dormant units (Sokar et al., 2023) -> results' ``dormant`` and
        TensorBoard ``dormant/<layer>/tau0``, ``.../tau0.025``, ``.../g0``, ``.../tau0_g0``."""
        if not isinstance(self.learner, GameLearner):
            return None
        rec = self.learner.dormant_units(t, self.reg)
        if rec is None:
            return None
        self.state.setdefault("dormant", []).append(
            {"step": gs, "task": t, "unit": self.state["unit"], "task_end": task_end, **rec})
        for layer, stats in rec["layers"].items():
            for k, v in stats.items():
                if k != "units":
                    self.writer.add_scalar(f"dormant/{layer}/{k}", v, gs)
        return rec

    def _capture_videos(self, t: int) -> None:
        """One evaluation game of every task seen so far, filmed (a failed video is a warning:
        it must never lose a run)."""
        if not isinstance(self.learner, GameLearner):
            print(f"warning: capture_video: {type(self.learner).__name__} cannot film its "
                  f"tasks; no videos")
            return
        folder = self.run_folder.path / "videos"
        for j in range(t + 1):
            name = f"task{t}-{self.tasks[j]}.mp4"
            try:
                score = self.learner.record_video(j, folder / name)
            except Exception as e:
                print(f"warning: the video {folder / name} failed: {type(e).__name__}: {e}")
                continue
            self.state.setdefault("videos", []).append(
                {"task": t, "game": self.tasks[j], "path": f"videos/{name}", "score": float(score)})
