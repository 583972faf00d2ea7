"""Error rates and power of the verdicts, by simulation: the numbers `tests/sweep/test_stats.py` checks,
at a larger number of simulated studies, printed as a table.

Each row simulates S studies through the same vectorised functions the verdicts use (`sweep.stats`) and
prints the measured rate, what the method promises, and three binomial standard errors of the measured
rate. No training, no storage: a few seconds on one core.

    python benchmarks/verdict_calibration.py            # S = 20000
    python benchmarks/verdict_calibration.py --studies 100000 --seed 1
    python benchmarks/verdict_calibration.py --json     # {studies, seed, rows: [{name, measured, se, ...}]}
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
from scipy import integrate, stats

from sweep import rates as rt
from sweep import stats as st
from sweep.vocab import Status

ALPHA = 0.05
LOOKS = [4, 8, 16, 32]
DECISIVE = [s.value for s in (Status.SUPPORTED, Status.CONTRADICTED, Status.NO_EFFECT)]
DIRECTIONAL = [Status.SUPPORTED.value, Status.CONTRADICTED.value]


def null_pairs(rng: np.random.Generator, studies: int, n: int) -> np.ndarray:
    """Differences of identical arms sharing each seed's luck."""
    luck = rng.normal(0, 2, (studies, n))
    return (luck + rng.normal(0, 1, (studies, n))) - (luck + rng.normal(0, 1, (studies, n)))


def failing_pairs(rng: np.random.Generator, studies: int, n: int, p_fail: float) -> np.ndarray:
    """Differences of identical heavy-tailed (t, 3 df) arms whose runs fail with p_fail (worst: -inf)."""
    a = np.where(rng.random((studies, n)) < p_fail, -np.inf, rng.standard_t(3, (studies, n)))
    b = np.where(rng.random((studies, n)) < p_fail, -np.inf, rng.standard_t(3, (studies, n)))
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(a) & np.isinf(b), 0.0, a - b)


def sequential(d: np.ndarray, alphas: list[float]) -> np.ndarray:
    final = np.full(len(d), Status.INCONCLUSIVE.value, dtype=object)
    undecided = np.ones(len(d), bool)
    for n, a in zip(LOOKS, alphas, strict=True):
        decision = st.decide(st.estimate(d[:, :n], alpha=a), direction="greater", min_effect=0.5)
        decided = undecided & np.isin(decision, DECISIVE)
        final[decided] = decision[decided]
        undecided &= ~decided
    return final


def expected_no_effect(n: int, m: float) -> float:
    """P(NO EFFECT) for paired differences N(0, 1), n pairs, margin m: the TOST passes and the 1 - alpha
    interval holds 0, i.e. |mean| < min(m - c1 s / sqrt(n), c2 s / sqrt(n)), integrated over s."""
    c1, c2 = stats.t.ppf(1 - ALPHA, n - 1), stats.t.ppf(1 - ALPHA / 2, n - 1)

    def given_sd(s: float) -> float:
        bound = min(m - c1 * s / math.sqrt(n), c2 * s / math.sqrt(n))
        inside = max(0.0, 2 * stats.norm.cdf(bound * math.sqrt(n)) - 1)
        return inside * stats.chi.pdf(s * math.sqrt(n - 1), n - 1) * math.sqrt(n - 1)

    return integrate.quad(given_sd, 0, 3)[0]


