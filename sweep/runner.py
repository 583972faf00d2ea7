"""Run a study: Ray Tune schedules the trials, Optuna proposes or enumerates them and records all.

Each Optuna trial is one (configuration, seed) pair. Each Ray Tune trial trains a population of them:
pairs of one network shape (`resources.population` at most, 1 by default) trained as one stacked model
(the core's population engine), each member still its own Optuna trial with its own values, history,
images, note and outcome. Early stopping (ASHA) is decided here, per member, and read by the workers
from a small Ray actor (the stop board). Only this driver process talks to the Optuna storage, so
SQLite works on a cluster's head node: workers send their metrics, history and PNG images back inside
their reported results, and the driver attaches them to the Optuna trial (artifacts, user attributes,
a note) before telling Optuna how it ended.

Resuming is by the storage: a (configuration, seed) pair that already finished is never run again;
a trial that was RUNNING when a previous driver died is marked FAIL (outcome "interrupted") and its
pair is run again. A pair whose trial crashed (its environment failed it: a lost worker, a missing data
file) runs again on request. One driver at a time: a run holds the study's lease in the storage.

Seeds planned in looks (`seeds: {start, max}`) run one look at a time: every pair of a look's seeds,
then the verdict at that look (recomputed from the storage, so a resumed run decides the same), and
the next look's seeds only while it is INCONCLUSIVE.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
import ray._private.ray_constants as ray_constants
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from ray import tune
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher

from sweep import analysis, core, provenance, review
from sweep import spec as spec_module
from sweep.errors import DefinitionConflictError, SeedPlanConflictError, StudyBusyError, StudyError, SweepError
from sweep.spec import Study, TrialSpec
from sweep.store import (
    DriverLease,
    Store,
    StudyAttr,
    TrialAttr,
    close_stale_trials,
    end_trial,
    record_intermediate,
    set_trial_times,
)
from sweep.trainable import CHECKPOINT_STEP, EVAL_STEP, FINAL, MEMBERS, StopBoard, trainable
from sweep.vocab import DECISIVE, FINISHED, Outcome, counts, seed_range

# --- planning: which trials still have to run -------------------------------------------------


@dataclass
class Plan:
    """What a run will do: pending trial specs and what the storage already holds."""

    pending: list[TrialSpec]
    finished: int  # pairs already finished in the storage
    interrupted: int  # trials found open from a dead driver, marked FAIL and rerun
    search_remaining: int = 0  # search: configurations still to sample
    crashed: Counter = field(default_factory=Counter)  # reason -> pairs whose stored trial crashed, left as they are
    retried: int = 0  # pairs whose stored trial crashed, run again


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
    if TrialAttr.CONFIG_ID not in trial.user_attrs:
        return None
    return trial.user_attrs[TrialAttr.CONFIG_ID], int(trial.user_attrs[TrialAttr.SEED])


def _latest_finished(trials: list[FrozenTrial]) -> dict[tuple[str, int], FrozenTrial]:
    """Each finished (configuration, seed) pair's latest trial."""
    latest = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get(TrialAttr.OUTCOME) in FINISHED and (key := _pair_key(t)) is not None:
            latest[key] = t
    return latest


def crashed_pairs(optuna_study: optuna.Study) -> set[tuple[str, int]]:
    """The (configuration, seed) pairs whose latest trial crashed."""
    latest = _latest_finished(optuna_study.get_trials(deepcopy=False))
    return {k for k, t in latest.items() if t.user_attrs[TrialAttr.OUTCOME] == Outcome.CRASHED}


