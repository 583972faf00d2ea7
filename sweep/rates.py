"""Differences of two proportions (the divergence rates of two levels), on arrays like `sweep.stats`: two
independent samples (Newcombe's hybrid score interval, Fisher's exact test) or runs paired by seed
(Newcombe's paired interval, McNemar's exact test), each an `Estimate` that `stats.decide` reads; and the
smallest change of a rate a study detects. numpy and scipy only."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sweep.lazy import LazyImport
from sweep.stats import NAN, POWER, Estimate

stats = LazyImport("scipy.stats")  # a second or more to import: loaded by the first statistic computed


# --- divergence rates -----------------------------------------------------------------------------


def wilson(x: Any, n: Any, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval of a proportion x / n (vectorised; scipy's binomtest gives it one at a time)."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (x + z * z / 2) / (n + z * z)
        half = z / (n + z * z) * np.sqrt(x * (n - x) / n + z * z / 4)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def fisher_one_sided(x_a: Any, n_a: Any, x_b: Any, n_b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's exact test of the 2x2 table [[x_a, n_a - x_a], [x_b, n_b - x_b]]: (p for rate a > rate b,
    p for rate a < rate b), as hypergeometric tails (vectorised; equal to scipy's fisher_exact one-sided)."""
    x_a, n_a, x_b, n_b = (np.asarray(v) for v in (x_a, n_a, x_b, n_b))
    total, failures = n_a + n_b, x_a + x_b
    greater = stats.hypergeom.sf(x_a - 1, total, failures, n_a)
    less = stats.hypergeom.cdf(x_a, total, failures, n_a)
    return np.minimum(greater, 1.0), np.minimum(less, 1.0)


def fisher_two_sided(x_a: int, n_a: int, x_b: int, n_b: int) -> float:
    """Fisher's exact two-sided p-value (scipy), NaN for an empty arm."""
    if n_a == 0 or n_b == 0:
        return NAN
    return float(stats.fisher_exact([[x_a, n_a - x_a], [x_b, n_b - x_b]]).pvalue)


