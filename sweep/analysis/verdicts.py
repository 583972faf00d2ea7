"""The claim's verdict: the planned looks, each taken once its pairs finished and tested at its share of
alpha; the status of the deciding look; and every number behind it (the compared arms, the pairs left
out, the failure rates). The sentences that say it are `report.verdict_text`'s."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sweep.analysis.frames import FINISHED_OUTCOMES, MISSING_RUN, design_frame
from sweep.analysis.units import _arm_kinds, _usable, better_direction, comparison_units, seed_differences
from sweep.lazy import LazyImport
from sweep.rates import paired_rate_difference, rate_mde
from sweep.spec import DIVERGED, SeedPlan, Study, Verdict, format_value
from sweep.stats import (
    RATE_METHODS,
    Estimate,
    decide,
    decisive_p,
    estimate,
    pairs_for,
    seed_units,
    spending,
)
from sweep.vocab import DECISIVE, Size, Status

if TYPE_CHECKING:
    import pandas as pd
else:  # loaded by the first study read
    pd = LazyImport("pandas")


@dataclass(frozen=True)
class Look:
    """One planned look at the verdict: taken only once every pair of its seeds has finished."""

    number: int  # 1-based
    seeds: int  # seeds per configuration at this look
    alpha: float  # the share of the rule's alpha this look spends
    status: Status | None  # None: not taken yet (pairs still to finish)
    estimate: Estimate | None  # None when too few pairs to estimate
    pairs: int  # complete pairs it used
    missing: int  # pairs still to finish
    reason: str = ""  # why a taken look could not decide, beyond its interval (too few pairs...)
    p: float = math.nan  # the p of the test that decides the rule (`stats.decisive_p`), at this look's alpha


@dataclass(frozen=True)
class ArmCounts:
    """One compared level's runs over the units of the deciding look."""

    label: str  # "d_width=1.0"
    runs: int  # finished runs
    ok: int  # with a finite value
    failed: dict[str, int]  # why -> runs counted as the worst outcome (diverged, non-finite, censored, pruned)
    excluded: dict[str, int]  # why -> runs left out (crashed, pruned)
    mean: float  # over the finite values (NaN for a claim about the divergence rate)
    rates: bool = False  # a claim about the divergence rate: failures are the outcome, not the worst value

    @property
    def outcomes(self) -> int:
        """Finished runs that count: those not left out."""
        return self.runs - sum(self.excluded.values())


