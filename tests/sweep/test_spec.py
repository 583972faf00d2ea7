"""The study file: validation messages (file:line: key.path: problem) and deterministic expansion."""

from __future__ import annotations

import json
import textwrap
import time
import tracemalloc
from pathlib import Path

import jsonschema
import pytest
import yaml

from sweep import core, spec
from sweep.errors import StudyError, TooManyTrialsError

ABLATION = """\
name: bn-ablation
description: batch norm placement
kind: ablation
base:
  dataset: digits
  d_batchnorm: separate
factors:
  encoder: [isolated]
  d_batchnorm: [joint, none]
seeds: 2
objectives: [eval/cat_acc]
budget:
  steps: 20
  report_every: 10
"""

SEARCH = """\
name: lr-search
kind: search
space:
  lr_g: {type: float, low: 0.0001, high: 0.01, log: true}
  clip: {type: categorical, choices: [none, norm]}
trials: 4
objectives: [eval/cat_acc]
budget: {steps: 20}
"""


def minimal() -> dict:
    return {"name": "s", "kind": "grid", "factors": {"clip": ["none", "norm"]}, "budget": {"steps": 10}}


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(StudyError) as info:
        spec.load(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "study.yaml"))
    return message


def test_ablation_expands_base_first_then_each_alternative_per_seed(tmp_path: Path) -> None:
    study = spec.load(write(tmp_path, ABLATION))
    trials = spec.expand(study)
    assert len(trials) == (1 + 1 + 2) * 2
    assert [t.index for t in trials] == list(range(8))
    assert [(t.config_id, t.seed) for t in trials] == [
        ("base", 0),
        ("base", 1),
        ("encoder=isolated", 0),
        ("encoder=isolated", 1),
        ("d_batchnorm=joint", 0),
        ("d_batchnorm=joint", 1),
        ("d_batchnorm=none", 0),
        ("d_batchnorm=none", 1),
    ]
    assert trials[0].params == {
        "encoder": "shared",
        "d_batchnorm": "separate",
    }  # encoder: TrainConfig default
    assert (trials[0].factor, trials[0].level) == (None, None)
    assert trials[4].params == {"encoder": "shared", "d_batchnorm": "joint"}
    assert (trials[4].factor, trials[4].level) == ("d_batchnorm", "joint")
    assert spec.expand(spec.load(write(tmp_path, ABLATION))) == trials
    assert spec.factor_levels(study) == {
        "encoder": ["shared", "isolated"],
        "d_batchnorm": ["separate", "joint", "none"],
    }


def test_grid_is_the_product_of_factors_in_file_order(tmp_path: Path) -> None:
    text = ABLATION.replace("kind: ablation", "kind: grid").replace("[isolated]", "[shared, isolated]")
    study = spec.load(write(tmp_path, text.replace("seeds: 2", "seeds: [7]")))
    trials = spec.expand(study)
    assert [t.config_id for t in trials] == [
        f"encoder={e},d_batchnorm={b}" for e in ("shared", "isolated") for b in ("joint", "none")
    ]
    assert {t.seed for t in trials} == {7}
    assert all(t.factor is None and t.level is None for t in trials)


def test_config_ids_and_params_stay_json_friendly(tmp_path: Path) -> None:
    text = ABLATION.replace("  encoder: [isolated]\n", "  cat_codes: [[10, 2]]\n  lr_g: [0.01]\n")
    trials = spec.expand(spec.load(write(tmp_path, text)))
    assert [t.config_id for t in trials[::2]] == [
        "base",
        "cat_codes=[10,2]",
        "lr_g=0.01",
        "d_batchnorm=joint",
        "d_batchnorm=none",
    ]
    assert trials[0].params["cat_codes"] == [10]
    assert [spec.format_value(v) for v in (0.001, [10], True, None, "mlp")] == [
        "0.001",
        "[10]",
        "true",
        "null",
        "mlp",
    ]


def test_train_config_merges_base_budget_params_and_seed(tmp_path: Path) -> None:
    study = spec.load(write(tmp_path, ABLATION))
    cfg = study.train_config({"d_batchnorm": "joint"}, seed=5)
    assert (cfg.d_batchnorm, cfg.seed, cfg.steps, cfg.report_every, cfg.eval_every) == (
        "joint",
        5,
        20,
        10,
        20,
    )
    with pytest.raises(StudyError, match="lr_g"):
        study.train_config({"lr_g": -1.0}, seed=0)


