"""A verdict in words: the sentence that says why, the numbers one fact a line, the one-line summary and
the notes a reader must know. The analysis decides (`analysis.VerdictResult` holds the status and every
number); each sentence about a verdict is written here, for the terminal, the notes and the reports."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweep.spec import DIVERGED, format_value
from sweep.stats import RATE_METHODS
from sweep.vocab import DECISIVE, Size, Status, counts, interval, is_missing, num, p_value, signed

if TYPE_CHECKING:
    from sweep.analysis import ArmCounts, Look, VerdictResult
    from sweep.spec import Verdict
    from sweep.stats import Estimate

_METHODS = {
    ("t", False): "paired t-test on the per-pair differences",
    ("rank", False): "Wilcoxon signed-rank test on the per-pair differences (Hodges-Lehmann estimate, exact interval)",
    ("t", True): "one-sample t-test",
    ("rank", True): "Wilcoxon signed-rank test, one sample (Hodges-Lehmann estimate, exact interval)",
    ("rates", False): "difference of failure rates: Newcombe's interval and Fisher's exact test",
    ("paired rates", False): (
        "difference of failure rates over runs paired by seed: Newcombe's paired interval and McNemar's exact test"
    ),
}


def message(result: VerdictResult) -> str:
    """One sentence: why the verdict is what it is."""
    rule, looks, deciding = result.rule, result.looks, result.deciding
    if deciding is None:
        first = looks[0]
        return (
            f"no look taken yet: the first look ({first.seeds} seeds per configuration) waits for "
            f"{first.missing} pairs to finish"
        )
    if result.status != Status.INCONCLUSIVE:
        return _decided(rule, deciding)
    pending = looks[-1] if looks[-1].status is None else None
    later = f"; the next look ({pending.seeds} seeds) waits for {pending.missing} pairs" if pending else ""
    return _undecided(rule, deciding) + later


def _decided(rule: Verdict, deciding: Look) -> str:
    """Why a decisive look decided as it did."""
    status, e = deciding.status, deciding.estimate
    what, treat, base = _compared(rule)
    ci = f"{_ci_label(deciding.alpha)} {interval(e.low, e.high)}" if e is not None else ""
    if rule.target is not None:
        margin = -rule.min_effect if rule.direction == "greater" else rule.min_effect
        words = "not below" if rule.direction == "greater" else "not above"
        bound = f"{num(rule.target + margin)} (target {num(rule.target)}, margin {num(rule.min_effect)})"
        if status == Status.SUPPORTED:
            return f"{what} at {treat} is {words} {bound}: the {ci} of mean - target lies beyond {num(margin)}"
        return (
            f"{what} at {treat} misses {bound}, against the claim: the {ci} of mean - target lies beyond "
            f"{num(margin)} the other way"
        )
    equivalence = f"{_ci_label(2 * deciding.alpha)} {interval(e.eq_low, e.eq_high)}" if e is not None else ""
    if rule.direction == "equivalent" and status == Status.SUPPORTED and e is not None:
        return (
            f"{what} is the same at {treat} and {base} within min_effect {num(rule.min_effect)}, as claimed: the "
            f"{equivalence} lies inside +-{num(rule.min_effect)}"
        )
    if rule.direction == "equivalent" and status == Status.CONTRADICTED:
        return (
            f"{what} differs between {treat} and {base} by more than min_effect {num(rule.min_effect)}, against "
            f"the claim: the {ci} of the effect lies beyond +-{num(rule.min_effect)}"
        )
    claimed = "higher" if rule.direction == "greater" else "lower"
    opposite = "lower" if rule.direction == "greater" else "higher"
    if status == Status.SUPPORTED:
        return f"{what} is {claimed} at {treat} than at {base}: the {ci} of the effect lies beyond 0"
    if status == Status.CONTRADICTED:
        return (
            f"{what} is {opposite} at {treat} than at {base}, against the claim: the {ci} of the effect lies "
            "beyond 0 the other way"
        )
    return (
        f"{what} is the same at {treat} and {base} within min_effect {num(rule.min_effect)}: the "
        f"{equivalence} lies inside +-{num(rule.min_effect)}"
    )


def _compared(rule: Verdict) -> tuple[str, str, str]:
    """(what is compared, the level where the claim expects it larger or smaller, the level it is compared
    with): the metric at two levels of the factor, or for an interaction the factor's effect at two levels
    of the other factor."""
    treat, base = f"{rule.factor}={format_value(rule.treatment)}", f"{rule.factor}={format_value(rule.baseline)}"
    inter = rule.interaction
    if inter is None:
        return ("the divergence rate" if rule.metric == DIVERGED else rule.metric), treat, base
    where = (f"{inter.factor}={format_value(level)}" for level in (inter.level, inter.against))
    return f"the change in {rule.metric} from {base} to {treat}", *where


def _undecided(rule: Verdict, deciding: Look) -> str:
    """Why a look that was taken could not decide (without the wait for the next look)."""
    e = deciding.estimate
    if deciding.reason:
        return deciding.reason
    if e is not None and e.method not in RATE_METHODS and math.isinf(e.mde_std):
        return (
            f"the signed-rank test cannot reach alpha {num(deciding.alpha, 3)} with {deciding.pairs} pairs "
            f"(its smallest p is 2^-{deciding.pairs}): plan more seeds"
        )
    ci = f"{_ci_label(deciding.alpha)} {interval(e.low, e.high)}" if e is not None else ""
    if rule.direction == "equivalent" and e is not None:
        return (
            f"the {_ci_label(2 * deciding.alpha)} {interval(e.eq_low, e.eq_high)} reaches beyond +-min_effect "
            f"{num(rule.min_effect)} and the {ci} does not lie beyond it"
        )
    reach = ""
    if rule.min_effect > 0 and rule.target is None:
        reach = f" and reaches beyond +-min_effect {num(rule.min_effect)}"
    mde = ""
    if e is not None and e.method not in RATE_METHODS and not is_missing(e.mde):
        mde = f"; the smallest effect {deciding.pairs} pairs detect with 80% power is {num(e.mde, 3)}"
    zero = "0" if rule.target is None else "the margin"
    return f"the {ci} includes {zero}{reach}{mde}"


def summary(result: VerdictResult) -> str:
    """Effect, interval, MDE and n in one line (for `sweep claims`, comparisons and replications)."""
    e = result.estimate
    if e is None:
        return f"n {result.n}"
    size = f"; {result.size}" if result.size else ""
    return (
        f"effect {signed(e.effect)}, {_ci_label(result.alpha)} {interval(e.low, e.high)}, MDE {num(e.mde, 3)}, "
        f"n {result.n}{size}"
    )


def arm_text(arm: ArmCounts) -> str:
    """One compared level's runs: how many, their mean, which failed and which were left out."""
    worst = counts(arm.failed, ()) if any(arm.failed.values()) else ""
    out = counts(arm.excluded, ()) if any(arm.excluded.values()) else ""
    if arm.rates:
        parts = [f"{arm.runs} runs", worst or "none failed"]
        return ", ".join(parts + ([f"{out} (left out)"] if out else []))
    parts = [f"{arm.runs} runs", f"mean {num(arm.mean)} over {arm.ok} with a value"]
    parts += [f"{worst} (counted as the worst outcome)"] if worst else []
    parts += [f"{out} (left out)"] if out else []
    return ", ".join(parts)


