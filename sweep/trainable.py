"""The worker side: what runs inside a Ray worker, on any node, for one (configuration, seed).

It trains, reports metrics every `report_every` steps through `ray.tune.report` (for the scheduler and
the driver's progress), and ends with one final result that carries everything the driver stores:
the outcome, final metrics, history and the PNG images (base64), so that nothing but the driver ever
writes the Optuna storage.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import ray
from ray import tune

from sweep import core, provenance
from sweep.store import FINAL_IMAGES, TrialAttr
from sweep.vocab import Outcome

FINAL = "sweep/final"  # key of the last result a trainable reports (absent when stopped early)
EVAL_STEP = "sweep/eval_step"  # in every result: the step whose evaluation its eval/* values come from (0: none yet)


def trainable(config: dict[str, Any]) -> None:
    """One (configuration, seed): train, report every `report_every` steps, then a final result."""
    # the worker's own start and end (wall clock, for timelines across nodes): the trial's duration
    started_at, started = time.time(), time.perf_counter()
    core.set_threads(int(config["cpus"]))
    cfg = core.TrainConfig.from_dict(config["train_config"])
    latest_eval: dict[str, float] = {}
    eval_step = [0]  # the step of the latest evaluation, whose eval/* values every later result repeats

    def report(step: int, metrics: dict[str, float]) -> None:
        fresh = {k: v for k, v in metrics.items() if k.startswith("eval/")}
        if fresh:
            latest_eval.update(fresh)
            eval_step[0] = step
        tune.report({**metrics, **latest_eval, "step": step, EVAL_STEP: eval_step[0]})

    final: dict[str, Any] = {
        TrialAttr.NODE: socket.gethostname(),
        TrialAttr.NODE_ID: ray.get_runtime_context().get_node_id(),
        TrialAttr.TRIAL_DIR: os.getcwd(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = core.train(cfg, report=report, image_dir=tmp)
            final.update(
                {
                    TrialAttr.OUTCOME: Outcome.COMPLETED.value,
                    TrialAttr.METRICS: result.metrics,
                    TrialAttr.HISTORY: result.history,
                    TrialAttr.STEPS_RUN: result.steps_run,
                    FINAL_IMAGES: _read_images(result.images),
                }
            )
        except core.DivergedError as exc:
            final.update(
                {
                    TrialAttr.OUTCOME: Outcome.DIVERGED.value,
                    TrialAttr.REASON: str(exc),
                    TrialAttr.STEPS_RUN: exc.step,
                    TrialAttr.HISTORY: exc.history,
                }
            )
            if exc.history:
                final[FINAL_IMAGES] = _read_images(
                    {"curves": str(core.curves_png(exc.history, Path(tmp) / "curves.png"))}
                )
        except Exception as exc:  # any crash is recorded on the trial, not lost
            final.update(
                {
                    TrialAttr.OUTCOME: Outcome.CRASHED.value,
                    TrialAttr.REASON: f"{type(exc).__name__}: {exc}".splitlines()[0],
                    TrialAttr.TRACEBACK: traceback.format_exc()[-4000:],
                }
            )
    final[TrialAttr.WALL_S] = time.perf_counter() - started
    final[TrialAttr.STARTED_AT], final[TrialAttr.ENDED_AT] = started_at, started_at + final[TrialAttr.WALL_S]
    final[TrialAttr.PROVENANCE] = provenance.collect(_device(cfg.device))
    # one JSON string: Tune flattens nested dicts in results before searchers see them
    tune.report({FINAL: json.dumps(final), "step": cfg.steps})


def _device(name: str) -> str:
    """What this worker trained on; never fails the trial (a device it could not use is the trial's error)."""
    try:
        return core.device_description(name)
    except Exception as exc:  # the trial already recorded why it could not train there
        return f"{provenance.UNKNOWN} ({type(exc).__name__})"


def _read_images(paths: dict[str, str]) -> dict[str, str]:
    return {name: base64.b64encode(Path(p).read_bytes()).decode() for name, p in paths.items()}


__all__ = ["EVAL_STEP", "FINAL", "trainable"]
