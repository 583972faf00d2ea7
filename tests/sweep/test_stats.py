"""Pure statistics: known answers, scipy agreement, and the guards scipy lacks (no Ray, no storage)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sweep import stats as stats_module

# --- known answers (checked against scipy and hand computation) -----------------------------------


def test_mean_ci_matches_the_textbook_value():
    mean, low, high = stats_module.mean_ci([1, 2, 3, 4, 5])
    # t_{0.975, 4} = 2.776, sd = 1.5811: half-width 2.776 * 1.5811 / sqrt(5) = 1.963
    assert mean == 3.0
    assert high - mean == pytest.approx(1.963, abs=1e-3)
    assert mean - low == pytest.approx(1.963, abs=1e-3)


def test_mean_ci_edge_cases():
    assert all(math.isnan(x) for x in stats_module.mean_ci([]))
    mean, low, high = stats_module.mean_ci([0.7])  # one value: a mean, no interval
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert stats_module.mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)  # zero variance: width 0
    assert stats_module.mean_ci([1.0, float("nan"), 3.0, None])[0] == 2.0  # non-finite values are dropped


def test_welch_matches_a_hand_computed_example():
    # a: mean 2.5, var 5/3; b: mean 7/3, var 1/3. se^2 = (5/3)/4 + (1/3)/3 = 0.527778
    # t = (1/6) / sqrt(0.527778) = 0.229416; df = 0.527778^2 / ((5/12)^2/3 + (1/9)^2/2) = 4.349398
    c = stats_module.welch([1, 2, 3, 4], [2, 2, 3])
    assert c.diff == pytest.approx(1 / 6)
    assert c.statistic == pytest.approx(0.229416, abs=1e-6)
    assert c.df == pytest.approx(4.349398, abs=1e-6)
    half = stats.t.ppf(0.975, c.df) * math.sqrt(0.527778)
    assert (c.low, c.high) == pytest.approx((1 / 6 - half, 1 / 6 + half), abs=1e-5)
    assert c.p_greater + c.p_less == pytest.approx(1.0)
    assert c.p_two_sided == pytest.approx(2 * min(c.p_greater, c.p_less))


def test_welch_agrees_with_scipy_on_a_larger_example():
    a = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
    b = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]
    c = stats_module.welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c.statistic == pytest.approx(ref.statistic) and c.p_two_sided == pytest.approx(ref.pvalue)
    assert c.statistic == pytest.approx(-2.46, abs=0.01) and c.p_two_sided == pytest.approx(0.021, abs=0.001)
    assert c.p_less == pytest.approx(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)
    assert (c.low, c.high) == pytest.approx(tuple(ref.confidence_interval(0.95)))


def test_two_draws_of_one_distribution_show_no_effect():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20), rng.normal(0, 1, 20)
    assert stats_module.welch(a, b).p_two_sided > 0.05
    assert stats_module.mann_whitney(a, b).p_two_sided > 0.05


def test_welch_degenerate_samples():
    same = stats_module.welch([1.0, 1.0, 1.0], [1.0, 1.0])
    assert (same.diff, same.low, same.high, same.p_two_sided) == (0.0, 0.0, 0.0, 1.0)
    exact = stats_module.welch([2.0, 2.0], [1.0, 1.0, 1.0])  # no spread, different means: an exact difference
    assert (exact.low, exact.high, exact.p_greater, exact.p_less) == (1.0, 1.0, 0.0, 1.0)
    single = stats_module.welch([1.0], [1.0, 2.0])  # n < 2: no variance, no test
    assert single.diff == -0.5 and math.isnan(single.low) and math.isnan(single.p_two_sided)


def test_mann_whitney_exact_p_values():
    c = stats_module.mann_whitney([3, 4, 5], [0, 1, 2])
    assert c.p_greater == pytest.approx(0.05)  # 1 / C(6, 3): the smallest p three seeds a side can give
    assert stats_module.min_attainable_p(3, 3) == pytest.approx(0.05)
    assert stats_module.mann_whitney([1, 1, 1], [1, 1, 1]).p_two_sided == 1.0