@dataclass(frozen=True)
class VerdictResult:
    """The decision on a study's claim and every number that decided it."""

    status: Status
    rule: Verdict
    looks: list[Look]  # every look taken, then the first pending one if any
    sequential: bool  # seeds were planned in looks
    spending: str  # the alpha-spending function of a sequential plan ("" otherwise)
    grid: bool  # a grid with other factors: a seed's blocks (their combinations) are one unit
    treatment: ArmCounts
    baseline: ArmCounts | None  # None against a target
    excluded_pairs: dict[str, int]  # why -> pairs left out at the deciding look (crashed, pruned)
    divergence: Estimate | None  # the arms' failure rates compared (McNemar, paired by seed), when a run failed

    @property
    def deciding(self) -> Look | None:
        """The last look taken (the one whose status is the verdict), None before the first."""
        taken = [look for look in self.looks if look.status is not None]
        return taken[-1] if taken else None

    @property
    def estimate(self) -> Estimate | None:
        return self.deciding.estimate if self.deciding else None

    @property
    def n(self) -> int:
        """Complete pairs (units) the verdict rests on."""
        return self.deciding.pairs if self.deciding else 0

    @property
    def alpha(self) -> float:
        """The alpha of the deciding look (the rule's alpha without planned looks)."""
        return self.deciding.alpha if self.deciding else self.rule.alpha

    @property
    def p(self) -> float:
        """The p of the test that decides the rule at the deciding look: two-sided against 0 (or against the
        target's margin), the larger TOST p for an equivalence claim, Fisher's for rates; NaN before."""
        return self.deciding.p if self.deciding else math.nan

    @property
    def p_adjusted(self) -> float:
        """`p` scaled to the rule's alpha (p x alpha / this look's alpha): at most alpha exactly when the
        deciding look's test rejects, so claims of different looks compare (and Holm adjusts this one)."""
        return math.nan if math.isnan(self.p) else min(1.0, self.p * self.rule.alpha / self.alpha)

    @property
    def size(self) -> Size | None:
        """For a SUPPORTED or CONTRADICTED verdict of a rule against a baseline with min_effect > 0: whether the
        deciding (1 - alpha) interval shows the effect to be at least min_effect, to be smaller, or neither;
        None otherwise (a target's margin and an equivalence claim say it already)."""
        e, rule = self.estimate, self.rule
        decided = self.status in (Status.SUPPORTED, Status.CONTRADICTED)
        if (
            not decided
            or e is None
            or rule.target is not None
            or rule.direction == "equivalent"
            or rule.min_effect <= 0
        ):
            return None
        near, far = (e.low, e.high) if e.low > 0 else (-e.high, -e.low)  # |effect|'s interval: it excludes 0
        if near >= rule.min_effect:
            return Size.AT_LEAST
        return Size.SMALLER if far < rule.min_effect else Size.MAY_BE_SMALLER

    @property
    def failed(self) -> int:
        """Runs of the compared arms counted as the worst outcome (diverged, non-finite, censored, pruned)."""
        return sum(sum(a.failed.values()) for a in (self.treatment, self.baseline) if a is not None)

    @property
    def baseline_rate(self) -> float:
        """The baseline's failure rate over its runs that count (NaN against a target)."""
        base = self.baseline
        return sum(base.failed.values()) / max(1, base.outcomes) if base else math.nan

    @property
    def pairs_needed(self) -> int | None:
        """About how many pairs would detect min_effect with 80% power at this alpha, given the spread the
        deciding estimate saw (None where it cannot say: no spread, no min_effect, a rate)."""
        e = self.estimate
        if e is None or e.method in RATE_METHODS or math.isinf(e.mde_std):
            return None
        sd = e.mde / e.mde_std if e.mde_std and not math.isnan(e.mde) else math.nan
        return pairs_for(self.rule.min_effect / sd, self.alpha) if sd > 0 and self.rule.min_effect > 0 else None


FAILURES = ("diverged", "non-finite", "censored", "pruned")  # why a run counts as the worst outcome of its arm


def _arm_counts(units: pd.DataFrame, prefix: str, label: str, *, rates: bool) -> ArmCounts:
    kind, why = units[f"{prefix}_kind"], units[f"{prefix}_why"]
    finished = kind != MISSING_RUN
    values = units.loc[kind == "ok", f"{prefix}_value"]
    return ArmCounts(
        label=label,
        runs=int(finished.sum()),
        ok=int((kind == "ok").sum()),
        failed={w: int(((kind == "failed") & (why == w)).sum()) for w in FAILURES},
        excluded={w: int(((kind == "excluded") & (why == w)).sum()) for w in ("crashed", "pruned")},
        mean=float(values.mean()) if len(values) and not rates else math.nan,
        rates=rates,
    )


def look_alphas(study: Study, alpha: float) -> list[float]:
    """The share of `alpha` each look spends: all of it at a fixed seed set's one look; with planned looks,
    the increments of the plan's spending function at the looks' information fractions."""
    plan = study.seeds
    if not isinstance(plan, SeedPlan):
        return [alpha]
    return [float(a) for a in spending(alpha, [n / plan.max for n in study.looks], plan.spending)]


def _paired_rates(units: pd.DataFrame, alpha: float) -> Estimate:
    """The arms' failure rates over paired units: McNemar's exact test and Newcombe's paired interval (the two
    levels share their seeds, so their failures are not independent samples)."""
    t, b = units["t_kind"] == "failed", units["b_kind"] == "failed"
    both, only_t, only_b = int((t & b).sum()), int((t & ~b).sum()), int((~t & b).sum())
    return paired_rate_difference(both, only_t, only_b, len(units), alpha=alpha).item()


