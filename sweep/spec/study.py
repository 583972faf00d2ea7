"""`Study`: a study file's parts put together and checked as a whole (the sections its kind needs, the
TrainConfig fields it names, every configuration it can produce, its size, objectives, early stopping
and verdict rule), its counts and seeds, and the studies derived from it (renamed, replicated, with
overrides). `_validate` is the one boundary every way a study comes in goes through."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from sweep.core import (
    ConfigError,
    DataError,
    TrainConfig,
    check_dataset,
    dataset_digest,
    field_names,
    is_data_path,
    measured_metrics,
    record_dataset,
)
from sweep.errors import StudyError, TooManyTrialsError
from sweep.spec.expand import (
    _base_values,
    _build,
    _config_id,
    _config_or_raise,
    _configurations,
    factor_levels,
    format_value,
)
from sweep.spec.messages import _At, _locate, _message, _TooMany, _unknown
from sweep.spec.schema import (
    BUDGET_FIELDS,
    DIVERGED,
    MAX_TRIALS,
    NAME_MAX,
    REPLICATION_SEED_OFFSET,
    Budget,
    CategoricalDistribution,
    DataFile,
    Distribution,
    EarlyStopping,
    Objective,
    Resources,
    SeedPlan,
    Tracker,
    Verdict,
    _Model,
    check_study_name,
)
from sweep.vocab import TRACKERS


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
    sampler: Literal["tpe", "gp", "cmaes", "random", "qmc", "nsga2"] = Field(
        "tpe",
        description="search: the Optuna sampler. 'qmc' is QMCSampler's scrambled Sobol sequence, which spreads "
        "the configurations evenly over the space instead of toward an optimizer's favourite region (unbiased "
        "importances); each categorical parameter takes one Sobol coordinate, split evenly among its choices, and "
        "the first configuration is drawn by an independent RandomSampler, as Optuna's QMCSampler does.",
    )
    sampler_seed: int = Field(0, description="Seed of the sampler (qmc: the seed of its scrambling).")
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
    tracking: list[Tracker] = Field(
        [],
        description="Trackers every trial's history is also logged to, one run per trial: "
        f"{', '.join(TRACKERS)} (docs/tracking.md). Not part of the trials' meaning: a resumed study may change it.",
    )
    data_files: dict[str, DataFile] = Field(
        {},
        description="Written by sweep, not by hand: each dataset file the study trains on (its absolute path) with "
        "its sha256, so that a study stored from one file is never resumed against a changed one.",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        return check_study_name(name)

    @field_validator("tracking")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        repeated = [n for i, n in enumerate(names) if n in names[:i]]
        if repeated:
            raise ValueError(f"names each tracker once, but {repeated[0]!r} is repeated")
        return names

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
        # In this order: a study with several problems is told the first of them, the same one every time.
        self._check_sections()
        self._check_field_names()
        self._resolve_data_files(Path((info.context or {}).get("root") or "."), (info.context or {}).get("stored"))
        self._check_configs((info.context or {}).get("max_trials", MAX_TRIALS))
        self._check_objectives()
        if self.early_stopping:
            self._check_early_stopping(self.early_stopping)
        if self.verdict:
            self._check_verdict(self.verdict)
        if isinstance(self.seeds, SeedPlan) and self.verdict is None:
            raise _At(
                ("seeds",), "planned looks {start, max} need a verdict rule: it decides when to stop adding seeds"
            )
        return self

    def _check_sections(self) -> None:
        """A search study has a space and a number of trials; ablation and grid studies have factors."""
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

    def _check_field_names(self) -> None:
        """base, factors and space name TrainConfig fields, and none that seeds or budget set."""
        for section in ("base", "factors", "space"):
            for key in getattr(self, section):
                if key not in field_names():
                    raise _At((section, key), _unknown("TrainConfig field", key, field_names()))
                if key == "seed" or (section == "base" and key in BUDGET_FIELDS):
                    where = "seeds" if key == "seed" else f"budget.{key}"
                    raise _At((section, key), f"is set by `{where}`; set it there instead")

    def _dataset_values(self) -> list[tuple[tuple, Any, Any]]:
        """(key path, container, index) of every dataset a study names: base, factor levels, search choices."""
        found: list[tuple[tuple, Any, Any]] = []
        if "dataset" in self.base:
            found.append((("base", "dataset"), self.base, "dataset"))
        for i in range(len(self.factors.get("dataset", []))):
            found.append((("factors", "dataset", i), self.factors["dataset"], i))
        dist = self.space.get("dataset")
        if isinstance(dist, CategoricalDistribution):
            found += [(("space", "dataset", "choices", i), dist.choices, i) for i in range(len(dist.choices))]
        return found

    def _resolve_data_files(self, root: Path, stored: bool) -> None:
        """Datasets named by a path are the user's files: resolved against the study file's folder (so Ray workers
        read them wherever they run), checked whole, and recorded with their sha256. A stored study's record is
        trusted instead, so that reading it back does not need its data."""
        recorded, self.data_files = self.data_files, {}
        for path, container, key in self._dataset_values():
            value = container[key]
            if not isinstance(value, str) or not (is_data_path(value) or (root / value).is_dir()):
                continue  # a registry key, or a value TrainConfig's validation names
            absolute = str((root / value).resolve())
            container[key] = absolute
            if stored and absolute in recorded:
                self.data_files[absolute] = facts = recorded[absolute]
                record_dataset(absolute, tuple(facts.sample_shape), facts.classes)
                continue
            try:
                entry = check_dataset(absolute)
                digest = dataset_digest(absolute)
            except DataError as e:
                raise _At(path, str(e).removeprefix("dataset ")) from None
            self.data_files[absolute] = DataFile(
                sha256=digest, sample_shape=list(entry.sample_shape), classes=entry.classes
            )

    def _check_objectives(self) -> None:
        """Each objective names its own metric, and several objectives need a sampler that handles them."""
        metrics = [o.metric for o in self.objectives]
        for i, m in enumerate(metrics):
            if m in metrics[:i]:
                raise _At(("objectives", i), f"repeats the metric {m!r}")
        if len(metrics) > 1 and self.sampler in ("cmaes", "gp"):
            raise _At(("sampler",), f"{self.sampler!r} optimizes a single objective; use 'nsga2' or 'tpe'")

    def _check_verdict(self, verdict: Verdict) -> None:
        if self.kind == "search":
            raise _At(
                ("verdict",), "is for ablation and grid studies: a sampler's choices are not a controlled comparison"
            )
        levels = factor_levels(self)
        if verdict.factor not in levels:
            raise _At(("verdict", "factor"), _unknown("factor", verdict.factor, levels))
        self._check_compared_levels(verdict, levels[verdict.factor])
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
        self._check_verdict_where(verdict, levels)
        self._check_verdict_blocks(verdict, levels)

    @staticmethod
    def _check_compared_levels(verdict: Verdict, allowed: list[Any]) -> None:
        """Exactly one of baseline and target; the treatment, and the baseline if given, are levels of the factor."""
        valid = ", ".join(map(format_value, allowed))
        if (verdict.baseline is None) == (verdict.target is None):
            raise _At(("verdict",), "give exactly one of `baseline` (a level) or `target` (a number)")
        compared = [("treatment", verdict.treatment)]
        if verdict.target is None:
            compared.append(("baseline", verdict.baseline))
        for key, got in compared:
            if got not in allowed:
                raise _At(("verdict", key), f"must be a level of {verdict.factor} ({valid}), but got {got!r}")

    @staticmethod
    def _check_verdict_where(verdict: Verdict, levels: dict[str, list[Any]]) -> None:
        """`where` names other factors of the study, each at one of its levels."""
        for name, got in verdict.where.items():
            if name not in levels or name == verdict.factor:
                others = [k for k in levels if k != verdict.factor]
                raise _At(("verdict", "where", name), _unknown("factor", name, others))
            if got not in levels[name]:
                valid = ", ".join(map(format_value, levels[name]))
                raise _At(("verdict", "where", name), f"must be a level of {name} ({valid}), but got {got!r}")

    def _check_verdict_blocks(self, verdict: Verdict, levels: dict[str, list[Any]]) -> None:
        """An interaction (grid) names another factor (not fixed by `where`) and two of its levels; a divergence
        rule in a grid compares one pair per seed, so `where` fixes every other factor."""
        inter, others = verdict.interaction, [k for k in levels if k != verdict.factor]
        if inter is not None and self.kind != "grid":
            raise _At(("verdict", "interaction"), "is for grid studies: an ablation varies one factor at a time")
        if inter is not None:
            if inter.factor not in others or inter.factor in verdict.where:
                free = [k for k in others if k not in verdict.where]
                raise _At(("verdict", "interaction", "factor"), _unknown("factor", inter.factor, free))
            valid = ", ".join(map(format_value, levels[inter.factor]))
            for key, got in (("level", inter.level), ("against", inter.against)):
                if got not in levels[inter.factor]:
                    raise _At(
                        ("verdict", "interaction", key), f"must be a level of {inter.factor} ({valid}), but got {got!r}"
                    )
            if format_value(inter.level) == format_value(inter.against):
                raise _At(("verdict", "interaction", "against"), f"must differ from level ({inter.level!r})")
            if verdict.target is not None or verdict.metric == DIVERGED:
                raise _At(
                    ("verdict", "interaction"),
                    "compares two levels' effects on a metric; give `baseline`, not "
                    f"`target`, and a metric other than '{DIVERGED}'",
                )
        if verdict.metric == DIVERGED and self.kind == "grid":
            free = [k for k in others if k not in verdict.where]
            if free:
                raise _At(
                    ("verdict", "where"),
                    f"a claim about '{DIVERGED}' compares one pair of runs per seed: fix the other factors here "
                    f"({', '.join(free)})",
                )

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
        gpus: float | str | None = None,
        max_trials: int | None = MAX_TRIALS,
    ) -> Study:
        """A new validated study with budget steps, seeds, search trials, base values, the population size or
        the GPUs per trial replaced (CLI), at most `max_trials` trials."""
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
            "resources": data["resources"]
            | ({} if population is None else {"population": population})
            | ({} if gpus is None else {"gpus": gpus}),
        }
        return _validate(data, f"study {self.name} with overrides", max_trials=max_trials)

    def fingerprint(self) -> str:
        """sha256 of what gives the trials their meaning; name, seeds, trials, resources... excluded."""
        keys = {"kind", "base", "factors", "space", "sampler", "sampler_seed", "objectives", "budget"}
        keys |= {"data_files"} if self.data_files else set()  # the user's data by content; absent, as before
        text = json.dumps(self.model_dump(mode="json", include=keys), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _validate(
    data: Any,
    source: str,
    node: yaml.Node | None = None,
    *,
    max_trials: int | None,
    root: Path | None = None,
    stored: bool = False,
) -> Study:
    """The one boundary: `data` validated into a Study; dataset paths resolve against `root` (the study file's
    folder; default the working folder); a `stored` definition keeps its recorded data files."""
    if not isinstance(data, dict):
        where = f"{source}:1" if node is not None else source
        raise StudyError(f"{where}: a study must be a mapping of keys (name, kind, ...), not {type(data).__name__}")
    try:
        return Study.model_validate(data, context={"max_trials": max_trials, "root": root, "stored": stored})
    except ValidationError as e:
        error = e.errors()[0]
        cause = (error.get("ctx") or {}).get("error")
        loc = tuple(error["loc"]) + (cause.path if isinstance(cause, _At) else ())
        path, line = _locate(loc, data, node, keep_last=error["type"] == "missing" or isinstance(cause, _At))
        where = f"{source}:{line}" if line else source
        text = f"{where}: {path}: {_message(error)}" if path else f"{where}: {_message(error)}"
        kind = TooManyTrialsError if isinstance(cause, _TooMany) else StudyError
        raise kind(" ".join(text.split())) from None
