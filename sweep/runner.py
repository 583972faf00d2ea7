"""Run a study: Ray Tune schedules the trials, Optuna proposes or enumerates them and records all.

Each Ray Tune trial is exactly one Optuna trial and one (configuration, seed) pair. Only this driver
process talks to the Optuna storage, so SQLite works on a cluster's head node: workers send their
metrics, history and PNG images back inside their reported results, and the driver attaches them
to the Optuna trial (artifacts, user attributes, a note) before telling Optuna how it ended.

Resuming is by the storage: a (configuration, seed) pair that already finished is never run again;
a trial that was RUNNING when a previous driver died is marked FAIL (outcome "interrupted") and its
pair is run again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import socket
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from ray.tune import Callback

from sweep import spec as spec_module
from sweep.errors import StudyError
from sweep.spec import Study, TrialSpec
from sweep.store import (
    ATTR_CONFIG,
    ATTR_CONFIG_ID,
    ATTR_FACTOR,
    ATTR_HISTORY,
    ATTR_INDEX,
    ATTR_LEVEL,
    ATTR_METRICS,
    ATTR_OUTCOME,
    ATTR_REASON,
    ATTR_SEED,
    FINISHED_OUTCOMES,
    Store,
)

FINAL = "sweep/final"  # key of the last result a trainable reports (absent when stopped early)

# Tune's default loggers write JSON, CSV and TensorBoard files for every result of every trial;
# the Optuna storage is this tool's record, so they are pure overhead here (see benchmarks/).
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # eval metrics arrive later
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


# --- the trainable (runs in Ray workers, on any node) -----------------------------------------


def trainable(config: dict[str, Any]) -> None:
    """One (configuration, seed): train, report every `report_every` steps, then a final result."""
    started_at = time.time()  # wall clock, for timelines across nodes
    import ray
    import torch
    from ray import tune

    from infogan_core import DivergedError, TrainConfig, train
    from infogan_core.images import curves

    torch.set_num_threads(max(1, int(config["cpus"])))
    cfg = TrainConfig.from_dict(config["train_config"])
    started = time.perf_counter()
    latest_eval: dict[str, float] = {}

    def report(step: int, metrics: dict[str, float]) -> None:
        latest_eval.update({k: v for k, v in metrics.items() if k.startswith("eval/")})
        tune.report({**metrics, **latest_eval, "step": step})

    node_id = ray.get_runtime_context().get_node_id()
    final: dict[str, Any] = {"node": socket.gethostname(), "node_id": node_id, "trial_dir": os.getcwd()}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = train(cfg, report=report, image_dir=tmp)
            final.update(outcome="completed", metrics=result.metrics, history=result.history)
            final.update(steps_run=result.steps_run, images=_read_images(result.images))
        except DivergedError as exc:
            final.update(outcome="diverged", reason=str(exc), steps_run=exc.step, history=exc.history)
            if exc.history:
                final["images"] = _read_images({"curves": str(curves(exc.history, Path(tmp) / "curves.png"))})
        except Exception as exc:  # noqa: BLE001 - any crash is recorded on the trial, not lost
            final.update(outcome="crashed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0])
            final["traceback"] = traceback.format_exc()[-4000:]
    final["wall_s"] = time.perf_counter() - started
    final["started_at"], final["ended_at"] = started_at, time.time()
    # one JSON string: Tune flattens nested dicts in results before searchers see them
    tune.report({FINAL: json.dumps(final), "step": cfg.steps})


def _read_images(paths: dict[str, str]) -> dict[str, str]:
    return {name: base64.b64encode(Path(p).read_bytes()).decode() for name, p in paths.items()}


# --- planning: which trials still have to run -------------------------------------------------


@dataclass
class Plan:
    """What a run will do: pending trial specs and what the storage already holds."""

    pending: list[TrialSpec]
    finished: int  # pairs already finished in the storage
    interrupted: int  # trials found RUNNING from a dead driver, marked FAIL and rerun
    search_remaining: int = 0  # search: configurations still to sample


def _distribution(study: Study, name: str) -> Any:
    levels = spec_module.factor_levels(study).get(name, [])
    if study.kind != "search":
        return CategoricalDistribution([_optuna_value(v) for v in levels])
    dist = study.space[name]
    if dist.type == "float":
        return FloatDistribution(dist.low, dist.high, log=dist.log)
    if dist.type == "int":
        return IntDistribution(dist.low, dist.high, log=dist.log, step=dist.step)
    return CategoricalDistribution([_optuna_value(v) for v in dist.choices])


def _optuna_value(value: Any) -> Any:
    """Optuna params hold None, bool, int, float or str: lists become their text form."""
    return value if value is None or isinstance(value, bool | int | float | str) else spec_module.format_value(value)


def _from_optuna_value(study: Study, name: str, value: Any) -> Any:
    """Invert _optuna_value with the factor's own levels (so "[10]" is [10] again)."""
    choices = spec_module.factor_levels(study).get(name) or []
    for level in choices:
        if _optuna_value(level) == value:
            return level
    return value