class _Decision(NamedTuple):
    estimate: Estimate | None
    p: float  # the deciding test's p (`stats.decisive_p`; Fisher's for rates), NaN without an estimate
    status: Status
    reason: str
    units: int  # the units (seeds) it rests on


def _origin(rule: Verdict) -> float:
    """Where a rule's interval must lie beyond: 0 for a baseline; for a target, the margin below it (above
    it for "less"), in the units of the differences from the target."""
    if rule.target is None:
        return 0.0
    return -rule.min_effect if rule.direction == "greater" else rule.min_effect


def rule_differences(units: pd.DataFrame, study: Study, rule: Verdict) -> np.ndarray:
    """The per-seed differences a metric rule tests, from usable units in seed order: treatment minus baseline
    (or minus the target), a seed's grid blocks made one unit; for an interaction, the effect at
    interaction.level minus the effect at interaction.against, seeds with both (`stats.seed_units`)."""
    better = better_direction(study, rule.metric)
    inter = rule.interaction
    if inter is None:
        return seed_differences(units, better, origin=rule.target or 0.0).to_numpy()
    strata = [
        seed_differences(units[units["stratum"] == format_value(level)], better)
        for level in (inter.level, inter.against)
    ]
    both = pd.concat(strata, axis=1, join="inner").sort_index()
    return seed_units(both.to_numpy(dtype=float), weights=[1.0, -1.0])


def _decide_look(units: pd.DataFrame, study: Study, rule: Verdict, alpha: float) -> _Decision:
    """The estimate, deciding p and status of one look from its usable units (a seed's blocks are one unit)."""
    n = len(units)
    est: Estimate | None = None
    p = math.nan
    if rule.metric == DIVERGED:  # one pair per seed (the other factors are fixed by `where`)
        x_b = int((units["b_kind"] == "failed").sum())
        if n:
            est = _paired_rates(units, alpha)
            mde, _ = rate_mde(x_b / n, n, alpha, up=rule.direction == "greater")  # towards the claim
            est = replace(est, mde=float(mde))
            p = float(est.p_two_sided)
    else:
        d = rule_differences(units, study, rule)
        n = len(d)
        if n >= 2:
            est = estimate(d, alpha=alpha, test=rule.test).item()
            p = float(
                decisive_p(
                    d,
                    direction=rule.direction,
                    min_effect=rule.min_effect,
                    origin=_origin(rule),
                    alpha=alpha,
                    test=rule.test,
                )
            )
    if n < rule.min_seeds:
        reason = f"too few complete pairs to decide: {n} (the rule needs {rule.min_seeds})"
        return _Decision(est, p, Status.INCONCLUSIVE, reason, n)
    if est is None:
        return _Decision(est, p, Status.INCONCLUSIVE, "the test could not be computed on these values", n)
    status = decide(
        est, direction=rule.direction, min_effect=rule.min_effect, origin=_origin(rule), equivalence=rule.target is None
    )
    return _Decision(est, p, Status(str(status)), "", n)


