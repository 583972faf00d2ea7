"""Error rates and power of the verdicts, by simulation: the numbers `tests/sweep/test_stats.py` checks,
at a larger number of simulated studies, printed as a table.

Each row simulates S studies through the same vectorised functions the verdicts use (`sweep.stats`) and
prints the measured rate, what the method promises, and three binomial standard errors of the measured
rate. No training, no storage: a few seconds on one core.

    python benchmarks/verdict_calibration.py            # S = 20000
    python benchmarks/verdict_calibration.py --studies 100000 --seed 1
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import integrate, stats

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20_000, help="simulated studies per row")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    rng, s = np.random.default_rng(args.seed), args.studies
    rows: list[tuple[str, float, str]] = []

    def directional(decisions: np.ndarray) -> float:
        return float(np.isin(decisions, DIRECTIONAL).mean())

    def verdicts(d: np.ndarray, **kw: float) -> np.ndarray:
        return st.decide(st.estimate(d, **kw), direction="greater", min_effect=0.5)

    rows.append(
        (
            "null, 16 pairs, t path: SUPPORTED or CONTRADICTED",
            directional(verdicts(null_pairs(rng, s, 16))),
            f"<= {ALPHA}",
        )
    )
    failing = failing_pairs(rng, s, 16, 0.25)
    rows.append(("null, 16 pairs, 25% of runs fail (rank path)", directional(verdicts(failing)), f"<= {ALPHA}"))
    for kind in ("obrien-fleming", "pocock"):
        alphas = list(st.spending(ALPHA, [n / LOOKS[-1] for n in LOOKS], kind))
        rows.append(
            (f"null, looks 4-8-16-32, {kind}", directional(sequential(null_pairs(rng, s, 32), alphas)), f"<= {ALPHA}")
        )
        with_failures = sequential(failing_pairs(rng, s, 32, 0.2), alphas)
        rows.append((f"null, looks 4-8-16-32, {kind}, 20% fail", directional(with_failures), f"<= {ALPHA}"))
    peeking = sequential(null_pairs(rng, s, 32), [ALPHA] * len(LOOKS))
    rows.append(("null, looks 4-8-16-32 at full alpha (peeking)", directional(peeking), "> alpha: the control"))
    effect = null_pairs(rng, s, 16) / math.sqrt(2) + 1.0
    predicted = st.power_t(16, 1.0, ALPHA)
    supported = float((verdicts(effect) == Status.SUPPORTED.value).mean())
    rows.append(("d_z = 1, 16 pairs: SUPPORTED (power)", supported, f"{predicted:.4f} (noncentral t)"))
    zero = rng.normal(0, 1, (s, 64))
    no_effect = float((verdicts(zero) == Status.NO_EFFECT.value).mean())
    expected = expected_no_effect(64, 0.5)
    rows.append(("effect 0, sd 1, 64 pairs, min_effect 0.5: NO EFFECT", no_effect, f"{expected:.4f} (integrated)"))
    margin = st.estimate(zero + 0.5)
    tost = float(np.mean((margin.eq_low > -0.5) & (margin.eq_high < 0.5)))
    rows.append(("effect = min_effect, 64 pairs: TOST passes (its size)", tost, f"~ {ALPHA}"))
    x_a, x_b = rng.binomial(16, 0.3, s), rng.binomial(16, 0.3, s)
    rates = st.decide(st.rate_difference(x_a, 16, x_b, 16), direction="less", min_effect=0.2)
    rows.append(("equal divergence rates 0.3, 16 runs each: directional", directional(rates), f"<= {ALPHA}"))
    values = rng.normal(0.93, 0.03, (s, 12)) - 0.95
    inferior = st.decide(st.estimate(values), direction="greater", min_effect=0.02, origin=-0.02, equivalence=False)
    rows.append(
        ("target 0.95 - 0.02 exactly, 12 runs: SUPPORTED", float((inferior == "SUPPORTED").mean()), f"<= {ALPHA / 2}")
    )

    width = max(len(r[0]) for r in rows)
    print(f"{'simulated studies: ' + str(s):<{width}}  measured  3 SE    promised")
    for name, measured, promised in rows:
        se3 = 3 * math.sqrt(max(measured * (1 - measured), 1e-12) / s)
        print(f"{name:<{width}}  {measured:8.4f}  {se3:.4f}  {promised}")


if __name__ == "__main__":
    main()
