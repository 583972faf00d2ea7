"""The worker side: what runs inside a Ray worker, on any node, for one population of (configuration,
seed) pairs (a population of one: a single run).

It trains the members as one stacked model, reports every member's metrics every `report_every` steps
through `ray.tune.report` (for the driver's progress, learning curves and early stopping), stops the
members the driver's early-stopping board names, and ends with one final result that carries, per
member, everything the driver stores: the outcome, final metrics, history and the PNG images (base64),
so that nothing but the driver ever writes the Optuna storage. What it reads and sends is `protocol`'s.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune

from sweep import core, provenance
from sweep.runner.protocol import Checkpointed, Final, MemberReport, Progress, WorkOrder
from sweep.store import FINAL_IMAGES, TrialAttr
from sweep.vocab import Outcome

Reporter = Callable[[int, dict[int, dict[str, float]]], list[int]]  # the core's report callback: members to stop


@ray.remote(num_cpus=0)
class StopBoard:
    """The driver's early-stopping decisions, where workers read them: (Tune trial id, member) pairs to stop.
    A member named here stops at its population's next report."""

    def __init__(self) -> None:
        self.stops: dict[str, set[int]] = {}

    def stop(self, trial_id: str, member: int) -> None:
        self.stops.setdefault(trial_id, set()).add(member)

    def stopped(self, trial_id: str) -> list[int]:
        return sorted(self.stops.get(trial_id, ()))

    def forget(self, trial_id: str) -> None:
        self.stops.pop(trial_id, None)


def trainable(config: dict[str, Any]) -> None:
    """One population: train its members, report them every `report_every` steps, then one final result."""
    # the worker's own start and end (wall clock, for timelines across nodes): each member's duration
    started_at, started = time.time(), time.perf_counter()
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a line per checkpoint in the user's terminal
    order = WorkOrder.from_config(config)
    core.set_threads(int(order.cpus))
    cfgs = [core.TrainConfig.from_dict(m.train_config) for m in order.members]
    report = _reporter(order, len(cfgs))
    shared = {
        TrialAttr.NODE: socket.gethostname(),
        TrialAttr.NODE_ID: ray.get_runtime_context().get_node_id(),
        TrialAttr.TRIAL_DIR: os.getcwd(),
        TrialAttr.POPULATION: len(cfgs),
    }
    if order.resume_from:
        shared[TrialAttr.RESUMED_FROM] = order.resume_step
    finals, discarded = _train(order, cfgs, report)
    if discarded:  # the checkpoint could not be read: the population trained from its first step instead
        shared.pop(TrialAttr.RESUMED_FROM, None)
        shared[TrialAttr.CHECKPOINT_DISCARDED] = discarded
    wall_s = time.perf_counter() - started
    shared[TrialAttr.WALL_S] = wall_s  # the population's: its members trained side by side all along
    shared[TrialAttr.STARTED_AT], shared[TrialAttr.ENDED_AT] = started_at, started_at + wall_s
    shared[TrialAttr.PROVENANCE] = provenance.collect(_device(cfgs[0].device))
    tune.report(Final(cfgs[0].steps, tuple({**shared, **f} for f in finals)).to_result())