def rows_for(studies: int, seed: int) -> list[dict]:
    """Every calibration row: {name, measured, se, promise, bound, value}: `bound` says how `measured` must
    compare with `value` ("max": at most, "min": at least, "equal": within 3 SE either way), `promise` in words."""
    rng, s = np.random.default_rng(seed), studies
    rows: list[dict] = []

    def row(name: str, measured: float, bound: str, value: float, promise: str) -> None:
        se = math.sqrt(max(measured * (1 - measured), 1e-12) / s)
        rows.append({"name": name, "measured": measured, "se": se, "promise": promise, "bound": bound, "value": value})

    def directional(decisions: np.ndarray) -> float:
        return float(np.isin(decisions, DIRECTIONAL).mean())

    def verdicts(d: np.ndarray, **kw: float) -> np.ndarray:
        return st.decide(st.estimate(d, **kw), direction="greater", min_effect=0.5)

    row(
        "null, 16 pairs, t path: SUPPORTED or CONTRADICTED",
        directional(verdicts(null_pairs(rng, s, 16))),
        "max",
        ALPHA,
        f"<= {ALPHA}",
    )
    failing = failing_pairs(rng, s, 16, 0.25)
    row("null, 16 pairs, 25% of runs fail (rank path)", directional(verdicts(failing)), "max", ALPHA, f"<= {ALPHA}")
    for kind in ("obrien-fleming", "pocock"):
        alphas = list(st.spending(ALPHA, [n / LOOKS[-1] for n in LOOKS], kind))
        looks = directional(sequential(null_pairs(rng, s, 32), alphas))
        row(f"null, looks 4-8-16-32, {kind}", looks, "max", ALPHA, f"<= {ALPHA}")
        with_failures = directional(sequential(failing_pairs(rng, s, 32, 0.2), alphas))
        row(f"null, looks 4-8-16-32, {kind}, 20% fail", with_failures, "max", ALPHA, f"<= {ALPHA}")
    peeking = directional(sequential(null_pairs(rng, s, 32), [ALPHA] * len(LOOKS)))
    row("null, looks 4-8-16-32 at full alpha (peeking)", peeking, "min", ALPHA, "> alpha: the control")
    effect = null_pairs(rng, s, 16) / math.sqrt(2) + 1.0
    predicted = st.power_t(16, 1.0, ALPHA)
    supported = float((verdicts(effect) == Status.SUPPORTED.value).mean())
    row("d_z = 1, 16 pairs: SUPPORTED (power)", supported, "equal", predicted, f"{predicted:.4f} (noncentral t)")
    zero = rng.normal(0, 1, (s, 64))
    no_effect = float((verdicts(zero) == Status.NO_EFFECT.value).mean())
    expected = expected_no_effect(64, 0.5)
    row(
        "effect 0, sd 1, 64 pairs, min_effect 0.5: NO EFFECT",
        no_effect,
        "equal",
        expected,
        f"{expected:.4f} (integrated)",
    )
    margin = st.estimate(zero + 0.5)
    tost = float(np.mean((margin.eq_low > -0.5) & (margin.eq_high < 0.5)))
    row("effect = min_effect, 64 pairs: TOST passes (its size)", tost, "max", ALPHA, f"<= {ALPHA}")
    x_a, x_b = rng.binomial(16, 0.3, s), rng.binomial(16, 0.3, s)
    rates = st.decide(rt.rate_difference(x_a, 16, x_b, 16), direction="less", min_effect=0.2)
    row("equal divergence rates 0.3, 16 runs each: directional", directional(rates), "max", ALPHA, f"<= {ALPHA}")
    values = rng.normal(0.93, 0.03, (s, 12)) - 0.95
    inferior = st.decide(st.estimate(values), direction="greater", min_effect=0.02, origin=-0.02, equivalence=False)
    row(
        "target 0.95 - 0.02 exactly, 12 runs: SUPPORTED",
        float((inferior == "SUPPORTED").mean()),
        "max",
        ALPHA / 2,
        f"<= {ALPHA / 2}",
    )
    rows += _claim_p_rows(rng, s)
    rows += _paired_rate_rows(rng, s)
    rows += _censored_rows(rng, s)
    rows += _grid_rows(rng, s)
    return rows


def grid_differences(rng: np.random.Generator, studies: int, n: int, blocks: int, p_fail: float = 0.0) -> np.ndarray:
    """Null differences of a grid, (studies, n seeds, blocks): the treatment's effect differs from seed to
    seed (N(0, 1), the same in every block of the seed) around a mean of 0, plus each run's own noise; runs
    fail with p_fail (the worst outcome, -inf; two in one pair tie at 0)."""
    seed_effect = rng.normal(0, 1, (studies, n, 1))
    t = seed_effect + rng.normal(0, 0.5, (studies, n, blocks))
    b = rng.normal(0, 0.5, (studies, n, blocks))
    t = np.where(rng.random(t.shape) < p_fail, -np.inf, t)
    b = np.where(rng.random(b.shape) < p_fail, -np.inf, b)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(t) & np.isinf(b), 0.0, t - b)


