"""The Optuna study of a run: opening it (created, or loaded to resume, with the checks that keep a stored
study's meaning), the value encoding between study files and Optuna params, and which replication runs."""

from __future__ import annotations

import time
import warnings
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweep import analysis, core, provenance
from sweep import spec as spec_module
from sweep.errors import DefinitionConflictError, SeedPlanConflictError
from sweep.results import load_results
from sweep.spec import Study
from sweep.store import Store, StudyAttr

# --- values: what a study file writes, as Optuna params hold it ---------------------------------------


def distribution(study: Study, name: str) -> Any:
    """The Optuna distribution of a factor (ablation, grid: its levels) or a search space's dimension."""
    levels = spec_module.factor_levels(study).get(name, [])
    if study.kind != "search":
        return CategoricalDistribution([optuna_value(v) for v in levels])
    dist = study.space[name]
    if dist.type == "float":
        return FloatDistribution(dist.low, dist.high, log=dist.log)
    if dist.type == "int":
        return IntDistribution(dist.low, dist.high, log=dist.log, step=dist.step)
    return CategoricalDistribution([optuna_value(v) for v in dist.choices])


def optuna_value(value: Any) -> Any:
    """Optuna params hold None, bool, int, float or str: lists become their text form."""
    return value if value is None or isinstance(value, bool | int | float | str) else spec_module.format_value(value)


def from_optuna_value(study: Study, name: str, value: Any) -> Any:
    """Invert optuna_value with the factor's own levels (so "[10]" is [10] again)."""
    choices = spec_module.factor_levels(study).get(name) or []
    for level in choices:
        if optuna_value(level) == value:
            return level
    return value


# --- opening the study ------------------------------------------------------------------------


def _sampler(study: Study) -> optuna.samplers.BaseSampler:
    """The study's sampler; ablation and grid trials have every parameter fixed, so no sampler works for them."""
    seed = study.sampler_seed
    if study.kind != "search":
        return optuna.samplers.RandomSampler(seed=seed)
    if study.sampler == "qmc":  # scrambled Sobol, seeded; "experimental since 3.0", still so in 5.1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
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
    _check_data_files(study, optuna_study)
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
    _check_numerics(study, optuna_study, store)
    _check_seed_plan(study, optuna_study)
    if replication_of is not None:
        optuna_study.set_user_attr(StudyAttr.REPLICATION_OF, replication_of)
        optuna_study.set_user_attr(StudyAttr.REPLICATE, replicate)
    # the latest definition (claim, verdict, seeds) is what reports read
    optuna_study.set_user_attr(StudyAttr.SPEC, study.model_dump(mode="json"))
    optuna_study.set_user_attr(StudyAttr.SOURCE, source)
    optuna_study.set_user_attr(StudyAttr.PROVENANCE, provenance.collect(provenance.cpu_device()))
    return optuna_study


def _check_data_files(study: Study, optuna_study: optuna.Study) -> None:
    """Refuse to resume a study whose dataset file changed since it was stored: its stored runs trained on
    other data, so one study would mix two experiments (said before the definition's fingerprint, which
    would only say that something changed)."""
    recorded = (optuna_study.user_attrs.get(StudyAttr.SPEC) or {}).get("data_files") or {}
    for path, facts in study.data_files.items():
        before = (recorded.get(path) or {}).get("sha256")
        if before is not None and before != facts.sha256:
            raise DefinitionConflictError(
                f"study '{study.name}': its dataset {path} changed since the study was stored (sha256 {before[:12]} "
                f"then, {facts.sha256[:12]} now); restore the file, or train on the new data as a new study"
            )


def _check_numerics(study: Study, optuna_study: optuna.Study, store: Store) -> None:
    """Refuse to add runs to a study whose stored runs another engine computed (infogan_core.NUMERICS): the
    same configuration and seed give other numbers there, so one study would mix two experiments."""
    stored = optuna_study.user_attrs.get(StudyAttr.NUMERICS, 1)
    finished = any(t.state.is_finished() for t in optuna_study.get_trials(deepcopy=False))
    if stored != core.NUMERICS and finished:
        raise DefinitionConflictError(
            f"study '{study.name}' in {store.url} holds runs computed by the engine's numerics {stored}, and this "
            f"code computes numerics {core.NUMERICS} (the same configuration and seed give other numbers there); "
            "adding runs would mix the two"
        )
    optuna_study.set_user_attr(StudyAttr.NUMERICS, core.NUMERICS)


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
    result = load_results(optuna_study, study=stored).verdict
    look = result.deciding if result is not None else None
    # a look with fewer pairs than the rule's min_seeds could not decide anything: nothing was spent there
    if look is not None and look.pairs >= stored.verdict.min_seeds:
        raise SeedPlanConflictError(
            f"study '{study.name}' already has a verdict ({look.status}) at {look.seeds} seeds; changing its seeds "
            "after a verdict was seen is optional stopping, which inflates false positives"
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
        if not analysis.is_complete(load_results(stored_replica, study=replica).frame, replica):
            return replica, latest
    return study.replication(index), index


__all__ = ["distribution", "from_optuna_value", "next_replication", "open_study", "optuna_value"]