def test_search_study_needs_space_and_trials_and_has_no_fixed_trials(tmp_path: Path) -> None:
    study = spec.load(write(tmp_path, SEARCH))
    assert study.space["lr_g"].log and study.trials == 4
    assert spec.factor_levels(study) == {"lr_g": [], "clip": ["none", "norm"]}
    with pytest.raises(StudyError, match="sampler"):
        spec.expand(study)
    assert "study.yaml:1: trials: is required" in error(tmp_path, SEARCH.replace("trials: 4\n", ""))
    no_space = "".join(line for line in SEARCH.splitlines(keepends=True) if not line.startswith(("space", "  ")))
    assert "study.yaml:1: space: is required" in error(tmp_path, no_space)
    assert "study.yaml:3: space: is for search studies" in error(tmp_path, SEARCH.replace("kind: search", "kind: grid"))


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    message = error(tmp_path, "name: x\nkind: ablation\nfactors: {a: [1, 2}\n")
    assert "study.yaml:3: invalid YAML" in message


def test_unknown_top_level_key_suggests_a_close_match(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("factors:", "factorz:"))
    assert message.endswith("study.yaml:7: factorz: unknown key 'factorz'; did you mean 'factors'?")


def test_unknown_key_in_a_nested_model_suggests_a_close_match(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("  report_every: 10", "  report_evry: 10"))
    assert "study.yaml:14: budget.report_evry: unknown key 'report_evry'; did you mean 'report_every'?" in message


def test_unknown_field_in_base_suggests_a_trainconfig_field(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("  dataset: digits", "  lr_dd: 0.001"))
    assert "study.yaml:5: base.lr_dd: unknown TrainConfig field 'lr_dd'; did you mean 'lr_d'?" in message


def test_factor_must_be_a_trainconfig_field(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("  encoder: [isolated]", "  encodr: [isolated]"))
    assert "study.yaml:8: factors.encodr: unknown TrainConfig field 'encodr'; did you mean 'encoder'?" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("seeds: 2", "seeds: three"))
    assert "study.yaml:10: seeds: must be a count >= 1" in message
    assert "'three'" in message


def test_bad_base_value_reports_trainconfig_message_at_its_line(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("  dataset: digits", "  lr_d: -1"))
    assert message.endswith("study.yaml:5: base.lr_d: must be in (0.0, 1.0], but got -1.0")


def test_unknown_dataset_lists_the_valid_names(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("dataset: digits", "dataset: mnistt"))
    assert "study.yaml:5: base.dataset: must be one of digits" in message
    assert "'mnistt'" in message


def test_base_cannot_set_steps(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("  dataset: digits", "  steps: 10"))
    assert "study.yaml:5: base.steps: is set by `budget.steps`" in message


def test_bad_factor_value_points_at_the_list_item(tmp_path: Path) -> None:
    text = ABLATION.replace("  d_batchnorm: [joint, none]", "  d_batchnorm:\n    - joint\n    - nope")
    assert "study.yaml:11: factors.d_batchnorm[1]: must be one of none | joint | separate" in error(tmp_path, text)


def test_empty_range_is_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, SEARCH.replace("low: 0.0001, high: 0.01", "low: 0.1, high: 0.01"))
    assert "study.yaml:4: space.lr_g.high: must be > low (0.1)" in message


def test_unknown_metric_suggests_a_close_match(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("[eval/cat_acc]", "[eval/cat_ac]"))
    assert message.endswith("study.yaml:11: objectives[0]: unknown metric 'eval/cat_ac'; did you mean 'eval/cat_acc'?")


def test_empty_factor_list_is_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("[isolated]", "[]"))
    assert "study.yaml:8: factors.encoder: must list at least one level" in message


def test_duplicate_factor_values_are_rejected(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("[joint, none]", "\n    - joint\n    - none\n    - joint"))
    assert "study.yaml:12: factors.d_batchnorm[2]: repeats the value joint" in message


