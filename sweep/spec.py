"""The study file: schema, validation with `file:line: key.path: problem` messages, expansion into trials.

A study is a YAML mapping validated once, at the boundary, into a `Study`. Ablation and grid studies
expand into a deterministic, indexable list of `TrialSpec`s (configuration-major, then seeds), so a
crashed study resumes by index; a search study describes a space that a sampler explores instead.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sweep.core import METRIC_NAMES, METRICS, ConfigError, TrainConfig, field_names, field_schema, measured_metrics
from sweep.errors import StudyError, TooManyTrialsError

BUDGET_FIELDS = ("steps", "report_every", "eval_every")  # TrainConfig fields that `budget:` sets
MAX_TRIALS = 10_000  # trials a study may have unless its run raises the limit
NAME_MAX = 100  # characters in a study name: it names folders, and NAME-rep<k> must fit too
ALIAS_NODES = 10_000  # nodes that YAML aliases may add to a study file: a study needs few, a "billion laughs" many


class _At(ValueError):
    """A problem at a key path below the model being validated (pydantic keeps it in the error's ctx)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class _TooMany(_At):
    """More trials than the limit the study is validated under: raised as a TooManyTrialsError."""


def _unknown(what: str, key: Any, valid: Any) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(valid)}"
    return f"unknown {what} {key!r}; {hint}"


def _check_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(_unknown("metric", name, METRIC_NAMES))
    return name


Metric = Annotated[str, AfterValidator(_check_metric)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # Checked here rather than by extra="forbid" alone, so the message can suggest a close match.
        for key in data if isinstance(data, dict) else ():
            if key not in cls.model_fields:
                raise _At((key,), _unknown("key", key, cls.model_fields))
        return data


class Objective(_Model):
    metric: Metric = Field(description="Metric to optimize: one of " + ", ".join(METRIC_NAMES) + ".")
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="minimize | maximize; default: the metric's natural direction."
    )

    @model_validator(mode="after")
    def _default_direction(self) -> Objective:
        self.direction = self.direction or METRICS[self.metric].direction  # type: ignore[assignment]
        return self


class EarlyStopping(_Model):
    metric: Metric | None = Field(None, description="Metric ASHA compares; default: the single objective.")
    mode: Literal["min", "max"] | None = Field(None, description="min | max; default: the metric's direction.")
    grace_period: int = Field(ge=1, description="Training steps every trial runs before it may be stopped.")
    reduction_factor: float = Field(3.0, gt=1, description="ASHA's halving rate: keep 1/reduction_factor.")

    @model_validator(mode="after")
    def _default_mode(self) -> EarlyStopping:
        if self.metric and not self.mode:
            self.mode = "min" if METRICS[self.metric].direction == "minimize" else "max"
        return self


MAX_POPULATION = 1024  # members of one population, at most


class Resources(_Model):
    cpus: float = Field(1.0, gt=0, description="CPUs per trial (Ray resources).")
    gpus: float = Field(0.0, ge=0, description="GPUs per trial; fractions such as 0.25 share a GPU.")
    max_concurrent: int | None = Field(None, ge=1, description="Trials at once; default: as many as fit.")
    population: Annotated[int, Field(ge=1, le=MAX_POPULATION)] | Literal["auto"] = Field(
        "auto",
        description="Pairs of one network shape trained as one stacked model, each still its own trial with the "
        "numbers it has alone (pairs for which that would not hold run alone); at most this many per Ray trial, "
        "spread over the slots. auto: 16 on a CPU, up to 256 on a GPU. 1: each pair alone.",
    )

    checkpoint_every: int | None = Field(
        None,
        ge=0,
        description="Steps between a trial's checkpoints (saved through Ray Tune; a trial interrupted by a "
        "killed driver resumes from its last one, with the numbers of an uninterrupted run). Default: every five "
        "minutes of training. 0: never.",
    )

    @field_validator("population", mode="before")
    @classmethod
    def _members(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():  # a number as the command line gives it
            value = int(value)
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_POPULATION):
            return value
        raise ValueError(f"must be a whole number of members from 1 to {MAX_POPULATION}, or auto, but got {value!r}")