def _train(order: WorkOrder, cfgs: list[core.TrainConfig], report: Reporter) -> tuple[list[dict[str, Any]], str]:
    """Train the population (resumed from its checkpoint if the order names one): each member's final, and
    why the checkpoint was discarded ("" when it was not). A checkpoint that cannot be read (truncated by a
    full disk, corrupted) is discarded once and the population trains from its first step: no crash, and no
    loop of reruns that meet the same file."""
    every = order.checkpoint_every  # steps; None: by the clock; 0: never
    discarded = ""
    with tempfile.TemporaryDirectory() as tmp:
        image_dirs = [Path(tmp) / f"member{k}" for k in range(len(cfgs))]
        state_dir = Path(tmp) / "state"
        if order.resume_from:  # an interrupted population's checkpoint: train_population resumes it
            shutil.copytree(order.resume_from, state_dir)

        def checkpoint(step: int) -> None:  # Ray Tune copies the folder to the run's storage
            tune.report(Checkpointed(step).to_result(), checkpoint=tune.Checkpoint.from_directory(state_dir))

        def train() -> list[Any]:
            return core.train_population(
                cfgs,
                report=report,
                image_dirs=image_dirs,
                checkpoint_dir=state_dir if every != 0 else None,
                checkpoint_every=every or None,
                on_checkpoint=checkpoint,
            )

        try:
            try:
                results = train()
            except core.CheckpointError as exc:
                discarded = f"{exc}; trained from step 0 instead of step {order.resume_step}"
                shutil.rmtree(state_dir, ignore_errors=True)
                results = train()
            finals = [_member_final(r, cfg, d) for r, cfg, d in zip(results, cfgs, image_dirs, strict=True)]
            return finals, discarded
        except Exception as exc:  # any crash is recorded on every member's trial, not lost
            crash = {
                TrialAttr.OUTCOME: Outcome.CRASHED.value,
                TrialAttr.REASON: f"{type(exc).__name__}: {exc}".splitlines()[0],
                TrialAttr.TRACEBACK: traceback.format_exc()[-4000:],
            }
            return [dict(crash) for _ in cfgs], discarded


def _reporter(order: WorkOrder, members: int) -> Reporter:
    """The core's report callback: sends the members' metrics to the driver, returns those to stop."""
    board = ray.get_actor(order.stop_board) if order.stop_board else None
    trial_id = tune.get_context().get_trial_id()
    latest_eval: list[dict[str, float]] = [{} for _ in range(members)]
    eval_step = [0] * members  # per member: the step of its latest evaluation, repeated by later results

    def report(step: int, rows: dict[int, dict[str, float]]) -> list[int]:
        reports = {}
        for k, metrics in rows.items():
            fresh = {m: v for m, v in metrics.items() if m.startswith("eval/")}
            if fresh:
                latest_eval[k].update(fresh)
                eval_step[k] = step
            reports[k] = MemberReport({**metrics, **latest_eval[k]}, eval_step[k])
        tune.report(Progress(step, reports).to_result())
        return ray.get(board.stopped.remote(trial_id)) if board is not None else []

    return report


def _member_final(result: Any, cfg: core.TrainConfig, image_dir: Path) -> dict[str, Any]:
    """What the driver stores for one member: its outcome, metrics, history and images."""
    if isinstance(result, core.DivergedError):
        final = {
            TrialAttr.OUTCOME: Outcome.DIVERGED.value,
            TrialAttr.REASON: str(result),
            TrialAttr.STEPS_RUN: result.step,
            TrialAttr.HISTORY: result.history,
        }
        if result.history:
            image_dir.mkdir(parents=True, exist_ok=True)
            curves = core.curves_png(result.history, image_dir / "curves.png")
            final[FINAL_IMAGES] = _read_images({"curves": str(curves)})
        return final
    final = {
        TrialAttr.OUTCOME: (Outcome.PRUNED if result.stopped_early else Outcome.COMPLETED).value,
        TrialAttr.METRICS: result.metrics,
        TrialAttr.HISTORY: result.history,
        TrialAttr.STEPS_RUN: result.steps_run,
        FINAL_IMAGES: _read_images(result.images),
    }
    if result.stopped_early:
        final[TrialAttr.REASON] = f"stopped early by ASHA at step {result.steps_run} of {cfg.steps}"
    return final


def _device(name: str) -> str:
    """What this worker trained on; never fails the trial (a device it could not use is the trial's error)."""
    try:
        return core.device_description(name)
    except Exception as exc:  # the trial already recorded why it could not train there
        return f"{provenance.UNKNOWN} ({type(exc).__name__})"


def _read_images(paths: dict[str, str]) -> dict[str, str]:
    return {name: base64.b64encode(Path(p).read_bytes()).decode() for name, p in paths.items()}


__all__ = ["StopBoard", "trainable"]
