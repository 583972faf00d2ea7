"""What a run still has to do, decided once from the storage: the pending (configuration, seed) pairs,
each carrying its validated TrainConfig, population key, cost and stacking verdict; the populations an
earlier driver left with a checkpoint; the population size the study asks for. Nobody downstream
rebuilds a pair's config or asks the core about it again.

Resuming is by the storage: a pair that already finished is never run again; a trial that was RUNNING
when a previous driver died is marked FAIL (outcome "interrupted") and its pair is run again; a pair whose
trial crashed runs again on request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial

from sweep import core
from sweep import spec as spec_module
from sweep.runner.optuna_study import from_optuna_value
from sweep.spec import Study, TrialSpec
from sweep.store import TrialAttr, close_stale_trials
from sweep.vocab import FINISHED, Outcome


@dataclass(frozen=True)
class PendingPair:
    """One (configuration, seed) pair still to run, with everything the run needs to know of it."""

    spec: TrialSpec  # which pair: its configuration id, params, seed and place in the study
    config: core.TrainConfig  # base + budget + params + seed, validated
    key: tuple  # its population key: pairs of equal keys can train as one stacked model
    cost: float  # what training it costs (multiply-accumulates, infogan_core.cost)
    overhead: float  # what a population of its shape costs besides its members
    inexact: str | None  # why stacked members of its shape would not be their single runs, or None

    @property
    def pair(self) -> tuple[str, int]:
        """(configuration id, seed): the pair's identity in the storage."""
        return self.spec.config_id, self.spec.seed


def pending_pair(study: Study, spec: TrialSpec) -> PendingPair:
    """The pair of `spec`, its config built and validated, its key, cost and stacking verdict computed."""
    cfg = study.train_config(spec.params, spec.seed)
    return PendingPair(
        spec=spec,
        config=cfg,
        key=core.population_key(cfg),
        cost=core.pair_cost(cfg),
        overhead=core.population_overhead(cfg),
        inexact=core.inexact_population(cfg),
    )


class Resumable(NamedTuple):
    """A population interrupted with a checkpoint (a killed driver, Ctrl-C): it resumes whole."""

    path: str  # the checkpoint's folder
    step: int  # the step it holds
    pairs: list[tuple[str, int]]  # its members' (configuration id, seed), in member order


@dataclass
class Plan:
    """What a run will do: pending pairs and what the storage already holds."""

    pending: list[PendingPair]
    finished: int  # pairs already finished in the storage
    interrupted: int  # trials found open from a dead driver, marked FAIL and rerun
    search_remaining: int = 0  # search: configurations still to sample
    crashed: Counter = field(default_factory=Counter)  # reason -> pairs whose stored trial crashed, left as they are
    retried: int = 0  # pairs whose stored trial crashed, run again
    population: int = 1  # members per population the study asks for (resources.population, auto resolved)
    resumable: list[Resumable] = field(default_factory=list)  # interrupted populations, newest first


def pair_key(trial: FrozenTrial) -> tuple[str, int] | None:
    """A stored trial's (configuration id, seed), or None for a trial of no pair."""
    if TrialAttr.CONFIG_ID not in trial.user_attrs:
        return None
    return trial.user_attrs[TrialAttr.CONFIG_ID], int(trial.user_attrs[TrialAttr.SEED])


def _latest_finished(trials: list[FrozenTrial]) -> dict[tuple[str, int], FrozenTrial]:
    """Each finished (configuration, seed) pair's latest trial."""
    latest = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get(TrialAttr.OUTCOME) in FINISHED and (key := pair_key(t)) is not None:
            latest[key] = t
    return latest


def crashed_pairs(optuna_study: optuna.Study) -> set[tuple[str, int]]:
    """The (configuration, seed) pairs whose latest trial crashed."""
    latest = _latest_finished(optuna_study.get_trials(deepcopy=False))
    return {k for k, t in latest.items() if t.user_attrs[TrialAttr.OUTCOME] == Outcome.CRASHED}


def population(study: Study) -> int:
    """Members per population the study asks for: `resources.population`, auto sized by device."""
    size = study.resources.population
    gpus = study.resources.gpus  # resolved by the driver on its cluster; "auto" not yet resolved sizes for a CPU
    return core.auto_population(on_gpu=gpus != "auto" and gpus > 0) if size == "auto" else size


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
    the_plan = Plan(
        [],
        len(done),
        interrupted,
        crashed=Counter(latest[k].user_attrs.get(TrialAttr.REASON) or "no reason recorded" for k in crashed - retry),
        retried=len(crashed & retry),
        population=population(study),
        resumable=_resumable(trials),
    )
    if study.kind != "search":
        wanted = set(study.seed_list[:seeds] if seeds is not None else study.seed_list)
        specs = [s for s in spec_module.expand(study) if (s.config_id, s.seed) not in done and s.seed in wanted]
    else:
        specs, the_plan.search_remaining = _search_pending(study, trials, done)
    the_plan.pending = [pending_pair(study, s) for s in specs]
    return the_plan


def _search_pending(study: Study, trials: list[FrozenTrial], done: Set[tuple[str, int]]) -> tuple[list[TrialSpec], int]:
    """A search's pairs to run: the seeds of configurations already sampled that did not finish, and how
    many configurations are still to sample."""
    configs: dict[str, dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if TrialAttr.CONFIG_ID in t.user_attrs and t.user_attrs[TrialAttr.CONFIG_ID] not in configs:
            configs[t.user_attrs[TrialAttr.CONFIG_ID]] = {
                k: from_optuna_value(study, k, v) for k, v in t.params.items()
            }
    pending: list[TrialSpec] = []
    for config_id, params in list(configs.items())[: study.trials]:
        for seed in study.seed_list:
            if (config_id, seed) not in done:
                pending.append(TrialSpec(len(pending), config_id, params, seed, None, None))
    return pending, max(0, study.trials - len(configs))


def _resumable(trials: list[FrozenTrial]) -> list[Resumable]:
    """Populations interrupted with a checkpoint, newest first. Each resumes whole, when every one of its
    pairs is pending again."""
    latest: dict[tuple[str, int], FrozenTrial] = {}
    for t in trials:
        pair = pair_key(t)
        if pair is not None and (pair not in latest or t.number > latest[pair].number):
            latest[pair] = t
    found: dict[str, Resumable] = {}
    for t in latest.values():
        attrs = t.user_attrs
        if attrs.get(TrialAttr.OUTCOME) == Outcome.INTERRUPTED and attrs.get(TrialAttr.CHECKPOINT):
            pairs = [(str(c), int(seed)) for c, seed in attrs.get(TrialAttr.PAIRS) or [pair_key(t)]]
            path = attrs[TrialAttr.CHECKPOINT]
            found[path] = Resumable(path, int(attrs.get(TrialAttr.CHECKPOINT_STEP) or 0), pairs)
    return sorted(found.values(), key=lambda r: -r.step)


__all__ = ["PendingPair", "Plan", "Resumable", "crashed_pairs", "pair_key", "pending_pair", "plan", "population"]