def test_multi_objective_rejects_cmaes_and_implicit_early_stopping(tmp_path: Path) -> None:
    two = SEARCH.replace("[eval/cat_acc]", "[eval/cat_acc, eval/fd]")
    assert "study.yaml:3: sampler: 'cmaes' optimizes a single objective" in error(
        tmp_path, two.replace("space:", "sampler: cmaes\nspace:")
    )
    stop = two + "early_stopping: {grace_period: 5}\n"
    assert "study.yaml:9: early_stopping.metric: is required with several objectives" in error(tmp_path, stop)
    explicit = spec.load(write(tmp_path, two + "sampler: nsga2\nearly_stopping: {metric: eval/fd, grace_period: 5}\n"))
    assert explicit.early_stopping is not None and explicit.early_stopping.mode == "min"


def test_early_stopping_defaults_to_the_single_objective(tmp_path: Path) -> None:
    study = spec.load(write(tmp_path, ABLATION + "early_stopping: {grace_period: 10}\n"))
    assert study.early_stopping is not None
    assert (study.early_stopping.metric, study.early_stopping.mode) == ("eval/cat_acc", "max")


def test_missing_budget_is_reported(tmp_path: Path) -> None:
    text = ABLATION.split("budget:")[0]
    assert "study.yaml:1: budget: required key is missing" in error(tmp_path, text)


def test_verdict_levels_must_exist(tmp_path: Path) -> None:
    verdict = (
        "verdict: {metric: eval/cat_acc, factor: d_batchnorm, baseline: separate, treatment: %s, direction: less,\n"
        "          min_effect: 0.03}\n"
    )
    study = spec.load(write(tmp_path, ABLATION + verdict % "joint"))
    assert study.verdict is not None and study.verdict.test == "t" and study.verdict.min_effect == 0.03
    assert "study.yaml:15: verdict.treatment: must be a level of d_batchnorm" in error(
        tmp_path, ABLATION + verdict % "jont"
    )


GRID_STUDY = ABLATION.replace("kind: ablation", "kind: grid").replace(
    "encoder: [isolated]", "encoder: [shared, isolated]"
)
INTERACTION = (
    "verdict: {metric: %s, factor: d_batchnorm, baseline: joint, treatment: none, direction: less,\n"
    "          min_effect: 0.03, interaction: %s}\n"
)


@pytest.mark.parametrize(
    ("metric", "interaction", "message"),
    [
        ("eval/cat_acc", "{factor: encoder, level: shared, against: isolated}", None),
        ("eval/cat_acc", "{factor: encodr, level: shared, against: isolated}", "interaction.factor: unknown factor"),
        ("eval/cat_acc", "{factor: d_batchnorm, level: joint, against: none}", "interaction.factor: unknown factor"),
        ("eval/cat_acc", "{factor: encoder, level: shard, against: isolated}", "interaction.level: must be a level"),
        ("eval/cat_acc", "{factor: encoder, level: shared, against: shared}", "interaction.against: must differ"),
        ("diverged", "{factor: encoder, level: shared, against: isolated}", "verdict.interaction: compares two"),
    ],
)
def test_an_interaction_names_another_factor_and_two_of_its_levels(
    tmp_path: Path, metric: str, interaction: str, message: str | None
) -> None:
    text = GRID_STUDY + INTERACTION % (metric, interaction)
    if message is None:
        study = spec.load(write(tmp_path, text))
        assert study.verdict.interaction.factor == "encoder" and study.verdict.interaction.against == "isolated"
    else:
        assert message in error(tmp_path, text)
    ablation = ABLATION + INTERACTION % ("eval/cat_acc", "{factor: encoder, level: isolated, against: isolated}")
    assert "verdict.interaction: is for grid studies" in error(tmp_path, ablation)


def test_a_divergence_rule_in_a_grid_fixes_the_other_factors(tmp_path: Path) -> None:
    rule = "verdict: {metric: diverged, factor: d_batchnorm, baseline: joint, treatment: none, direction: less,\n"
    rule += "          min_effect: 0.2%s}\n"
    assert (
        "verdict.where: a claim about 'diverged' compares one pair of runs per seed: fix the other factors here "
        "(encoder)" in error(tmp_path, GRID_STUDY + rule % "")
    )
    assert spec.load(write(tmp_path, GRID_STUDY + rule % ", where: {encoder: shared}")).verdict.where


RULE = "verdict: {metric: eval/cat_acc, factor: d_batchnorm, baseline: separate, treatment: joint, direction: less%s}\n"


