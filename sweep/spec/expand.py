"""A study's trials: the configurations of an ablation or grid study in file order, each repeated per
seed, as a deterministic, indexable list of `TrialSpec`s, so a crashed study resumes by index; with
the config ids that name them and each factor's levels."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from sweep.core import ConfigError, TrainConfig
from sweep.errors import StudyError
from sweep.spec.messages import _At
from sweep.spec.schema import CategoricalDistribution

if TYPE_CHECKING:
    from sweep.spec.study import Study


def _build(study: Study, params: dict[str, Any], seed: int) -> TrainConfig:
    b = study.budget
    budget = {"steps": b.steps, "report_every": b.report_every, "eval_every": b.eval_every or b.steps}
    return TrainConfig.from_dict({**study.base, **budget, **params, "seed": seed})


def _config_or_raise(
    study: Study, params: dict[str, Any], where: dict[str, tuple], fallback: tuple, context: str = ""
) -> TrainConfig:
    """Build a config; a ConfigError becomes an _At at the key where the offending value was written."""
    try:
        return _build(study, params, seed=0)
    except ConfigError as e:
        suffix = f" (in configuration {context})" if context and study.kind != "ablation" else ""
        m = re.match(r"`([\w/]+)` (.*)", str(e))
        if m and m.group(1) in where:
            raise _At(where[m.group(1)], m.group(2) + suffix) from None
        raise _At(fallback, str(e) + suffix) from None


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One (configuration, seed) pair of an ablation or grid study."""

    index: int  # position in expand(study); stable for the same file
    config_id: str  # "base", "d_batchnorm=joint" or "lr_g=0.001,clip=norm"
    params: dict[str, Any]  # the value of every factor in this trial (JSON-friendly)
    seed: int
    factor: str | None  # ablation: the factor changed from base; None for base and grid trials
    level: Any  # ablation: that factor's value here; None otherwise


def format_value(value: Any) -> str:
    """A value as written in config ids: 0.001 -> 0.001, [10] -> [10], True -> true, None -> null."""
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _config_id(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={format_value(v)}" for k, v in params.items())


def _base_values(study: Study) -> dict[str, Any]:
    """Each factor's value in the base configuration (the TrainConfig default when base does not set it)."""
    resolved = _build(study, {}, seed=0).to_dict()
    return {name: study.base.get(name, resolved[name]) for name in study.factors}


def factor_levels(study: Study) -> dict[str, list[Any]]:
    """Each factor's levels in order (ablation: base value first); search: categorical choices or []."""
    if study.kind == "search":
        return {k: list(d.choices) if isinstance(d, CategoricalDistribution) else [] for k, d in study.space.items()}
    if study.kind == "grid":
        return {name: list(values) for name, values in study.factors.items()}
    base = _base_values(study)
    return {name: [base[name], *(v for v in values if v != base[name])] for name, values in study.factors.items()}


def _configurations(study: Study) -> Iterable[tuple[str, dict[str, Any], str | None, Any]]:
    """(config_id, params, factor, level) of each configuration, in order; validates the factor lists at
    once, and yields a grid's configurations one at a time (a large grid is never listed whole)."""
    for name, values in study.factors.items():
        if not values:
            raise _At(("factors", name), "must list at least one level")
        for i, v in enumerate(values):
            if v in values[:i]:
                raise _At(("factors", name, i), f"repeats the value {format_value(v)}")
    if study.kind == "grid":
        names = list(study.factors)
        return (
            (_config_id(params), params, None, None)
            for params in (dict(zip(names, combo, strict=True)) for combo in itertools.product(*study.factors.values()))
        )
    base = _base_values(study)
    configs: list[tuple[str, dict[str, Any], str | None, Any]] = [("base", dict(base), None, None)]
    for name, levels in factor_levels(study).items():
        if len(levels) < 2:
            raise _At(("factors", name), f"lists no value other than the base's ({format_value(base[name])})")
        configs += [(_config_id({name: v}), {**base, name: v}, name, v) for v in levels[1:]]
    return configs


def iter_trials(study: Study) -> Iterator[TrialSpec]:
    """The trials of `expand`, one at a time (to show the first few of a large study)."""
    if study.kind == "search":
        raise StudyError(f"study {study.name}: search studies have no fixed trials; a sampler proposes them")
    seeds = study.seed_list
    pairs = ((config, seed) for config in _configurations(study) for seed in seeds)  # lazy, unlike product()
    return (
        TrialSpec(i, cid, copy.deepcopy(params), seed, factor, level)
        for i, ((cid, params, factor, level), seed) in enumerate(pairs)
    )


def expand(study: Study) -> list[TrialSpec]:
    """Every trial of an ablation or grid study: configurations in file order, each repeated per seed."""
    return list(iter_trials(study))