def _pair_key(trial: FrozenTrial) -> tuple[str, int] | None:
    if ATTR_CONFIG_ID not in trial.user_attrs:
        return None
    return trial.user_attrs[ATTR_CONFIG_ID], int(trial.user_attrs[ATTR_SEED])


def plan(study: Study, optuna_study: optuna.Study) -> Plan:
    """Mark trials of a dead driver as interrupted and list the (configuration, seed) pairs to run."""
    interrupted = 0
    for trial in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        optuna_study._storage.set_trial_user_attr(trial._trial_id, ATTR_OUTCOME, "interrupted")
        optuna_study._storage.set_trial_user_attr(
            trial._trial_id, ATTR_REASON, "the driver stopped while this trial ran; its pair is run again"
        )
        optuna_study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        interrupted += 1
    trials = optuna_study.get_trials(deepcopy=False)
    done = {
        key for t in trials if t.user_attrs.get(ATTR_OUTCOME) in FINISHED_OUTCOMES and (key := _pair_key(t)) is not None
    }
    if study.kind != "search":
        pending = [s for s in spec_module.expand(study) if (s.config_id, s.seed) not in done]
        return Plan(pending, len(done), interrupted)
    # search: finish the seeds of configurations already sampled, then sample the rest
    configs: dict[str, dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if ATTR_CONFIG_ID in t.user_attrs and t.user_attrs[ATTR_CONFIG_ID] not in configs:
            configs[t.user_attrs[ATTR_CONFIG_ID]] = {k: _from_optuna_value(study, k, v) for k, v in t.params.items()}
    pending = []
    for config_id, params in list(configs.items())[: study.trials]:
        for seed in study.seed_list:
            if (config_id, seed) not in done:
                pending.append(TrialSpec(len(pending), config_id, params, seed, None, None))
    return Plan(pending, len(done), interrupted, search_remaining=max(0, study.trials - len(configs)))


# --- opening the Optuna study -----------------------------------------------------------------


def _sampler(study: Study) -> optuna.samplers.BaseSampler:
    seed = study.sampler_seed
    return {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }[study.sampler]()


def open_study(study: Study, store: Store, *, source: str = "") -> optuna.Study:
    """Create the Optuna study, or load it to resume; refuse one stored from a conflicting file."""
    storage = store.storage()
    directions = [o.direction for o in study.objectives]
    optuna_study = optuna.create_study(
        study_name=study.name,
        storage=storage,
        directions=directions,
        sampler=_sampler(study),
        load_if_exists=True,
    )
    stored = optuna_study.user_attrs.get("fingerprint")
    if stored is None:
        optuna_study.set_user_attr("fingerprint", study.fingerprint())
        optuna_study.set_user_attr("kind", study.kind)
        optuna_study.set_user_attr("created", time.strftime("%Y-%m-%d %H:%M:%S"))
        with warnings.catch_warnings():  # "experimental since 3.2": it is what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna_study.set_metric_names([o.metric for o in study.objectives])
    elif stored != study.fingerprint():
        raise StudyError(
            f"study '{study.name}' in {store.url} was run from a different definition (base, factors, space, "
            f"budget or objectives changed); run it under another name with --new-name NAME"
        )
    if [d.name.lower() for d in optuna_study.directions] != directions:
        raise StudyError(f"study '{study.name}' is stored with other objective directions; use --new-name NAME")
    # the latest definition (claim, verdict, seeds) is what reports read
    optuna_study.set_user_attr("spec", study.model_dump(mode="json"))
    optuna_study.set_user_attr("source", source)
    return optuna_study


# --- the Ray Tune searcher that is Optuna's front end -------------------------------------------


@dataclass
class Tracker:
    """Counts for the progress display and the summary."""

    total: int
    done: int = 0
    started: set = field(default_factory=set)  # Tune ids of trials whose actor runs them now
    failed: int = 0
    pruned: int = 0
    best: float | None = None
    started_at: float = field(default_factory=time.perf_counter)
    trial_seconds: float = 0.0  # sum of the trials' own wall times
    first_step_at: float | None = None

    @property
    def running(self) -> int:
        return len(self.started)


class OptunaFront:
    """Hands Ray Tune the next (configuration, seed) and records each trial in Optuna.

    Ablation and grid trials are created with their params fixed, in the expanded order; search
    trials ask the study's sampler for params, and each sampled configuration is repeated for
    every seed. Intermediate values go to Optuna for single-objective studies.
    """

    def __init__(self, study: Study, optuna_study: optuna.Study, store: Store, pending: list[TrialSpec],
                 search_remaining: int, tracker: Tracker) -> None:  # fmt: skip
        self.study, self.optuna_study, self.store = study, optuna_study, store
        self.queue = list(pending)
        self.search_remaining = search_remaining
        self.tracker = tracker
        self.live: dict[str, optuna.Trial] = {}  # Tune trial id -> open Optuna trial
        self.last_step: dict[str, int] = {}  # Tune trial id -> last reported step
        self.distributions = {name: _distribution(study, name) for name in self._param_names()}
        self.artifact_store = store.artifact_store()

    def _param_names(self) -> list[str]:
        return list(self.study.space) if self.study.kind == "search" else list(self.study.factors)

    @property
    def total(self) -> int:
        return len(self.queue) + self.search_remaining * len(self.study.seed_list)

    def next_config(self) -> tuple[dict[str, Any], optuna.Trial] | None:
        """The next trial's Tune config and its (open) Optuna trial, or None when all are handed out."""
        if self.queue:
            spec = self.queue.pop(0)
            trial = self._create_trial(spec)
        elif self.search_remaining > 0:
            spec, trial = self._sample_configuration()
        else:
            return None
        for key, value in (
            (ATTR_CONFIG_ID, spec.config_id),
            (ATTR_SEED, spec.seed),
            (ATTR_INDEX, spec.index),
            (ATTR_FACTOR, spec.factor),
            (ATTR_LEVEL, spec.level),
        ):
            trial.set_user_attr(key, value)
        cfg = self.study.train_config(spec.params, spec.seed)
        trial.set_user_attr(ATTR_CONFIG, cfg.to_dict())
        config = {"train_config": cfg.to_dict(), "cpus": self.study.resources.cpus, "optuna_number": trial.number}
        return config, trial

    def _sample_configuration(self) -> tuple[TrialSpec, optuna.Trial]:
        """Ask the sampler for one configuration: its trial runs the first seed, the others are queued."""
        trial = self.optuna_study.ask(self.distributions)
        params = {k: _from_optuna_value(self.study, k, v) for k, v in trial.params.items()}
        config_id = f"search-{trial.number:04d}"
        self.search_remaining -= 1
        first, *others = [TrialSpec(0, config_id, params, s, None, None) for s in self.study.seed_list]
        self.queue = others + self.queue
        return first, trial

    def _create_trial(self, spec: TrialSpec) -> optuna.Trial:
        """An Optuna trial, RUNNING, with the spec's params fixed (no sampler involved)."""
        params = {k: _optuna_value(v) for k, v in spec.params.items()}
        frozen = optuna.trial.create_trial(
            state=TrialState.RUNNING, params=params, distributions={k: self.distributions[k] for k in params}
        )
        trial_id = self.optuna_study._storage.create_new_trial(self.optuna_study._study_id, template_trial=frozen)
        return optuna.Trial(self.optuna_study, trial_id)

    # called by the Tune searcher adapter
    def on_result(self, tune_id: str, result: dict[str, Any]) -> None:
        trial = self.live.get(tune_id)
        if trial is None:
            return
        if self.tracker.first_step_at is None:
            self.tracker.first_step_at = time.perf_counter()
        if "step" in result:
            self.last_step[tune_id] = int(result["step"])
        if FINAL in result:
            self._finish(tune_id, json.loads(result[FINAL]))
            return
        if len(self.study.objectives) == 1:
            value = result.get(self.study.objectives[0].metric)
            if value is not None and math.isfinite(value):
                with contextlib.suppress(Exception):  # a repeated step is not worth failing a trial
                    trial.report(float(value), int(result["step"]))

    def _finish(self, tune_id: str, final: dict[str, Any]) -> None:
        from sweep.review import attach_trial_review

        trial = self.live.pop(tune_id)
        outcome = final["outcome"]
        for key in (
            "started_at",
            "ended_at",
            "node",
            "node_id",
            "trial_dir",
            "wall_s",
            "steps_run",
            "reason",
            "traceback",
        ):
            if key in final:
                trial.set_user_attr(key, final[key])
        if "metrics" in final:
            trial.set_user_attr(ATTR_METRICS, _finite(final["metrics"]))
        if final.get("history"):
            trial.set_user_attr(ATTR_HISTORY, [_finite(h) for h in final["history"]])
        self.tracker.trial_seconds += final.get("wall_s", 0.0)
        values = None
        if outcome == "completed":
            values = [final["metrics"].get(o.metric) for o in self.study.objectives]
            missing = [o.metric for o, v in zip(self.study.objectives, values, strict=True) if v is None]
            if missing:
                outcome = "crashed"
                trial.set_user_attr(ATTR_REASON, f"objective {missing[0]} is not measured on this dataset")
            elif not all(math.isfinite(v) for v in values):
                outcome = "diverged"
                trial.set_user_attr(ATTR_REASON, "an objective value is not finite")
        trial.set_user_attr(ATTR_OUTCOME, outcome)
        attach_trial_review(self.study, trial, final, self.artifact_store)
        if outcome == "completed":
            self.optuna_study.tell(trial, values)
            self.tracker.done += 1
            if len(values) == 1:
                better = max if self.study.objectives[0].direction == "maximize" else min
                self.tracker.best = values[0] if self.tracker.best is None else better(self.tracker.best, values[0])
        else:
            self.optuna_study.tell(trial, state=TrialState.FAIL)
            self.tracker.failed += 1
        self.tracker.started.discard(tune_id)

    def close_unfinished(self) -> int:
        """Mark trials still open when Tune stopped (the run was interrupted) FAIL "interrupted"."""
        for trial in self.live.values():
            reason = "the run was stopped before this trial finished; its pair is run again"
            self._end(trial, TrialState.FAIL, "interrupted", reason)
        count, self.live = len(self.live), {}
        self.tracker.started.clear()
        return count

    def on_complete(self, tune_id: str, error: bool) -> None:
        """A Tune trial ended without its final result: stopped early (PRUNED) or lost (FAIL)."""
        trial = self.live.pop(tune_id, None)
        if trial is None:
            return
        self.tracker.started.discard(tune_id)
        if error:
            self._end(trial, TrialState.FAIL, "crashed", "the Ray worker running this trial failed")
            self.tracker.failed += 1
        else:
            step = self.last_step.get(tune_id)
            trial.set_user_attr("steps_run", step)
            self._end(trial, TrialState.PRUNED, "pruned", f"stopped early by ASHA at step {step}")
            self.tracker.pruned += 1

    def _end(self, trial: optuna.Trial, state: TrialState, outcome: str, reason: str) -> None:
        """Tell Optuna a trial ended without a final result, with the outcome and reason attached."""
        trial.set_user_attr(ATTR_OUTCOME, outcome)
        trial.set_user_attr(ATTR_REASON, reason)
        self.optuna_study.tell(trial, state=state)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics: non-finite floats become None (the storage keeps JSON)."""
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}


def _searcher(front: OptunaFront):
    from ray.tune.search import Searcher

    class OptunaFrontSearcher(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=None, mode=None)

        def suggest(self, trial_id: str):
            nxt = front.next_config()
            if nxt is None:
                return Searcher.FINISHED
            config, trial = nxt
            front.live[trial_id] = trial
            return config

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            front.on_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            # a trial stopped by the scheduler gets its last result here, not in on_trial_result
            if result and trial_id in front.live:
                front.on_result(trial_id, result)
            front.on_complete(trial_id, error)

    return OptunaFrontSearcher()


# --- running ----------------------------------------------------------------------------------


@dataclass
class RunSummary:
    study_name: str
    planned: int
    completed: int
    pruned: int
    failed: int
    skipped: int  # pairs already finished before this run
    interrupted: int  # trials of an earlier, dead driver that were run again
    unfinished: int  # trials this run left unfinished (stopped with Ctrl-C); run again to resume
    wall_s: float
    trial_seconds: float
    first_step_s: float | None
    best: float | None


class ProgressCallback(Callback):
    """A Tune callback that calls fn after each result and trial end; pickles to a no-op."""

    def __init__(self, fn: Callable[[], None] | None, tracker: Tracker | None = None) -> None:
        self.fn = fn
        self.tracker = tracker

    def __getstate__(self) -> dict:  # Tune pickles its run config; the live display stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.fn, self.tracker = None, None

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        if self.tracker is not None:
            self.tracker.started.add(trial.trial_id)
        if self.fn:
            self.fn()

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        if self.fn:
            self.fn()

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        if self.fn:
            self.fn()


def _slots(study: Study) -> int:
    """How many trials of this study can run at once on the cluster Ray is connected to."""
    import ray

    resources = ray.cluster_resources()
    fit = int(resources.get("CPU", 1) // study.resources.cpus)
    if study.resources.gpus:
        fit = min(fit, int(resources.get("GPU", 0) // study.resources.gpus))
    if study.resources.max_concurrent:
        fit = min(fit, study.resources.max_concurrent)
    return max(1, fit)


def _trial_name(trial: Any) -> str:
    return f"trial_{trial.config.get('optuna_number', trial.trial_id)}"


def _quiet_ray_logs() -> None:
    """Tune's warnings about result files it was told not to write, and similar, are noise here."""
    for name in ("ray.tune", "ray.train", "ray.air", "ray._private", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join `address` (a Ray cluster, or "auto"), or start a local Ray on this machine's cores."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


def run(
    study: Study,
    *,
    store: Store,
    address: str | None = None,
    progress: Callable[[Tracker], None] | None = None,
    source: str = "",
    storage_path: str | None = None,
) -> RunSummary:
    """Run every pending trial of `study` on Ray Tune, recorded in `store`; resumes what is stored."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    started = time.perf_counter()
    optuna_study = open_study(study, store, source=source)
    the_plan = plan(study, optuna_study)
    tracker = Tracker(total=0)
    front = OptunaFront(study, optuna_study, store, the_plan.pending, the_plan.search_remaining, tracker)
    tracker.total = front.total
    if tracker.total == 0:
        return RunSummary(study.name, 0, 0, 0, 0, the_plan.finished, the_plan.interrupted, 0, 0.0, 0.0, None, None)

    ensure_ray(address)
    _quiet_ray_logs()
    # Tune lets a custom searcher keep one trial pending at a time, so trial actors would start one
    # after another (~3 s each here); let every slot start its actor at once.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(_slots(study))
    scheduler: Any = FIFOScheduler()
    if study.early_stopping is not None:
        es = study.early_stopping
        scheduler = ASHAScheduler(
            time_attr="step",
            metric=es.metric,
            mode=es.mode,
            max_t=study.budget.steps,
            grace_period=es.grace_period,
            reduction_factor=es.reduction_factor,
            stop_last_trials=False,  # a trial at its last step ends by itself, with its final result
        )

    resources: dict[str, float] = {"cpu": study.resources.cpus}
    if study.resources.gpus:
        resources["gpu"] = study.resources.gpus
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=_searcher(front),
            scheduler=scheduler,
            num_samples=tracker.total,
            max_concurrent_trials=study.resources.max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=storage_path or str(store.ray_dir),
            verbose=0,
            callbacks=[ProgressCallback((lambda: progress(tracker)) if progress else None, tracker)],
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    tuner.fit()
    # Tune returns early on Ctrl-C (SIGINT): trials still open did not finish in this run
    front.close_unfinished()
    if progress:
        progress(tracker)
    from sweep.review import attach_study_review

    attach_study_review(study, optuna_study)  # the study's note in optuna-dashboard: outcomes, best, verdict
    wall = time.perf_counter() - started
    first = tracker.first_step_at - started if tracker.first_step_at else None
    return RunSummary(
        study.name,
        tracker.total,
        tracker.done,
        tracker.pruned,
        tracker.failed,
        the_plan.finished,
        the_plan.interrupted,
        tracker.total - tracker.done - tracker.failed - tracker.pruned,  # open when stopped, or never started
        wall,
        tracker.trial_seconds,
        first,
        tracker.best,
    )


__all__ = ["Plan", "RunSummary", "Tracker", "ensure_ray", "open_study", "plan", "run", "trainable"]