def method(result: VerdictResult) -> str:
    """The test that decided, in full ("" before an estimate)."""
    e = result.estimate
    return "" if e is None else _METHODS[(e.method, result.rule.target is not None)]


def notes(result: VerdictResult) -> list[str]:
    """What a reader of the verdict must know beyond its numbers: why ranks decided, an effect too small to
    matter, a rule that cannot decide NO EFFECT."""
    rule, e, failed = result.rule, result.estimate, result.failed
    found = []
    if e is not None and e.method == "rank" and failed and rule.metric != DIVERGED:
        runs = "1 run" if failed == 1 else f"{failed} runs"
        found.append(
            f"{runs} failed (diverged, non-finite, censored at the budget or pruned): a failure is the worst outcome "
            "of its arm, so the "
            "signed-rank test decides, not the t-test"
        )
    if result.size == Size.SMALLER:
        found.append(f"the effect is real but smaller than min_effect {num(rule.min_effect)}: it may not matter")
    if rule.min_effect == 0 and rule.target is None:
        found.append("min_effect is 0 (a rule stored before it was required): NO EFFECT cannot be decided")
    return found


def lines(result: VerdictResult) -> list[str]:
    """The numbers, one fact a line (for the terminal, notes and reports)."""
    r, e = result.rule, result.estimate
    out = [_claim_line(result)]
    if result.baseline is not None:
        out.append(f"{result.baseline.label} (baseline): {arm_text(result.baseline)}")
    out.append(f"{result.treatment.label} (treatment): {arm_text(result.treatment)}")
    if e is not None:
        std = _standardized(e)
        out.append(
            f"{_effect_label(e, r)}: {signed(e.effect)}, {_ci_label(result.alpha)} {interval(e.low, e.high)}"
            + (f"; {std}" if std else "")
        )
        out.append(f"{method(result)}: {_p_text(result)} (alpha {num(result.alpha, 3)})")
        if result.size:
            out.append(_size_line(result))
        if r.target is None and r.min_effect > 0:
            out.append(
                f"equivalence (two one-sided tests at alpha {num(result.alpha, 3)}): "
                f"{_ci_label(2 * result.alpha)} {interval(e.eq_low, e.eq_high)} against +-{num(r.min_effect)}"
            )
        out.append(_mde_line(result, e))
    if result.divergence is not None and r.metric != DIVERGED:
        out.append(_divergence_line(result, result.divergence))
    if result.sequential:
        out.append(_looks_line(result))
    if any(result.excluded_pairs.values()):
        out.append(f"left out: {counts(result.excluded_pairs, ())} (pairs with a run that is not an outcome)")
    return out + notes(result)