def plan(
    study: Study, optuna_study: optuna.Study, *, seeds: int | None = None, retry: Set[tuple[str, int]] = frozenset()
) -> Plan:
    """Mark trials of a dead driver as interrupted and list the (configuration, seed) pairs to run: all of
    them, or those of the first `seeds` seeds (a look); the pairs in `retry` run again if their latest trial
    crashed."""
    interrupted = close_stale_trials(optuna_study, "the driver stopped while this trial ran; its pair is run again")
    trials = optuna_study.get_trials(deepcopy=False)
    latest = _latest_finished(trials)
    crashed = {k for k, t in latest.items() if t.user_attrs[TrialAttr.OUTCOME] == Outcome.CRASHED}
    done = set(latest) - (crashed & retry)
    reasons = Counter(latest[k].user_attrs.get(TrialAttr.REASON) or "no reason recorded" for k in crashed - retry)
    retried = len(crashed & retry)
    if study.kind != "search":
        wanted = set(study.seed_list[:seeds] if seeds is not None else study.seed_list)
        pending = [s for s in spec_module.expand(study) if (s.config_id, s.seed) not in done and s.seed in wanted]
        return Plan(pending, len(done), interrupted, crashed=reasons, retried=retried)
    # search: finish the seeds of configurations already sampled, then sample the rest
    configs: dict[str, dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if TrialAttr.CONFIG_ID in t.user_attrs and t.user_attrs[TrialAttr.CONFIG_ID] not in configs:
            configs[t.user_attrs[TrialAttr.CONFIG_ID]] = {
                k: _from_optuna_value(study, k, v) for k, v in t.params.items()
            }
    pending = []
    for config_id, params in list(configs.items())[: study.trials]:
        for seed in study.seed_list:
            if (config_id, seed) not in done:
                pending.append(TrialSpec(len(pending), config_id, params, seed, None, None))
    remaining = max(0, study.trials - len(configs))
    return Plan(pending, len(done), interrupted, search_remaining=remaining, crashed=reasons, retried=retried)


# --- opening the Optuna study -----------------------------------------------------------------


def _sampler(study: Study) -> optuna.samplers.BaseSampler:
    """The study's sampler; ablation and grid trials have every parameter fixed, so no sampler works for them."""
    seed = study.sampler_seed
    if study.kind != "search":
        return optuna.samplers.RandomSampler(seed=seed)
    return {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }[study.sampler]()


def open_study(
    study: Study, store: Store, *, source: str = "", replication_of: str | None = None, replicate: int | None = None
) -> optuna.Study:
    """Create the Optuna study, or load it to resume; refuse one stored from a conflicting file, or one whose
    seeds would change after its verdict was seen. A replication records what it replicates."""
    directions = [o.direction for o in study.objectives]
    optuna_study = optuna.create_study(
        study_name=study.name,
        storage=store.storage(),
        directions=directions,
        sampler=_sampler(study),
        load_if_exists=True,
    )
    stored = optuna_study.user_attrs.get(StudyAttr.FINGERPRINT)
    if stored is None:
        optuna_study.set_user_attr(StudyAttr.FINGERPRINT, study.fingerprint())
        optuna_study.set_user_attr(StudyAttr.KIND, study.kind)
        optuna_study.set_user_attr(StudyAttr.CREATED, time.strftime("%Y-%m-%d %H:%M:%S"))
        with warnings.catch_warnings():  # "experimental since 3.2": it is what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna_study.set_metric_names([o.metric for o in study.objectives])
    elif stored != study.fingerprint():
        raise DefinitionConflictError(
            f"study '{study.name}' in {store.url} was run from a different definition (base, factors, space, "
            "budget or objectives changed)"
        )
    if [d.name.lower() for d in optuna_study.directions] != directions:
        raise DefinitionConflictError(f"study '{study.name}' is stored with other objective directions")
    _check_seed_plan(study, optuna_study)
    if replication_of is not None:
        optuna_study.set_user_attr(StudyAttr.REPLICATION_OF, replication_of)
        optuna_study.set_user_attr(StudyAttr.REPLICATE, replicate)
    # the latest definition (claim, verdict, seeds) is what reports read
    optuna_study.set_user_attr(StudyAttr.SPEC, study.model_dump(mode="json"))
    optuna_study.set_user_attr(StudyAttr.SOURCE, source)
    optuna_study.set_user_attr(StudyAttr.PROVENANCE, provenance.collect(provenance.cpu_device()))
    return optuna_study


def _check_seed_plan(study: Study, optuna_study: optuna.Study) -> None:
    """Refuse new seeds for a study whose verdict already took a look: more seeds after a verdict was seen
    is optional stopping, which inflates false positives. Planned looks (`seeds: {start, max}`) or a
    replication on fresh seeds are the ways to add them."""
    data = optuna_study.user_attrs.get(StudyAttr.SPEC)
    if not data:
        return
    stored = spec_module.parse_stored(data, source=f"stored study {study.name}")

    def plan_of(s: Study) -> tuple:
        return s.seed_list, s.looks, s.seeds.spending if isinstance(s.seeds, spec_module.SeedPlan) else None

    if stored.verdict is None or plan_of(stored) == plan_of(study):
        return
    result = analysis.verdict(analysis.trials_frame(optuna_study), stored)
    look = result.deciding if result is not None else None
    # a look with fewer pairs than the rule's min_seeds could not decide anything: nothing was spent there
    if look is not None and look.pairs >= stored.verdict.min_seeds:
        raise SeedPlanConflictError(
            f"study '{study.name}' already has a verdict ({look.status}) at {look.seeds} seeds; changing its seeds "
            "after a verdict was seen is optional stopping, which inflates false positives"
        )


# --- the Ray Tune searcher that is Optuna's front end -------------------------------------------


@dataclass
class TrialProgress:
    """One trial as the progress display shows it: which pair, how far, how it ended."""

    label: str  # "d_width=1.0 seed 2", or a population's pairs: "8 pairs: base seeds 0..7"
    steps: int  # its training budget
    step: int = 0  # the last step it reported
    outcome: str = ""  # a vocab.Outcome value once it ended (a population: its members' outcomes)
    members: int = 1  # the pairs it trains
    seconds: float | None = None  # its worker's wall time, when the worker sent its final result


@dataclass
class Tracker:
    """Counts for the progress display and the summary."""

    total: int
    done: int = 0
    started: set = field(default_factory=set)  # Tune ids of trials whose actor runs them now
    failed: int = 0
    crashed: int = 0  # of the failed: those that ended without a measured outcome
    failures: Counter = field(default_factory=Counter)  # (outcome, reason) -> trials, of the failed
    pruned: int = 0
    best: float | None = None
    started_at: float = field(default_factory=time.perf_counter)
    trial_seconds: float = 0.0  # sum of the trials' own wall times
    first_step_at: float | None = None
    trials: dict[str, TrialProgress] = field(default_factory=dict)  # Tune id -> its trial, once handed out
    notes: set[str] = field(default_factory=set)  # what the summary should tell (e.g. pairs that ran alone)
    ended: list[TrialProgress] = field(default_factory=list)  # trials in the order they ended

    @property
    def running(self) -> int:
        """Pairs training now (a population counts its members)."""
        return sum(t.members for tid, t in self.trials.items() if tid in self.started and not t.outcome) or len(
            self.started
        )

    def running_trials(self) -> list[TrialProgress]:
        """The trials a worker runs now, in the order they were handed out."""
        return [t for tid, t in self.trials.items() if tid in self.started and not t.outcome]

    def end(self, tune_id: str, outcome: Outcome | str, seconds: float | None = None) -> None:
        self.started.discard(tune_id)
        trial = self.trials.get(tune_id)
        if trial is not None and not trial.outcome:
            trial.outcome, trial.seconds = outcome.value if isinstance(outcome, Outcome) else outcome, seconds
            self.ended.append(trial)


class OptunaFront:
    """Hands Ray Tune the next population of (configuration, seed) pairs and records each pair in Optuna.

    Ablation and grid trials are enqueued with their params fixed, in the expanded order, and asked
    for at once; search trials ask the study's sampler for params, and each sampled configuration is
    repeated for every seed. A population takes pending pairs of one network shape (those whose
    configurations differ only in MEMBER_FIELDS), as many as `population_sizes` gives that shape (at most
    `population_size`), and the costliest population goes first, so that every slot stays busy to the
    end (longest job first). Intermediate values go to
    Optuna; with early stopping, each member's results go through ASHA here, and the members it stops
    are posted on the stop board that their worker reads.
    """

    def __init__(
        self,
        study: Study,
        optuna_study: optuna.Study,
        store: Store,
        *,
        pending: list[TrialSpec],
        search_remaining: int,
        tracker: Tracker,
        lease: DriverLease | None = None,
        population_size: int = 1,
        slots: int = 1,
        stop_board: Any = None,
        board_name: str | None = None,
        keep_checkpoints: bool = False,
    ) -> None:
        self.study, self.optuna_study = study, optuna_study
        self.lease = lease  # once another driver has taken it over, no trial is handed out
        self.queue: list[tuple[TrialSpec, optuna.Trial | None]] = [(spec, None) for spec in pending]
        self.search_remaining = search_remaining
        self.tracker = tracker
        self.live: dict[str, list[optuna.Trial]] = {}  # Tune trial id -> its members' open Optuna trials
        self.distributions = {name: _distribution(study, name) for name in self._param_names()}
        self.artifact_store = store.artifact_store()
        self.population_size = population_size
        self.stop_board = stop_board  # a StopBoard actor when the study stops members early, else None
        self.board_name = board_name  # the name its workers look it up by
        self.asha = _asha(study) if stop_board is not None else None
        self._keys: dict[str, tuple] = {}  # config_id -> its population key
        self._costs: dict[tuple, tuple[float, float]] = {}  # population key -> (a pair's cost, a population's own)
        self._sizes = population_sizes(self._pending_work(), population_size, slots)  # key -> members
        self.keep_checkpoints = keep_checkpoints
        self.checkpoints: dict[str, str] = {}  # Tune trial id -> the folder of its latest checkpoint
        self.resumed: dict[str, str] = {}  # Tune trial id -> the interrupted population's checkpoint it resumed
        self.resumable = self._resumable()

    def _param_names(self) -> list[str]:
        return list(self.study.space) if self.study.kind == "search" else list(self.study.factors)

    @property
    def total(self) -> int:
        return len(self.queue) + self.search_remaining * len(self.study.seed_list)

    def next_population(self) -> tuple[dict[str, Any], list[optuna.Trial]] | None:
        """The next Tune trial's config (its members) and their open Optuna trials, or None when every
        pair is handed out."""
        if self.lease is not None and self.lease.lost:
            return None
        resume: tuple[str, int] | None = None
        chosen: list[tuple[TrialSpec, optuna.Trial | None]] = []
        while self.resumable and not chosen:  # interrupted populations first, from their checkpoints
            path, step, pairs = self.resumable.pop(0)
            where = {(spec.config_id, spec.seed): i for i, (spec, _) in enumerate(self.queue)}
            if all(pair in where for pair in pairs) and Path(path).is_dir():
                chosen, resume = self._take([where[pair] for pair in pairs]), (path, step)
        if not chosen and not self.queue and self.search_remaining > 0:
            self._sample_configuration()
        if not chosen and not self.queue:
            return None
        first = chosen[0][0] if chosen else self._costliest()
        key = self._key(first)
        size = self._sizes.get(key, self.population_size)
        if resume is None and size > 1:
            inexact = core.inexact_population(self.study.train_config(first.params, first.seed))
        else:
            inexact = None
        if inexact is not None:  # stacked, its members would not be their single runs: each pair alone
            size = 1
            self.tracker.notes.add(
                f"{first.config_id} ran one pair per trial, not in populations: {inexact}, so members would not be "
                "bit-identical to single runs"
            )
        while resume is None and len(chosen) < size:
            room = size - len(chosen)
            taken = [i for i, (spec, _) in enumerate(self.queue) if self._key(spec) == key][:room]
            if not taken:
                if self.search_remaining > 0 and self._key(self._sample_configuration()) == key:
                    continue  # the sampled configuration fits this population: its seeds join
                break
            chosen += self._take(taken)
        members = [self._open(spec, trial) for spec, trial in chosen]
        pairs = [[spec.config_id, spec.seed] for spec, _ in chosen]
        for _, trial in members:
            trial.set_user_attr(TrialAttr.PAIRS, pairs)
        config = {
            "members": [m for m, _ in members],
            "cpus": self.study.resources.cpus,
            "stop_board": self.board_name,
            "checkpoint_every": self.study.resources.checkpoint_every,
            "resume_from": resume[0] if resume else None,
            "resume_step": resume[1] if resume else None,
        }
        return config, [trial for _, trial in members]

    def _pending_work(self) -> dict[tuple, tuple[int, float, float]]:
        """Each network shape in the queue: (pending pairs, what a pair costs, what a population costs
        besides its members)."""
        work: dict[tuple, tuple[int, float, float]] = {}
        for spec, _ in self.queue:
            key = self._key(spec)
            count = work[key][0] if key in work else 0
            work[key] = (count + 1, *self._cost(spec))
        return work

    def _cost(self, spec: TrialSpec) -> tuple[float, float]:
        key = self._key(spec)
        if key not in self._costs:
            cfg = self.study.train_config(spec.params, spec.seed)
            self._costs[key] = (core.pair_cost(cfg), core.population_overhead(cfg))
        return self._costs[key]

    def _costliest(self) -> TrialSpec:
        """The first pending pair of the shape whose next population costs most (queue order on ties)."""
        work = self._pending_work()  # in queue order: max keeps the first of equals
        key = max(work, key=lambda k: _population_cost(*work[k], self._sizes.get(k, self.population_size)))
        return next(spec for spec, _ in self.queue if self._key(spec) == key)

    def _take(self, indices: list[int]) -> list[tuple[TrialSpec, optuna.Trial | None]]:
        """Remove these queue items and return them, in the order given."""
        taken, gone = [self.queue[i] for i in indices], set(indices)
        self.queue = [item for i, item in enumerate(self.queue) if i not in gone]
        return taken

    def _resumable(self) -> list[tuple[str, int, list[tuple[str, int]]]]:
        """Populations interrupted with a checkpoint (a killed driver, Ctrl-C): (folder, step, pairs), newest
        first. Each resumes whole, when every one of its pairs is pending again."""
        latest: dict[tuple[str, int], FrozenTrial] = {}
        for t in self.optuna_study.get_trials(deepcopy=False):
            pair = _pair_key(t)
            if pair is not None and (pair not in latest or t.number > latest[pair].number):
                latest[pair] = t
        found: dict[str, tuple[str, int, list[tuple[str, int]]]] = {}
        for t in latest.values():
            attrs = t.user_attrs
            if attrs.get(TrialAttr.OUTCOME) == Outcome.INTERRUPTED and attrs.get(TrialAttr.CHECKPOINT):
                pairs = [(str(c), int(seed)) for c, seed in attrs.get(TrialAttr.PAIRS) or [_pair_key(t)]]
                path = attrs[TrialAttr.CHECKPOINT]
                found[path] = (path, int(attrs.get(TrialAttr.CHECKPOINT_STEP) or 0), pairs)
        return sorted(found.values(), key=lambda r: -r[1])

    def _key(self, spec: TrialSpec) -> tuple:
        if spec.config_id not in self._keys:
            self._keys[spec.config_id] = core.population_key(self.study.train_config(spec.params, spec.seed))
        return self._keys[spec.config_id]

    def _open(self, spec: TrialSpec, trial: optuna.Trial | None) -> tuple[dict[str, Any], optuna.Trial]:
        """The member's part of the Tune config, and its Optuna trial (asked for now if not yet)."""
        if trial is None:
            trial = self._fixed_trial(spec)
        for key, value in (
            (TrialAttr.CONFIG_ID, spec.config_id),
            (TrialAttr.SEED, spec.seed),
            (TrialAttr.INDEX, spec.index),
            (TrialAttr.FACTOR, spec.factor),
            (TrialAttr.LEVEL, spec.level),
        ):
            trial.set_user_attr(key, value)
        cfg = self.study.train_config(spec.params, spec.seed)
        trial.set_user_attr(TrialAttr.CONFIG, cfg.to_dict())
        return {"train_config": cfg.to_dict(), "optuna_number": trial.number}, trial

    def _sample_configuration(self) -> TrialSpec:
        """Ask the sampler for one configuration: its trial runs the first seed; every seed is queued."""
        trial = self.optuna_study.ask(self.distributions)
        params = {k: _from_optuna_value(self.study, k, v) for k, v in trial.params.items()}
        config_id = f"search-{trial.number:04d}"
        self.search_remaining -= 1
        first, *others = [TrialSpec(0, config_id, params, s, None, None) for s in self.study.seed_list]
        self.queue += [(first, trial)] + [(spec, None) for spec in others]
        return first

    def _fixed_trial(self, spec: TrialSpec) -> optuna.Trial:
        """An Optuna trial, RUNNING, with the spec's params fixed: enqueued, then asked for at once."""
        params = {k: _optuna_value(v) for k, v in spec.params.items()}
        self.optuna_study.enqueue_trial(params)
        return self.optuna_study.ask({k: self.distributions[k] for k in params})

    # called by the Tune searcher adapter
    def on_result(self, tune_id: str, result: dict[str, Any]) -> None:
        trials = self.live.get(tune_id)
        if trials is None:
            return
        if self.tracker.first_step_at is None:
            self.tracker.first_step_at = time.perf_counter()
        progress = self.tracker.trials.get(tune_id)
        if "step" in result and progress is not None:
            progress.step = int(result["step"])
        if FINAL in result:
            self._finish(tune_id, json.loads(result[FINAL])["members"])
            return
        if CHECKPOINT_STEP in result:  # its folder arrives in on_checkpoint
            for trial in trials:
                trial.set_user_attr(TrialAttr.CHECKPOINT_STEP, int(result[CHECKPOINT_STEP]))
        if MEMBERS not in result:
            return
        for k, metrics in json.loads(result[MEMBERS]).items():
            self._member_result(tune_id, int(k), trials[int(k)], int(result["step"]), metrics)

    def _member_result(self, tune_id: str, k: int, trial: optuna.Trial, step: int, metrics: dict[str, Any]) -> None:
        # the first objective's learning curve, at the steps where it was measured (eval/* metrics are
        # measured every eval_every steps; results between repeat the latest evaluation)
        metric = self.study.objectives[0].metric
        value = metrics.get(metric)
        measured = not metric.startswith("eval/") or metrics.get(EVAL_STEP) == step
        if measured and isinstance(value, int | float) and math.isfinite(value):
            record_intermediate(self.optuna_study, trial, step, float(value))
        if self.asha is not None and step < self.study.budget.steps:
            member = _Member(f"{tune_id}/{k}")
            if self.asha.on_trial_result(None, member, {**metrics, "step": step}) == ASHAScheduler.STOP:
                self.stop_board.stop.remote(tune_id, k)

    def on_checkpoint(self, tune_id: str, path: str) -> None:
        """Ray Tune stored a checkpoint of this population: where, on each member (to resume from it)."""
        self.checkpoints[tune_id] = path
        for trial in self.live.get(tune_id, []):
            trial.set_user_attr(TrialAttr.CHECKPOINT, path)

    def _finish(self, tune_id: str, finals: list[dict[str, Any]]) -> None:
        trials = self.live.pop(tune_id)
        if not self.keep_checkpoints:  # finished: its checkpoints (and those it resumed from) are no longer needed
            for path in (self.checkpoints.pop(tune_id, None), self.resumed.pop(tune_id, None)):
                if path:
                    shutil.rmtree(path, ignore_errors=True)
        outcomes = [self._finish_member(trial, final) for trial, final in zip(trials, finals, strict=True)]
        if finals:
            self.tracker.trial_seconds += finals[0].get(TrialAttr.WALL_S, 0.0)  # the population's, counted once
        outcome = outcomes[0] if len(outcomes) == 1 else counts(dict(Counter(o.value for o in outcomes)))
        self.tracker.end(tune_id, outcome, finals[0].get(TrialAttr.WALL_S) if finals else None)
        if self.stop_board is not None:
            self.stop_board.forget.remote(tune_id)

    def _finish_member(self, trial: optuna.Trial, final: dict[str, Any]) -> Outcome:
        outcome = Outcome(final[TrialAttr.OUTCOME])
        for key in TrialAttr.FROM_WORKER:
            if key in final:
                trial.set_user_attr(key, final[key])
        if TrialAttr.METRICS in final:
            trial.set_user_attr(TrialAttr.METRICS, _finite(final[TrialAttr.METRICS]))
        if final.get(TrialAttr.HISTORY):
            trial.set_user_attr(TrialAttr.HISTORY, [_finite(h) for h in final[TrialAttr.HISTORY]])
        values = None
        if outcome is Outcome.COMPLETED:
            values = [final[TrialAttr.METRICS].get(o.metric) for o in self.study.objectives]
            missing = [o.metric for o, v in zip(self.study.objectives, values, strict=True) if v is None]
            if missing:
                outcome = Outcome.CRASHED
                trial.set_user_attr(TrialAttr.REASON, f"objective {missing[0]} is not measured on this dataset")
            elif not all(math.isfinite(v) for v in values):
                outcome = Outcome.DIVERGED
                trial.set_user_attr(TrialAttr.REASON, "an objective value is not finite")
        trial.set_user_attr(TrialAttr.OUTCOME, outcome.value)
        review.attach_trial_review(self.study, trial, final, self.artifact_store)
        if outcome is Outcome.COMPLETED:
            self.optuna_study.tell(trial, values)
            self.tracker.done += 1
            if len(values) == 1:
                better = max if self.study.objectives[0].direction == "maximize" else min
                self.tracker.best = values[0] if self.tracker.best is None else better(self.tracker.best, values[0])
        elif outcome is Outcome.PRUNED:
            self.optuna_study.tell(trial, state=TrialState.PRUNED)
            self.tracker.pruned += 1
        else:
            self.optuna_study.tell(trial, state=TrialState.FAIL)
            self._failed(outcome, trial.user_attrs.get(TrialAttr.REASON) or final.get(TrialAttr.REASON))
        if TrialAttr.STARTED_AT in final and TrialAttr.ENDED_AT in final:
            set_trial_times(self.optuna_study, trial, final[TrialAttr.STARTED_AT], final[TrialAttr.ENDED_AT])
        return outcome

    def _failed(self, outcome: Outcome, reason: str | None) -> None:
        self.tracker.failed += 1
        self.tracker.crashed += outcome is Outcome.CRASHED
        self.tracker.failures[(outcome.value, reason or "no reason recorded")] += 1

    def close_unfinished(self) -> None:
        """Mark trials still open when Tune stopped (the run was interrupted) FAIL "interrupted"."""
        reason = "the run was stopped before this trial finished; its pair is run again"
        for tune_id, trials in self.live.items():
            for trial in trials:
                end_trial(self.optuna_study, trial, TrialState.FAIL, Outcome.INTERRUPTED, reason)
            self.tracker.end(tune_id, Outcome.INTERRUPTED)
        self.live = {}
        self.tracker.started.clear()

    def on_complete(self, tune_id: str, error: bool) -> None:
        """A Tune trial ended without its final result: its worker failed."""
        trials = self.live.pop(tune_id, None)
        if trials is None:
            return
        reason = "the Ray worker running this trial failed" if error else "the trial ended without its final result"
        for trial in trials:
            end_trial(self.optuna_study, trial, TrialState.FAIL, Outcome.CRASHED, reason)
            self._failed(Outcome.CRASHED, reason)
        self.tracker.end(tune_id, Outcome.CRASHED)


@dataclass(frozen=True)
class _Member:
    """One member of a population as ASHA sees it: a trial id of its own."""

    trial_id: str


def _asha(study: Study) -> ASHAScheduler | None:
    """ASHA over members: each member's results, one rung decision each, as Tune's scheduler decides
    for whole trials (Tune's ASHAScheduler itself, fed here with one id per member)."""
    if study.early_stopping is None:
        return None
    es = study.early_stopping
    return ASHAScheduler(
        time_attr="step",
        metric=es.metric,
        mode=es.mode,
        max_t=study.budget.steps,
        grace_period=es.grace_period,
        reduction_factor=es.reduction_factor,
        stop_last_trials=False,  # a member at its last step ends by itself, with its final result
    )


def population_size(study: Study, pairs: int, slots: int) -> int:
    """Members per population for `pairs` pending pairs and `slots` populations at once: the study's
    `resources.population` (auto: by device), but no more than spreads the pairs over every slot."""
    size = study.resources.population
    if size == "auto":
        size = core.auto_population(on_gpu=study.resources.gpus > 0)
    return max(1, min(size, math.ceil(pairs / max(1, slots))))


def _population_cost(pending: int, pair: float, overhead: float, size: int) -> float:
    """What the next population of a shape costs: its own cost, and its members' (`size`, or the pairs left)."""
    return overhead + pair * min(size, pending)


def population_sizes(work: Mapping[tuple, tuple[int, float, float]], most: int, slots: int) -> dict[tuple, int]:
    """Members per population for each network shape, from its (pending pairs, what a pair costs, what a
    population costs besides its members), at most `most`: the sizes whose populations, handed out
    costliest first to `slots` slots (as OptunaFront does), end soonest in a simulation of that hand-out.
    It starts from the largest populations (each shape in as few as `most` allows) and splits, one
    population more at a time, the shape whose split ends the study soonest, while that helps; the rule
    before costs (one size for all shapes, no more than spreads the pairs over the slots) is a candidate
    too. A costly shape (a D 16x wider) is then split over the slots rather than trained on one core while
    the other waits, and a split must save more than the extra population's own cost."""
    counts = {key: count for key, (count, _, _) in work.items()}

    def sizes_of(parts: Mapping[tuple, int]) -> dict[tuple, int]:
        return {key: max(1, math.ceil(counts[key] / parts[key])) for key in counts}

    def ends(sizes: Mapping[tuple, int]) -> float:
        jobs = sorted(
            (
                _population_cost(count - i, pair, overhead, sizes[key])
                for key, (count, pair, overhead) in work.items()
                for i in range(0, count, sizes[key])
            ),
            reverse=True,
        )
        free = [0.0] * max(1, slots)
        for job in jobs:  # each on the slot that frees first
            free[free.index(min(free))] += job
        return max(free)

    parts = {key: max(1, math.ceil(count / max(1, most))) for key, count in counts.items()}
    best = ends(sizes_of(parts))
    while True:
        options = [{**parts, key: parts[key] + 1} for key in counts if parts[key] < counts[key]]
        timed = [(ends(sizes_of(option)), i) for i, option in enumerate(options)]
        if not timed or min(timed)[0] >= best * (1 - 1e-9):
            break
        best, chosen = min(timed)
        parts = options[chosen]
    plan = sizes_of(parts)
    uniform = max(1, min(most, math.ceil(sum(counts.values()) / max(1, slots))))
    flat = {key: min(uniform, count) for key, count in counts.items()}
    return flat if ends(flat) < best * (1 - 1e-9) else plan


def _population_label(trials: Sequence[optuna.Trial]) -> str:
    """'base seed 2' for one pair; '8 pairs: base seeds 0..3, d_batchnorm=joint seeds 0..3' for a population."""
    if len(trials) == 1:
        return f"{trials[0].user_attrs[TrialAttr.CONFIG_ID]} seed {trials[0].user_attrs[TrialAttr.SEED]}"
    seeds: dict[str, list[int]] = {}
    for t in trials:
        seeds.setdefault(t.user_attrs[TrialAttr.CONFIG_ID], []).append(int(t.user_attrs[TrialAttr.SEED]))
    parts = [f"{config_id} seeds {seed_range(s)}" for config_id, s in seeds.items()]
    return f"{len(trials)} pairs: " + ", ".join(parts)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics: non-finite floats become None (the storage keeps JSON)."""
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}


class _FrontSearcher(Searcher):
    """Ray Tune's view of the OptunaFront: suggest the next population, pass every result on."""

    def __init__(self, front: OptunaFront) -> None:
        super().__init__(metric=None, mode=None)
        self.front = front

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        nxt = self.front.next_population()
        if nxt is None:
            return Searcher.FINISHED
        config, trials = nxt
        self.front.live[trial_id] = trials
        if config["resume_from"]:
            self.front.resumed[trial_id] = config["resume_from"]
        steps = config["members"][0]["train_config"]["steps"]
        self.front.tracker.trials[trial_id] = TrialProgress(_population_label(trials), steps, members=len(trials))
        if self.front.asha is not None:
            for k in range(len(trials)):
                self.front.asha.on_trial_add(None, _Member(f"{trial_id}/{k}"))
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.front.on_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        # a trial's last result can arrive here rather than in on_trial_result
        if result and trial_id in self.front.live:
            self.front.on_result(trial_id, result)
        self.front.on_complete(trial_id, error)


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
    verdict: analysis.VerdictResult | None = None  # the claim's verdict after the run (with its looks)
    crashed: int = 0  # of the failed: trials that ended without a measured outcome (not diverged)
    failures: Counter = field(default_factory=Counter)  # (outcome, reason) -> trials of this run that failed
    crashed_before: Counter = field(default_factory=Counter)  # reason -> pairs that crashed in earlier runs, not rerun
    retried: int = 0  # pairs that crashed in earlier runs, run again (--retry-crashed)
    notes: list[str] = field(default_factory=list)  # what the run wants its user to know


class ProgressCallback(Callback):
    """A Tune callback that calls fn after each result and trial end; pickles to a no-op."""

    def __init__(self, fn: Callable[[], None] | None, tracker: Tracker | None = None) -> None:
        self.fn = fn
        self.tracker = tracker

    def __getstate__(self) -> dict:  # Tune pickles its run config; the live display stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.fn, self.tracker = None, None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.tracker is not None:
            self.tracker.started.add(trial.trial_id)
        if self.fn:
            self.fn()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.fn:
            self.fn()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.fn:
            self.fn()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Tune's event loop turns several times a second: a steady clock for a display that prints at intervals
        if self.fn:
            self.fn()


class CheckpointCallback(Callback):
    """Tells the OptunaFront where Ray Tune stored each checkpoint; pickles to a no-op."""

    def __init__(self, front: OptunaFront | None) -> None:
        self.front = front

    def __getstate__(self) -> dict:  # Tune pickles its run config; the front stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.front = None

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        if self.front is not None:
            self.front.on_checkpoint(trial.trial_id, checkpoint.path)


def _slots(study: Study) -> int:
    """How many trials of this study can run at once on the cluster Ray is connected to."""
    resources = ray.cluster_resources()
    fit = int(resources.get("CPU", 1) // study.resources.cpus)
    if study.resources.gpus:
        if resources.get("GPU", 0) < study.resources.gpus:  # Ray would wait for it forever
            raise SweepError(
                f"study {study.name!r} asks for {study.resources.gpus:g} GPU per trial (resources.gpus) and the Ray "
                f"cluster has {resources.get('GPU', 0):g}: run it on a machine with a GPU, or set resources.gpus: 0 "
                "in a copy of the study file"
            )
        fit = min(fit, int(resources.get("GPU", 0) // study.resources.gpus))
    if study.resources.max_concurrent:
        fit = min(fit, study.resources.max_concurrent)
    return max(1, fit)


def _trial_name(trial: Any) -> str:
    """trial_12 for one pair (its Optuna number), population_12-27 for a population."""
    numbers = [m["optuna_number"] for m in trial.config.get("members", [])]
    if not numbers:
        return f"trial_{trial.trial_id}"
    return f"trial_{numbers[0]}" if len(numbers) == 1 else f"population_{numbers[0]}-{numbers[-1]}"


def _quiet_ray() -> None:
    """Tune's per-result files are off (the Optuna storage is the record, see benchmarks/), and its
    warnings about files it was told not to write, and similar, are noise here."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # eval metrics arrive later
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray.tune", "ray.train", "ray.air", "ray._private", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


LOOPBACK = "127.0.0.1"  # the address a local Ray instance listens on: nothing outside this machine reaches it


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join `address` (a Ray cluster, or "auto"), or start a local Ray on this machine's cores that listens on
    the loopback interface only. Ray's token authentication stays as Ray sets it up; the banner it prints
    about it at every start ("Token authentication is enabled...", which users read as a to-do) does not."""
    if ray.is_initialized():
        return
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
        return
    # ray.init turns a loopback node address into this machine's network address (so that other nodes
    # could join), unless Ray runs single-node, as it does on macOS: then its GCS, raylet and workers bind
    # the loopback interface. That switch is below Ray's public API, hence set only around this call.
    clustered = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)  # never a found cluster
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clustered


def _run_trials(
    study: Study,
    optuna_study: optuna.Study,
    store: Store,
    the_plan: Plan,
    tracker: Tracker,
    *,
    address: str | None,
    progress: Callable[[Tracker], None] | None,
    storage_path: str | None,
    lease: DriverLease | None = None,
    keep_checkpoints: bool = False,
) -> None:
    """Run the plan's pending trials on Ray Tune (one Tuner), recording each in Optuna; trials still open
    when Tune stops (Ctrl-C) are marked interrupted."""
    _quiet_ray()
    ensure_ray(address)
    slots = _slots(study)
    pairs = len(the_plan.pending) + the_plan.search_remaining * len(study.seed_list)
    # members stopped early are posted on a board their workers read at each report
    board, board_name = None, None
    if study.early_stopping is not None:  # a fresh name each time: a killed board's name may not be free yet
        board_name = f"sweep-stop-board-{uuid.uuid4().hex}"
        board = StopBoard.options(name=board_name).remote()
    front = OptunaFront(
        study,
        optuna_study,
        store,
        pending=the_plan.pending,
        search_remaining=the_plan.search_remaining,
        tracker=tracker,
        lease=lease,
        population_size=population_size(study, pairs, slots),
        slots=slots,
        stop_board=board,
        board_name=board_name,
        keep_checkpoints=keep_checkpoints,
    )
    count = front.total
    tracker.total += count
    # Tune lets a custom searcher keep one trial pending at a time, so trial actors would start one
    # after another (~3 s each here); let every slot start its actor at once.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(slots)
    resources: dict[str, float] = {"cpu": study.resources.cpus}
    if study.resources.gpus:
        resources["gpu"] = study.resources.gpus
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=_FrontSearcher(front),
            num_samples=count,  # at most: populations hand out several pairs per Tune trial
            max_concurrent_trials=study.resources.max_concurrent,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=storage_path or str(store.ray_dir),
            verbose=0,
            callbacks=[
                ProgressCallback((lambda: progress(tracker)) if progress else None, tracker),
                CheckpointCallback(front),
            ],
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False, num_to_keep=1),
        ),
    )
    try:
        tuner.fit()
    finally:
        if board is not None:
            ray.kill(board)
    # Tune returns early on Ctrl-C (SIGINT): trials still open did not finish in this run
    front.close_unfinished()
    if progress:
        progress(tracker)


