"""Known-answer statistics, the effect table and the verdict on hand-built trial frames (no Ray, no training)."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest
from scipy import stats

from sweep import analysis
from sweep.review import study_note
from sweep.vocab import Status

from fakes import GRID, ablation_frame, grid_trials, make_study, stored_study

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = Status.SUPPORTED, Status.NOT_SUPPORTED, Status.INCONCLUSIVE

# --- the effect table ---------------------------------------------------------------------------


def test_effects_count_runs_that_did_not_finish_per_level():
    study = make_study(factors={"lambda_cat": [0.0, 0.5]}, seeds=5)
    frame = ablation_frame([0.9, 0.8, 0.85, "diverged", 0.95], [0.1, "diverged", "diverged", "diverged", 0.2])
    # a level where every run crashed is shown, not dropped
    frame = pd.concat(
        [
            frame,
            pd.DataFrame(
                [
                    {
                        "number": 10 + s,
                        "state": "FAIL",
                        "outcome": "crashed",
                        "config_id": "lambda_cat=0.5",
                        "factor": "lambda_cat",
                        "level": 0.5,
                        "seed": s,
                        "params.lambda_cat": 0.5,
                    }
                    for s in range(2)
                ]
            ),
        ],
        ignore_index=True,
    )
    table = analysis.effects(frame, study).set_index("level")
    assert list(table.index) == ["1.0", "0.0", "0.5"]
    assert table.loc["1.0", ["runs", "n", "diverged", "baseline"]].tolist() == [5, 4, 1, True]
    assert table.loc["0.0", ["runs", "n", "diverged"]].tolist() == [5, 2, 3]  # 3 of 5 diverged: a finding
    assert table.loc["0.0", "mean"] == pytest.approx(0.15)
    assert table.loc["0.0", "diff"] == pytest.approx(0.15 - 0.875)
    assert table.loc["0.5", ["runs", "n", "crashed"]].tolist() == [2, 0, 2]
    assert math.isnan(table.loc["0.5", "mean"]) and math.isnan(table.loc["0.5", "p"])


def test_effects_with_one_run_and_identical_values():
    study = make_study()
    table = analysis.effects(ablation_frame([0.5, 0.5, 0.5], [0.5, "crashed", "crashed"]), study).set_index("level")
    assert table.loc["1.0", "ci_low"] == table.loc["1.0", "ci_high"] == 0.5  # zero variance: width 0
    assert math.isnan(table.loc["0.0", "ci_low"])  # one finished run: no interval
    assert table.loc["0.0", "diff"] == 0.0
    same = analysis.effects(ablation_frame([0.5, 0.5, 0.5], [0.5, 0.5]), study).set_index("level")
    assert same.loc["0.0", "p"] == 1.0 and same.loc["0.0", "diff_low"] == same.loc["0.0", "diff_high"] == 0.0


def test_grid_effects_pool_the_other_factors():
    study = make_study(kind="grid", factors={"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]})
    rows = []
    for lam in (1.0, 0.0):
        for bn in ("none", "separate"):
            for seed in range(3):
                value = (0.9 if lam == 1.0 else 0.1) + (0.05 if bn == "separate" else 0.0) + 0.01 * seed
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
                        "mi/cat_ratio": value,
                    }
                )
    frame = pd.DataFrame(rows)
    table = analysis.effects(frame, study)
    lam = table[table["factor"] == "lambda_cat"].set_index("level")
    assert lam.loc["0.0", "n"] == 6 and lam.loc["0.0", "diff"] == pytest.approx(-0.8)
    bn = table[table["factor"] == "d_batchnorm"].set_index("level")
    assert bn.loc["separate", "diff"] == pytest.approx(0.05)
    result = analysis.verdict(frame, study)
    assert result.status == SUPPORTED and result.n_treatment == 6 and result.seeds_treatment == 3


# --- the verdict --------------------------------------------------------------------------------


def test_clear_effect_is_supported():
    result = analysis.verdict(ablation_frame([0.92, 0.88, 0.95], [0.05, 0.10, 0.08]), make_study())
    assert result.status == SUPPORTED
    assert result.p_one_sided < 0.05 and result.comparison.diff < 0
    text = "\n".join(result.lines())
    for number in ("0.9167", "0.07667", "Welch's t-test", "one-sided p", "alpha 0.05", "3 seeds"):
        assert number in text


def test_identical_distributions_are_not_supported():
    result = analysis.verdict(ablation_frame([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]), make_study())
    assert result.status == NOT_SUPPORTED
    assert "within seed noise" in result.message


def test_too_few_finished_seeds_is_inconclusive():
    result = analysis.verdict(ablation_frame([0.9, 0.9, 0.95], [0.05, 0.1, "diverged"]), make_study())
    assert result.status == INCONCLUSIVE
    assert "lambda_cat=0.0 has 2" in result.message and "diverged" in result.message
    assert result.not_finished_treatment["diverged"] == 1


def test_effect_in_the_wrong_direction_is_not_supported():
    result = analysis.verdict(ablation_frame([0.05, 0.1, 0.08], [0.9, 0.92, 0.95]), make_study())
    assert result.status == NOT_SUPPORTED
    assert "other way" in result.message and result.p_one_sided > 0.95


def test_mann_whitney_rule_needs_enough_seeds_to_reach_alpha():
    rule = {
        "metric": "mi/cat_ratio",
        "factor": "lambda_cat",
        "baseline": 1.0,
        "treatment": 0.0,
        "direction": "less",
        "test": "mannwhitney",
    }
    three = analysis.verdict(ablation_frame([0.9, 0.91, 0.92], [0.1, 0.11, 0.12]), make_study(verdict=rule))
    assert three.status == NOT_SUPPORTED and "add seeds" in three.message  # 1/20 = 0.05 is not < 0.05
    five = [0.9, 0.91, 0.92, 0.93, 0.94], [0.1, 0.11, 0.12, 0.13, 0.14]
    result = analysis.verdict(ablation_frame(*five), make_study(verdict=rule, seeds=5))
    assert result.status == SUPPORTED and result.p_one_sided == pytest.approx(1 / 252)


def test_target_rule_is_a_one_sample_test():
    rule = {"metric": "mi/cat_ratio", "factor": "lambda_cat", "treatment": 0.0, "target": 0.5, "direction": "less"}
    treated = [0.2, 0.3, 0.25]
    result = analysis.verdict(ablation_frame([0.9], treated), make_study(verdict=rule))  # the baseline is not needed
    assert result.status == SUPPORTED
    assert result.p_one_sided == pytest.approx(stats.ttest_1samp(treated, 0.5, alternative="less").pvalue)
    assert result.comparison.diff == pytest.approx(-0.25) and result.mean_baseline == 0.5
    assert "one-sample t-test" in result.lines()[0] and "(treatment - target)" in "\n".join(result.lines())
    above = analysis.verdict(ablation_frame([], [0.6, 0.7, 0.65]), make_study(verdict=rule))
    assert above.status == NOT_SUPPORTED and "other way" in above.message
    ranks = analysis.verdict(ablation_frame([], treated), make_study(verdict={**rule, "test": "mannwhitney"}))
    assert ranks.status == NOT_SUPPORTED and "add seeds" in ranks.message  # signed ranks: p >= 1/8 with 3 runs
    assert ranks.comparison.test_name == "Wilcoxon signed-rank test"


def test_where_restricts_a_grid_verdict_to_some_levels():
    factors = {"d_batchnorm": ["none", "separate"], "dataset": ["ring8", "grid25"]}
    rule = {
        "metric": "eval/modes",
        "factor": "d_batchnorm",
        "baseline": "none",
        "treatment": "separate",
        "direction": "greater",
        "where": {"dataset": "grid25"},
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
    assert result.status == SUPPORTED and (result.n_baseline, result.n_treatment) == (3, 3)
    assert result.mean_treatment == 21 and "only trials with dataset=grid25" in result.lines()[0]
    pooled = analysis.verdict(
        pd.DataFrame(rows),
        make_study(kind="grid", factors=factors, objectives=["eval/modes"], verdict={**rule, "where": {}}),
    )
    assert pooled.n_treatment == 6 and pooled.p_one_sided > result.p_one_sided


def test_no_rule_gives_no_verdict():
    assert analysis.verdict(ablation_frame([0.5], [0.5]), make_study(verdict=None)) is None


# --- importance ---------------------------------------------------------------------------------


def test_importance_ranks_the_factor_that_matters():
    study = make_study(kind="grid", factors=GRID)
    scores = analysis.importance(stored_study(study, grid_trials()), study)["mi/cat_ratio"]
    assert isinstance(scores, dict) and set(scores) == {"lambda_cat", "d_batchnorm"}
    assert max(scores, key=scores.get) == "lambda_cat"


def test_importance_is_skipped_with_a_reason():
    ablation = make_study()
    assert "one factor at a time" in analysis.importance(optuna.create_study(), ablation)["mi/cat_ratio"]
    grid = make_study(kind="grid", factors={"lambda_cat": [1.0, 0.0]})
    one = stored_study(grid, [({"lambda_cat": 1.0}, "completed", 0.9), ({"lambda_cat": 0.0}, "completed", 0.1)])
    assert "only 1 parameter" in analysis.importance(one, grid)["mi/cat_ratio"]
    few = stored_study(
        make_study(kind="grid", factors=GRID), [({"lambda_cat": 1.0, "d_batchnorm": "none"}, "completed", 0.9)]
    )
    assert "at least 2 completed" in analysis.importance(few, make_study(kind="grid", factors=GRID))["mi/cat_ratio"]


def test_note_of_a_study_without_trials():
    study = make_study()
    empty = optuna.create_study(study_name=study.name, direction="maximize")
    empty.set_user_attr("spec", study.model_dump(mode="json"))
    note = study_note(study, empty)
    assert "**Trials:** none yet" in note and "no finished runs" in note


def test_study_note_names_best_and_worst_configuration_and_the_verdict():
    study = make_study(kind="grid", factors=GRID)
    note = study_note(study, stored_study(study, grid_trials()))
    assert "**Trials:** 11 completed, 1 diverged" in note
    assert "| mi/cat_ratio (maximize) | `lambda_cat=1.0,d_batchnorm=" in note
    assert "### Verdict: SUPPORTED" in note and "one-sided p" in note