def test_a_new_rule_must_declare_its_smallest_effect_of_interest(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION + RULE % "")
    assert "study.yaml:15: verdict.min_effect: is required: the smallest effect that matters" in message
    assert "verdict.min_effect: must be greater than or equal to 0" in error(
        tmp_path, ABLATION + RULE % ", min_effect: -1"
    )
    assert "did you mean 'rank'" not in error(tmp_path, ABLATION + RULE % ", min_effect: 0.1, test: welch")


def test_an_equivalence_claim_needs_a_margin_and_a_baseline(tmp_path: Path) -> None:
    rule = RULE.replace("direction: less", "direction: equivalent")
    study = spec.load(write(tmp_path, ABLATION + rule % ", min_effect: 0.05"))
    assert study.verdict is not None and study.verdict.direction == "equivalent"
    assert "verdict.min_effect: must be above 0 for an equivalence claim" in error(
        tmp_path, ABLATION + rule % ", min_effect: 0"
    )
    target = "verdict: {metric: eval/cat_acc, factor: d_batchnorm, treatment: joint, target: 0.9, "
    assert "verdict.direction: equivalent compares two levels" in error(
        tmp_path, ABLATION + target + "direction: equivalent, min_effect: 0.05}\n"
    )


def test_a_stored_rule_from_before_min_effect_still_loads() -> None:
    data = yaml.safe_load(ABLATION + RULE % ", test: mannwhitney")
    with pytest.raises(StudyError, match="min_effect: is required"):
        spec.parse(data)
    stored = spec.parse_stored(data)  # written before rules had min_effect and paired tests
    assert stored.verdict is not None and (stored.verdict.min_effect, stored.verdict.test) == (0.0, "rank")
    assert data["verdict"]["test"] == "mannwhitney"  # the caller's data is left as it was


def test_early_stopping_with_a_verdict_must_say_how_pruned_runs_count(tmp_path: Path) -> None:
    text = ABLATION + "early_stopping: {grace_period: 10}\n" + RULE % ", min_effect: 0.03"
    assert "verdict.pruned: is required with early_stopping: stopped runs have no final value" in error(tmp_path, text)
    study = spec.load(
        write(tmp_path, ABLATION + "early_stopping: {grace_period: 10}\n" + RULE % ", min_effect: 0.03, pruned: worst")
    )
    assert study.verdict is not None and study.verdict.pruned == "worst"


def test_a_claim_about_divergence_names_no_reported_metric(tmp_path: Path) -> None:
    rule = RULE.replace("eval/cat_acc", "diverged") % ", min_effect: 0.2"
    assert spec.load(write(tmp_path, ABLATION + rule)).verdict.metric == "diverged"
    target = (
        "verdict: {metric: diverged, factor: d_batchnorm, treatment: joint, target: 0.1, direction: less,\n"
        "          min_effect: 0.1}\n"
    )
    assert "verdict.target: a claim about 'diverged' compares two levels" in error(tmp_path, ABLATION + target)
    assert "did you mean 'eval/modes'" in error(
        tmp_path, ABLATION + RULE.replace("eval/cat_acc", "eval/mode") % ", min_effect: 1"
    )


def test_planned_looks_double_from_start_to_max(tmp_path: Path) -> None:
    rule = RULE % ", min_effect: 0.03"
    study = spec.load(write(tmp_path, ABLATION.replace("seeds: 2", "seeds: {start: 4, max: 32}") + rule))
    assert study.sequential and study.looks == [4, 8, 16, 32] and study.seed_list == list(range(32))
    assert study.trial_count == 4 * 32 and len(spec.expand(study)) == 4 * 32
    odd = spec.load(write(tmp_path, ABLATION.replace("seeds: 2", "seeds: {start: 3, max: 10, first: 5}") + rule))
    assert odd.looks == [3, 6, 10] and odd.seed_list == list(range(5, 15))
    assert spec.load(write(tmp_path, ABLATION + rule)).looks == [2]  # a fixed seed set is one look
    assert "seeds.max: must be >= start (4), but got 2" in error(
        tmp_path, ABLATION.replace("seeds: 2", "seeds: {start: 4, max: 2}") + rule
    )
    assert "seeds: planned looks {start, max} need a verdict rule" in error(
        tmp_path, ABLATION.replace("seeds: 2", "seeds: {start: 4, max: 8}")
    )
    assert "seeds.spending: must be 'obrien-fleming' or 'pocock'" in error(
        tmp_path, ABLATION.replace("seeds: 2", "seeds: {start: 4, max: 8, spending: linear}") + rule
    )


