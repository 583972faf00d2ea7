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
import json
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
    finals, said = _train(order, cfgs, report)
    if TrialAttr.CHECKPOINT_DISCARDED in said:  # the checkpoint could not be read: trained from the first step
        shared.pop(TrialAttr.RESUMED_FROM, None)
    shared.update(said)
    wall_s = time.perf_counter() - started
    shared[TrialAttr.WALL_S] = wall_s  # the population's: its members trained side by side all along
    shared[TrialAttr.STARTED_AT], shared[TrialAttr.ENDED_AT] = started_at, started_at + wall_s
    shared[TrialAttr.PROVENANCE] = provenance.collect(_device(cfgs[0].device))
    tune.report(Final(cfgs[0].steps, tuple({**shared, **f} for f in finals)).to_result())


def _train(order: WorkOrder, cfgs: list[core.TrainConfig], report: Reporter) -> tuple[list[dict[str, Any]], dict]:
    """Train the population (resumed from its checkpoint if the order names one): each member's final, and
    what the run's summary should say of it (TrialAttr -> text: a discarded checkpoint, a split population).
    A checkpoint that cannot be read (truncated by a full disk, corrupted) is discarded once and its part
    trains from its first step: no crash, and no loop of reruns that meet the same file. A population that
    runs out of device memory trains in parts (`_Parts`)."""
    every = order.checkpoint_every  # steps; None: by the clock; 0: never
    said: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        image_dirs = [Path(tmp) / f"member{k}" for k in range(len(cfgs))]
        state_dir = Path(tmp) / "state"
        if order.resume_from:  # an interrupted population's checkpoint: train_population resumes it
            shutil.copytree(order.resume_from, state_dir)
        parts = _Parts(len(cfgs), state_dir)

        def checkpoint(step: int) -> None:  # Ray Tune copies the folder to the run's storage
            tune.report(Checkpointed(step).to_result(), checkpoint=tune.Checkpoint.from_directory(state_dir))

        def train(start: int, size: int) -> list[Any]:
            members = slice(start, start + size)
            return core.train_population(
                cfgs[members],
                report=_shifted(report, start, size),
                image_dirs=image_dirs[members],
                checkpoint_dir=parts.folder(start) if every != 0 else None,
                checkpoint_every=every or None,
                on_checkpoint=checkpoint,
            )

        try:
            results: dict[int, list[Any]] = {}
            while (part := parts.next(results)) is not None:
                start, size = part
                try:
                    results[start] = train(start, size)
                except core.CheckpointError as exc:
                    said[TrialAttr.CHECKPOINT_DISCARDED] = (
                        f"{exc}; trained from step 0 instead of step {order.resume_step}"
                    )
                    shutil.rmtree(parts.folder(start), ignore_errors=True)
                    results[start] = train(start, size)
                except Exception as exc:
                    if not core.is_out_of_memory(exc) or size == 1:
                        raise
                    said[TrialAttr.POPULATION_SPLIT] = parts.split(start, " ".join(str(exc).split())[:160])
            ordered = [r for first in sorted(results) for r in results[first]]
            finals = [_member_final(r, cfg, d) for r, cfg, d in zip(ordered, cfgs, image_dirs, strict=True)]
            return finals, said
        except Exception as exc:  # any crash is recorded on every member's trial, not lost
            crash = {
                TrialAttr.OUTCOME: Outcome.CRASHED.value,
                TrialAttr.REASON: f"{type(exc).__name__}: {exc}".splitlines()[0],
                TrialAttr.TRACEBACK: traceback.format_exc()[-4000:],
            }
            return [dict(crash) for _ in cfgs], said


PARTS_FILE = "parts.json"  # in a split population's checkpoint folder: its parts, [first member, members]


class _Parts:
    """The parts a population trains in, one after the other: the whole population, until the device runs
    out of memory; then the part that did is split in two halves (and a half again, if it must), down to
    single members, every member trained once, in member order. A split population checkpoints each part in
    a folder of its own and writes its parts beside them, so that a resumed population goes on in parts."""

    def __init__(self, members: int, state_dir: Path) -> None:
        self.state_dir = state_dir
        saved = state_dir / PARTS_FILE
        self.parts = [tuple(p) for p in json.loads(saved.read_text())] if saved.is_file() else [(0, members)]
        self.members = members

    def folder(self, start: int) -> Path:
        return self.state_dir if len(self.parts) == 1 else self.state_dir / f"part-{start}"

    def next(self, done: dict[int, Any]) -> tuple[int, int] | None:
        """The first part not yet trained, (first member, members); None when all are."""
        return next(((a, n) for a, n in self.parts if a not in done), None)

    def split(self, start: int, why: str) -> str:
        """Split the part at `start` in two after the device ran out of memory training it; what to say."""
        failed = self.folder(start)
        size = dict(self.parts)[start]
        whole = len(self.parts) == 1
        half = size // 2
        self.parts = sorted([p for p in self.parts if p[0] != start] + [(start, half), (start + half, size - half)])
        if whole:  # the population's own checkpoint cannot resume a part of it (its parts' folders are inside)
            for saved in failed.glob("*"):
                if saved.is_file():
                    saved.unlink()
        else:
            shutil.rmtree(failed, ignore_errors=True)
        core.release_device_memory()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / PARTS_FILE).write_text(json.dumps(self.parts))
        sizes = ", ".join(str(n) for _, n in self.parts)
        return f"out of device memory at {size} members ({why}): trained in parts of {sizes} members, one after another"


def _shifted(report: Reporter, start: int, size: int) -> Reporter:
    """A part's report callback: its members' indices are the population's from `start`."""

    def part_report(step: int, rows: dict[int, dict[str, float]]) -> list[int]:
        stop = report(step, {start + k: metrics for k, metrics in rows.items()})
        return [k - start for k in stop if start <= k < start + size]

    return part_report


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