def run(
    study: Study,
    *,
    store: Store,
    address: str | None = None,
    progress: Callable[[Tracker], None] | None = None,
    source: str = "",
    storage_path: str | None = None,
    replication_of: str | None = None,
    replicate: int | None = None,
    retry_crashed: bool = False,
    keep_checkpoints: bool = False,
) -> RunSummary:
    """Run every pending trial of `study` on Ray Tune, recorded in `store`; resumes what is stored. With
    `retry_crashed`, the pairs whose trial crashed run again. A trial interrupted after a checkpoint
    resumes from it; a finished trial's checkpoints are deleted unless `keep_checkpoints`.

    With planned looks, the pairs of one look run at a time, and the next look's seeds only while the
    verdict at the looks taken so far is INCONCLUSIVE.

    The run holds the study's driver lease in the storage: while it runs, another driver of the same study
    is refused (StudyBusyError, naming this one); a driver that died is taken over.
    """
    try:  # a Study built in code skips validation; its name becomes a folder under the root
        spec_module.check_study_name(study.name)
    except ValueError as e:
        raise StudyError(f"study name {e}") from None
    with store.lease(study.name) as lease, store.errors():
        summary = _run(
            study,
            store=store,
            address=address,
            progress=progress,
            source=source,
            storage_path=storage_path,
            replication_of=replication_of,
            replicate=replicate,
            retry_crashed=retry_crashed,
            lease=lease,
            keep_checkpoints=keep_checkpoints,
        )
    if lease.lost:
        raise StudyBusyError(
            f"study '{study.name}': this driver stopped beating and another driver took the study over; what this "
            "driver finished is stored"
        )
    return summary


