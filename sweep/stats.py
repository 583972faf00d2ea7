"""Pure statistics on arrays of per-seed values: intervals and two-sample and one-sample tests.

numpy and scipy only: no pandas, no storage, no Optuna. scipy computes every test and interval;
this module adds the guards scipy lacks (too few values, zero variance, non-finite values) and one
result type, `Comparison`, that carries the difference, its interval and the p-values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

NAN = math.nan
TESTS = {"welch": "Welch's t-test", "mannwhitney": "Mann-Whitney U test"}  # two levels compared
ONE_SAMPLE_TESTS = {"welch": "one-sample t-test", "mannwhitney": "Wilcoxon signed-rank test"}  # vs a target


def finite(values: Iterable[Any]) -> np.ndarray:
    """The finite values as floats; None, NaN and infinities are dropped."""
    array = np.array([NAN if v is None else v for v in values], dtype=float)
    return array[np.isfinite(array)]


def mean_ci(values: Iterable[Any], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t confidence interval of the mean; NaN bounds when n < 2.

    Identical values give an interval of width 0; non-finite values are dropped first.
    """
    x = finite(values)
    if len(x) == 0:
        return NAN, NAN, NAN
    mean = float(x.mean())
    if len(x) < 2:
        return mean, NAN, NAN
    if np.ptp(x) == 0:  # scipy's interval is NaN here; every run gave the same number
        return mean, mean, mean
    low, high = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return mean, float(low), float(high)


@dataclass(frozen=True)
class Comparison:
    """Values a (treatment) against b (baseline), or against a number. diff = mean(a) - mean(b)."""

    test: str  # "welch" | "mannwhitney"; against a number: "student" | "wilcoxon"
    n_a: int
    n_b: int  # 0 against a number
    diff: float
    low: float  # confidence interval of diff (Welch's, or Student's against a number, for either test)
    high: float
    statistic: float  # t, Mann-Whitney's U of a, or Wilcoxon's W
    df: float  # degrees of freedom of a t statistic (NaN for rank tests)
    p_two_sided: float
    p_greater: float  # one-sided, H1: a > b
    p_less: float  # one-sided, H1: a < b

    def p(self, alternative: str = "two-sided") -> float:
        """The p-value for 'two-sided', 'greater' (a > b) or 'less' (a < b)."""
        return {"two-sided": self.p_two_sided, "greater": self.p_greater, "less": self.p_less}[alternative]

    @property
    def test_name(self) -> str:
        names = {"student": ONE_SAMPLE_TESTS["welch"], "wilcoxon": ONE_SAMPLE_TESTS["mannwhitney"]}
        return {**TESTS, **names}[self.test]


def _untestable(test: str, n_a: int, n_b: int, diff: float) -> Comparison:
    return Comparison(test, n_a, n_b, diff, NAN, NAN, NAN, NAN, NAN, NAN, NAN)


def _exact(test: str, n_a: int, n_b: int, diff: float) -> Comparison:
    """No spread at all: the difference is known exactly, and is either zero or not."""
    if diff == 0:
        return Comparison(test, n_a, n_b, 0.0, 0.0, 0.0, 0.0, NAN, 1.0, 1.0, 1.0)
    greater = 0.0 if diff > 0 else 1.0
    return Comparison(test, n_a, n_b, diff, diff, diff, math.copysign(math.inf, diff), NAN, 0.0, greater, 1 - greater)


def _t_test(test: str, n_a: int, n_b: int, result: Any, diff: float, confidence: float, shift: float = 0.0):
    """A Comparison from a scipy t-test result (two-sided); one-sided p-values from the same t and df."""
    low, high = result.confidence_interval(confidence)
    t, df = float(result.statistic), float(result.df)
    return Comparison(
        test,
        n_a,
        n_b,
        diff,
        float(low) - shift,
        float(high) - shift,
        t,
        df,
        p_two_sided=float(result.pvalue),
        p_greater=float(stats.t.sf(t, df)),
        p_less=float(stats.t.cdf(t, df)),
    )