def _p_text(result: VerdictResult) -> str:
    """The deciding test's p, named for what it tests (`VerdictResult.p`)."""
    rule, e = result.rule, result.estimate
    if rule.direction == "equivalent":
        return f"TOST p {p_value(result.p)} (the larger one-sided p, against +-{num(rule.min_effect)})"
    if rule.target is not None and rule.min_effect > 0:
        bound = rule.target - rule.min_effect if rule.direction == "greater" else rule.target + rule.min_effect
        return f"two-sided p {p_value(result.p)} against the margin {num(bound)} (target {num(rule.target)})"
    return f"{_statistic(e)}two-sided p {p_value(result.p)}"


def _size_line(result: VerdictResult) -> str:
    """Whether the decided effect is as large as the claim says matters."""
    e, m = result.estimate, num(result.rule.min_effect)
    ci = f"the {_ci_label(result.alpha)} {interval(e.low, e.high)}"
    how = {
        Size.AT_LEAST: f"{ci} lies beyond +-{m}",
        Size.MAY_BE_SMALLER: f"{ci} reaches inside +-{m}",
        Size.SMALLER: f"{ci} lies inside +-{m}",
    }[result.size]
    return f"size: {result.size} {m}: {how}"


def _claim_line(result: VerdictResult) -> str:
    r = result.rule
    treat = f"{r.factor}={format_value(r.treatment)}"
    where = ", ".join(f"{k}={format_value(v)}" for k, v in r.where.items())
    only = f"; only trials with {where}" if where else ""
    what = "divergence rate" if r.metric == DIVERGED else r.metric
    if r.target is not None:
        bound = r.target - r.min_effect if r.direction == "greater" else r.target + r.min_effect
        sign = ">=" if r.direction == "greater" else "<="
        return (
            f"claim: {what} at {treat} {sign} {num(r.target)} (non-inferiority margin {num(r.min_effect)}: "
            f"decided against {num(bound)}); alpha {num(r.alpha)}{only}"
        )
    sign = {"greater": ">", "less": "<", "equivalent": f"within +-{num(r.min_effect)} of that"}[r.direction]
    paired = (
        "paired by seed within each combination of the other factors, a seed's combinations one unit"
        if result.grid
        else "paired by seed"
    )
    if r.interaction is not None:
        what, level, against = _compared(r)
        return (
            f"claim: {what} at {level} {sign} at {against} (an interaction; per seed, the effect at {level} minus "
            f"the effect at {against}); {paired}; alpha {num(r.alpha)}, min_effect {num(r.min_effect)}{only}"
        )
    return (
        f"claim: {what} at {treat} {sign} at {r.factor}={format_value(r.baseline)}; {paired}; alpha "
        f"{num(r.alpha)}, min_effect {num(r.min_effect)}{only}"
    )