def _grid_rows(rng: np.random.Generator, s: int) -> list[dict]:
    """A grid's blocks share their seed: one unit per seed keeps alpha; counting (seed, block) pairs as
    independent units does not (the control); an interaction (the effect in one stratum minus another's) at
    no interaction keeps it too, with and without failed runs."""
    found = []

    def row(name: str, d: np.ndarray, bound: str, promise: str) -> None:
        rate = float(np.isin(st.decide(st.estimate(d), direction="greater", min_effect=0.5), DIRECTIONAL).mean())
        se = math.sqrt(max(rate * (1 - rate), 1e-12) / s)
        found.append({"name": name, "measured": rate, "se": se, "promise": promise, "bound": bound, "value": ALPHA})

    d = grid_differences(rng, s, 8, 4)
    row("null grid, 8 seeds x 4 blocks, one unit per seed", st.seed_units(d), "max", f"<= {ALPHA}")
    row("null grid, 8 seeds x 4 blocks as 32 independent units", d.reshape(s, -1), "min", "> alpha: the control")
    failing = grid_differences(rng, s, 16, 2, p_fail=0.15)
    row("null grid, 16 seeds x 2 blocks, 15% of runs fail, per seed", st.seed_units(failing), "max", f"<= {ALPHA}")
    strata = np.stack([st.seed_units(grid_differences(rng, s, 12, 2)) for _ in range(2)], axis=-1)
    row(
        "no interaction, 12 seeds: stratum effect minus stratum effect",
        st.seed_units(strata, weights=[1, -1]),
        "max",
        f"<= {ALPHA}",
    )
    return found


def paired_failures(rng: np.random.Generator, studies: int, n: int, factor: float) -> tuple[np.ndarray, ...]:
    """Failures of two arms on n shared seeds: each seed has its own fragility (Beta(0.5, 1.5), mean 0.25)
    that both arms' runs share; the treatment fails with `factor` times its seed's probability. (both, only
    the treatment, only the baseline) per study."""
    fragility = rng.beta(0.5, 1.5, (studies, n))
    t = rng.random((studies, n)) < fragility * factor
    b = rng.random((studies, n)) < fragility
    return (t & b).sum(1), (t & ~b).sum(1), (~t & b).sum(1)


def _paired_rate_rows(rng: np.random.Generator, s: int) -> list[dict]:
    """A divergence claim on levels that share seeds: McNemar's exact test (paired) keeps its error rate and
    finds a real drop more often than Fisher's (which treats the arms as independent) on the same data."""
    found = []
    n = 32

    def directional(est: st.Estimate) -> np.ndarray:
        return np.isin(st.decide(est, direction="less", min_effect=0.1), DIRECTIONAL)

    both, only_t, only_b = paired_failures(rng, s, n, 1.0)
    null = float(directional(rt.paired_rate_difference(both, only_t, only_b, n)).mean())
    se = math.sqrt(max(null * (1 - null), 1e-12) / s)
    found.append(
        {
            "name": f"equal paired divergence rates, {n} seeds: McNemar directional",
            "measured": null,
            "se": se,
            "promise": f"<= {ALPHA}",
            "bound": "max",
            "value": ALPHA,
        }
    )
    both, only_t, only_b = paired_failures(rng, s, n, 0.3)
    supported = st.decide(rt.paired_rate_difference(both, only_t, only_b, n), direction="less", min_effect=0.1)
    fisher = st.decide(rt.rate_difference(both + only_t, n, both + only_b, n), direction="less", min_effect=0.1)
    mcnemar_power = float((supported == Status.SUPPORTED.value).mean())
    fisher_power = float((fisher == Status.SUPPORTED.value).mean())
    se = math.sqrt(max(mcnemar_power * (1 - mcnemar_power), 1e-12) / s)
    found.append(
        {
            "name": f"paired rates 0.25 -> 0.075, {n} seeds: McNemar power (value: Fisher's on the same data)",
            "measured": mcnemar_power,
            "se": se,
            "promise": f"> Fisher's {fisher_power:.4f}",
            "bound": "min",
            "value": fisher_power,
        }
    )
    return found