def _run(
    study: Study,
    *,
    store: Store,
    address: str | None,
    progress: Callable[[Tracker], None] | None,
    source: str,
    storage_path: str | None,
    replication_of: str | None,
    replicate: int | None,
    retry_crashed: bool,
    lease: DriverLease,
    keep_checkpoints: bool = False,
) -> RunSummary:
    started = time.perf_counter()
    optuna_study = open_study(study, store, source=source, replication_of=replication_of, replicate=replicate)
    looks: list[int | None] = list(study.looks) if study.sequential else [None]
    tracker = Tracker(total=0)
    retry = crashed_pairs(optuna_study) if retry_crashed else set()  # crashed in earlier runs, not in this one
    first = plan(study, optuna_study, seeds=looks[0], retry=retry)
    skipped, interrupted = first.finished, first.interrupted
    result = None
    for seeds in looks:
        the_plan = first if seeds == looks[0] else plan(study, optuna_study, seeds=seeds, retry=retry)
        if the_plan.pending or the_plan.search_remaining:
            _run_trials(
                study,
                optuna_study,
                store,
                the_plan,
                tracker,
                address=address,
                progress=progress,
                storage_path=storage_path,
                lease=lease,
                keep_checkpoints=keep_checkpoints,
            )
        if tracker.done + tracker.failed + tracker.pruned < tracker.total:
            break  # stopped before the end of this look: no look is taken on a part of its pairs
        if study.sequential:
            result = analysis.verdict(analysis.trials_frame(optuna_study), study)
            if result is not None and result.deciding is not None and result.deciding.status in DECISIVE:
                break
    if result is None and study.verdict is not None:
        result = analysis.verdict(analysis.trials_frame(optuna_study), study)
    if tracker.total:
        review.attach_study_review(study, optuna_study)  # the study's note in optuna-dashboard: outcomes, best, verdict
    wall = time.perf_counter() - started
    first_step = tracker.first_step_at - started if tracker.first_step_at else None
    return RunSummary(
        study.name,
        tracker.total,
        tracker.done,
        tracker.pruned,
        tracker.failed,
        skipped,
        interrupted,
        tracker.total - tracker.done - tracker.failed - tracker.pruned,  # open when stopped, or never started
        wall,
        tracker.trial_seconds,
        first_step,
        tracker.best,
        result,
        crashed=tracker.crashed,
        failures=tracker.failures,
        crashed_before=first.crashed,
        retried=first.retried,
        notes=sorted(tracker.notes),
    )


def next_replication(study: Study, store: Store) -> tuple[Study, int]:
    """The replication of `study` to run: the latest one while it is unfinished (to resume it), else a new one
    (NAME-rep1, NAME-rep2, ...), each on seeds no earlier run used. Refused when the original is stored
    from another definition: then it would not be a replication."""
    names = set(store.study_names())
    if study.name in names:
        stored = store.load_study(study.name).user_attrs.get(StudyAttr.FINGERPRINT)
        if stored is not None and stored != study.fingerprint():
            raise DefinitionConflictError(
                f"study '{study.name}' is stored from a different definition (base, factors, space, budget or "
                "objectives changed); a replication must repeat the same experiment"
            )
    index = 1
    while study.replication(index).name in names:
        index += 1
    latest = index - 1
    if latest:
        replica = study.replication(latest)
        stored_replica = store.load_study(replica.name)
        if not analysis.is_complete(analysis.trials_frame(stored_replica), replica):
            return replica, latest
    return study.replication(index), index


__all__ = [
    "Plan",
    "RunSummary",
    "Tracker",
    "crashed_pairs",
    "TrialProgress",
    "ensure_ray",
    "next_replication",
    "open_study",
    "plan",
    "run",
]