def _mde_line(result: VerdictResult, e: Estimate) -> str:
    n, alpha = result.n, result.alpha
    if e.method in RATE_METHODS:
        return (
            f"minimum detectable effect at n = {n} (80% power, alpha {num(alpha, 3)}, arcsine "
            f"approximation): a rate {num(e.mde, 3)} away from the baseline's {num(result.baseline_rate, 3)} "
            f"(Cohen's h {num(e.mde_std, 3)})"
        )
    if math.isinf(e.mde_std):
        return (
            f"minimum detectable effect: none at n = {n}: the signed-rank test cannot reach alpha "
            f"{num(alpha, 3)} with so few pairs (its smallest p is 2^-{n}); plan more seeds"
        )
    line = (
        f"minimum detectable effect at n = {n} (80% power, alpha {num(alpha, 3)}): {num(e.mde, 3)} "
        f"(d_z {num(e.mde_std, 3)})"
    )
    if e.method == "rank":
        line += ", approximate: the t-test's times sqrt(pi/3)"
    needed = result.pairs_needed
    if needed and needed > n:
        line += f"; about {needed} pairs would detect min_effect {num(result.rule.min_effect)}"
    return line


def _divergence_line(result: VerdictResult, d: Estimate) -> str:
    arms = [result.treatment] + ([result.baseline] if result.baseline else [])
    rates = ", ".join(f"{a.label} {sum(a.failed.values())}/{a.outcomes}" for a in arms)
    test = (
        "McNemar's exact test on the pairs where one run failed"
        if d.method == "paired rates"
        else "Fisher's exact test"
    )
    return f"failed runs (the worst outcome): {rates}; {test}, two-sided p {p_value(d.p_two_sided)}"


def _looks_line(result: VerdictResult) -> str:
    parts = []
    for look in result.looks:
        if look.status is None:
            parts.append(f"{look.seeds} seeds: waiting for {look.missing} pairs")
        else:
            parts.append(f"{look.seeds} seeds (alpha {num(look.alpha, 2)}): {look.status}")
    deciding = result.deciding
    stopped = deciding is not None and deciding.status in DECISIVE and result.looks[-1] is deciding
    return f"looks ({result.spending} spending): " + "; ".join(parts) + ("; stopped: decisive" if stopped else "")


def _ci_label(alpha: float) -> str:
    return f"{100 * (1 - alpha):.4g}% CI"


def _effect_label(e: Estimate, rule: Verdict) -> str:
    if e.method in RATE_METHODS:
        return "difference of divergence rates (treatment - baseline)"
    if rule.target is not None:
        return "mean - target" if e.method == "t" else "Hodges-Lehmann estimate - target"
    return "mean paired difference (treatment - baseline)" if e.method == "t" else "Hodges-Lehmann paired difference"


def _standardized(e: Estimate) -> str:
    if is_missing(e.standardized) or e.method in RATE_METHODS:
        return ""
    return f"d_z {num(e.standardized, 3)}" if e.method == "t" else f"rank-biserial r {num(e.standardized, 3)}"


def _statistic(e: Estimate) -> str:
    if e.method == "t":
        return f"t = {num(e.statistic, 3)}, df {num(e.df)}, "
    if e.method == "rank":
        return f"W+ = {num(e.statistic)} of {e.n * (e.n + 1) // 2} Walsh averages, "
    return ""


__all__ = ["arm_text", "lines", "message", "method", "notes", "summary"]
