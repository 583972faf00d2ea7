"""Known-answer statistics, the effect table and the verdict on hand-built trial frames (no Ray, no training)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy import stats

from sweep import analysis, spec
from sweep.report import verdict_text as vt
from sweep.report.tables import effect_tables
from sweep.results import load_results
from sweep.review import study_note
from sweep.stats import holm
from sweep.vocab import Status

from fakes import RULE, ablation_frame, draw, grid_study, grid_trials, make_study, store_design, stored_study
from helpers import REPO

SUPPORTED, CONTRADICTED, NO_EFFECT, INCONCLUSIVE = (
    Status.SUPPORTED,
    Status.CONTRADICTED,
    Status.NO_EFFECT,
    Status.INCONCLUSIVE,
)
BASE8 = [0.9, 0.85, 0.92, 0.88, 0.95, 0.87, 0.91, 0.89]


def study8(**rule) -> object:
    return make_study(seeds=8, verdict={**RULE, **rule})


# --- the effect table ---------------------------------------------------------------------------


def crashed_rows(config_id: str, level: float, seeds: range) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "number": 100 + s,
                "state": "FAIL",
                "outcome": "crashed",
                "config_id": config_id,
                "factor": "lambda_cat",
                "level": level,
                "seed": s,
                "params.lambda_cat": level,
            }
            for s in seeds
        ]
    )


def test_effects_count_failed_runs_as_outcomes_per_level():
    study = make_study(factors={"lambda_cat": [0.0, 0.5]}, seeds=5)
    frame = ablation_frame([0.9, 0.8, 0.85, "diverged", 0.95], [0.1, "diverged", "diverged", "diverged", 0.2])
    frame = pd.concat([frame, crashed_rows("lambda_cat=0.5", 0.5, range(2))], ignore_index=True)  # shown, not dropped
    table = analysis.effects(frame, study).set_index("level")
    assert list(table.index) == ["1.0", "0.0", "0.5"]
    assert table.loc["1.0", ["runs", "n", "diverged", "baseline"]].tolist() == [5, 4, 1, True]
    assert table.loc["0.0", ["runs", "n", "diverged"]].tolist() == [5, 2, 3]  # 3 of 5 diverged: a finding
    assert table.loc["0.0", "mean"] == pytest.approx(0.15)
    # paired by seed, the diverged runs as the worst outcome: the rank path, all 5 pairs used
    assert table.loc["0.0", ["pairs", "method"]].tolist() == [5, "rank"]
    assert table.loc["0.0", "diff"] < -0.6 and table.loc["0.0", "std_effect"] < -0.9  # the rank-biserial r
    assert table.loc["0.0", "diverged_rate"] == pytest.approx(0.6) and table.loc["1.0", "diverged_rate"] == 0.2
    assert table.loc["0.0", "diverged_p"] == pytest.approx(stats.fisher_exact([[3, 2], [1, 4]]).pvalue)
    assert table.loc["0.5", ["runs", "n", "crashed"]].tolist() == [2, 0, 2]
    assert math.isnan(table.loc["0.5", "mean"]) and math.isnan(table.loc["0.5", "p"])  # no pair: no comparison


def test_effects_holm_adjust_over_the_whole_table():
    study = make_study(factors={"lambda_cat": [0.0, 0.5]}, seeds=4, objectives=["mi/cat_ratio", "mi/cat"])
    rng = np.random.default_rng(0)
    rows = []
    for config_id, level in (("base", 1.0), ("lambda_cat=0.0", 0.0), ("lambda_cat=0.5", 0.5)):
        for seed in range(4):
            rows.append(
                {
                    "number": len(rows),
                    "outcome": "completed",
                    "config_id": config_id,
                    "factor": None if level == 1.0 else "lambda_cat",
                    "level": None if level == 1.0 else level,
                    "seed": seed,
                    "params.lambda_cat": level,
                    "mi/cat_ratio": level + rng.normal(0, 0.1),
                    "mi/cat": rng.normal(0, 1),
                }
            )
    table = analysis.effects(pd.DataFrame(rows), study)
    tested = table[~table["baseline"]]
    assert len(tested) == 4 and (tested["p_holm"] >= tested["p"]).all()
    assert tested["p_holm"].to_numpy() == pytest.approx(holm(tested["p"].to_numpy()))


def test_effects_with_one_pair_or_identical_values():
    study = make_study()
    table = analysis.effects(ablation_frame([0.5, 0.5, 0.5], [0.5, "crashed", "crashed"]), study).set_index("level")
    assert table.loc["1.0", "ci_low"] == table.loc["1.0", "ci_high"] == 0.5  # zero variance: width 0
    assert math.isnan(table.loc["0.0", "ci_low"])  # one finished run: no interval
    assert table.loc["0.0", "pairs"] == 1 and math.isnan(table.loc["0.0", "diff"])  # one pair: no test
    same = analysis.effects(ablation_frame([0.5, 0.5, 0.5], [0.5, 0.5]), study).set_index("level")
    assert same.loc["0.0", "p"] == 1.0 and same.loc["0.0", "diff"] == 0.0


def grid_frame(value) -> pd.DataFrame:
    rows = []
    for lam in (1.0, 0.0):
        for bn in ("none", "separate"):
            for seed in range(3):
                rows.append(
                    {
                        "number": len(rows),
                        "outcome": "completed",
                        "config_id": f"lambda_cat={lam},d_batchnorm={bn}",
                        "factor": None,
                        "level": None,
                        "seed": seed,
                        "params.lambda_cat": lam,
                        "params.d_batchnorm": bn,
                        "mi/cat_ratio": value(lam, bn, seed),
                    }
                )
    return pd.DataFrame(rows)


def test_grid_effects_pair_within_the_other_factors_levels():
    study = make_study(kind="grid", factors={"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]})
    frame = grid_frame(
        lambda lam, bn, seed: (0.9 if lam == 1.0 else 0.1 - 0.01 * seed) + (0.05 if bn == "separate" else 0)
    )
    table = analysis.effects(frame, study)
    pooled = table[table["stratum"] == ""]
    lam = pooled[pooled["factor"] == "lambda_cat"].set_index("level")
    assert lam.loc["0.0", ["n", "pairs"]].tolist() == [6, 3]  # 6 runs, 3 seeds: each seed is one unit
    assert lam.loc["0.0", "diff"] == pytest.approx(-0.81)
    bn = pooled[pooled["factor"] == "d_batchnorm"].set_index("level")
    assert bn.loc["separate", "diff"] == pytest.approx(0.05)
    result = analysis.verdict(frame, study)
    assert result.status == SUPPORTED and result.n == 3 and result.grid
    assert "paired by seed within each combination of the other factors" in vt.lines(result)[0]


def interaction_frame() -> pd.DataFrame:
    """lambda_cat = 0 lowers the metric by 0.8 where d_batchnorm is none and by 0.6 where it is separate;
    each seed has its own luck (shared by its four runs) and a little noise."""
    luck = {0: 0.3, 1: -0.2, 2: 0.05}
    noise = iter(np.random.default_rng(3).normal(0, 0.01, 12))
    effect = {"none": -0.8, "separate": -0.6}
    return grid_frame(lambda lam, bn, seed: 0.9 + luck[seed] + (effect[bn] if lam == 0.0 else 0.0) + next(noise))


def test_grid_effects_show_the_effect_in_each_stratum():
    study = make_study(kind="grid", factors={"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]})
    table = analysis.effects(interaction_frame(), study)
    lam = table[(table["factor"] == "lambda_cat") & ~table["baseline"]].set_index("stratum")
    assert lam.loc["", "diff"] == pytest.approx(-0.7, abs=0.02)  # pooled: the mean over both strata
    assert lam.loc["d_batchnorm=none", "diff"] == pytest.approx(-0.8, abs=0.02)
    assert lam.loc["d_batchnorm=separate", "diff"] == pytest.approx(-0.6, abs=0.02)
    assert lam.loc["d_batchnorm=none", ["runs", "pairs"]].tolist() == [3, 3]
    # two Holm families: the pooled rows, and the stratum rows
    strata = table[table["stratum"] != ""]
    assert strata["p_holm"].to_numpy() == pytest.approx(holm(strata["p"].to_numpy()))
    [shown] = effect_tables(table, study)
    labels = [row.label for row in shown.rows]
    assert "lambda_cat=0.0 | d_batchnorm=separate" in labels and "lambda_cat=0.0" in labels


def test_an_interaction_rule_tests_the_difference_of_the_strata_effects():
    rule = {
        "metric": "mi/cat_ratio",
        "factor": "lambda_cat",
        "baseline": 1.0,
        "treatment": 0.0,
        "direction": "greater",
        "min_effect": 0.05,
        "interaction": {"factor": "d_batchnorm", "level": "separate", "against": "none"},
    }
    factors = {"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]}
    result = analysis.verdict(interaction_frame(), make_study(kind="grid", factors=factors, verdict=rule))
    assert result.status == SUPPORTED and result.n == 3
    assert result.estimate.effect == pytest.approx(0.2, abs=0.03)  # -0.6 - (-0.8)
    text = vt.message(result) + "\n".join(vt.lines(result))
    assert "the change in mi/cat_ratio from lambda_cat=1.0 to lambda_cat=0.0" in text
    assert "d_batchnorm=separate" in text and "an interaction" in text
    # the claim the other way round is contradicted
    flipped = {**rule, "interaction": {"factor": "d_batchnorm", "level": "none", "against": "separate"}}
    result = analysis.verdict(interaction_frame(), make_study(kind="grid", factors=factors, verdict=flipped))
    assert result.status == CONTRADICTED


def test_blocking_removes_the_other_factors_and_the_seeds_variance():
    # d_batchnorm moves the metric by 0.5 and each seed by up to 0.3; lambda_cat = 0 lowers it by 0.1.
    # Pooled, unpaired runs drown that in the other effects; paired within blocks it is clear.
    luck = {0: 0.3, 1: -0.2, 2: 0.05}
    noise = iter(np.random.default_rng(1).normal(0, 0.01, 12))
    frame = grid_frame(lambda lam, bn, seed: 0.5 * (bn == "separate") + luck[seed] - 0.1 * (lam == 0.0) + next(noise))
    study = make_study(kind="grid", factors={"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]})
    result = analysis.verdict(frame, study)
    assert result.status == SUPPORTED and result.estimate.effect == pytest.approx(-0.1, abs=0.02)
    pooled = stats.ttest_ind(
        frame.loc[frame["params.lambda_cat"] == 0.0, "mi/cat_ratio"],
        frame.loc[frame["params.lambda_cat"] == 1.0, "mi/cat_ratio"],
        equal_var=False,
    )
    assert pooled.pvalue > 0.5  # the control: the unpaired test sees nothing


# --- the verdict --------------------------------------------------------------------------------


def test_clear_effect_is_supported_with_every_number():
    result = analysis.verdict(ablation_frame([0.92, 0.88, 0.95], [0.05, 0.10, 0.08]), make_study())
    assert result.status == SUPPORTED and result.n == 3
    assert result.estimate.method == "t" and result.estimate.high < 0
    text = "\n".join(vt.lines(result))
    for number in (
        "0.9167",
        "0.07667",
        "paired t-test",
        "95% CI",
        "d_z",
        "two-sided p",
        "minimum detectable effect at n = 3",
        "90% CI",
        "min_effect 0.05",
    ):
        assert number in text, number
    assert vt.summary(result).startswith("effect -0.84, 95% CI [") and "MDE" in vt.summary(result)
    assert vt.summary(result).endswith("n 3; at least min_effect")  # the interval lies beyond -0.05


def test_identical_arms_give_no_effect_with_enough_seeds():
    same = [0.5, 0.6, 0.7, 0.55, 0.65, 0.52, 0.58, 0.61]
    result = analysis.verdict(ablation_frame(same, same), study8())
    assert result.status == NO_EFFECT and result.estimate.method == "rank"  # every difference 0: no spread
    assert "inside +-0.05" in vt.message(result)
    few = analysis.verdict(ablation_frame(same[:3], same[:3]), make_study())
    assert few.status == INCONCLUSIVE and "cannot reach alpha" in vt.message(few)


def test_an_effect_the_other_way_is_contradicted():
    result = analysis.verdict(ablation_frame([0.05, 0.1, 0.08], [0.9, 0.92, 0.95]), make_study())
    assert result.status == CONTRADICTED and "against the claim" in vt.message(result)
    assert result.estimate.low > 0


def test_noise_is_inconclusive_and_says_what_n_would_do():
    rng = np.random.default_rng(2)
    base = list(0.5 + rng.normal(0, 0.1, 8))
    treat = [b + e for b, e in zip(base, rng.normal(0, 0.3, 8), strict=True)]
    result = analysis.verdict(ablation_frame(base, treat), study8())
    assert result.status == INCONCLUSIVE and "includes 0" in vt.message(result)
    assert "the smallest effect 8 pairs detect with 80% power" in vt.message(result)
    assert "about" in "\n".join(vt.lines(result)) and "would detect min_effect" in "\n".join(vt.lines(result))


def test_a_failed_run_is_the_worst_outcome_not_missing_data():
    # the treatment scores a little higher when it survives, but diverges in half of its runs
    treat = [0.93, "diverged", 0.95, "diverged", 0.97, "diverged", 0.92, "diverged"]
    rule = {"treatment": 0.0, "direction": "greater"}
    result = analysis.verdict(ablation_frame(BASE8, treat), study8(**rule))
    assert result.status != SUPPORTED and result.estimate.method == "rank"
    assert result.treatment.failed["diverged"] == 4 and result.n == 8
    assert any("the worst outcome of its arm" in note for note in vt.notes(result))
    assert result.divergence is not None and "McNemar's exact test" in "\n".join(vt.lines(result))
    # the control: had those runs crashed (not an outcome, left out), the survivors would support the claim
    crashed = [v if v != "diverged" else "crashed" for v in treat]
    survivors = analysis.verdict(ablation_frame(BASE8, crashed), study8(**rule))
    assert survivors.status == SUPPORTED and survivors.n == 4
    assert survivors.excluded_pairs["crashed"] == 4 and "left out: 4 crashed" in "\n".join(vt.lines(survivors))


def test_a_non_finite_value_counts_as_a_failure():
    frame = ablation_frame(BASE8, [0.1, 0.2, 0.15, 0.1, 0.2, 0.1, 0.12, 0.11])
    frame.loc[(frame["config_id"] == "base") & (frame["seed"] == 0), "mi/cat_ratio"] = None  # eval/fd = inf, say
    result = analysis.verdict(frame, study8())
    assert result.baseline.failed["non-finite"] == 1 and result.estimate.method == "rank"


def test_pruned_runs_count_as_the_rule_says():
    treat = [0.1, "pruned", 0.12, "pruned", 0.1, 0.11, 0.13, 0.1]
    stop = {"early_stopping": {"metric": "mi/cat_ratio", "grace_period": 10}}
    worst = make_study(seeds=8, verdict={**RULE, "pruned": "worst"}, **stop)
    excluded = make_study(seeds=8, verdict={**RULE, "pruned": "exclude"}, **stop)
    a, b = (analysis.verdict(ablation_frame(BASE8, treat), s) for s in (worst, excluded))
    assert (a.n, a.treatment.failed["pruned"]) == (8, 2) and a.estimate.method == "rank"
    assert (b.n, b.excluded_pairs["pruned"]) == (6, 2) and b.estimate.method == "t"


def test_a_target_rule_is_a_non_inferiority_test():
    rule = {"metric": "mi/cat_ratio", "factor": "lambda_cat", "treatment": 0.0, "target": 0.95, "direction": "greater"}
    close = [0.94, 0.945, 0.942, 0.944, 0.94, 0.943]  # a little below 0.95, well within the margin 0.02
    result = analysis.verdict(ablation_frame([], close), make_study(seeds=6, verdict={**rule, "min_effect": 0.02}))
    assert result.status == SUPPORTED and result.baseline is None
    assert result.estimate.effect == pytest.approx(np.mean(close) - 0.95)
    assert "non-inferiority margin 0.02: decided against 0.93" in vt.lines(result)[0]
    short = analysis.verdict(ablation_frame([], [0.80, 0.82, 0.81]), make_study(verdict={**rule, "min_effect": 0.02}))
    assert short.status == CONTRADICTED and "misses 0.93" in vt.message(short)
    strict = analysis.verdict(ablation_frame([], close), make_study(seeds=6, verdict={**rule, "min_effect": 0.0}))
    assert strict.status == CONTRADICTED  # with no margin, a mean below the target is below it
    assert not any("NO EFFECT cannot" in n for n in vt.notes(strict))  # a target rule has no NO EFFECT to lose


def test_an_equivalence_claim_is_supported_by_a_difference_inside_the_margin():
    rule = {"direction": "equivalent", "min_effect": 0.05}
    same = [b + d for b, d in zip(BASE8, [0.004, -0.006, 0.002, 0.0, -0.003, 0.005, -0.002, 0.001], strict=True)]
    result = analysis.verdict(ablation_frame(BASE8, same), study8(**rule))
    assert result.status == SUPPORTED and "as claimed" in vt.message(result)
    assert "mi/cat_ratio at lambda_cat=0.0 within +-0.05 of that at lambda_cat=1.0" in vt.lines(result)[0]
    apart = analysis.verdict(ablation_frame(BASE8, [b - 0.2 + 0.003 * i for i, b in enumerate(BASE8)]), study8(**rule))
    assert apart.status == CONTRADICTED and "by more than min_effect 0.05" in vt.message(apart)
    noisy = [b + d for b, d in zip(BASE8, [0.08, -0.09, 0.1, -0.07, 0.06, -0.1, 0.09, -0.08], strict=True)]
    unsure = analysis.verdict(ablation_frame(BASE8, noisy), study8(**rule))
    assert unsure.status == INCONCLUSIVE and "reaches beyond +-min_effect 0.05" in vt.message(unsure)


def test_a_claim_about_the_divergence_rate_compares_rates():
    rule = {"metric": "diverged", "treatment": 0.0, "direction": "less", "min_effect": 0.2}
    base = ["diverged"] * 6 + [0.9, 0.9]
    result = analysis.verdict(ablation_frame(base, BASE8), study8(**rule))
    assert result.status == SUPPORTED and result.estimate.method == "paired rates"  # the levels share seeds
    assert result.estimate.effect == pytest.approx(-0.75)
    # McNemar: 6 pairs where only the baseline diverged, none where only the treatment did
    assert result.estimate.p_less == pytest.approx(stats.binomtest(0, 6, 0.5, alternative="less").pvalue)
    assert result.p == pytest.approx(stats.binomtest(0, 6, 0.5).pvalue)
    text = "\n".join(vt.lines(result))
    assert "divergence rate" in vt.lines(result)[0] and "McNemar" in text and "arcsine approximation" in text
    assert vt.arm_text(result.baseline) == "8 runs, 6 diverged" and "MDE" in vt.summary(result)


def planned(spending: str = "pocock") -> object:
    return make_study(seeds={"start": 4, "max": 16, "spending": spending}, verdict=RULE)


def test_planned_looks_stop_at_the_first_decisive_one():
    frame = ablation_frame([0.92, 0.88, 0.95, 0.9], [0.05, 0.10, 0.08, 0.06])
    result = analysis.verdict(frame, planned())
    assert result.status == SUPPORTED and [look.seeds for look in result.looks] == [4]
    assert result.alpha == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 4))  # look 1's share of alpha
    assert "looks (pocock spending): 4 seeds (alpha 0.018): SUPPORTED; stopped: decisive" in vt.lines(result)
    # pairs stored beyond the deciding look change nothing: the decision is the first decisive look's
    more = ablation_frame([0.92, 0.88, 0.95, 0.9, 0.1, 0.1, 0.1, 0.1], [0.05, 0.10, 0.08, 0.06, 0.9, 0.9, 0.9, 0.9])
    assert analysis.verdict(more, planned()).looks == result.looks


def test_a_look_is_taken_only_when_all_its_pairs_finished():
    rng = np.random.default_rng(3)
    base = list(0.5 + rng.normal(0, 0.1, 8))
    treat = [b + e for b, e in zip(base, rng.normal(0, 0.1, 8), strict=True)]
    partial = analysis.verdict(ablation_frame(base[:3], treat[:3]), planned())
    assert partial.deciding is None and partial.status == INCONCLUSIVE
    assert "no look taken yet: the first look (4 seeds per configuration) waits for 1 pairs" in vt.message(partial)
    waiting = analysis.verdict(ablation_frame(base[:6], treat[:6]), planned())
    assert [look.status for look in waiting.looks] == [INCONCLUSIVE, None] and waiting.looks[1].missing == 2
    assert "the next look (8 seeds) waits for 2 pairs" in vt.message(waiting)
    # recomputed from the stored trials alone: the order they are stored in does not matter
    frame = ablation_frame(base, treat)
    shuffled = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    assert analysis.verdict(shuffled, planned()).looks == analysis.verdict(frame, planned()).looks


def test_an_interrupted_trial_does_not_count_and_its_rerun_does():
    frame = ablation_frame([0.92, 0.88, 0.95], [0.05, 0.10, 0.08])
    rerun = frame.iloc[[5]].assign(number=99)
    frame.loc[5, ["outcome", "mi/cat_ratio"]] = ["interrupted", None]
    assert analysis.verdict(frame, make_study()).deciding is None  # pair (0.0, seed 2) has not finished
    result = analysis.verdict(pd.concat([frame, rerun], ignore_index=True), make_study())
    assert result.status == SUPPORTED and result.n == 3  # counted once


def test_where_restricts_a_grid_verdict_to_some_levels():
    factors = {"d_batchnorm": ["none", "separate"], "dataset": ["ring8", "grid25"]}
    rule = {
        "metric": "eval/modes",
        "factor": "d_batchnorm",
        "baseline": "none",
        "treatment": "separate",
        "direction": "greater",
        "where": {"dataset": "grid25"},
        "min_effect": 2,
    }
    study = make_study(kind="grid", factors=factors, objectives=["eval/modes"], verdict=rule)
    modes = {
        ("none", "ring8"): [8, 8, 7],
        ("separate", "ring8"): [3, 8, 4],  # no gain on ring8 ...
        ("none", "grid25"): [10, 11, 9],
        ("separate", "grid25"): [20, 22, 21],
    }  # ... a clear one on grid25
    rows = [
        {
            "number": len(modes) * 3,
            "outcome": "completed",
            "config_id": f"d_batchnorm={bn},dataset={ds}",
            "factor": None,
            "level": None,
            "seed": seed,
            "params.d_batchnorm": bn,
            "params.dataset": ds,
            "eval/modes": v,
        }
        for (bn, ds), values in modes.items()
        for seed, v in enumerate(values)
    ]
    result = analysis.verdict(pd.DataFrame(rows), study)
    assert result.status == SUPPORTED and result.n == 3
    assert result.treatment.mean == 21 and "only trials with dataset=grid25" in vt.lines(result)[0]
    both = make_study(kind="grid", factors=factors, objectives=["eval/modes"], verdict={**rule, "where": {}})
    blocked = analysis.verdict(pd.DataFrame(rows), both)
    # each seed one unit: the mean of its two datasets' differences (2.5, 5.5, 4.5), not six independent pairs
    assert blocked.n == 3 and blocked.estimate.effect == pytest.approx(12.5 / 3)


def test_no_rule_gives_no_verdict():
    assert analysis.verdict(ablation_frame([0.5], [0.5]), make_study(verdict=None)) is None


def test_a_study_stored_before_min_effect_still_has_a_verdict():
    study = make_study()
    stored = stored_study(study, [({"lambda_cat": 1.0}, "completed", 0.9), ({"lambda_cat": 0.0}, "completed", 0.1)])
    old = study.model_dump(mode="json")
    del old["verdict"]["min_effect"]
    old["verdict"]["test"] = "welch"
    stored.set_user_attr("spec", old)
    spec_back = analysis.study_spec(stored)
    assert spec_back.verdict.min_effect == 0.0 and spec_back.verdict.test == "t"


# --- importance ---------------------------------------------------------------------------------


def test_importance_ranks_the_factor_that_matters():
    study = grid_study()
    scores = analysis.importance(stored_study(study, grid_trials()), study)["mi/cat_ratio"]
    assert isinstance(scores, dict) and set(scores) == {"lambda_cat", "d_batchnorm"}
    assert max(scores, key=scores.get) == "lambda_cat"


def test_importance_is_skipped_with_a_reason():
    ablation = make_study()
    assert "one factor at a time" in analysis.importance(optuna.create_study(), ablation)["mi/cat_ratio"]
    grid = make_study(kind="grid", factors={"lambda_cat": [1.0, 0.0]})
    one = stored_study(grid, [({"lambda_cat": 1.0}, "completed", 0.9), ({"lambda_cat": 0.0}, "completed", 0.1)])
    assert "only 1 parameter" in analysis.importance(one, grid)["mi/cat_ratio"]
    few = stored_study(grid_study(), [({"lambda_cat": 1.0, "d_batchnorm": "none"}, "completed", 0.9)])
    assert "at least 2 completed" in analysis.importance(few, grid_study())["mi/cat_ratio"]


def _driven_search(configurations: int = 24):
    """The shipped search space (12 knobs), 3 seeds, one objective that only lr_g drives (plus seed noise)."""
    study = spec.load(REPO / "studies" / "search.yaml").model_copy(
        update={"seeds": 3, "trials": configurations, "objectives": [spec.Objective(metric="eval/fd")]}
    )
    rng = np.random.default_rng(5)
    configs = [{name: draw(d, rng) for name, d in study.space.items()} for _ in range(configurations)]

    def value(s):
        noise = np.random.default_rng([int(s.config_id[-4:]), s.seed]).normal()
        return {"eval/fd": 30 + 40 * math.log10(s.params["lr_g"] / 1e-4) + 3 * noise}

    return study, store_design(study, value, searched=configs)


def test_importance_counts_each_configuration_once_at_its_mean_over_seeds():
    study, stored = _driven_search()
    trials = analysis.configuration_trials(stored, study)["eval/fd"]
    assert len(stored.trials) == 72 and len(trials) == 24  # 24 configurations x 3 seeds: 24 rows, not 72
    means = analysis.trials_frame(stored).groupby("config_id", sort=False)["eval/fd"].mean()
    assert [t.values[0] for t in trials] == pytest.approx(list(means))
    assert [t.params for t in trials] == [stored.trials[3 * i].params for i in range(24)]


def test_importance_interval_is_high_for_the_driving_knob_and_reaches_small_values_for_noise():
    study, stored = _driven_search()
    scores = analysis.importance(stored, study, resamples=40)["eval/fd"]
    assert set(scores) == set(study.space) and next(iter(scores)) == "lr_g"  # largest estimate first
    driving, noise = scores["lr_g"], [v for k, v in scores.items() if k != "lr_g"]
    assert driving.low <= driving.estimate <= driving.high
    assert driving.low > 0.5 and driving.low > max(v.high for v in noise)
    assert all(v.low < 0.05 for v in noise)  # no effect: the interval includes small values


def test_importance_intervals_are_reproducible_for_a_seed():
    study, stored = _driven_search(12)
    once, again = (analysis.importance(stored, study, resamples=8)["eval/fd"] for _ in range(2))
    assert once == again
    other = analysis.importance(stored, study, resamples=8, seed=1)["eval/fd"]
    assert {k: v.estimate for k, v in other.items()} == {k: v.estimate for k, v in once.items()}  # same point
    assert other != once  # other resamples, other intervals


def test_note_of_a_study_without_trials():
    study = make_study()
    empty = optuna.create_study(study_name=study.name, direction="maximize")
    empty.set_user_attr("spec", study.model_dump(mode="json"))
    note = study_note(load_results(empty, study=study))
    assert "**Trials:** none yet" in note and "no finished runs" in note


def test_study_note_names_best_and_worst_configuration_and_the_verdict():
    study = grid_study()
    note = study_note(load_results(stored_study(study, grid_trials()), study=study))
    assert "**Trials:** 11 completed, 1 diverged" in note
    assert "| mi/cat_ratio (maximize) | `lambda_cat=1.0,d_batchnorm=" in note
    assert "### Verdict: SUPPORTED" in note and "two-sided p" in note


# --- the p that decides, and how large a decided effect is ----------------------------------------


def test_the_p_of_a_verdict_is_the_p_of_the_test_that_decided_it():
    rule = {"direction": "equivalent", "min_effect": 0.05}
    same = [b + d for b, d in zip(BASE8, [0.004, -0.006, 0.002, 0.0, -0.003, 0.005, -0.002, 0.001], strict=True)]
    equivalent = analysis.verdict(ablation_frame(BASE8, same), study8(**rule))
    d = np.array(same) - np.array(BASE8)  # the claim's own direction: "less" is better for neither here
    tost = max(
        stats.ttest_1samp(d, -0.05, alternative="greater").pvalue, stats.ttest_1samp(d, 0.05, alternative="less").pvalue
    )
    assert equivalent.status == SUPPORTED and equivalent.p == pytest.approx(tost)
    assert equivalent.p <= 0.05 < equivalent.estimate.p_two_sided  # the test against 0 says nothing about the claim
    assert "TOST p" in "\n".join(vt.lines(equivalent))
    # a target rule with a margin: significantly below the target, yet inside the margin
    target = {
        "metric": "mi/cat_ratio",
        "factor": "lambda_cat",
        "treatment": 0.0,
        "target": 0.95,
        "direction": "greater",
    }
    close = [0.94, 0.945, 0.942, 0.944, 0.94, 0.943]
    result = analysis.verdict(ablation_frame([], close), make_study(seeds=6, verdict={**target, "min_effect": 0.02}))
    against_margin = 2 * stats.ttest_1samp(close, 0.93, alternative="greater").pvalue
    assert result.status == SUPPORTED and result.p == pytest.approx(against_margin)
    assert result.estimate.p_two_sided < 0.001  # below the target itself, "significantly": not the claim's test
    assert "against the margin 0.93" in "\n".join(vt.lines(result))


def test_holm_over_claims_adjusts_the_deciding_p():
    rule = {"direction": "equivalent", "min_effect": 0.05}
    same = [b + d for b, d in zip(BASE8, [0.004, -0.006, 0.002, 0.0, -0.003, 0.005, -0.002, 0.001], strict=True)]
    result = analysis.verdict(ablation_frame(BASE8, same), study8(**rule))
    assert result.p_adjusted == pytest.approx(result.p) and result.p_adjusted <= 0.05  # one look: alpha is the rule's
    assert holm([result.p_adjusted, 0.5])[0] == pytest.approx(min(1.0, 2 * result.p))


@pytest.mark.parametrize(
    ("shift", "spread", "size"),
    [
        (-0.2, 1, "at least min_effect"),
        (-0.06, 8, "may be smaller than min_effect"),
        (-0.02, 1, "smaller than min_effect"),
    ],
)
def test_a_decided_effect_says_whether_it_is_as_large_as_min_effect(shift, spread, size):
    jitter = [0.004, -0.003, 0.002, -0.001, 0.003, -0.004, 0.001, -0.002]
    treated = [b + shift + spread * j for b, j in zip(BASE8, jitter, strict=True)]
    result = analysis.verdict(ablation_frame(BASE8, treated), study8())
    assert result.status == SUPPORTED and str(result.size) == size
    e = result.estimate
    inside = (e.high < 0.05) if size.startswith("smaller") else (e.low <= -0.05 <= e.high)
    assert inside or (size.startswith("at least") and e.high < -0.05)
    assert vt.summary(result).endswith(f"; {size}") and any(
        line.startswith(f"size: {size}") for line in vt.lines(result)
    )
    assert ("it may not matter" in "\n".join(vt.notes(result))) == size.startswith("smaller")


def test_no_size_where_min_effect_does_not_bound_the_effect():
    same = [b + d for b, d in zip(BASE8, [0.004, -0.006, 0.002, 0.0, -0.003, 0.005, -0.002, 0.001], strict=True)]
    assert analysis.verdict(ablation_frame(BASE8, same), study8(direction="equivalent")).size is None
    noisy = [b + d for b, d in zip(BASE8, [0.08, -0.09, 0.1, -0.07, 0.06, -0.1, 0.09, -0.08], strict=True)]
    assert analysis.verdict(ablation_frame(BASE8, noisy), study8()).size is None  # INCONCLUSIVE


def test_a_divergence_side_test_pairs_the_runs_by_seed():
    # the claim is on the metric; runs that diverged in both arms share a seed and are no evidence either way
    base = ["diverged", "diverged", "diverged", 0.9, 0.85, 0.92, 0.88, 0.95]
    treated = ["diverged", "diverged", "diverged", 0.6, 0.55, 0.62, 0.58, 0.65]
    result = analysis.verdict(ablation_frame(base, treated), study8())
    assert result.divergence.method == "paired rates" and result.divergence.effect == 0
    assert result.divergence.p_two_sided == 1.0  # no discordant pair
    assert "McNemar's exact test" in "\n".join(vt.lines(result))


def test_a_time_censored_at_the_budget_is_the_worst_outcome_on_the_rank_path():
    metric = "mi/cat_steps_to_90"
    rule = {"metric": metric, "direction": "less", "min_effect": 50}
    study = make_study(
        seeds=8, objectives=[metric], budget={"steps": 1000, "report_every": 100}, verdict={**RULE, **rule}
    )
    reached = [300.0, 400.0, 350.0, 500.0, 450.0, 300.0, 600.0, 400.0]
    never = 1100.0  # steps + report_every: the run never reached 0.9 H(c)
    faster = [100.0, 200.0, 150.0, 200.0, 250.0, 100.0, never, 200.0]
    result = analysis.verdict(ablation_frame(reached, faster, metric=metric), study)
    assert result.estimate.method == "rank" and result.treatment.failed["censored"] == 1
    assert "1 censored (counted as the worst outcome)" in vt.arm_text(result.treatment)
    # as a measured value, 1100 would enter the t-test as a time 500 steps slower than its pair
    as_value = analysis.verdict(
        ablation_frame(reached, faster, metric=metric),
        study.model_copy(update={"budget": study.budget.model_copy(update={"steps": 2000})}),
    )
    assert as_value.estimate.method == "t" and as_value.treatment.failed["censored"] == 0