def test_a_replication_runs_the_same_study_on_disjoint_seeds(tmp_path: Path) -> None:
    rule = RULE % ", min_effect: 0.03"
    study = spec.load(write(tmp_path, ABLATION + rule))
    first, second = study.replication(1), study.replication(2)
    assert (first.name, second.name) == ("bn-ablation-rep1", "bn-ablation-rep2")
    assert first.seed_list == [10_000, 10_001] and second.seed_list == [20_000, 20_001]
    assert first.fingerprint() == study.fingerprint()  # the same experiment
    planned = spec.load(write(tmp_path, ABLATION.replace("seeds: 2", "seeds: {start: 2, max: 8}") + rule))
    rep = planned.replication(1)
    assert rep.looks == planned.looks and rep.seed_list == list(range(10_000, 10_008))
    assert not set(rep.seed_list) & set(planned.seed_list)
    with pytest.raises(StudyError, match="seeds must be below it"):
        study.with_overrides(seeds=[3, 12_000]).replication(1)


def test_a_search_study_has_no_verdict(tmp_path: Path) -> None:
    rule = (
        "verdict: {metric: eval/cat_acc, factor: clip, baseline: none, treatment: norm, direction: less,\n"
        "          min_effect: 0.1}\n"
    )
    message = error(tmp_path, SEARCH.replace("objectives: [eval/cat_acc]\n", "objectives: [eval/cat_acc]\n" + rule))
    assert "verdict: is for ablation and grid studies" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ":1: the file is empty"),
        ("- a\n- b\n", ":1: a study must be a mapping"),
        ("hello\n", ":1: a study must"),
    ],
)
def test_empty_or_non_mapping_file(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"nope\.yaml: no such study file"):
        spec.load(tmp_path / "nope.yaml")


def test_parse_without_a_file_names_the_source() -> None:
    with pytest.raises(StudyError, match=r"^stored: kind: must be 'ablation', 'grid' or 'search', but got 'x'$"):
        spec.parse({"name": "a", "kind": "x", "objectives": ["eval/fd"], "budget": {"steps": 5}}, source="stored")


def test_objective_short_forms_normalize() -> None:
    def objectives(value: object) -> list[tuple[str, str | None]]:
        study = spec.parse({**minimal(), "base": {"dataset": "ring8", "arch": "mlp"}, "objectives": value})
        return [(o.metric, o.direction) for o in study.objectives]

    assert objectives("eval/modes") == [("eval/modes", "maximize")]
    assert objectives(["eval/fd"]) == [("eval/fd", "minimize")]
    assert objectives([{"eval/modes": "minimize"}]) == [("eval/modes", "minimize")]
    assert objectives([{"metric": "eval/hq", "direction": "maximize"}]) == [("eval/hq", "maximize")]
    with pytest.raises(StudyError, match=r"objectives\[1\]: repeats the metric 'eval/fd'"):
        objectives(["eval/fd", {"eval/fd": "minimize"}])


def test_with_overrides_replaces_steps_seeds_and_base_values(tmp_path: Path) -> None:
    study = spec.load(write(tmp_path, ABLATION + "early_stopping: {grace_period: 10}\n"))
    small = study.with_overrides(steps=5, seeds=[3, 4], set_values={"dataset": "ring8", "arch": "mlp"})
    assert (small.budget.steps, small.budget.report_every, small.budget.eval_every) == (5, 5, None)
    assert small.early_stopping is not None and small.early_stopping.grace_period == 5
    assert small.seed_list == [3, 4] and small.base["dataset"] == "ring8"
    assert study.budget.steps == 20 and study.seed_list == [0, 1]
    assert len(spec.expand(small)) == 8
    assert study.with_overrides(set_values={"steps": 30}).budget.steps == 30
    with pytest.raises(StudyError, match=r"base\.dataset: must be one of"):
        study.with_overrides(set_values={"dataset": "nope"})