class Budget(_Model):
    steps: int = Field(ge=1, description="Training steps per trial (TrainConfig.steps).")
    report_every: int = Field(50, ge=1, description="Steps between metric reports (<= steps).")
    eval_every: int | None = Field(None, ge=1, description="Steps between evaluations; default: only at the end.")

    @model_validator(mode="after")
    def _within_steps(self) -> Budget:
        if "report_every" not in self.model_fields_set:
            self.report_every = min(self.report_every, self.steps)
        for name in ("report_every", "eval_every"):
            if (getattr(self, name) or 0) > self.steps:
                raise _At((name,), f"must be <= steps ({self.steps}), but got {getattr(self, name)}")
        return self


class _Range(_Model):
    @model_validator(mode="after")
    def _nonempty(self) -> _Range:
        low, high = self.low, self.high  # type: ignore[attr-defined]
        if low >= high:
            raise _At(("high",), f"must be > low ({low}) for a non-empty range, but got {high}")
        if self.log and low <= 0:  # type: ignore[attr-defined]
            raise _At(("low",), f"must be > 0 with log: true, but got {low}")
        if self.log and getattr(self, "step", 1) > 1:  # type: ignore[attr-defined]
            raise _At(("step",), "must be 1 with log: true (Optuna cannot combine them)")
        return self


class FloatDistribution(_Range):
    type: Literal["float"] = Field(description="A real value in [low, high].")
    low: float = Field(description="Smallest value.")
    high: float = Field(description="Largest value.")
    log: bool = Field(False, description="Sample uniformly in log space.")


class IntDistribution(_Range):
    type: Literal["int"] = Field(description="An integer in [low, high].")
    low: int = Field(description="Smallest value.")
    high: int = Field(description="Largest value.")
    log: bool = Field(False, description="Sample uniformly in log space (step must be 1).")
    step: int = Field(1, ge=1, description="Spacing between values.")


class CategoricalDistribution(_Model):
    type: Literal["categorical"] = Field(description="One of a list of values.")
    choices: list[Any] = Field(min_length=1, description="The values.")


Distribution = Annotated[FloatDistribution | IntDistribution | CategoricalDistribution, Field(discriminator="type")]


def check_study_name(name: str) -> str:
    """`name` if it can name a study, else ValueError saying why. A name becomes a folder (Ray's files
    under the root), so it is a slug of at most NAME_MAX characters that starts with a letter, digit or
    '_': never '.', '..' or a path. Every way a name arrives goes through here: the file's `name:`, a
    new name for a run, a replication's NAME-rep<k>."""
    if len(name) > NAME_MAX:
        raise ValueError(f"must be at most {NAME_MAX} characters (it names a folder), but got {len(name)}")
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ValueError(
            f"must be a slug of letters, digits, '_', '.' and '-' that starts with a letter, digit or '_' (it names "
            f"a folder), but got {name!r}"
        )
    return name


DIVERGED = "diverged"  # a verdict's metric that is the divergence rate itself, not a reported metric
REPLICATION_SEED_OFFSET = 10_000  # replication k runs seed s as s + k * this: disjoint from the original's seeds


def _check_verdict_metric(name: str) -> str:
    if name != DIVERGED and name not in METRICS:
        raise ValueError(_unknown("metric", name, (*METRIC_NAMES, DIVERGED)))
    return name


