"""Pure statistics on arrays of per-seed values: paired effects with their intervals, the four-way decision,
divergence rates, Holm's adjustment and the alpha spent at each planned look.

numpy and scipy only: no pandas, no storage, no Optuna. Every estimator takes an array whose last axis is
the paired units (seeds, or (seed, block) pairs) and works on any leading axes at once, so that the
simulation tests run thousands of studies in one call through the very code the verdicts use.

- `paired_t`: mean of the paired differences, Student's interval and test (scipy's `ttest_1samp`).
- `signed_rank`: the Hodges-Lehmann estimate (median of the Walsh averages) with its exact interval,
  and Wilcoxon's signed-rank test read off the same Walsh averages, so the p-value and the interval
  never disagree. Differences may be infinite: a failed run is the worst outcome of its arm.
- `estimate`: the t path, or the rank path when a difference is infinite or all are equal.
- `seed_units`: one unit per seed from a grid's blocks (or a difference of two strata's effects).
- `decisive_p`: the p of the test that decides a rule (two-sided, against a margin, or TOST).
- `decide`: SUPPORTED, CONTRADICTED, NO EFFECT (two one-sided tests) or INCONCLUSIVE from an estimate.
- `spending`: the share of alpha each planned look may spend (Lan & DeMets 1983).

Differences of proportions (divergence rates) are `sweep.rates`'s.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from sweep.lazy import LazyImport
from sweep.vocab import Status

stats = LazyImport("scipy.stats")  # a second or more to import: loaded by the first statistic computed
optimize = LazyImport("scipy.optimize")

NAN = math.nan
POWER = 0.8  # the power at which the minimum detectable effect is quoted
RATE_METHODS = ("rates", "paired rates")  # estimates of a difference of proportions: an exact test decides too
RANK_EFFICIENCY = 3 / math.pi  # the signed-rank test's efficiency relative to the t-test at the normal
EXACT_RANK_MAX_N = 400  # above this, the signed-rank null distribution is its normal approximation
SPENDING = ("obrien-fleming", "pocock")


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


# --- one result type for every estimator ---------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """An effect with its intervals and tests. Each field is an array over the leading axes of the input
    (a float for one study: see `item`). Intervals are two-sided: (1 - alpha) for the direction of the
    effect, (1 - 2 alpha) for the equivalence test (two one-sided tests at alpha each)."""

    method: Any  # "t" (paired or one-sample t), "rank" (signed-rank / Hodges-Lehmann), "rates" (proportions)
    n: Any  # paired units
    effect: Any  # mean difference, Hodges-Lehmann estimate, or difference of proportions
    low: Any  # (1 - alpha) interval of the effect
    high: Any
    eq_low: Any  # (1 - 2 alpha) interval: inside +-min_effect means equivalent (TOST)
    eq_high: Any
    p_greater: Any  # one-sided p-value, H1: effect > 0
    p_less: Any  # one-sided p-value, H1: effect < 0
    statistic: Any  # t, or W+ (Walsh averages above 0), or NaN
    df: Any  # degrees of freedom of t (NaN otherwise)
    standardized: Any  # d_z = mean / sd of the differences (t), or the rank-biserial r in [-1, 1] (rank)
    mde: Any  # minimum detectable effect at this n (80% power, alpha), in the effect's units
    mde_std: Any  # the same, standardized (d_z units; Cohen's h for rates)
    alpha: float

    @property
    def p_two_sided(self) -> Any:
        return np.minimum(1.0, 2 * np.minimum(self.p_greater, self.p_less))

    def item(self) -> Estimate:
        """The estimate of one study, with plain floats (and str/int) for its fields."""
        values = {}
        for f in fields(self):
            value = np.asarray(getattr(self, f.name))
            values[f.name] = value.item() if value.ndim == 0 else value.reshape(-1)[0].item()
        return Estimate(**values)


def _where(mask: np.ndarray, a: Estimate, b: Estimate) -> Estimate:
    """a where mask, else b, field by field."""
    return Estimate(
        **{
            f.name: np.where(mask, getattr(a, f.name), getattr(b, f.name)) if f.name != "alpha" else a.alpha
            for f in fields(Estimate)
        }
    )


def _nan_estimate(shape: tuple[int, ...], n: int, alpha: float, method: str) -> Estimate:
    """Too few units to estimate anything: every number NaN."""
    numbers = {f.name: np.full(shape, NAN) for f in fields(Estimate) if f.name not in ("method", "n", "alpha")}
    return Estimate(method=np.full(shape, method), n=np.full(shape, n), alpha=alpha, **numbers)


# --- power ----------------------------------------------------------------------------------------


def power_t(n: int, effect_std: float, alpha: float) -> float:
    """Power of the paired t-test's directional decision (the (1 - alpha) interval beyond 0 on the side of
    the effect) with n pairs and a true standardized effect d_z: the noncentral t tail."""
    if n < 2:
        return NAN
    df = n - 1
    return float(stats.nct.sf(stats.t.ppf(1 - alpha / 2, df), df, effect_std * math.sqrt(n)))


@lru_cache(maxsize=4096)
def mde_std(n: int, alpha: float, power: float = POWER) -> float:
    """The smallest standardized paired effect d_z detected with `power` at n pairs (inf when n < 2)."""
    if n < 2:
        return math.inf
    high = 1.0
    while power_t(n, high, alpha) < power:  # tiny alphas (an early look) need large effects
        high *= 2
        if high > 1e6:
            return math.inf
    return float(optimize.brentq(lambda d: power_t(n, d, alpha) - power, 0.0, high, xtol=1e-10))


def pairs_for(effect_std: float, alpha: float, power: float = POWER, limit: int = 100_000) -> int | None:
    """The fewest pairs that detect a standardized effect with `power` (None above `limit`)."""
    if not effect_std > 0:
        return None
    high = 2
    while mde_std(high, alpha, power) > effect_std:
        high *= 2
        if high > limit:
            return None
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if mde_std(mid, alpha, power) <= effect_std else (mid, high)
    return high


def _mde_table(n: int, alpha: float, rank: bool, shape: tuple[int, ...]) -> np.ndarray:
    value = mde_std(n, alpha)
    if rank:
        reachable = _rank_k(n, alpha / 2) > 0
        value = value / math.sqrt(RANK_EFFICIENCY) if reachable else math.inf
    return np.full(shape, value)


# --- the paired t path ----------------------------------------------------------------------------


def paired_t(d: Any, *, alpha: float = 0.05) -> Estimate:
    """Student's t on paired differences d (last axis): mean, (1 - alpha) and (1 - 2 alpha) intervals,
    one-sided p-values, d_z = mean / sd, and the minimum detectable effect. NaN when n < 2 or sd = 0
    (`estimate` sends those to the rank path)."""
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    shape = d.shape[:-1]
    if n < 2:
        return _nan_estimate(shape, n, alpha, "t")
    with np.errstate(invalid="ignore", divide="ignore"):
        result = stats.ttest_1samp(d, 0.0, axis=-1)
        low, high = result.confidence_interval(1 - alpha)
        eq_low, eq_high = result.confidence_interval(1 - 2 * alpha)
        mean, sd = d.mean(axis=-1), d.std(axis=-1, ddof=1)
        t, df = np.asarray(result.statistic, dtype=float), np.full(shape, n - 1.0)
        std_effect = mean / sd
    mde = _mde_table(n, alpha, False, shape)
    return Estimate(
        method=np.full(shape, "t"),
        n=np.full(shape, n),
        effect=mean,
        low=np.asarray(low),
        high=np.asarray(high),
        eq_low=np.asarray(eq_low),
        eq_high=np.asarray(eq_high),
        p_greater=stats.t.sf(t, df),
        p_less=stats.t.cdf(t, df),
        statistic=t,
        df=df,
        standardized=std_effect,
        mde=mde * sd,
        mde_std=mde,
        alpha=alpha,
    )


# --- the signed-rank path -------------------------------------------------------------------------


@lru_cache(maxsize=256)
def signed_rank_cdf(n: int) -> np.ndarray:
    """P(T <= t) for t = 0..n(n+1)/2, T the number of positive Walsh averages (Wilcoxon's W+) of n
    differences symmetric about 0 with no ties: exact (a recursion over n) up to EXACT_RANK_MAX_N."""
    m = n * (n + 1) // 2
    if n > EXACT_RANK_MAX_N:
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
        cdf = stats.norm.cdf((np.arange(m + 1) + 0.5 - m / 2) / sd)
    else:
        p = np.zeros(m + 1)
        p[0] = 1.0
        for i in range(1, n + 1):  # rank i is either positive (adds i to W+) or not, each with probability 1/2
            p[i:] = 0.5 * (p[i:] + p[:-i].copy())
            p[:i] *= 0.5
        cdf = np.cumsum(p)
    cdf = np.minimum(cdf, 1.0)
    cdf.setflags(write=False)
    return cdf


def _rank_k(n: int, tail: float) -> int:
    """How many of the smallest Walsh averages the one-sided `tail` may cut: the interval's lower bound is
    the k-th smallest (1-based); 0 means no finite bound exists at this n."""
    return int(np.searchsorted(signed_rank_cdf(n), tail * (1 + 1e-12), side="right"))


def _half_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b) / 2 with inf + -inf = 0: a failure in each arm of opposite sign cancels, as any large
    finite stand-in for 'worst' would."""
    with np.errstate(invalid="ignore"):
        s = (a + b) / 2
    return np.where(np.isnan(s) & ~np.isnan(a) & ~np.isnan(b), 0.0, s)


def walsh_averages(d: Any) -> np.ndarray:
    """(d_i + d_j) / 2 for every i <= j along the last axis, sorted."""
    d = np.asarray(d, dtype=float)
    i, j = np.triu_indices(d.shape[-1])
    return np.sort(_half_sum(d[..., i], d[..., j]), axis=-1)


def signed_rank(d: Any, *, alpha: float = 0.05) -> Estimate:
    """Hodges-Lehmann estimate of paired differences d (last axis; +-inf allowed: a failed run is the worst
    outcome), its exact distribution-free interval, and Wilcoxon's signed-rank test, all from the Walsh
    averages (Tukey's form of the test): W+ counts the averages above 0.

    Ties and zero differences are counted against the alternative (a Walsh average of exactly 0 counts
    as <= 0 for 'greater' and >= 0 for 'less'), which keeps the test valid, conservatively, with ties.
    With too few pairs to reach alpha the interval is (-inf, inf).
    """
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    shape = d.shape[:-1]
    if n < 1:
        return _nan_estimate(shape, n, alpha, "rank")
    walsh = walsh_averages(d)
    m = walsh.shape[-1]
    cdf = signed_rank_cdf(n)
    below_or_zero = (walsh <= 0).sum(axis=-1)
    above_or_zero = (walsh >= 0).sum(axis=-1)
    above = (walsh > 0).sum(axis=-1)
    below = (walsh < 0).sum(axis=-1)

    def interval(tail: float) -> tuple[np.ndarray, np.ndarray]:
        k = _rank_k(n, tail)
        if k == 0:
            return np.full(shape, -math.inf), np.full(shape, math.inf)
        return walsh[..., k - 1], walsh[..., m - k]

    low, high = interval(alpha / 2)
    eq_low, eq_high = interval(alpha)
    median = _half_sum(walsh[..., (m - 1) // 2], walsh[..., m // 2])
    finite_d = np.where(np.isfinite(d), d, np.nan)
    with warnings.catch_warnings():  # rows with fewer than 2 finite differences have no spread: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(finite_d, axis=-1, ddof=1)
    mde = _mde_table(n, alpha, True, shape)
    with np.errstate(invalid="ignore"):
        mde_units = np.where(sd > 0, mde * sd, NAN)
    return Estimate(
        method=np.full(shape, "rank"),
        n=np.full(shape, n),
        effect=median,
        low=low,
        high=high,
        eq_low=eq_low,
        eq_high=eq_high,
        p_greater=cdf[below_or_zero],
        p_less=cdf[above_or_zero],
        statistic=above.astype(float),
        df=np.full(shape, NAN),
        standardized=(above - below) / m,
        mde=mde_units,
        mde_std=mde,
        alpha=alpha,
    )


def estimate(d: Any, *, alpha: float = 0.05, test: str = "t") -> Estimate:
    """Paired differences d (last axis) estimated by the t path, or by the rank path (`signed_rank`) where a
    difference is not finite (a failed run), where every difference is the same up to rounding (no spread
    for t), or always with test="rank"."""
    if test not in ("t", "rank"):
        raise ValueError(f"unknown test {test!r}; expected 't' or 'rank'")
    d = np.asarray(d, dtype=float)
    ranks = signed_rank(d, alpha=alpha)
    if test == "rank" or d.shape[-1] < 2:
        return ranks if d.shape[-1] >= 1 else paired_t(d, alpha=alpha)
    finite_d = np.where(np.isfinite(d), d, 0.0)
    # equal differences, up to floating-point rounding: t has no variance to work with
    no_spread = np.ptp(finite_d, axis=-1) <= 1e-9 * np.abs(finite_d).max(axis=-1)
    use_rank = ~np.isfinite(d).all(axis=-1) | no_spread
    if not use_rank.any():
        return paired_t(d, alpha=alpha)
    # rows on the rank path get placeholder values with spread, so the t path computes without warnings
    placeholder = np.where(use_rank[..., None], np.arange(d.shape[-1], dtype=float), d)
    return _where(use_rank, ranks, paired_t(placeholder, alpha=alpha))


def seed_units(d: Any, *, weights: Any = None) -> np.ndarray:
    """One paired unit per seed from its blocks' differences (last axis: a seed's blocks, e.g. a grid's
    combinations of the other factors; NaN marks a block that is not there): the blocks share the seed's
    luck, so they are one unit, not several independent ones.

    The unit is the weighted mean of the block differences (equal weights by default; weights (1, -1) and
    a sum give a difference of two strata's effects). A failed run makes a block's difference infinite
    (the worst outcome of its arm): where one side's failures outnumber the other's, the unit is that
    side's infinity; where they balance, each failure is matched by one on the other side and those
    blocks tie at 0, as two failed runs in one pair do. A seed with no block present is NaN.
    """
    d = np.asarray(d, dtype=float)
    w = np.ones(d.shape[-1]) if weights is None else np.asarray(weights, dtype=float)
    present = ~np.isnan(d)
    signed = np.where(present, d * np.sign(w), 0.0)  # a term's direction after its weight's sign
    net = (signed == math.inf).sum(axis=-1) - (signed == -math.inf).sum(axis=-1)
    finite_terms = np.where(np.isfinite(d), d * w, 0.0)  # a matched failure contributes 0
    if weights is None:
        count = present.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = finite_terms.sum(axis=-1) / count
    else:
        value = np.where(present.all(axis=-1), finite_terms.sum(axis=-1), NAN)
        count = np.where(present.all(axis=-1), 1, 0)
    value = np.where(net > 0, math.inf, np.where(net < 0, -math.inf, value))
    return np.where(count > 0, value, NAN)


# --- the decision ---------------------------------------------------------------------------------


def decide(
    est: Estimate,
    *,
    direction: str,
    min_effect: float,
    origin: float = 0.0,
    equivalence: bool = True,
) -> np.ndarray:
    """The four-way verdict (an array of Status) from an estimate of treatment minus baseline.

    SUPPORTED: the (1 - alpha) interval lies beyond `origin` in the claimed `direction` ("greater" or
    "less"); CONTRADICTED: beyond it the other way; NO EFFECT (with `equivalence`): the (1 - 2 alpha)
    interval lies inside +-min_effect, i.e. both one-sided tests of the TOST reject at alpha;
    INCONCLUSIVE otherwise. SUPPORTED and CONTRADICTED together happen at most alpha of the time when
    the effect is `origin` (alpha / 2 each). A `rates` estimate also needs Fisher's one-sided p <= alpha / 2
    for a direction, so its interval and its exact test never disagree.

    direction "equivalent" (the claim: no effect as large as min_effect): SUPPORTED when the TOST passes (the
    1 - 2 alpha interval inside +-min_effect: at most alpha of the time when the effect is min_effect);
    CONTRADICTED when the 1 - alpha interval lies beyond +min_effect or below -min_effect (at most alpha / 2
    of the time when the effect is within the margin); INCONCLUSIVE otherwise.
    """
    if direction not in ("greater", "less", "equivalent"):
        raise ValueError(f"direction must be 'greater', 'less' or 'equivalent', but got {direction!r}")
    low, high = np.asarray(est.low, dtype=float), np.asarray(est.high, dtype=float)
    if direction == "equivalent":  # the claim is "no effect as large as min_effect"
        if min_effect <= 0:
            raise ValueError("an equivalence claim needs min_effect > 0")
        inside = (np.asarray(est.eq_low) > -min_effect) & (np.asarray(est.eq_high) < min_effect)
        beyond = (low > min_effect) | (high < -min_effect)
        verdicts = [Status.SUPPORTED.value, Status.CONTRADICTED.value]
        return np.select([inside, beyond], verdicts, Status.INCONCLUSIVE.value)
    above, below = low > origin, high < origin
    if np.any(np.isin(np.asarray(est.method), RATE_METHODS)):
        above &= np.asarray(est.p_greater) <= est.alpha / 2
        below &= np.asarray(est.p_less) <= est.alpha / 2
    supported, contradicted = (above, below) if direction == "greater" else (below, above)
    equivalent = np.zeros_like(supported)
    if equivalence and min_effect > 0:
        equivalent = (np.asarray(est.eq_low) > -min_effect) & (np.asarray(est.eq_high) < min_effect)
    return np.select(
        [supported, contradicted, equivalent],
        [Status.SUPPORTED.value, Status.CONTRADICTED.value, Status.NO_EFFECT.value],
        Status.INCONCLUSIVE.value,
    )


def decisive_p(
    d: Any, *, direction: str, min_effect: float = 0.0, origin: float = 0.0, alpha: float = 0.05, test: str = "t"
) -> np.ndarray:
    """The p-value of the test that decides a rule on paired differences d (last axis), on the scale where it
    is at most alpha exactly when that test rejects (`decide`'s SUPPORTED or CONTRADICTED against `origin`;
    for "equivalent", its SUPPORTED):

    - "greater"/"less": the two-sided p against `origin` (0 for a baseline, target -+ margin for a target
      rule: the one-sided p against the margin, doubled), as the (1 - alpha) interval decides;
    - "equivalent": the larger of the two one-sided p-values against -min_effect and +min_effect (TOST),
      as the (1 - 2 alpha) interval decides.

    Each test shifts the differences by its bound and tests against 0 (the t and rank paths are equivariant
    to a shift), so the same path (t, or ranks where a run failed) decides the p and the interval."""
    d = np.asarray(d, dtype=float)
    if direction == "equivalent":
        above = estimate(d + min_effect, alpha=alpha, test=test).p_greater  # H1: effect > -min_effect
        below = estimate(d - min_effect, alpha=alpha, test=test).p_less  # H1: effect < +min_effect
        return np.maximum(above, below)
    return np.asarray(estimate(d - origin, alpha=alpha, test=test).p_two_sided)


def holm(p: Any) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not part of the family)."""
    p = np.asarray(p, dtype=float)
    adjusted = np.full(p.shape, NAN)
    present = np.flatnonzero(~np.isnan(p))
    if present.size == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    m = order.size
    steps = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


# --- planned looks --------------------------------------------------------------------------------


def spending(alpha: float, fractions: Iterable[float], kind: str = "obrien-fleming") -> np.ndarray:
    """The alpha each look may spend: increments of a Lan-DeMets spending function alpha(t) at the looks'
    information fractions t (seeds at the look / seeds at the last look), summing to alpha.

    "obrien-fleming": alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)), little early, most at the end;
    "pocock": alpha(t) = alpha ln(1 + (e - 1) t), more evenly (Lan & DeMets 1983, Biometrika 70:659).
    Testing each look at its own increment bounds the error over all looks by their sum (Bonferroni),
    whatever the dependence between looks: valid for t and rank tests alike, and conservative.
    """
    t = np.asarray(list(fractions), dtype=float)
    if t.size == 0 or np.any(np.diff(t) <= 0) or t[0] <= 0 or not math.isclose(t[-1], 1.0):
        raise ValueError(f"fractions must increase from above 0 to 1, but got {t.tolist()}")
    if kind == "obrien-fleming":
        cumulative = 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t))
    elif kind == "pocock":
        cumulative = alpha * np.log(1 + (math.e - 1) * t)
    else:
        raise ValueError(f"unknown spending function {kind!r}; expected one of: {', '.join(SPENDING)}")
    cumulative[-1] = alpha
    return np.diff(cumulative, prepend=0.0)


__all__ = [
    "POWER",
    "RATE_METHODS",
    "SPENDING",
    "Estimate",
    "decide",
    "decisive_p",
    "estimate",
    "finite",
    "holm",
    "mde_std",
    "mean_ci",
    "paired_t",
    "pairs_for",
    "power_t",
    "signed_rank",
    "signed_rank_cdf",
    "spending",
    "walsh_averages",
]
