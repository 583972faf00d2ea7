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


OOM_HOOK = """
import os
if os.environ.get("SWEEP_TEST_OOM_ABOVE"):  # every process of the run: a population above this size runs out
    import torch
    from infogan_core import training

    limit, real = int(os.environ["SWEEP_TEST_OOM_ABOVE"]), training.train_population

    def train_population(cfgs, **kwargs):
        if len(cfgs) > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {len(cfgs)} members, {limit} fit)")
        return real(cfgs, **kwargs)

    training.train_population = train_population
"""


def test_a_population_out_of_device_memory_trains_in_parts_and_says_so_once(make_study, tmp_path):
    # a CUDA out-of-memory error (injected in every process the run starts, its own local Ray's workers too)
    # splits the population, each half trains after the other: every pair once, with its single run's numbers
    import subprocess

    from helpers import SWEEP, sweep_env

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(OOM_HOOK)
    kwargs = dict(factors={"lr_g": [0.003]}, seeds=2, budget={"steps": 40, "report_every": 10, "eval_every": 40})
    split = make_study(
        tmp_path / "split.yaml", name="split", resources={"population": 4, "max_concurrent": 1}, **kwargs
    )
    alone = make_study(tmp_path / "alone.yaml", name="alone", resources={"population": 1}, **kwargs)
    root = tmp_path / "runs"
    env = sweep_env(SWEEP_TEST_OOM_ABOVE="2", PYTHONPATH=str(hook))
    done = subprocess.run(
        [SWEEP, "run", str(split), "--root", str(root)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert said.count("out of device memory at 4 members") == 1 and "parts of 2, 2 members" in said
    runner.run(spec.load(alone), store=open_store(root))
    members, singles = _by_pair(_load(root, "split")), _by_pair(_load(root, "alone"))
    assert len(members) == 4 and members.keys() == singles.keys()  # every pair once
    for pair, member in members.items():
        assert member.state == TrialState.COMPLETE and "out of device memory" in member.user_attrs["population_split"]
        assert member.values == singles[pair].values
        assert _untimed(member.user_attrs["history"]) == _untimed(singles[pair].user_attrs["history"])


def test_population_auto_on_a_gpu_whose_memory_cannot_be_read_falls_back_and_says_so(make_study, tmp_path):
    # a node that Ray says has a GPU, where torch finds none: the memory probe says why, populations are
    # sized as on a CPU, and the trials train (on the CPU, device auto)
    from ray.cluster_utils import Cluster

    from helpers import run_sweep

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 2, "num_gpus": 1})
    try:
        path = make_study(
            tmp_path / "gpu.yaml",
            name="gpu",
            factors={"lr_g": [0.003]},
            seeds=2,
            budget={"steps": 20, "report_every": 10},
            resources={"population": "auto"},
        )
        root = tmp_path / "runs"
        done = run_sweep("run", str(path), "--root", str(root), "--address", cluster.address, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "could not read a GPU's free memory (torch there sees no CUDA device)" in done.stdout + done.stderr
        trials = _load(root, "gpu").get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
        assert {t.user_attrs["population"] for t in trials} == {2}  # 4 pairs over the 2 slots
    finally:
        cluster.shutdown()
