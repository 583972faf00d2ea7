"""Population trials through the runner: pairs of one shape trained as one stacked model, each still its
own Optuna trial, with the numbers it has when it trains alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweep import runner, spec
from sweep.report import verdict_text
from sweep.store import open_store

pytestmark = pytest.mark.slow


def _load(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'sweep.db'}")


def _by_pair(study: optuna.Study) -> dict[tuple[str, int], optuna.trial.FrozenTrial]:
    return {(t.user_attrs["config_id"], t.user_attrs["seed"]): t for t in study.get_trials()}


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "time/steps_per_s"} for h in history]


def test_members_store_the_numbers_of_their_single_runs(ray_session, make_study, tmp_path):
    # lr_g is a member field: both levels and all four seeds can share one population
    kwargs = dict(
        factors={"lr_g": [0.001, 0.003]},
        seeds=4,
        objectives=["eval/modes", "eval/hq"],
        budget={"steps": 40, "report_every": 10, "eval_every": 20},
    )
    alone = make_study(tmp_path / "alone.yaml", name="alone", resources={"population": 1}, **kwargs)
    stacked = make_study(tmp_path / "stacked.yaml", name="stacked", resources={"population": 4}, **kwargs)
    root = tmp_path / "runs"
    runner.run(spec.load(alone), store=open_store(root))
    summary = runner.run(spec.load(stacked), store=open_store(root))
    assert (summary.planned, summary.completed) == (8, 8)
    singles, members = _by_pair(_load(root, "alone")), _by_pair(_load(root, "stacked"))
    storage = _load(root, "stacked")._storage
    assert singles.keys() == members.keys() and len(members) == 8
    for pair, member in members.items():
        single = singles[pair]
        assert member.state == TrialState.COMPLETE and member.values == single.values
        assert member.user_attrs["population"] == 4 and single.user_attrs["population"] == 1
        assert _untimed(member.user_attrs["history"]) == _untimed(single.user_attrs["history"])
        assert member.intermediate_values == single.intermediate_values  # the learning curve, at 20 and 40
        names = {a.filename for a in optuna.artifacts.get_all_artifact_meta(member, storage=storage)}
        assert {"scatter.png", "curves.png", "config.json"} <= names
    # two slots (2 CPUs, 1 each): 8 pairs make two populations of 4, each a Ray trial of its own
    assert len({m.user_attrs["trial_dir"] for m in members.values()}) == 2


def test_asha_stops_members_alone_and_they_are_pruned_with_their_history(ray_session, make_study, tmp_path):
    # lr 1e-6 learns nothing: at ASHA's first rung it trails the members that learn, and is stopped
    path = make_study(
        tmp_path / "asha.yaml",
        name="asha-members",
        kind="grid",
        factors={"lr_g": [0.002, 1.0e-6]},
        base={**spec.load(make_study(tmp_path / "b.yaml")).base, "lr_d": 0.002},
        objectives=[{"metric": "mi/cat_ratio", "direction": "maximize"}],
        early_stopping={"metric": "mi/cat_ratio", "grace_period": 10, "reduction_factor": 2},
        resources={"cpus": 1, "max_concurrent": 1, "population": 8},
        budget={"steps": 200, "report_every": 10},
        seeds=4,
    )
    summary = runner.run(spec.load(path), store=open_store(tmp_path / "runs"))
    trials = _load(tmp_path / "runs", "asha-members").get_trials()
    assert {t.user_attrs["population"] for t in trials} == {8}  # one population: ASHA stopped members in it
    by_state = Counter(t.state for t in trials)
    assert by_state[TrialState.PRUNED] >= 1, [(t.params, t.state, t.user_attrs.get("reason")) for t in trials]
    assert by_state[TrialState.COMPLETE] >= 1 and by_state[TrialState.PRUNED] + by_state[TrialState.COMPLETE] == 8
    assert summary.pruned == by_state[TrialState.PRUNED]
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["outcome"] == "pruned" and "stopped early by ASHA" in t.user_attrs["reason"]
            assert t.user_attrs["steps_run"] < 200 and t.user_attrs["history"][-1]["step"] == t.user_attrs["steps_run"]
        else:
            assert t.user_attrs["steps_run"] == 200


def test_a_diverging_member_fails_alone(ray_session, make_study, tmp_path):
    unstable = {"optimizer": "sgd", "loss_space": "probs", "d_batchnorm": "none", "g_batchnorm": False, "lr_ratio": 1}
    path = make_study(
        tmp_path / "div.yaml",
        name="div",
        base={**spec.load(make_study(tmp_path / "b.yaml")).base, **unstable, "lr_g": 1e-4},
        factors={"lr_g": [0.1]},
        seeds=1,
        resources={"population": 2, "max_concurrent": 1},
        budget={"steps": 120, "report_every": 20},
    )
    runner.run(spec.load(path), store=open_store(tmp_path / "runs"))
    trials = _by_pair(_load(tmp_path / "runs", "div"))
    diverged, stable = trials[("lr_g=0.1", 0)], trials[("base", 0)]
    assert stable.state == TrialState.COMPLETE and stable.user_attrs["steps_run"] == 120
    assert diverged.state == TrialState.FAIL and diverged.user_attrs["outcome"] == "diverged"
    assert diverged.user_attrs["steps_run"] < 120 and "diverged at step" in diverged.user_attrs["reason"]
    assert diverged.user_attrs["population"] == stable.user_attrs["population"] == 2


def test_pairs_whose_members_would_not_be_exact_run_alone_and_the_summary_says_why(ray_session, make_study, tmp_path):
    base = {**spec.load(make_study(tmp_path / "b.yaml")).base, "batch_size": 50}
    path = make_study(tmp_path / "odd.yaml", name="odd", base=base, seeds=2, resources={"population": "auto"})
    summary = runner.run(spec.load(path), store=open_store(tmp_path / "runs"))
    trials = _load(tmp_path / "runs", "odd").get_trials()
    assert len(trials) == 4 and {t.user_attrs["population"] for t in trials} == {1}
    assert any("batch_size 50 is not a multiple of 32" in note for note in summary.notes), summary.notes


def test_early_stopping_with_planned_looks_runs_every_look(ray_session, make_study, tmp_path):
    # two looks are two Tuner runs in one driver, each with its own stop board; members pruned in both count
    path = make_study(
        tmp_path / "looks.yaml",
        name="looks",
        objectives=[{"metric": "mi/cat_ratio", "direction": "maximize"}],
        early_stopping={"metric": "mi/cat_ratio", "grace_period": 10, "reduction_factor": 2},
        seeds={"start": 2, "max": 4},
        budget={"steps": 40, "report_every": 10},
        verdict={
            "metric": "mi/cat_ratio",
            "factor": "d_batchnorm",
            "baseline": "none",
            "treatment": "separate",
            "direction": "greater",
            "min_effect": 0.5,
            "pruned": "worst",
        },
    )
    summary = runner.run(spec.load(path), store=open_store(tmp_path / "runs"))
    assert [look.seeds for look in summary.verdict.looks] == [2, 4], verdict_text.lines(summary.verdict)
    assert summary.completed + summary.pruned == 8 and summary.failed == 0