def test_fingerprint_ignores_description_and_seeds_but_not_base_or_budget(tmp_path: Path) -> None:
    study = spec.load(write(tmp_path, ABLATION))
    same = spec.load(write(tmp_path, ABLATION.replace("seeds: 2", "seeds: 5").replace("placement", "where")))
    assert study.fingerprint() == same.fingerprint()
    assert len(study.fingerprint()) == 64
    assert study.with_overrides(set_values={"lr_g": 0.002}).fingerprint() != study.fingerprint()
    assert study.with_overrides(steps=10).fingerprint() != study.fingerprint()


def test_json_schema_lists_properties_and_trainconfig_fields() -> None:
    schema = spec.study_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert isinstance(schema, dict) and "budget" in schema["properties"]
    lr_d = schema["properties"]["base"]["properties"]["lr_d"]
    assert (lr_d["type"], lr_d["exclusiveMinimum"], lr_d["maximum"]) == ("number", 0, 1)  # from TrainConfig's knob
    assert "learning rate of D" in lr_d["description"] and "in (0.0, 1.0]" in lr_d["description"]
    assert schema["properties"]["kind"]["description"]
    documented = schema["properties"]["base"]["properties"]
    settable = [f for f in core.field_names() if f not in (*spec.BUDGET_FIELDS, "seed")]
    assert list(documented) == settable  # every knob, the newest too (q_update, optimizer, loss_space, ...)
    assert all(len(documented[f]["description"].split()) >= 4 for f in settable)
    assert documented["q_update"]["enum"] == ["d_step", "g_step"] and documented["q_update"]["default"] == "d_step"


SHIPPED = sorted((Path(__file__).resolve().parents[2] / "studies").glob("**/*.yaml"))  # large/ too


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_study_satisfies_the_json_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), spec.study_json_schema())


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("base", {"lr_g": -1.0}),
        ("base", {"d_batchnorm": "both"}),
        ("base", {"lr_gg": 1e-3}),
        ("factors", {"noise_dim": [8, 2000]}),
        ("factors", {"clip": ["max"]}),
        ("factors", {"no_such_knob": [1]}),
    ],
)
def test_the_json_schema_refuses_what_validation_refuses(section: str, value: dict, tmp_path: Path) -> None:
    # an editor using `sweep schema` flags the same mistakes `sweep validate` does
    data = yaml.safe_load(SHIPPED[0].read_text())
    data[section] = {**data.get(section, {}), **value}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, spec.study_json_schema())
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(StudyError):
        spec.load(tmp_path / "s.yaml")


def test_objective_not_measured_on_the_dataset_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: x\nkind: ablation\nbase: {dataset: digits}\nfactors: {noise_dim: [4]}\n"
        "objectives: [mi/cat, eval/modes]\nbudget: {steps: 10}\n"
    )
    with pytest.raises(StudyError, match=r"s\.yaml:5: objectives\[1\]\.metric: eval/modes is not measured: .*ring8"):
        spec.load(path)


def test_duplicate_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "name: x\nkind: ablation\nfactors: {noise_dim: [4]}\nobjectives: [mi/cat]\n"
        "budget: {steps: 10, steps: 20}\nfactors: {noise_dim: [8]}\n"
    )
    with pytest.raises(StudyError, match=r"dup\.yaml:5: budget\.steps: appears twice"):
        spec.load(path)


# --- hostile input: names, aliases, sizes, bytes ---------------------------------------------------


