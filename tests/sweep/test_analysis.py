"""Known-answer statistics, the effect table and the verdict on hand-built trial frames (no Ray, no training)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial
from scipy import stats

from sweep import analysis, report, spec
from sweep.analysis import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from sweep.review import study_note

BASE = {"dataset": "ring8", "arch": "mlp", "cat_codes": [8], "cont_codes": 0, "lambda_cat": 1.0}


def make_study(kind: str = "ablation", **overrides) -> spec.Study:
    data = {
        "name": "stats",
        "claim": "lambda_cat = 0 keeps little mutual information",
        "kind": kind,
        "base": dict(BASE),
        "factors": {"lambda_cat": [0.0]},
        "seeds": 3,
        "objectives": ["mi/cat_ratio"],
        "budget": {"steps": 20, "report_every": 10},
        "verdict": {
            "metric": "mi/cat_ratio",
            "factor": "lambda_cat",
            "baseline": 1.0,
            "treatment": 0.0,
            "direction": "less",
        },
    }
    data.update(overrides)
    return spec.parse(data)


def ablation_frame(baseline: list, treatment: list, metric: str = "mi/cat_ratio") -> pd.DataFrame:
    """Trials as trials_frame gives them; a value "diverged"/"crashed"/"pruned" is a run that did not finish."""
    rows = []
    for config_id, factor, level, values in (("base", None, None, baseline),
                                             ("lambda_cat=0.0", "lambda_cat", 0.0, treatment)):  # fmt: skip
        for seed, value in enumerate(values):
            outcome = value if isinstance(value, str) else "completed"
            rows.append({
                "number": len(rows), "state": "COMPLETE" if outcome == "completed" else "FAIL", "outcome": outcome,
                "config_id": config_id, "factor": factor, "level": level, "seed": seed,
                "params.lambda_cat": 1.0 if level is None else level,
                metric: value if outcome == "completed" else None,
            })  # fmt: skip
    return pd.DataFrame(rows)


# --- known answers ------------------------------------------------------------------------------


def test_mean_ci_matches_the_textbook_value():
    mean, low, high = analysis.mean_ci([1, 2, 3, 4, 5])
    # t_{0.975, 4} = 2.776, sd = 1.5811: half-width 2.776 * 1.5811 / sqrt(5) = 1.963
    assert mean == 3.0
    assert high - mean == pytest.approx(1.963, abs=1e-3)
    assert mean - low == pytest.approx(1.963, abs=1e-3)


def test_mean_ci_edge_cases():
    assert all(math.isnan(x) for x in analysis.mean_ci([]))
    mean, low, high = analysis.mean_ci([0.7])  # one value: a mean, no interval
    assert mean == 0.7 and math.isnan(low) and math.isnan(high)
    assert analysis.mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)  # zero variance: width 0
    assert analysis.mean_ci([1.0, float("nan"), 3.0, None])[0] == 2.0  # non-finite values are dropped


def test_welch_matches_a_hand_computed_example():
    # a: mean 2.5, var 5/3; b: mean 7/3, var 1/3. se^2 = (5/3)/4 + (1/3)/3 = 0.527778
    # t = (1/6) / sqrt(0.527778) = 0.229416; df = 0.527778^2 / ((5/12)^2/3 + (1/9)^2/2) = 4.349398
    c = analysis.welch([1, 2, 3, 4], [2, 2, 3])
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
    c = analysis.welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert c.statistic == pytest.approx(ref.statistic) and c.p_two_sided == pytest.approx(ref.pvalue)
    assert c.statistic == pytest.approx(-2.46, abs=0.01) and c.p_two_sided == pytest.approx(0.021, abs=0.001)
    assert c.p_less == pytest.approx(stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue)
    assert (c.low, c.high) == pytest.approx(tuple(ref.confidence_interval(0.95)))


def test_two_draws_of_one_distribution_show_no_effect():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20), rng.normal(0, 1, 20)
    assert analysis.welch(a, b).p_two_sided > 0.05
    assert analysis.mann_whitney(a, b).p_two_sided > 0.05


def test_welch_degenerate_samples():
    same = analysis.welch([1.0, 1.0, 1.0], [1.0, 1.0])
    assert (same.diff, same.low, same.high, same.p_two_sided) == (0.0, 0.0, 0.0, 1.0)
    exact = analysis.welch([2.0, 2.0], [1.0, 1.0, 1.0])  # no spread, different means: an exact difference
    assert (exact.low, exact.high, exact.p_greater, exact.p_less) == (1.0, 1.0, 0.0, 1.0)
    single = analysis.welch([1.0], [1.0, 2.0])  # n < 2: no variance, no test
    assert single.diff == -0.5 and math.isnan(single.low) and math.isnan(single.p_two_sided)


def test_mann_whitney_exact_p_values():
    c = analysis.mann_whitney([3, 4, 5], [0, 1, 2])
    assert c.p_greater == pytest.approx(0.05)  # 1 / C(6, 3): the smallest p three seeds a side can give
    assert analysis.min_attainable_p(3, 3) == pytest.approx(0.05)
    assert analysis.mann_whitney([1, 1, 1], [1, 1, 1]).p_two_sided == 1.0


# --- the effect table ---------------------------------------------------------------------------


def test_effects_count_runs_that_did_not_finish_per_level():
    study = make_study(factors={"lambda_cat": [0.0, 0.5]}, seeds=5)
    frame = ablation_frame([0.9, 0.8, 0.85, "diverged", 0.95], [0.1, "diverged", "diverged", "diverged", 0.2])
    # a level where every run crashed is shown, not dropped
    frame = pd.concat([frame, pd.DataFrame([{
        "number": 10 + s, "state": "FAIL", "outcome": "crashed", "config_id": "lambda_cat=0.5",
        "factor": "lambda_cat", "level": 0.5, "seed": s, "params.lambda_cat": 0.5} for s in range(2)])],
        ignore_index=True)  # fmt: skip
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
                rows.append({
                    "number": len(rows), "outcome": "completed", "config_id": f"lambda_cat={lam},d_batchnorm={bn}",
                    "factor": None, "level": None, "seed": seed, "params.lambda_cat": lam, "params.d_batchnorm": bn,
                    "mi/cat_ratio": value,
                })  # fmt: skip
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
    rule = {"metric": "mi/cat_ratio", "factor": "lambda_cat", "baseline": 1.0, "treatment": 0.0, "direction": "less",
            "test": "mannwhitney"}  # fmt: skip
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
    rule = {"metric": "eval/modes", "factor": "d_batchnorm", "baseline": "none", "treatment": "separate",
            "direction": "greater", "where": {"dataset": "grid25"}}  # fmt: skip
    study = make_study(kind="grid", factors=factors, objectives=["eval/modes"], verdict=rule)
    modes = {
        ("none", "ring8"): [8, 8, 7],
        ("separate", "ring8"): [3, 8, 4],  # no gain on ring8 ...
        ("none", "grid25"): [10, 11, 9],
        ("separate", "grid25"): [20, 22, 21],
    }  # ... a clear one on grid25
    rows = [{"number": len(modes) * 3, "outcome": "completed", "config_id": f"d_batchnorm={bn},dataset={ds}",
             "factor": None, "level": None, "seed": seed, "params.d_batchnorm": bn, "params.dataset": ds,
             "eval/modes": v} for (bn, ds), values in modes.items() for seed, v in enumerate(values)]  # fmt: skip
    result = analysis.verdict(pd.DataFrame(rows), study)
    assert result.status == SUPPORTED and (result.n_baseline, result.n_treatment) == (3, 3)
    assert result.mean_treatment == 21 and "only trials with dataset=grid25" in result.lines()[0]
    pooled = analysis.verdict(pd.DataFrame(rows), make_study(kind="grid", factors=factors, objectives=["eval/modes"],
                                                             verdict={**rule, "where": {}}))  # fmt: skip
    assert pooled.n_treatment == 6 and pooled.p_one_sided > result.p_one_sided


def test_no_rule_gives_no_verdict():
    assert analysis.verdict(ablation_frame([0.5], [0.5]), make_study(verdict=None)) is None


# --- importance and a stored study, without Ray --------------------------------------------------


def stored_study(study: spec.Study, trials: list[tuple[dict, str, float | None]]) -> optuna.Study:
    """An in-memory Optuna study holding `study` and trials (params, outcome, value), as the runner stores them."""
    stored = optuna.create_study(study_name=study.name, directions=[o.direction for o in study.objectives])
    stored.set_user_attr("spec", study.model_dump(mode="json"))
    stored.set_user_attr("kind", study.kind)
    names = {k: sorted({p[k] for p, _, _ in trials}, key=str) for k in trials[0][0]}
    for i, (params, outcome, value) in enumerate(trials):
        state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(outcome, TrialState.FAIL)
        config_id = ",".join(f"{k}={spec.format_value(v)}" for k, v in params.items())
        stored.add_trial(create_trial(
            state=state, params=params, values=[value] if state == TrialState.COMPLETE else None,
            distributions={k: CategoricalDistribution(names[k]) for k in params},
            user_attrs={"config_id": config_id, "seed": i % 3, "outcome": outcome, "wall_s": 1.0,
                        "metrics": {"mi/cat_ratio": value} if value is not None else {},
                        "history": [{"step": s, "mi/cat_ratio": (value or 0) * s / 20, "loss/d": 1.3, "loss/g": 0.7}
                                    for s in (10, 20)]},
        ))  # fmt: skip
    return stored


GRID = {"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]}


def grid_trials() -> list[tuple[dict, str, float | None]]:
    rng = np.random.default_rng(1)
    trials = []
    for lam in GRID["lambda_cat"]:
        for bn in GRID["d_batchnorm"]:
            for _ in range(3):
                value = float((0.9 if lam else 0.1) + 0.02 * rng.normal())
                trials.append(({"lambda_cat": lam, "d_batchnorm": bn}, "completed", value))
    trials[-1] = (trials[-1][0], "diverged", None)
    return trials


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
    few = stored_study(make_study(kind="grid", factors=GRID), [({"lambda_cat": 1.0, "d_batchnorm": "none"},
                                                                "completed", 0.9)])  # fmt: skip
    assert "at least 2 completed" in analysis.importance(few, make_study(kind="grid", factors=GRID))["mi/cat_ratio"]


def test_report_of_a_stored_grid_renders_every_section(tmp_path):
    study = make_study(kind="grid", factors=GRID)
    built = report.build(stored_study(study, grid_trials()))  # no artifact store: no sample images
    assert built.verdict.status == SUPPORTED
    page = report.render_html(built)
    for text in (
        "SUPPORTED",
        "Welch",
        "1 diverged",
        "marginal means per level",
        "importance",
        "data:image/png;base64,",
    ):
        assert text in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    md_path = report.write(built, tmp_path / "r.md", format="md")
    assert "(r_files/effects.png)" in md_path.read_text()
    assert (tmp_path / "r_files" / "effects.png").stat().st_size > 1000


def test_report_and_note_of_a_study_without_trials(tmp_path):
    study = make_study()
    empty = optuna.create_study(study_name=study.name, direction="maximize")
    empty.set_user_attr("spec", study.model_dump(mode="json"))
    built = report.build(empty)
    assert built.verdict is None and built.effects.empty
    assert "No trials yet" in report.render_html(built)
    note = study_note(study, empty)
    assert "**Trials:** none yet" in note and "no finished runs" in note


def test_study_note_names_best_and_worst_configuration_and_the_verdict():
    study = make_study(kind="grid", factors=GRID)
    note = study_note(study, stored_study(study, grid_trials()))
    assert "**Trials:** 11 completed, 1 diverged" in note
    assert "| mi/cat_ratio (maximize) | `lambda_cat=1.0,d_batchnorm=" in note
    assert "### Verdict: SUPPORTED" in note and "one-sided p" in note