def verdict(frame: pd.DataFrame, study: Study) -> VerdictResult | None:
    """Decide the study's claim with its `verdict` rule (None without one).

    The compared levels pair by seed (and, in a grid, by the other factors' levels, within `where`): the
    effect is estimated on per-pair differences with the paired t-test, or with the signed-rank test and
    the Hodges-Lehmann estimate when a run failed (diverged, non-finite value, or pruned with `pruned:
    worst`: the worst outcome of its arm) or every difference is equal. Pairs with a crashed run are left
    out. A `target` rule is a non-inferiority test of the treatment against target -+ min_effect. A
    `diverged` rule compares the levels' divergence rates.

    Looks: the one look of a fixed seed set, or the planned looks of `seeds: {start, max}`, each taken
    only when all its pairs finished and tested at its share of alpha; the first decisive look
    (SUPPORTED, CONTRADICTED, NO EFFECT) is the verdict. Recomputed from the stored trials every time.
    """
    rule = study.verdict
    if rule is None or study.kind == "search":
        return None
    design = design_frame(frame, study)
    units = comparison_units(
        design,
        study,
        factor=rule.factor,
        treatment=rule.treatment,
        baseline=None if rule.target is not None else rule.baseline,
        metric=rule.metric,
        pruned=rule.pruned,
        where=rule.where,
        stratum=rule.interaction.factor if rule.interaction else None,
    )
    if rule.interaction is not None:  # the two strata compared
        compared = {format_value(rule.interaction.level), format_value(rule.interaction.against)}
        units = units[units["stratum"].isin(compared)].reset_index(drop=True)
    looks: list[Look] = []
    for number, (seeds, alpha) in enumerate(zip(study.looks, look_alphas(study, rule.alpha), strict=True), 1):
        part = units[units["seed_index"] < seeds]
        missing = int((_arm_kinds(part) == MISSING_RUN).any(axis=1).sum())
        if missing:
            looks.append(Look(number, seeds, alpha, None, None, 0, missing))
            break
        usable = part[_usable(part)]
        found = _decide_look(usable, study, rule, alpha)
        looks.append(Look(number, seeds, alpha, found.status, found.estimate, found.units, 0, found.reason, found.p))
        if found.status in DECISIVE:
            break
    return _result(study, rule, units, looks)


def _result(study: Study, rule: Verdict, units: pd.DataFrame, looks: list[Look]) -> VerdictResult:
    taken = [look for look in looks if look.status is not None]
    deciding = taken[-1] if taken else None
    seeds = deciding.seeds if deciding else looks[0].seeds
    part = units[units["seed_index"] < seeds]
    rates = rule.metric == DIVERGED
    treat = _arm_counts(part, "t", f"{rule.factor}={format_value(rule.treatment)}", rates=rates)
    base = (
        _arm_counts(part, "b", f"{rule.factor}={format_value(rule.baseline)}", rates=rates)
        if "b_kind" in part
        else None
    )
    usable = _usable(part)
    excluded = {w: 0 for w in ("crashed", "pruned")}
    for prefix in ("t", "b") if base else ("t",):
        for w in excluded:
            excluded[w] += int((~usable & (part[f"{prefix}_why"] == w)).sum())
    divergence = None
    failed = [sum(a.failed.values()) for a in (treat, base) if a]
    if base is not None and sum(failed) and rule.metric != DIVERGED and deciding is not None and usable.any():
        divergence = _paired_rates(part[usable], deciding.alpha)
    plan = study.seeds
    return VerdictResult(
        status=_status(rule, deciding),
        rule=rule,
        looks=looks,
        sequential=isinstance(plan, SeedPlan),
        spending=plan.spending if isinstance(plan, SeedPlan) else "",
        grid=study.kind == "grid" and len(study.factors) > 1,
        treatment=treat,
        baseline=base,
        excluded_pairs=excluded,
        divergence=divergence,
    )


def _status(rule: Verdict, deciding: Look | None) -> Status:
    """The verdict: the deciding look's status where it is decisive (NO EFFECT only for a rule against a
    baseline, with an estimate), INCONCLUSIVE otherwise and before the first look."""
    if deciding is None or deciding.status is None:
        return Status.INCONCLUSIVE
    if deciding.status in (Status.SUPPORTED, Status.CONTRADICTED):
        return deciding.status
    if deciding.status == Status.NO_EFFECT and rule.target is None and deciding.estimate is not None:
        return Status.NO_EFFECT
    return Status.INCONCLUSIVE


def is_complete(frame: pd.DataFrame, study: Study) -> bool:
    """Whether a run of the study has nothing left to do: decisive at a look, or every pair finished."""
    if study.kind == "search":
        finished = frame[frame["outcome"].isin(FINISHED_OUTCOMES)] if len(frame) else frame
        per_config = finished.groupby("config_id")["seed"].nunique() if len(finished) else pd.Series([], dtype=int)
        return int((per_config >= len(study.seed_list)).sum()) >= (study.trials or 0)
    result = verdict(frame, study)
    if result is not None and result.deciding is not None and result.deciding.status in DECISIVE:
        return True
    return bool((design_frame(frame, study)["outcome"] != MISSING_RUN).all())
