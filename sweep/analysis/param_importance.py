"""Hyperparameter importance over configurations, with a bootstrap interval.

Each configuration counts once, its value the mean over its completed seeds: one Optuna trial per
(configuration, seed) would count every seed as another configuration and take seed noise for an
effect. Importances are fANOVA's (Optuna's `FanovaImportanceEvaluator`, 16 trees, seed fixed), on
one objective at a time, each in its own direction. The interval is a percentile bootstrap: the
configurations resampled with replacement, the importances estimated again on each resample by the same
evaluator. fANOVA rather than Optuna 5's default PED-ANOVA: PED-ANOVA reads only the top 10% of the
configurations (3 of 24), and on 24 simulated configurations where one parameter drives the objective
its interval for that parameter was [0.09, 0.79] against fANOVA's [0.78, 0.95].
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sweep.lazy import LazyImport
from sweep.spec import Study
from sweep.stats import finite
from sweep.store import TrialAttr

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
else:  # loaded by the first study read
    optuna = LazyImport("optuna")

# fANOVA with Optuna's default 64 trees costs about 0.6 s a fit at 48 configurations x 12 parameters on this
# project's 2-core machine: 200 resamples of two objectives would keep a report waiting 4 minutes. 16 trees
# fit about 4 times faster with intervals as tight on simulated studies, and 100 resamples keep a search
# report of two objectives (48 configurations x 12 parameters) near half a minute on this machine, busy.
IMPORTANCE_TREES = 16
IMPORTANCE_RESAMPLES = 100
IMPORTANCE_SEED = 0  # seeds fANOVA's forest and the resampling: the same study gives the same intervals
IMPORTANCE_LEVEL = 0.95  # the percentile interval's coverage


class ParamImportance(NamedTuple):
    """One parameter's importance on one objective: fANOVA's share of the variance it explains."""

    estimate: float  # on all configurations
    low: float  # the interval's bounds: percentiles over the resamples (NaN when no resample gave one)
    high: float


def importance_evaluator() -> optuna.importance.FanovaImportanceEvaluator:
    """The importance evaluator of the table, its intervals and the plot: fANOVA, its seed fixed."""
    return optuna.importance.FanovaImportanceEvaluator(n_trees=IMPORTANCE_TREES, seed=IMPORTANCE_SEED)


def configuration_trials(optuna_study: optuna.Study, study: Study) -> dict[str, list[FrozenTrial]]:
    """Objective -> one trial per configuration that has a completed finite run on it, its value the mean
    over those runs (the configuration's other seeds, not finished, leave it out of the mean)."""
    runs: dict[str, list[FrozenTrial]] = {}
    for t in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        runs.setdefault(str(t.user_attrs.get(TrialAttr.CONFIG_ID, t.number)), []).append(t)
    result: dict[str, list[FrozenTrial]] = {}
    for i, objective in enumerate(study.objectives):
        result[objective.metric] = []
        for seeds in runs.values():
            values = finite(t.values[i] for t in seeds if t.values is not None)
            if len(values):
                first = seeds[0]
                result[objective.metric].append(
                    optuna.trial.create_trial(
                        params=first.params, distributions=first.distributions, values=[float(values.mean())]
                    )
                )
    return result


def configuration_study(trials: list[FrozenTrial], direction: str) -> optuna.Study:
    """An in-memory single-objective study of these configuration trials (repeats kept: a resample's)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" each resample
    try:
        made = optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    made.add_trials(trials)
    return made


def _scores(trials: list[FrozenTrial], direction: str, params: list[str]) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = optuna.importance.get_param_importances(
            configuration_study(trials, direction), evaluator=importance_evaluator(), params=params
        )
    return {k: float(v) for k, v in scores.items()}


def _varying(trials: list[FrozenTrial]) -> list[str]:
    names = {k for t in trials for k in t.params}
    return sorted(k for k in names if len({repr(t.params.get(k)) for t in trials}) > 1)


def importance(
    optuna_study: optuna.Study,
    study: Study,
    *,
    resamples: int | None = None,
    seed: int = IMPORTANCE_SEED,
) -> dict[str, dict[str, ParamImportance] | str]:
    """Objective -> {param: its importance with a percentile bootstrap interval}, largest estimate first,
    over configurations (each its mean over seeds); or a sentence saying why it was skipped. `resamples`
    defaults to IMPORTANCE_RESAMPLES, read when called."""
    resamples = IMPORTANCE_RESAMPLES if resamples is None else resamples
    if study.kind == "ablation":
        why = "an ablation changes one factor at a time from the base; read the effect table instead"
        return {o.metric: why for o in study.objectives}
    configurations = configuration_trials(optuna_study, study)
    result: dict[str, dict[str, ParamImportance] | str] = {}
    for objective in study.objectives:
        trials = configurations[objective.metric]
        varying = _varying(trials)
        if len(trials) < 2:
            result[objective.metric] = f"needs at least 2 completed configurations, but the study has {len(trials)}"
            continue
        if len(varying) < 2:
            only = f" ({varying[0]})" if varying else ""
            result[objective.metric] = f"only {len(varying)} parameter{only} varies among completed configurations"
            continue
        try:
            point = _scores(trials, objective.direction, varying)
        except Exception as exc:  # a failed estimate is reported, not fatal
            result[objective.metric] = f"Optuna could not estimate it: {type(exc).__name__}: {exc}".splitlines()[0]
            continue
        bounds = _intervals(trials, objective.direction, varying, resamples=resamples, seed=seed)
        result[objective.metric] = {k: ParamImportance(v, *bounds[k]) for k, v in point.items()}
    return result


def _intervals(
    trials: list[FrozenTrial], direction: str, params: list[str], *, resamples: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Param -> the percentile interval of its importance over `resamples` bootstrap resamples."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in params}
    for _ in range(resamples):
        picked = [trials[i] for i in rng.integers(0, len(trials), len(trials))]
        if len({t.values[0] for t in picked}) < 2:
            continue  # every value the same: nothing to explain
        try:
            scores = _scores(picked, direction, params)
        except Exception:  # a resample fANOVA cannot fit (a degenerate draw) gives no estimate
            continue
        for k in params:
            draws[k].append(scores.get(k, 0.0))
    tail = 100 * (1 - IMPORTANCE_LEVEL) / 2
    return {
        k: tuple(float(b) for b in np.percentile(finite(v), [tail, 100 - tail])) if len(finite(v)) else (np.nan, np.nan)
        for k, v in draws.items()
    }


__all__ = [
    "IMPORTANCE_LEVEL",
    "IMPORTANCE_RESAMPLES",
    "IMPORTANCE_TREES",
    "IMPORTANCE_SEED",
    "ParamImportance",
    "configuration_study",
    "configuration_trials",
    "importance",
    "importance_evaluator",
]