def welch(a: Iterable[Any], b: Iterable[Any], *, confidence: float = 0.95) -> Comparison:
    """Welch's t-test of mean(a) - mean(b), with the difference's confidence interval.

    n < 2 in either sample gives NaN (no variance estimate). Zero variance in both: equal means give
    t = 0 and p = 1 with a CI of width 0; different means give p = 0 (the difference is exact).
    """
    x, y = finite(a), finite(b)
    diff = float(x.mean() - y.mean()) if len(x) and len(y) else NAN
    if len(x) < 2 or len(y) < 2:
        return _untestable("welch", len(x), len(y), diff)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return _exact("welch", len(x), len(y), diff)
    return _t_test("welch", len(x), len(y), stats.ttest_ind(x, y, equal_var=False), diff, confidence)


def mann_whitney(a: Iterable[Any], b: Iterable[Any], *, confidence: float = 0.95) -> Comparison:
    """Mann-Whitney U test of a against b (exact for small samples without ties); diff and CI as Welch's."""
    x, y = finite(a), finite(b)
    base = replace(welch(x, y, confidence=confidence), test="mannwhitney", df=NAN)
    if len(x) < 1 or len(y) < 1:
        return replace(base, statistic=NAN)
    if np.ptp(np.concatenate([x, y])) == 0:  # every value the same: no evidence either way
        return replace(base, statistic=len(x) * len(y) / 2, p_two_sided=1.0, p_greater=1.0, p_less=1.0)
    p = {alt: float(stats.mannwhitneyu(x, y, alternative=alt).pvalue) for alt in ("two-sided", "greater", "less")}
    u = float(stats.mannwhitneyu(x, y, alternative="two-sided").statistic)
    return replace(base, statistic=u, p_two_sided=p["two-sided"], p_greater=p["greater"], p_less=p["less"])


def compare(a: Iterable[Any], b: Iterable[Any], *, test: str = "welch", confidence: float = 0.95) -> Comparison:
    """`welch` or `mann_whitney` by name."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of: {', '.join(TESTS)}")
    return (welch if test == "welch" else mann_whitney)(a, b, confidence=confidence)


def one_sample(values: Iterable[Any], target: float, *, test: str = "welch", confidence: float = 0.95) -> Comparison:
    """values against a fixed number: Student's one-sample t-test ("welch") or Wilcoxon's signed-rank test
    ("mannwhitney", its rank counterpart). diff = mean - target, with the Student interval."""
    x = finite(values)
    kind = "student" if test == "welch" else "wilcoxon"
    diff = float(x.mean()) - target if len(x) else NAN
    if len(x) < 2:
        return _untestable(kind, len(x), 0, diff)
    if kind == "student":
        if np.ptp(x) == 0:  # every run gave the same value: the difference is exact
            return _exact(kind, len(x), 0, diff)
        return _t_test(kind, len(x), 0, stats.ttest_1samp(x, target), diff, confidence, shift=target)
    student = one_sample(x, target, test="welch", confidence=confidence)
    if np.all(x == target):
        return replace(student, test=kind, statistic=NAN, df=NAN, p_two_sided=1.0, p_greater=1.0, p_less=1.0)
    p = {alt: float(stats.wilcoxon(x - target, alternative=alt).pvalue) for alt in ("two-sided", "greater", "less")}
    w = float(stats.wilcoxon(x - target).statistic)
    return replace(
        student, test=kind, statistic=w, df=NAN, p_two_sided=p["two-sided"], p_greater=p["greater"], p_less=p["less"]
    )


def min_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney test can give with these sample sizes."""
    return 1.0 / math.comb(n_a + n_b, n_a) if n_a and n_b else 1.0


__all__ = [
    "ONE_SAMPLE_TESTS",
    "TESTS",
    "Comparison",
    "compare",
    "finite",
    "mann_whitney",
    "mean_ci",
    "min_attainable_p",
    "one_sample",
    "welch",
]