@pytest.mark.parametrize("name", [".", "..", "../../../evil", "a/b", "a\\b", "-rep", ".hidden", "a b", "x" * 101])
def test_a_study_name_that_is_a_path_or_too_long_is_refused_wherever_it_arrives(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        spec.check_study_name(name)
    # in the file's `name:` ...
    assert "name: must be" in error(tmp_path, ABLATION.replace("name: bn-ablation", f"name: {json.dumps(name)}"))
    # ... and as a new name for a run
    with pytest.raises(StudyError, match="^study name must be"):
        spec.load(write(tmp_path, ABLATION)).renamed(name)


def test_a_name_of_100_characters_is_fine_but_its_replication_would_not_be() -> None:
    assert (
        spec.check_study_name("x" * 100) == "x" * 100 and spec.check_study_name("bn_ablation-2.b") == "bn_ablation-2.b"
    )
    study = spec.parse({**minimal(), "name": "x" * 95, "base": {"dataset": "ring8"}, "objectives": ["mi/cat"]})
    assert study.replication(9).name == "x" * 95 + "-rep9"  # 100 characters
    with pytest.raises(StudyError, match="at most 100 characters"):
        study.replication(10)


def test_a_5000_character_name_is_refused_by_validation_naming_its_length(tmp_path: Path) -> None:
    message = error(tmp_path, ABLATION.replace("name: bn-ablation", "name: " + "a" * 5000))
    assert message.endswith("study.yaml:1: name: must be at most 100 characters (it names a folder), but got 5000")


def _laughs(levels: int = 9) -> str:
    """A "billion laughs": each anchor's list names the previous one nine times (482 bytes at 9 levels)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_nested_aliases_are_refused_at_once_and_plain_aliases_still_work(tmp_path: Path) -> None:
    text = "name: laughs\n" + _laughs()
    assert len(text.encode()) < 500
    started = time.perf_counter()
    message = error(tmp_path, text)
    assert time.perf_counter() - started < 2.0  # on today's code: hours, at 100% CPU
    assert message.endswith("YAML aliases expand the file by more than 10,000 values; write the values out instead")
    assert "a value that contains it" in error(tmp_path, "name: x\nkind: &k [*k]\n")
    # the control: a study that shares a mapping through an anchor and a merge key is read as before
    shared = ABLATION.replace("base:\n", "base: &base\n") + "x-other: {<<: *base, d_batchnorm: none}\n"
    assert "x-other: unknown key" in error(tmp_path, shared)  # read in full: the alias expanded, the merge applied
    reused = spec.load(
        write(tmp_path, ABLATION.replace("steps: 20", "steps: &n 20").replace("report_every: 10", "report_every: *n"))
    )
    assert (reused.budget.steps, reused.budget.report_every) == (20, 20)


def test_trials_are_counted_not_listed_and_a_study_over_the_limit_is_refused_at_once(tmp_path: Path) -> None:
    levels = "[" + ", ".join(str(round(0.1 * i, 1)) for i in range(1, 11)) + "]"
    widths = ("g_width", "d_width", "q_width", "lambda_cat", "lambda_cont", "q_std", "lr_g", "lr_d")
    grid = "name: huge\nkind: grid\nbase: {dataset: ring8}\nfactors:\n"
    grid += "".join(f"  {w}: {levels}\n" for w in widths) + "objectives: [mi/cat]\nbudget: {steps: 10}\n"
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(TooManyTrialsError) as info:
        spec.load(write(tmp_path, grid))
    seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(info.value).endswith(
        "study.yaml:4: factors: the study has 300,000,000 trials (100,000,000 configurations x 3 seeds), more than "
        "the limit of 10,000"
    )
    assert seconds < 2.0 and peak < 20e6  # today: 2.6 GB after 90 s, and growing
    # seeds: 100000 is refused by the same count, at the key that makes it too large
    assert "study.yaml:10: seeds: the study has 400,000 trials (4 configurations x 100,000 seeds)" in error(
        tmp_path, ABLATION.replace("seeds: 2", "seeds: 100000")
    )
    assert "trials: the study has 20,000 trials" in error(tmp_path, SEARCH + "seeds: 5000\n")
    # a run may raise the limit; the count is the expansion's length (the control)
    study = spec.load(write(tmp_path, ABLATION.replace("seeds: 2", "seeds: 5000")), max_trials=20_000)
    assert study.trial_count == 20_000 == len(spec.expand(study))
    assert next(iter(spec.iter_trials(study))) == spec.expand(study)[0]
    with pytest.raises(TooManyTrialsError, match="limit of 10,000"):
        study.with_overrides(steps=5)
    assert study.with_overrides(steps=5, max_trials=None).trial_count == 20_000


def test_a_binary_file_is_named_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xa4\x8a\xff\xfe" + bytes(range(256)))
    with pytest.raises(StudyError, match=r"model\.pt: not a study file: byte 10 is not UTF-8 text"):
        spec.load(path)


def test_a_configuration_whose_network_does_not_fit_its_data_is_refused_at_its_line(tmp_path: Path) -> None:
    # ring8's samples are vectors: a conv network cannot read them; every configuration is built
    grid = "name: g\nkind: grid\nbase: {dataset: digits}\nfactors:\n  dataset: [digits, ring8]\n  arch: [conv]\n"
    message = error(tmp_path, grid + "objectives: [mi/cat]\nbudget: {steps: 10}\n")
    assert message.endswith(
        "study.yaml:6: factors.arch[0]: must be mlp (or auto) for dataset `ring8`, whose samples are vectors of "
        "shape (2,), but got 'conv' (in configuration dataset=ring8,arch=conv)"
    )
    # a search space whose choices are valid alone but not together
    search = SEARCH.replace(
        "clip: {type: categorical, choices: [none, norm]}",
        "dataset: {type: categorical, choices: [digits, ring8]}\n  arch: {type: categorical, choices: [mlp, conv]}",
    )
    message = error(tmp_path, search)
    assert ": space.arch.choices[1]: must be mlp (or auto) for dataset `ring8`" in message
    assert message.endswith("(in configuration dataset=ring8,arch=conv)")
    # an objective one of the choices cannot measure: digits has no modes to count
    only_dataset = (
        SEARCH.replace(
            "clip: {type: categorical, choices: [none, norm]}", "dataset: {type: categorical, choices: [ring8, digits]}"
        ).replace("eval/cat_acc", "eval/modes")
        + "base: {dataset: ring8}\n"
    )
    assert "objectives[0].metric: eval/modes is not measured in configuration dataset=digits" in error(
        tmp_path, only_dataset
    )


@pytest.mark.parametrize("value", [0, "big", True, 2000, 2.5])
def test_a_population_is_a_whole_number_of_members_or_auto(make_study, tmp_path, value):
    path = make_study(tmp_path / "p.yaml", resources={"population": value})
    with pytest.raises(
        StudyError, match=r"resources\.population: must be a whole number of members from 1 to 1024, or auto"
    ):
        spec.load(path)
    for good in (1, 16, "auto"):
        assert spec.load(make_study(tmp_path / "q.yaml", resources={"population": good})).resources.population == good


def test_a_population_from_the_command_line_is_parsed_by_the_schema(make_study, tmp_path):
    study = spec.load(make_study(tmp_path / "p.yaml"))
    assert study.with_overrides(population="8").resources.population == 8
    assert study.with_overrides(population="auto").resources.population == "auto"
    with pytest.raises(StudyError, match=r"resources\.population: must be a whole number"):
        study.with_overrides(population="0")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('claim: "clears \\e[2J the screen"\n', "3: claim: holds the control character U+001B"),  # YAML's \e escape
        ('claim: "\\e]8;;http://x\\e\\\\a link\\e]8;;\\e\\\\"\n', "3: claim: holds the control character U+001B"),
        ('description: "safe \\u202e txt.exe"\n', "3: description: holds the control character U+202E"),
        ("description: |\n  line one\n  a \\a bell? no: escapes are text in a block\n", None),
        ('description: |\n  line one\n  line two\n  "\u0007"\n', "6: holds the control character U+0007"),  # raw
        ('factors:\n  clip: [none, "n\\rorm"]\n', "4: factors.clip[1]: holds the control character U+000D"),
    ],
)
def test_control_characters_in_study_text_are_refused_at_their_line(tmp_path: Path, text: str, where: str | None):
    body = "name: s\nkind: grid\n" + text + ("" if text.startswith("factors") else "factors: {clip: [none]}\n")
    body += "objectives: [eval/cat_acc]\nbudget: {steps: 10}\n"
    if where is None:  # a backslash in a block scalar is two plain characters: nothing to refuse
        assert spec.load(write(tmp_path, body)).description.startswith("line one")
        return
    message = error(tmp_path, body)
    assert message.startswith(f"{tmp_path / 'study.yaml'}:{where}"), message


def test_gpus_per_trial_default_to_auto_and_take_a_number_from_the_command_line(make_study, tmp_path):
    study = spec.load(make_study(tmp_path / "g.yaml"))
    assert study.resources.gpus == "auto"
    assert study.with_overrides(gpus="0.25").resources.gpus == 0.25
    assert study.with_overrides(gpus="auto").resources.gpus == "auto"
    for bad in ("many", "-1"):
        with pytest.raises(StudyError, match=r"resources\.gpus: must be a number of GPUs .* or auto"):
            study.with_overrides(gpus=bad)
    assert study.fingerprint() == study.with_overrides(gpus="1").fingerprint()  # where it runs is not what it is