class Verdict(_Model):
    metric: Annotated[str, AfterValidator(_check_verdict_metric)] = Field(
        description=f"Metric the claim is about, or '{DIVERGED}': the claim is about the divergence rate itself."
    )
    factor: str = Field(description="The factor whose two levels are compared.")
    baseline: Any = Field(None, description="The reference level of the factor (or give `target`).")
    target: float | None = Field(
        None, description="Compare the treatment's mean with this number instead (non-inferiority, margin min_effect)."
    )
    treatment: Any = Field(description="The level expected to differ from the baseline.")
    direction: Literal["greater", "less", "equivalent"] = Field(
        description="Treatment expected greater | less than baseline, or equivalent: the claim is that any "
        "difference is smaller than min_effect (SUPPORTED when the equivalence test passes)."
    )
    min_effect: float = Field(
        ge=0,
        description="Smallest effect of interest, in the metric's units (a rate for 'diverged'): NO EFFECT when "
        "the interval lies inside +-min_effect; with a target, the non-inferiority margin. 0: never NO EFFECT.",
    )
    where: dict[str, Any] = Field({}, description="Only trials with these factor levels (grid), e.g. {lr_g: 0.01}.")
    test: Literal["t", "rank"] = Field(
        "t",
        description="t: paired t-test, switching to the signed-rank test when a run failed or every difference is "
        "equal; rank: always the signed-rank test with the Hodges-Lehmann estimate.",
    )
    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="Error rate: SUPPORTED or CONTRADICTED by chance at most this often."
    )
    min_seeds: int = Field(3, ge=2, description="Complete pairs (seeds) needed before a verdict is given.")
    pruned: Literal["worst", "exclude"] | None = Field(
        None,
        description="How runs stopped early count: worst (the worst outcome of their arm) or exclude (their pairs "
        "are left out). Required with early_stopping.",
    )

    @model_validator(mode="before")
    @classmethod
    def _margin_declared(cls, data: Any) -> Any:
        if isinstance(data, dict) and "min_effect" not in data:
            raise _At(
                ("min_effect",),
                "is required: the smallest effect that matters, in the metric's units (see 'Choosing min_effect' "
                "in studies/README.md)",
            )
        return data


class SeedPlan(_Model):
    start: int = Field(ge=1, description="Seeds at the first look.")
    max: int = Field(ge=1, description="Seeds at the last look; looks double from start up to max.")
    first: int = Field(0, ge=0, description="The first seed: the plan runs seeds first, first + 1, ...")
    spending: Literal["obrien-fleming", "pocock"] = Field(
        "obrien-fleming", description="Alpha-spending function that shares the verdict's alpha among the looks."
    )

    @model_validator(mode="after")
    def _ordered(self) -> SeedPlan:
        if self.max < self.start:
            raise _At(("max",), f"must be >= start ({self.start}), but got {self.max}")
        return self