def censored_times(rng: np.random.Generator, studies: int, n: int, budget: float = 1000.0) -> np.ndarray:
    """Paired differences of a time to an event (lower is better) where each arm's runs never reach it, and
    are censored at the budget, about 30% of the time: a censored run is the worst outcome (+inf), two in one
    pair tie at 0, as `analysis.units` treats them."""
    a, b = rng.exponential(800, (2, studies, n))
    a, b = np.where(a > budget, np.inf, a), np.where(b > budget, np.inf, b)
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(a) & np.isinf(b), 0.0, a - b)


def _censored_rows(rng: np.random.Generator, s: int) -> list[dict]:
    d = censored_times(rng, s, 16)
    decisions = st.decide(st.estimate(d), direction="less", min_effect=100)
    rate = float(np.isin(decisions, DIRECTIONAL).mean())
    se = math.sqrt(max(rate * (1 - rate), 1e-12) / s)
    name = "null, 16 pairs, ~30% of times censored at the budget (rank path)"
    return [{"name": name, "measured": rate, "se": se, "promise": f"<= {ALPHA}", "bound": "max", "value": ALPHA}]


def _claim_p_rows(rng: np.random.Generator, s: int) -> list[dict]:
    """The p a claim reports (and Holm adjusts) is the p of the test that decided it: at each rule's boundary
    its rejections stay within alpha, alone and Holm-adjusted over a family of such claims."""
    found = []

    def row(name: str, measured: float) -> None:
        se = math.sqrt(max(measured * (1 - measured), 1e-12) / s)
        found.append(
            {"name": name, "measured": measured, "se": se, "promise": f"<= {ALPHA}", "bound": "max", "value": ALPHA}
        )

    at_margin = rng.normal(0.5, 1, (s, 16))  # an equivalence claim whose effect is exactly min_effect 0.5
    p_eq = st.decisive_p(at_margin, direction="equivalent", min_effect=0.5)
    row("equivalence at effect = min_effect, 16 pairs: claim p <= alpha", float((p_eq <= ALPHA).mean()))
    inferior = rng.normal(0.93, 0.03, (s, 12)) - 0.95  # a non-inferiority claim exactly at its margin
    p_ni = st.decisive_p(inferior, direction="greater", origin=-0.02)
    row("target 0.95, margin 0.02, mean 0.93, 12 runs: claim p <= alpha", float((p_ni <= ALPHA).mean()))
    family = np.stack(
        [
            st.decisive_p(rng.normal(0.5, 1, (s, 16)), direction="equivalent", min_effect=0.5),
            st.decisive_p(rng.normal(-0.5, 1, (s, 16)), direction="equivalent", min_effect=0.5),
            st.decisive_p(rng.normal(0.93, 0.03, (s, 12)) - 0.95, direction="greater", origin=-0.02),
            st.decisive_p(rng.normal(0, 1, (s, 16)), direction="greater"),
        ],
        axis=1,
    )
    adjusted = np.apply_along_axis(st.holm, 1, family)
    row(
        "4 claims at their boundaries, Holm-adjusted: any claim p <= alpha",
        float((adjusted <= ALPHA).any(axis=1).mean()),
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20_000, help="simulated studies per row")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object: {studies, seed, rows}")
    args = parser.parse_args()
    rows = rows_for(args.studies, args.seed)
    if args.json:
        print(json.dumps({"studies": args.studies, "seed": args.seed, "rows": rows}, indent=1))
        return
    width = max(len(r["name"]) for r in rows)
    print(f"{'simulated studies: ' + str(args.studies):<{width}}  measured  3 SE    promised")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['measured']:8.4f}  {3 * r['se']:.4f}  {r['promise']}")


def holds(row: dict) -> bool:
    """Whether a row keeps its promise within 3 standard errors."""
    slack = 3 * row["se"]
    if row["bound"] == "max":
        return row["measured"] <= row["value"] + slack
    if row["bound"] == "min":
        return row["measured"] >= row["value"] - slack
    return abs(row["measured"] - row["value"]) <= slack


if __name__ == "__main__":
    main()
