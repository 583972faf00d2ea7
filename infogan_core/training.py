"""Training: train(cfg) -> TrainResult for one run, train_population(cfgs) for K runs trained as one.

One loop serves both: a single run is a population of one. The loop steps (step.py: the counter words,
the D step(s), the G step, the guard, the log), and every report_every steps reads what the steps left,
evaluates, reports and may checkpoint. Every tensor carries the member dimension K first (convolutions'
(B, K*C, H, W) aside, see population.py); every loss, norm and metric is one value per member, and a member
that diverges, or that its report callback stops, stops alone.

A step never waits for the device: its random numbers are counters (rng.py), its per-member bookkeeping
(which members train, which diverged, the metrics since the last report) lives in tensors that the loop
reads once per report, and its operations do not depend on K. On a CUDA device it is captured in a CUDA
graph and replayed (device.py, `cuda_graph`); evaluation, reports and checkpoints run between replays.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from infogan_core.config import TrainConfig
from infogan_core.device import matmul_precision, stepper
from infogan_core.errors import CheckpointError, ConfigError, DivergedError
from infogan_core.evaluation import evaluate
from infogan_core.images import render
from infogan_core.models import InfoGAN
from infogan_core.population import check_members
from infogan_core.step import LOSS_NAMES, METRIC_ORDER, Run, build_run, resolve_device

# report(step, metrics) is called every `report_every` steps and at the end; a truthy return stops.
ReportFn = Callable[[int, dict[str, float]], bool | None]
# a population's report(step, {member: metrics}) for the members still training; it returns the members
# to stop there (each alone; the others go on)
MemberReportFn = Callable[[int, dict[int, dict[str, float]]], Iterable[int] | None]


@dataclass
class TrainResult:
    config: TrainConfig
    steps_run: int  # generator steps completed
    stopped_early: bool  # the report callback asked to stop
    metrics: dict[str, float]  # the last report; each eval/* is the mean of the last eval_last evaluations
    history: list[dict[str, float]]  # every report, each with its "step"
    wall_s: float
    model: InfoGAN = field(repr=False)
    images: dict[str, str] = field(default_factory=dict)  # name -> PNG path, when image_dir was given


def _final_metrics(cfg: TrainConfig, history: list[dict[str, float]]) -> dict[str, float]:
    """The last report, with each eval/* score the mean of the last `eval_last` evaluations."""
    if not history:
        return {}
    final = {k: v for k, v in history[-1].items() if k != "step"}
    evaluations = [row for row in history if any(k.startswith("eval/") for k in row)][-cfg.eval_last :]
    for key in {k for row in evaluations for k in row if k.startswith("eval/")}:
        values = [row[key] for row in evaluations if key in row]
        final[key] = sum(values) / len(values)
    return final | _derived_metrics(cfg, history)


def _derived_metrics(cfg: TrainConfig, history: list[dict[str, float]]) -> dict[str, float]:
    """loss/g_trend, loss/d_sd and mi/cat_steps_to_90 (see metrics.METRICS) from the reported rows."""
    rows = [row for row in history if "loss/g" in row]
    late = [row for row in rows if row["step"] > cfg.steps / 2] or rows[-1:]
    derived: dict[str, float] = {}
    if late:
        steps = np.array([row["step"] for row in late], dtype=float)
        loss_g, loss_d = np.array([row["loss/g"] for row in late]), np.array([row["loss/d"] for row in late])
        derived["loss/g_trend"] = float(np.polyfit(steps, loss_g, 1)[0] * 1000) if len(late) > 1 else 0.0
        derived["loss/d_sd"] = float(loss_d.std(ddof=1)) if len(late) > 1 else 0.0
    if cfg.cat_codes:
        reached = [row["step"] for row in rows if row.get("mi/cat_ratio", -math.inf) >= 0.9]
        # never reached: censored just past the budget (finite, so the run is not mistaken for a diverged one)
        derived["mi/cat_steps_to_90"] = float(reached[0] if reached else cfg.steps + cfg.report_every)
    return derived


@dataclass
class Checkpoints:
    """Where and how often a run saves its whole training state, so that it can resume exactly."""

    directory: str | Path  # holds `state.pt`; a run that finds one there resumes from it
    every: int | None = None  # steps between saves; None: every `every_s` seconds of training instead
    on_save: Callable[[int], None] | None = None  # called with the step after each save (e.g. to hand it to Ray Tune)
    every_s: float = 300.0  # seconds of training between saves, when `every` is None
    _last: float = field(default_factory=time.perf_counter, init=False, repr=False)

    @property
    def path(self) -> Path:
        return Path(self.directory) / CHECKPOINT_FILE

    def due(self, step: int) -> bool:
        """Whether to save after `step`: every `every` steps, or once `every_s` seconds passed since the last
        save (or the start). When a state is saved never changes the numbers: a resumed run is exact."""
        if self.every is not None:
            return step % self.every == 0
        return time.perf_counter() - self._last >= self.every_s

    def saved(self) -> None:
        self._last = time.perf_counter()


CHECKPOINT_FILE = "state.pt"


def train(
    cfg: TrainConfig,
    *,
    report: ReportFn | None = None,
    image_dir: str | Path | None = None,
    checkpoints: Checkpoints | None = None,
) -> TrainResult:
    """Train one InfoGAN run as `cfg` says; returns its metrics, history and networks.

    Raises DivergedError (with the step, the loss and the largest gradient norm seen) when a loss
    becomes non-finite. With `checkpoints`, it saves its state every `checkpoints.every` steps and, if
    the directory already holds a state of this run, resumes from it: the numbers are those of an
    uninterrupted run.
    """
    member_report = None if report is None else (lambda step, rows: [0] if report(step, rows[0]) else [])
    (result,) = train_population(
        [cfg], report=member_report, image_dirs=None if image_dir is None else [image_dir], checkpoints=checkpoints
    )
    if isinstance(result, DivergedError):
        raise result
    return result


def train_population(
    cfgs: Sequence[TrainConfig],
    *,
    report: MemberReportFn | None = None,
    image_dirs: Sequence[str | Path] | None = None,
    checkpoints: Checkpoints | None = None,
) -> list[TrainResult | DivergedError]:
    """Train K runs as one stacked model (their shapes must match; see population.MEMBER_FIELDS for what
    may differ). Member k gives the numbers a single run of cfgs[k] gives; its result is a TrainResult,
    or the DivergedError that stopped it. `checkpoints`: save every so many steps, and resume (as `train`)."""
    check_members(cfgs)
    cfg = cfgs[0]
    started = time.perf_counter()
    run = build_run(cfgs)
    progress = _Progress.start(len(cfgs))  # what the loop has done so far: resumable
    if checkpoints is not None and checkpoints.path.is_file():
        progress = _resume(checkpoints.path, run)
    with matmul_precision(cfg, run.device):
        _loop(run, progress, report, checkpoints)
    wall_s = time.perf_counter() - started
    results: list[TrainResult | DivergedError] = []
    for k, c in enumerate(cfgs):
        if progress.diverged[k] is not None:
            step_k, loss, value, peak = progress.diverged[k]
            results.append(DivergedError(step_k, loss, value, progress.histories[k], peak))
            continue
        member = run.model.member(k, c, run.data.sample_shape, progress.final_states.get(k))
        history = progress.histories[k]
        result = TrainResult(
            c, progress.steps_run[k], progress.stopped_early[k], _final_metrics(c, history), history, wall_s, member
        )
        if image_dirs is not None:
            result.images = render(member, c, history, image_dirs[k])
        results.append(result)
    return results


def _loop(run: Run, progress: _Progress, report: MemberReportFn | None, checkpoints: Checkpoints | None) -> None:
    """The steps from the first not yet trained to the last, with their reports and checkpoints."""
    cfg, buf = run.cfg, run.buffers
    step_once = stepper(run)
    on_cpu = run.device.type == "cpu"
    window_start = time.perf_counter()
    run.model.train()
    for step in range(progress.step + 1, cfg.steps + 1):
        run.step_t.fill_(step)
        step_once()
        progress.window_steps += 1
        due = step % cfg.report_every == 0 or step == cfg.steps
        if on_cpu and not due and not bool(buf.active.any()):  # every member diverged: stop now (free on a CPU)
            _collect_divergences(run, progress)
            return
        if due:
            elapsed = time.perf_counter() - window_start
            _report(run, progress, step, elapsed, report)
            window_start = time.perf_counter()
            if not progress.running:
                return
        if checkpoints is not None and step < cfg.steps and checkpoints.due(step):
            progress.step = step
            _save(checkpoints, step, run, progress)
            checkpoints.saved()


def _collect_divergences(run: Run, progress: _Progress) -> None:
    """Members whose step found a non-finite loss since the last look: they stop, with what broke."""
    buf = run.buffers
    at = buf.diverged_at.tolist()
    for k in [k for k in progress.running if at[k]]:
        loss = LOSS_NAMES[int(buf.diverged_loss[k])]
        progress.diverged[k] = (at[k], loss, float(buf.diverged_value[k]), float(buf.diverged_peak[k]))
        progress.steps_run[k] = at[k]
        progress.running.remove(k)


def _report(run: Run, progress: _Progress, step: int, elapsed: float, report: MemberReportFn | None) -> None:
    """Every report_every steps and at the end: each running member's metrics (evaluated every eval_every
    steps and at the end), handed to `report`, which may stop some."""
    cfg, buf = run.cfg, run.buffers
    _collect_divergences(run, progress)
    table = dict(zip(METRIC_ORDER, (buf.sums / progress.window_steps).tolist(), strict=True))  # one host sync
    peaks = buf.grad_peak.tolist()
    rows: dict[int, dict[str, float]] = {}
    for k in progress.running:
        metrics = {key: values[k] for key, values in table.items()}
        if cfg.cat_codes:
            metrics["mi/cat_ratio"] = metrics["mi/cat"] / cfg.cat_entropy
        else:
            del metrics["mi/cat"]
        if not cfg.cont_codes:
            del metrics["mi/cont"], metrics["q/std_min"]
        metrics["grad/peak"] = peaks[k]
        metrics["time/steps_per_s"] = progress.window_steps / elapsed if elapsed > 0 else 0.0
        if step % cfg.eval_every == 0 or step == cfg.steps:
            member = run.model.member(k, run.cfgs[k], run.data.sample_shape)
            metrics.update(evaluate(member, run.cfgs[k], run.data, seed=run.cfgs[k].seed + step))
        rows[k] = dict(metrics)
        metrics["step"] = step
        progress.histories[k].append(metrics)
        progress.steps_run[k] = step
    for k in sorted(set(report(step, rows) or ()) & set(progress.running)) if report is not None else ():
        progress.stopped_early[k] = True
        progress.final_states[k] = run.model.member_state(k)  # the others' forwards still move its BN
        progress.running.remove(k)
        buf.active[k] = False
    buf.sums.zero_()
    progress.window_steps = 0


@dataclass
class _Progress:
    """What the loop has done so far, on the host: with the run's buffers, all a checkpoint needs besides
    networks and optimizers (the counter streams need nothing: step s draws the same numbers whenever it runs)."""

    step: int  # the last step completed
    running: list[int]  # the members still training
    diverged: list[tuple[int, str, float, float] | None]  # (step, loss, value, largest gradient norm)
    stopped_early: list[bool]
    steps_run: list[int]
    histories: list[list[dict[str, float]]]
    window_steps: int  # steps since the last report
    final_states: dict[int, dict[str, torch.Tensor]]  # members stopped early: their state when they stopped

    @classmethod
    def start(cls, members: int) -> _Progress:
        return cls(
            0,
            list(range(members)),
            [None] * members,
            [False] * members,
            [0] * members,
            [[] for _ in range(members)],
            0,
            {},
        )


def _save(checkpoints: Checkpoints, step: int, run: Run, progress: _Progress) -> None:
    state = {
        "configs": [c.to_dict() for c in run.cfgs],  # a state resumes only the run it was saved from
        "model": run.model.state_dict(),
        "optimizers": [g.state_dict() for g in run.groups],
        "buffers": run.buffers.state(),
        "progress": {f: getattr(progress, f) for f in progress.__dataclass_fields__},
    }
    checkpoints.path.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoints.path.with_suffix(f".{os.getpid()}.part")
    torch.save(state, partial)
    os.replace(partial, checkpoints.path)  # a kill mid-write leaves the previous state whole
    if checkpoints.on_save is not None:
        checkpoints.on_save(step)


def _resume(path: Path, run: Run) -> _Progress:
    try:
        state = torch.load(path, map_location=run.device, weights_only=True)
        configs = state["configs"]
    except Exception as exc:  # truncated (a full disk), corrupted, or no training state at all
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(f"the checkpoint {path} cannot be read ({why})") from exc
    if configs != [c.to_dict() for c in run.cfgs]:
        raise ConfigError(f"the checkpoint {path} was saved by another run (other configurations); remove it")
    try:
        run.model.load_state_dict(state["model"])
        for group, saved in zip(run.groups, state["optimizers"], strict=True):
            group.load_state_dict(saved)
        run.buffers.load(state["buffers"])
        return _Progress(**state["progress"])
    except Exception as exc:  # the right run, but parts of its state are missing or damaged (or an older format)
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(f"the checkpoint {path} is incomplete ({why})") from exc


__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoints",
    "MemberReportFn",
    "ReportFn",
    "TrainResult",
    "resolve_device",
    "train",
    "train_population",
]