class Study(_Model):
    name: str = Field(
        description=f"Study name (names the Optuna study and a folder): a slug [A-Za-z0-9_.-] of at most {NAME_MAX} "
        "characters that starts with a letter, digit or '_'."
    )
    description: str = Field("", description="What the study is about.")
    claim: str = Field("", description="The claim under test, in words.")
    kind: Literal["ablation", "grid", "search"] = Field(
        description="ablation: one factor at a time from base; grid: every combination; search: a sampler."
    )
    base: dict[str, Any] = Field({}, description="TrainConfig values shared by every trial.")
    factors: dict[str, list[Any]] = Field({}, description="ablation/grid: TrainConfig field -> its levels.")
    space: dict[str, Distribution] = Field({}, description="search: TrainConfig field -> distribution.")
    sampler: Literal["tpe", "gp", "cmaes", "random", "nsga2"] = Field("tpe", description="Optuna sampler.")
    sampler_seed: int = Field(0, description="Seed of the sampler.")
    trials: int | None = Field(None, ge=1, description="search: number of sampled configurations.")
    seeds: int | list[int] | SeedPlan = Field(
        3,
        description="Seeds per configuration: a count n (0..n-1), a list, or planned looks {start, max}: seeds are "
        "added in looks (start, 2 start, ... max) until the verdict is decisive.",
    )
    objectives: list[Objective] = Field(
        min_length=1,
        description="Metrics to optimize: 'eval/modes', {'eval/modes': 'maximize'} or full form.",
    )
    early_stopping: EarlyStopping | None = Field(None, description="ASHA early stopping; default: none.")
    resources: Resources = Field(default_factory=Resources, description="Resources per trial.")
    budget: Budget = Field(description="Training steps and reporting cadence of every trial.")
    verdict: Verdict | None = Field(None, description="Decision rule for the claim (ablation/grid).")

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        return check_study_name(name)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, seeds: Any) -> Any:
        def is_int(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if is_int(seeds) and seeds >= 1 or isinstance(seeds, SeedPlan):
            return seeds
        if isinstance(seeds, dict):  # validated here, so that a problem is named at its own key
            try:
                return SeedPlan.model_validate(seeds)
            except ValidationError as e:
                inner = e.errors()[0]
                cause = (inner.get("ctx") or {}).get("error")
                raise _At(
                    tuple(inner["loc"]) + (cause.path if isinstance(cause, _At) else ()), _message(inner)
                ) from None
        if isinstance(seeds, list) and seeds and all(is_int(s) and s >= 0 for s in seeds):
            if len(set(seeds)) < len(seeds):
                raise ValueError(f"must not repeat a seed, but got {seeds}")
            return seeds
        raise ValueError(
            f"must be a count >= 1, a non-empty list of integers >= 0 or {{start, max}}, but got {seeds!r}"
        )

    @field_validator("objectives", mode="before")
    @classmethod
    def _short_forms(cls, objectives: Any) -> Any:
        def normalize(o: Any) -> Any:
            if isinstance(o, str):
                return {"metric": o}
            if isinstance(o, dict) and len(o) == 1 and not {"metric", "direction"} & set(o):
                return {"metric": next(iter(o)), "direction": next(iter(o.values()))}
            return o

        objectives = objectives if isinstance(objectives, list) else [objectives]
        return [normalize(o) for o in objectives]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Study:
        if self.kind == "search":
            if self.factors:
                raise _At(("factors",), "is for ablation and grid studies; a search study uses `space`")
            if not self.space:
                raise _At(("space",), "is required for a search study (TrainConfig field -> distribution)")
            if self.trials is None:
                raise _At(("trials",), "is required for a search study (how many configurations to sample)")
        else:
            if self.space or self.trials is not None:
                key = "space" if self.space else "trials"
                raise _At((key,), f"is for search studies; {self.kind} studies list their levels in `factors`")
            if not self.factors:
                raise _At(("factors",), f"is required for {self.kind} studies (TrainConfig field -> list of levels)")
        for section in ("base", "factors", "space"):
            for key in getattr(self, section):
                if key not in field_names():
                    raise _At((section, key), _unknown("TrainConfig field", key, field_names()))
                if key == "seed" or (section == "base" and key in BUDGET_FIELDS):
                    where = "seeds" if key == "seed" else f"budget.{key}"
                    raise _At((section, key), f"is set by `{where}`; set it there instead")
        self._check_configs((info.context or {}).get("max_trials", MAX_TRIALS))
        metrics = [o.metric for o in self.objectives]
        for i, m in enumerate(metrics):
            if m in metrics[:i]:
                raise _At(("objectives", i), f"repeats the metric {m!r}")
        if len(metrics) > 1 and self.sampler in ("cmaes", "gp"):
            raise _At(("sampler",), f"{self.sampler!r} optimizes a single objective; use 'nsga2' or 'tpe'")
        if self.early_stopping:
            self._check_early_stopping(self.early_stopping)
        if self.verdict and self.kind == "search":
            raise _At(
                ("verdict",), "is for ablation and grid studies: a sampler's choices are not a controlled comparison"
            )
        if self.verdict:
            self._check_verdict(self.verdict)
        if isinstance(self.seeds, SeedPlan) and self.verdict is None:
            raise _At(
                ("seeds",), "planned looks {start, max} need a verdict rule: it decides when to stop adding seeds"
            )
        return self

    def _check_verdict(self, verdict: Verdict) -> None:
        levels = factor_levels(self)
        if verdict.factor not in levels:
            raise _At(("verdict", "factor"), _unknown("factor", verdict.factor, levels))
        valid = ", ".join(map(format_value, levels[verdict.factor]))
        if (verdict.baseline is None) == (verdict.target is None):
            raise _At(("verdict",), "give exactly one of `baseline` (a level) or `target` (a number)")
        compared = [("treatment", verdict.treatment)]
        if verdict.target is None:
            compared.append(("baseline", verdict.baseline))
        for key, got in compared:
            if got not in levels[verdict.factor]:
                raise _At(("verdict", key), f"must be a level of {verdict.factor} ({valid}), but got {got!r}")
        if verdict.direction == "equivalent":
            if verdict.target is not None or verdict.metric == DIVERGED:
                raise _At(("verdict", "direction"), "equivalent compares two levels of a metric; give `baseline`")
            if verdict.min_effect <= 0:
                raise _At(("verdict", "min_effect"), "must be above 0 for an equivalence claim: it is the margin")
        if verdict.metric == DIVERGED and verdict.target is not None:
            raise _At(("verdict", "target"), f"a claim about '{DIVERGED}' compares two levels; give `baseline`")
        if self.early_stopping and verdict.pruned is None:
            raise _At(
                ("verdict", "pruned"),
                "is required with early_stopping: stopped runs have no final value, so say how they count "
                "(worst: the worst outcome of their arm; exclude: their pairs are left out)",
            )
        for name, got in verdict.where.items():
            if name not in levels or name == verdict.factor:
                others = [k for k in levels if k != verdict.factor]
                raise _At(("verdict", "where", name), _unknown("factor", name, others))
            if got not in levels[name]:
                valid = ", ".join(map(format_value, levels[name]))
                raise _At(("verdict", "where", name), f"must be a level of {name} ({valid}), but got {got!r}")

    def _check_early_stopping(self, stop: EarlyStopping) -> None:
        if stop.metric is None:
            if len(self.objectives) > 1:
                raise _At(("early_stopping", "metric"), "is required with several objectives (ASHA stops on one)")
            metric = self.objectives[0].metric
            self.early_stopping = EarlyStopping.model_validate({**stop.model_dump(), "metric": metric})
        if stop.grace_period > self.budget.steps:
            raise _At(
                ("early_stopping", "grace_period"),
                f"must be <= budget.steps ({self.budget.steps}), but got {stop.grace_period}",
            )

    def _check_configs(self, max_trials: int | None) -> None:
        """Every configuration the study can produce must be a valid TrainConfig, and there may be at most
        `max_trials` trials (None: no limit), counted before any configuration is built."""
        where = {**{k: ("budget", k) for k in BUDGET_FIELDS}, **{k: ("base", k) for k in self.base}}
        base = _config_or_raise(self, {}, where, ("base",))
        if max_trials is not None and self.trial_count > max_trials:
            seeds = self.seed_count
            key = "seeds" if seeds > max_trials else "trials" if self.kind == "search" else "factors"
            raise _TooMany(
                (key,),
                f"the study has {self.trial_count:,} trials ({self.configuration_count:,} configurations x {seeds:,} "
                f"seeds), more than the limit of {max_trials:,}",
            )
        if self.kind != "grid":  # a grid's trials all set the factors: the base alone is no trial
            self._check_measured(base, "")
        if self.kind != "search":
            for config_id, params, _, _ in _configurations(self):
                where = {k: ("factors", k, v.index(params[k])) for k, v in self.factors.items() if params[k] in v}
                cfg = _config_or_raise(self, params, where, ("factors",), context=config_id)
                self._check_measured(cfg, config_id)
        for key, dist in self.space.items():
            if isinstance(dist, CategoricalDistribution):
                candidates = [(("space", key, "choices", i), v) for i, v in enumerate(dist.choices)]
            else:
                candidates = [(("space", key, end), getattr(dist, end)) for end in ("low", "high")]
            for path, value in candidates:
                _config_or_raise(self, {key: value}, {key: path}, ("space", key))
        # choices that are valid alone may clash together (dataset ring8 with arch conv): try every combination
        choices = {k: d.choices for k, d in self.space.items() if isinstance(d, CategoricalDistribution)}
        if choices and math.prod(len(c) for c in choices.values()) <= MAX_TRIALS:
            for combo in itertools.product(*choices.values()):
                params = dict(zip(choices, combo, strict=True))
                where = {k: ("space", k, "choices", choices[k].index(v)) for k, v in params.items()}
                cfg = _config_or_raise(self, params, where, ("space",), context=_config_id(params))
                self._check_measured(cfg, _config_id(params))

    def _check_measured(self, cfg: TrainConfig, config_id: str) -> None:
        """Objectives, early stopping and verdict must name metrics this configuration reports."""
        measured = measured_metrics(cfg)
        uses = [(("objectives", i, "metric"), o.metric) for i, o in enumerate(self.objectives)]
        if self.early_stopping and self.early_stopping.metric:
            uses.append((("early_stopping", "metric"), self.early_stopping.metric))
        if self.verdict and self.verdict.metric != DIVERGED:
            uses.append((("verdict", "metric"), self.verdict.metric))
        for path, metric in uses:
            if measured.get(metric):
                where = f" in configuration {config_id}" if config_id and config_id != "base" else ""
                raise _At(path, f"{metric} is not measured{where}: {measured[metric]}")

    @property
    def trial_count(self) -> int:
        """Trials a full run has: every configuration (or sampled configuration) times every seed; counted,
        never listed, so that a study too large to run is refused at once."""
        return self.configuration_count * self.seed_count

    @property
    def configuration_count(self) -> int:
        """Configurations a full run has (a search: those sampled), counted without listing them."""
        if self.kind == "search":
            return self.trials or 0
        if self.kind == "grid":
            return math.prod(len(levels) for levels in self.factors.values())
        base = _base_values(self)
        return 1 + sum(sum(1 for v in levels if v != base[name]) for name, levels in self.factors.items())

    @property
    def seed_count(self) -> int:
        """Seeds every configuration runs with (with planned looks: up to the last look)."""
        if isinstance(self.seeds, SeedPlan):
            return self.seeds.max
        return self.seeds if isinstance(self.seeds, int) else len(self.seeds)

    @property
    def seed_list(self) -> list[int]:
        """The seeds every configuration runs with (with planned looks: every seed up to the last look)."""
        if isinstance(self.seeds, SeedPlan):
            return list(range(self.seeds.first, self.seeds.first + self.seeds.max))
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def sequential(self) -> bool:
        """Whether seeds are added in planned looks until the verdict is decisive."""
        return isinstance(self.seeds, SeedPlan)

    @property
    def looks(self) -> list[int]:
        """Seeds per configuration at each look: one look at every seed, or the planned looks (doubling
        from start; max is always the last)."""
        if not isinstance(self.seeds, SeedPlan):
            return [len(self.seed_list)]
        planned = [self.seeds.start]
        while planned[-1] * 2 < self.seeds.max:
            planned.append(planned[-1] * 2)
        return planned if planned[-1] == self.seeds.max else [*planned, self.seeds.max]

    def renamed(self, name: str) -> Study:
        """The same study under another name, checked as a name in a file is."""
        try:
            check_study_name(name)
        except ValueError as e:
            raise StudyError(f"study name {e}") from None
        return self.model_copy(update={"name": name})

    def replication(self, index: int) -> Study:
        """Replication `index` (1, 2, ...): the same study named NAME-rep<index>, each seed s run as
        s + index * REPLICATION_SEED_OFFSET, so that no seed of the original is used again."""
        if max(self.seed_list) >= REPLICATION_SEED_OFFSET:
            raise StudyError(
                f"study {self.name}: replications offset seeds by {REPLICATION_SEED_OFFSET}, so seeds must be below "
                f"it, but the largest is {max(self.seed_list)}"
            )
        offset = index * REPLICATION_SEED_OFFSET
        if isinstance(self.seeds, SeedPlan):
            seeds: Any = self.seeds.model_copy(update={"first": self.seeds.first + offset})
        else:
            seeds = [s + offset for s in self.seed_list]
        return self.renamed(f"{self.name}-rep{index}").model_copy(update={"seeds": seeds})

    def train_config(self, params: dict[str, Any], seed: int) -> TrainConfig:
        """base + budget + params + seed, as a validated TrainConfig."""
        try:
            return _build(self, params, seed)
        except ConfigError as e:
            raise StudyError(f"study {self.name}: {e}") from e

    def with_overrides(
        self,
        *,
        steps: int | None = None,
        seeds: int | list[int] | None = None,
        trials: int | None = None,
        set_values: dict | None = None,
        population: int | str | None = None,
        max_trials: int | None = MAX_TRIALS,
    ) -> Study:
        """A new validated study with budget steps, seeds, search trials, base values or the population size
        replaced (CLI), at most `max_trials` trials."""
        data, values = self.model_dump(mode="json"), dict(set_values or {})
        budget = data["budget"] | {k: values.pop(k) for k in BUDGET_FIELDS if k in values}
        budget["steps"] = budget["steps"] if steps is None else steps
        if isinstance(budget["steps"], int):  # keep the cadence and ASHA's grace period within the budget
            budget |= {k: min(budget[k], budget["steps"]) for k in BUDGET_FIELDS[1:] if isinstance(budget[k], int)}
            if data["early_stopping"]:
                data["early_stopping"]["grace_period"] = min(data["early_stopping"]["grace_period"], budget["steps"])
        data |= {
            "budget": budget,
            "base": data["base"] | values,
            "seeds": data["seeds"] if seeds is None else seeds,
            "trials": data["trials"] if trials is None else trials,
            "resources": data["resources"] | ({} if population is None else {"population": population}),
        }
        return parse(data, source=f"study {self.name} with overrides", max_trials=max_trials)

    def fingerprint(self) -> str:
        """sha256 of what gives the trials their meaning; name, seeds, trials, resources... excluded."""
        keys = {"kind", "base", "factors", "space", "sampler", "sampler_seed", "objectives", "budget"}
        text = json.dumps(self.model_dump(mode="json", include=keys), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


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


def _locate(loc: tuple[Any, ...], data: Any, node: yaml.Node | None, *, keep_last: bool) -> tuple[str, int | None]:
    """Dotted key path and 1-based line of a pydantic error location; parts absent from the data are tags."""
    path, line = "", node.start_mark.line + 1 if node is not None else None
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
            path += f".{part}" if path else str(part)
            pairs = node.value if isinstance(node, yaml.MappingNode) else []
            key, node = next(((k, v) for k, v in pairs if k.value == str(part)), (None, None))
            line = key.start_mark.line + 1 if key is not None else line
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data, path = data[part], f"{path}[{part}]"
            node = node.value[part] if isinstance(node, yaml.SequenceNode) else None
            line = node.start_mark.line + 1 if node is not None else line
        elif keep_last and i == len(loc) - 1:
            path += f".{part}" if path else str(part)
    return path, line


def _message(error: dict[str, Any]) -> str:
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"`type` must be one of {ctx['expected_tags']}, but got {ctx['tag']!r}"
    if kind == "union_tag_not_found":
        return "needs a `type`: float, int or categorical"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    msg = re.sub(r"^\w+ should", "must", error["msg"])
    msg = re.sub(r"a valid dictionary( or instance of \w+)?", "a mapping", msg)
    got = repr(error["input"])
    return f"{msg}, but got {got if len(got) <= 60 else got[:57] + '...'}"


def _validate(data: Any, source: str, node: yaml.Node | None = None, *, max_trials: int | None) -> Study:
    if not isinstance(data, dict):
        where = f"{source}:1" if node is not None else source
        raise StudyError(f"{where}: a study must be a mapping of keys (name, kind, ...), not {type(data).__name__}")
    try:
        return Study.model_validate(data, context={"max_trials": max_trials})
    except ValidationError as e:
        error = e.errors()[0]
        cause = (error.get("ctx") or {}).get("error")
        loc = tuple(error["loc"]) + (cause.path if isinstance(cause, _At) else ())
        path, line = _locate(loc, data, node, keep_last=error["type"] == "missing" or isinstance(cause, _At))
        where = f"{source}:{line}" if line else source
        text = f"{where}: {path}: {_message(error)}" if path else f"{where}: {_message(error)}"
        kind = TooManyTrialsError if isinstance(cause, _TooMany) else StudyError
        raise kind(" ".join(text.split())) from None


def parse(data: dict[str, Any], *, source: str = "<study>", max_trials: int | None = MAX_TRIALS) -> Study:
    """Validate a study given as a plain dict (messages name `source` and the key path); at most
    `max_trials` trials (None: no limit)."""
    return _validate(data, source, max_trials=max_trials)


def parse_stored(data: dict[str, Any], *, source: str = "<stored study>") -> Study:
    """Validate a study definition as a storage keeps it, upgrading rules written before verdicts had a
    smallest effect of interest (min_effect 0: never NO EFFECT) and paired tests (welch -> t,
    mannwhitney -> rank). A stored study was within its run's trial limit: none is applied again."""
    data = copy.deepcopy(data)
    rule = data.get("verdict")
    if isinstance(rule, dict):
        rule.setdefault("min_effect", 0.0)
        rule["test"] = {"welch": "t", "mannwhitney": "rank"}.get(rule.get("test"), rule.get("test", "t"))
    return _validate(data, source, max_trials=None)


def load(path: str | Path, *, max_trials: int | None = MAX_TRIALS) -> Study:
    """Read and validate a study YAML file of at most `max_trials` trials (None: no limit); every error is
    one line `file:line: key.path: problem`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: no such study file") from None
    except UnicodeDecodeError as e:
        raise StudyError(f"{path}: not a study file: byte {e.start} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise StudyError(f"{path}: cannot read the study file ({e.strerror})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # parsed once: the nodes keep lines, the data is built from them
        _bounded_aliases(node, str(path))
        _no_duplicate_keys(node, str(path))  # before the data is built: building merges `<<` keys into the nodes
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise StudyError(" ".join(f"{where}: invalid YAML: {problem}".split())) from None
    except RecursionError:
        raise StudyError(f"{path}: invalid YAML: nested too deeply for a study") from None
    finally:
        loader.dispose()
    if data is None:
        raise StudyError(f"{path}:1: the file is empty; a study needs at least name, kind, objectives, budget")
    return _validate(data, str(path), node, max_trials=max_trials)


def _bounded_aliases(root: yaml.Node | None, source: str) -> None:
    """Refuse a file whose aliases would expand it by more than ALIAS_NODES nodes, or that refers to itself.

    YAML shares an anchored node wherever an alias names it, so nested aliases (a "billion laughs") make a
    file of a few hundred bytes stand for billions of values: every walk over the data (the duplicate-key
    check, validation, hashing) would run for hours. Each node's expanded size is computed once here."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    added = 0  # nodes the aliases add, so far

    def size(node: yaml.Node) -> int:
        nonlocal added
        if id(node) in sizes:  # seen before: this is an alias of it
            added += sizes[id(node)]
            if added > ALIAS_NODES:
                raise StudyError(
                    f"{source}:{node.start_mark.line + 1}: YAML aliases expand the file by more than {ALIAS_NODES:,} "
                    "values; write the values out instead"
                )
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise StudyError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a value that contains it")
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root)


def _no_duplicate_keys(node: yaml.Node | None, source: str, where: str = "") -> None:
    """YAML keeps the last of two equal keys silently; in a study that loses a value: refuse it."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{where}.{key}" if where else key
            if key in seen:
                raise StudyError(f"{source}:{key_node.start_mark.line + 1}: {path}: appears twice; keep one")
            seen.add(key)
            _no_duplicate_keys(value_node, source, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicate_keys(item, source, f"{where}[{i}]")


def study_json_schema() -> dict[str, Any]:
    """JSON schema of a study file (for editors and `sweep schema`); `base` and `factors` carry each
    TrainConfig field's own schema (type, range, choices, meaning), from its one declaration."""
    schema = Study.model_json_schema()
    settable = [f for f in field_names() if f not in (*BUDGET_FIELDS, "seed")]
    props = schema["properties"]
    props["base"]["properties"] = {f: field_schema(f) for f in settable}
    props["base"]["additionalProperties"] = False
    props["factors"]["properties"] = {
        f: {
            "type": "array",
            "minItems": 1,
            "items": {k: v for k, v in field_schema(f).items() if k != "default"},
            "description": f"levels of {f}",
        }
        for f in field_names()
        if f != "seed"
    }
    props["factors"]["additionalProperties"] = False
    short_forms = [{"enum": list(METRIC_NAMES)}, {"type": "object", "maxProperties": 1}]
    props["objectives"]["items"] = {"anyOf": [props["objectives"]["items"], *short_forms]}
    props["space"]["propertyNames"] = {"enum": [f for f in field_names() if f != "seed"]}
    return schema


__all__ = [
    "DIVERGED",
    "MAX_TRIALS",
    "REPLICATION_SEED_OFFSET",
    "Budget",
    "CategoricalDistribution",
    "Distribution",
    "EarlyStopping",
    "FloatDistribution",
    "IntDistribution",
    "Objective",
    "Resources",
    "SeedPlan",
    "Study",
    "TrialSpec",
    "Verdict",
    "check_study_name",
    "expand",
    "factor_levels",
    "format_value",
    "iter_trials",
    "load",
    "parse",
    "parse_stored",
    "study_json_schema",
]