def rate_mde(p_base: Any, n: Any, alpha: float, *, up: bool = True, power: float = POWER) -> tuple[Any, Any]:
    """(change, h): the smallest change of a rate from `p_base` (up or down) that two arms of n runs detect
    with `power` at two-sided alpha, from Cohen's arcsine effect size h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0))
    and its normal approximation, h = (z_{1 - alpha/2} + z_power) sqrt(2 / n); nan for n = 0."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * np.sqrt(2 / n)
    angle = np.arcsin(np.sqrt(np.asarray(p_base, dtype=float)))
    moved = np.clip(angle + h / 2 if up else angle - h / 2, 0, math.pi / 2)
    return np.abs(np.sin(moved) ** 2 - np.sin(angle) ** 2), h


def rate_difference(x_a: Any, n_a: Any, x_b: Any, n_b: Any, *, alpha: float = 0.05) -> Estimate:
    """Proportion a minus proportion b (say, divergence rates), with Newcombe's hybrid score interval
    (Newcombe 1998, method 10, from Wilson's intervals) and Fisher's exact one-sided p-values. The
    minimum detectable effect is an increase from b's rate (`rate_mde` for a decrease)."""
    x_a, n_a, x_b, n_b = (np.asarray(v, dtype=float) for v in (x_a, n_a, x_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_a - p_b

    def newcombe(confidence: float) -> tuple[np.ndarray, np.ndarray]:
        (l_a, u_a), (l_b, u_b) = wilson(x_a, n_a, confidence), wilson(x_b, n_b, confidence)
        return diff - np.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2), diff + np.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)

    greater, less = fisher_one_sided(x_a.astype(int), n_a.astype(int), x_b.astype(int), n_b.astype(int))
    n = np.minimum(n_a, n_b)
    return _rates_estimate("rates", n, diff, newcombe, (greater, less), np.full(diff.shape, NAN), p_b, alpha)


def mcnemar_one_sided(b: Any, c: Any) -> tuple[np.ndarray, np.ndarray]:
    """McNemar's exact test on the discordant pairs of a paired design: b pairs where only arm a failed, c
    where only arm b did; under equal rates b ~ Binomial(b + c, 1/2). (p for rate a > rate b, p for rate a <
    rate b), vectorised (scipy's binomtest gives them one at a time); 1 with no discordant pair."""
    b, c = np.asarray(b), np.asarray(c)
    m = b + c
    greater = np.where(m > 0, stats.binom.sf(b - 1, m, 0.5), 1.0)
    less = np.where(m > 0, stats.binom.cdf(b, m, 0.5), 1.0)
    return np.minimum(greater, 1.0), np.minimum(less, 1.0)


def paired_rate_difference(both: Any, b: Any, c: Any, n: Any, *, alpha: float = 0.05) -> Estimate:
    """Rate a minus rate b over n pairs (say, divergence rates of two levels sharing their seeds), from the
    pairs where both arms failed (`both`), only a (`b`) and only b (`c`): Newcombe's hybrid score interval for
    paired data (Newcombe 1998, "Improved confidence intervals for the difference between binomial
    proportions based on paired data", method 10: Wilson's intervals of each rate, combined with the pairs'
    correlation) and McNemar's exact one-sided p-values. Fisher's test and `rate_difference` treat the arms
    as independent samples, which paired runs are not; the minimum detectable effect is `rate_difference`'s."""
    both, b, c, n = (np.asarray(v, dtype=float) for v in (both, b, c, n))
    neither = n - both - b - c
    with np.errstate(invalid="ignore", divide="ignore"):
        p_a, p_b = (both + b) / n, (both + c) / n
        product = (both + b) * (neither + c) * (both + c) * (neither + b)
        excess = both * neither - b * c
        # the correlation of the two arms' failures, continuity-corrected where it is positive (method 10)
        phi = np.where(excess > 0, np.maximum(excess - n / 2, 0), excess) / np.sqrt(product)
        phi = np.where(product > 0, phi, 0.0)
    diff = p_a - p_b

    def newcombe(confidence: float) -> tuple[np.ndarray, np.ndarray]:
        (l_a, u_a), (l_b, u_b) = wilson(both + b, n, confidence), wilson(both + c, n, confidence)
        down = (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2
        up = (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2
        return diff - np.sqrt(np.maximum(down, 0)), diff + np.sqrt(np.maximum(up, 0))

    greater, less = mcnemar_one_sided(b.astype(int), c.astype(int))
    return _rates_estimate("paired rates", n, diff, newcombe, (greater, less), b - c, p_b, alpha)


def _rates_estimate(
    method: str,
    n: np.ndarray,
    diff: np.ndarray,
    interval: Any,
    p_values: tuple[np.ndarray, np.ndarray],
    statistic: np.ndarray,
    p_base: np.ndarray,
    alpha: float,
) -> Estimate:
    """A difference of rates as an Estimate: its (1 - alpha) and (1 - 2 alpha) intervals from `interval`
    (confidence -> (low, high)), its one-sided p-values (greater, less), and the MDE as an increase from
    `p_base`."""
    (low, high), (eq_low, eq_high) = interval(1 - alpha), interval(1 - 2 * alpha)
    nan = np.full(diff.shape, NAN)
    mde, h = rate_mde(p_base, n, alpha)
    return Estimate(
        method=np.full(diff.shape, method),
        n=n,
        effect=diff,
        low=low,
        high=high,
        eq_low=eq_low,
        eq_high=eq_high,
        p_greater=p_values[0],
        p_less=p_values[1],
        statistic=statistic,
        df=nan,
        standardized=nan,
        mde=mde,
        mde_std=h,
        alpha=alpha,
    )


__all__ = [
    "fisher_one_sided",
    "fisher_two_sided",
    "mcnemar_one_sided",
    "paired_rate_difference",
    "rate_difference",
    "rate_mde",
    "wilson",
]
