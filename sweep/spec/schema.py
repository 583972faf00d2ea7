"""The parts of a study file, each a pydantic model that checks itself: objectives, early stopping,
resources, budget, search distributions, the verdict rule and planned looks; with the limits a study
is held to and the study name's rule. `Study` (study.py) puts them together."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from sweep.core import METRIC_NAMES, METRICS
from sweep.spec.messages import _At, _unknown
from sweep.vocab import TRACKERS

BUDGET_FIELDS = ("steps", "report_every", "eval_every")  # TrainConfig fields that `budget:` sets
MAX_TRIALS = 10_000  # trials a study may have unless its run raises the limit
NAME_MAX = 100  # characters in a study name: it names folders, and NAME-rep<k> must fit too


def _check_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(_unknown("metric", name, METRIC_NAMES))
    return name


Metric = Annotated[str, AfterValidator(_check_metric)]


def _check_tracker(name: str) -> str:
    if name not in TRACKERS:
        raise ValueError(_unknown("tracker", name, TRACKERS))
    return name


Tracker = Annotated[str, AfterValidator(_check_tracker)]  # where trials are logged besides Optuna (sweep/tracking.py)


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
GPUS_PER_DEVICE = 4  # populations that `gpus: auto` trains on one GPU at once: launches overlap, memory is shared


class Resources(_Model):
    cpus: float = Field(1.0, gt=0, description="CPUs per trial (Ray resources).")
    gpus: float | Literal["auto"] = Field(
        "auto",
        description="GPUs per trial; fractions such as 0.25 share a GPU. auto: none on a machine (a Ray cluster) "
        "without GPUs; with GPUs, each trial gets a share so that up to 4 populations train on each GPU at "
        "once, as the CPU slots allow.",
    )
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

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":  # a number as the command line gives it
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"must be a number of GPUs (0, 0.25, 1, ...) or auto, but got {value!r}") from None
        if value == "auto" or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError(f"must be a number of GPUs (0, 0.25, 1, ...) or auto, but got {value!r}")

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


class DataFile(_Model):
    """What a study recorded of a dataset file of the user's: its identity, and what validation reads of it."""

    sha256: str = Field(description="sha256 of the file (a folder: of its PNG images and their names).")
    sample_shape: list[int] = Field(description="(C, H, W) of its images.")
    classes: int = Field(0, ge=0, description="Classes of its labels; 0: no labels.")


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


class Interaction(_Model):
    factor: str = Field(description="Another factor of the grid whose level the claimed effect depends on.")
    level: Any = Field(description="The level where the claim says the effect is larger (in the claim's direction).")
    against: Any = Field(description="The level it is compared with.")


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
    interaction: Interaction | None = Field(
        None,
        description="A claim that the effect depends on another factor (grid): the effect (treatment - baseline) "
        "at interaction.level minus the effect at interaction.against, per seed, tested in `direction` against "
        "min_effect, e.g. {factor: d_width, level: 4.0, against: 0.25}.",
    )
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
