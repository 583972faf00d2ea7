"""The runner on a real Ray instance and a real SQLite storage, checked through Optuna's own API."""

from __future__ import annotations

import ipaddress
import json
import os
import platform
import re
import signal
import socket
import struct
import subprocess
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from sweep import analysis, core, provenance, runner, spec
from sweep.errors import DefinitionConflictError, SeedPlanConflictError
from sweep.report import build, render, verdict_text
from sweep.runner.front import OptunaFront
from sweep.runner.protocol import Final
from sweep.runner.record import Recorder
from sweep.store import open_store
from sweep.vocab import Status

from helpers import REPO, lease_holder, run_sweep, start_sweep, wait_for

pytestmark = pytest.mark.slow


def _load(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'sweep.db'}")


def test_tiny_study_records_every_trial_in_optuna(ray_session, tiny_study, tmp_path):
    store = open_store(tmp_path / "runs")
    summary = runner.run(spec.load(tiny_study), store=store)
    assert (summary.planned, summary.completed, summary.failed) == (4, 4, 0)

    study = _load(tmp_path / "runs", "tiny")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    pairs = [(t.params["d_batchnorm"], t.user_attrs["seed"]) for t in trials]
    assert sorted(pairs) == [("none", 0), ("none", 1), ("separate", 0), ("separate", 1)]
    for t in trials:
        assert t.values[0] == t.user_attrs["metrics"]["eval/modes"]
        assert t.user_attrs["outcome"] == "completed"
        assert t.user_attrs["steps_run"] == 20
        assert [h["step"] for h in t.user_attrs["history"]] == [10, 20]
        assert t.user_attrs["config"]["seed"] == t.user_attrs["seed"]
        assert t.user_attrs["node"] and t.user_attrs["wall_s"] > 0
        # eval/modes is measured at the end only: the report at step 10 has no measurement of it
        assert t.intermediate_values == {20: t.values[0]}
        # the trial's duration is its worker's own time, the one its note gives
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
        assert duration == pytest.approx(t.user_attrs["wall_s"], abs=0.01)
        names = {a.filename for a in optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)}
        assert {"scatter.png", "curves.png", "config.json"} <= names
    assert study.metric_names == ["eval/modes"]
    # provenance: the code, libraries and device of the study's driver and of each trial's worker
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    versions = {name: metadata.version(name) for name in ("torch", "optuna", "ray")}
    for record in [study.user_attrs["provenance"], *(t.user_attrs["provenance"] for t in trials)]:
        assert record["commit"] == head.strip() and isinstance(record["dirty"], bool)
        assert record["version"] == metadata.version("sweep")
        assert {k: record[k] for k in versions} == versions and record["python"] == platform.python_version()
    device = f"{provenance.cpu_device(1)}, {torch.backends.cpu.get_cpu_capability()}"  # cpus: 1 a trial
    assert {t.user_attrs["provenance"]["device"] for t in trials} == {device}

    # running it again finds everything stored and runs nothing
    again = runner.run(spec.load(tiny_study), store=store)
    assert (again.planned, again.skipped) == (0, 4)
    assert len(_load(tmp_path / "runs", "tiny").trials) == 4


def test_changed_definition_is_refused(make_study, tmp_path):
    store = open_store(tmp_path / "runs")
    path = make_study(tmp_path / "s.yaml", name="conflict", seeds=1)
    runner.open_study(spec.load(path), store)
    changed = make_study(tmp_path / "s2.yaml", name="conflict", seeds=1, budget={"steps": 30, "report_every": 10})
    with pytest.raises(DefinitionConflictError, match="was run from a different definition"):
        runner.open_study(spec.load(changed), store)
    # the CLI says which flag resolves it; the library speaks of studies, not flags
    proc = run_sweep("run", str(changed), "--root", str(tmp_path / "runs"))
    assert proc.returncode == 1 and "different definition" in proc.stderr and "--new-name NAME" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # more seeds is not a conflict: the same experiment, extended
    runner.open_study(spec.load(make_study(tmp_path / "s3.yaml", name="conflict", seeds=3)), store)


def test_a_study_trained_by_an_engine_of_other_numerics_is_not_resumed(make_study, tmp_path):
    # a study whose runs the previous engine computed (no numerics recorded: 1) would mix two experiments
    store = open_store(tmp_path / "runs")
    path = make_study(tmp_path / "s.yaml", name="older", seeds=1)
    stored = runner.open_study(spec.load(path), store)
    assert stored.user_attrs["numerics"] == core.NUMERICS
    runner.open_study(spec.load(path), store)  # this engine's own study opens again
    stored.set_user_attr("numerics", 1)
    runner.open_study(spec.load(path), store)  # nothing finished yet: nothing to mix, it takes this engine's
    assert _load(tmp_path / "runs", "older").user_attrs["numerics"] == core.NUMERICS
    stored.set_user_attr("numerics", 1)
    stored.tell(stored.ask(), [0.5])
    with pytest.raises(DefinitionConflictError, match=f"numerics 1, and this code computes numerics {core.NUMERICS}"):
        runner.open_study(spec.load(path), store)
    proc = run_sweep("run", str(path), "--root", str(tmp_path / "runs"))
    assert proc.returncode == 1 and "would mix the two" in proc.stderr and "--new-name NAME" in proc.stderr


def test_asha_stops_bad_trials_as_pruned(ray_session, make_study, tmp_path):
    # lr 1e-6 learns nothing: at ASHA's first rung it trails the finished good runs and is stopped
    path = make_study(
        tmp_path / "asha.yaml",
        name="asha",
        kind="grid",
        factors={"lr_g": [0.002, 1.0e-6]},
        base={**spec.load(make_study(tmp_path / "b.yaml")).base, "lr_d": 0.002},
        objectives=[{"metric": "mi/cat_ratio", "direction": "maximize"}],
        early_stopping={"metric": "mi/cat_ratio", "grace_period": 10, "reduction_factor": 2},
        resources={"cpus": 1, "max_concurrent": 1},
        budget={"steps": 60, "report_every": 10},
        seeds=2,
    )
    runner.run(spec.load(path), store=open_store(tmp_path / "runs"))
    trials = _load(tmp_path / "runs", "asha").get_trials()
    by_state = Counter(t.state for t in trials)
    assert by_state[TrialState.PRUNED] >= 1, [(t.params, t.state, t.user_attrs.get("reason")) for t in trials]
    assert by_state[TrialState.PRUNED] + by_state[TrialState.COMPLETE] == 4
    for t in trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["outcome"] == "pruned"
            assert max(t.intermediate_values) < 60  # it really stopped before the budget


def test_crashed_trial_fails_with_its_reason(ray_session, make_study, tmp_path):
    # the IDX files are missing where the trial runs: the trial FAILs with the reader's message
    path = make_study(
        tmp_path / "f.yaml",
        name="fails",
        base={"dataset": "fashion-mnist", "data_dir": str(tmp_path / "nowhere"), "arch": "mlp", "batch_size": 16},
        factors={"lambda_cat": [0.0]},
        objectives=["eval/cat_acc"],
        seeds=1,
        budget={"steps": 4, "report_every": 2},
    )
    summary = runner.run(spec.load(path), store=open_store(tmp_path / "runs"))
    assert summary.failed == 2
    trials = _load(tmp_path / "runs", "fails").get_trials()
    assert all(t.state == TrialState.FAIL for t in trials)
    assert all(t.user_attrs["outcome"] == "crashed" for t in trials)
    assert all("train-images-idx3-ubyte" in t.user_attrs["reason"] for t in trials)


def _states(root: Path, name: str) -> Counter:
    try:
        return Counter(t.state for t in _load(root, name).get_trials(deepcopy=False))
    except Exception:  # not created yet, or the file is being written
        return Counter()


def test_resume_after_driver_is_killed(ray_session, make_study, tmp_path):
    root = tmp_path / "runs"
    path = make_study(
        tmp_path / "resume.yaml",
        name="resume",
        factors={"d_batchnorm": ["separate", "joint"]},
        seeds=2,
        budget={"steps": 400, "report_every": 10},
        resources={"cpus": 1, "max_concurrent": 2},
    )
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(root), "--address", address)
    log = tmp_path / "driver.log"  # a file, not a pipe: a full pipe would stall the driver
    with log.open("w") as out:
        driver = start_sweep(*cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        # wait for an event that stays true (the first stored result), not for a state that can be skipped (one
        # trial complete while another runs: a population's members complete together); three configurations
        # of two seeds each, two at a time, so the third population is still to run when the first is stored
        started = wait_for(lambda: _states(root, "resume")[TrialState.COMPLETE] >= 1, 180)
        assert started, f"the study did not get going: {_states(root, 'resume')}; driver: {log.read_text()[-2000:]}"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    before = _states(root, "resume")
    assert 1 <= before[TrialState.COMPLETE] < 6, before  # killed mid-study
    # the killed driver left its lease; the rerun takes it over at once, since that process is gone
    assert lease_holder(f"sqlite:///{root / 'sweep.db'}", "resume") == (socket.gethostname(), driver.pid)

    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = _load(root, "resume").get_trials()
    complete = Counter(
        (t.user_attrs["config_id"], t.user_attrs["seed"]) for t in trials if t.state == TrialState.COMPLETE
    )
    assert len(complete) == 6 and set(complete.values()) == {1}  # every pair exactly once
    interrupted = [t for t in trials if t.user_attrs.get("outcome") == "interrupted"]
    assert len(interrupted) == before[TrialState.RUNNING] + before[TrialState.WAITING]  # WAITING: enqueued, not asked
    assert all(t.state == TrialState.FAIL for t in interrupted)


def test_ctrl_c_marks_open_trials_interrupted_and_a_rerun_finishes(ray_session, make_study, tmp_path):
    root = tmp_path / "runs"
    path = make_study(tmp_path / "int.yaml", name="ctrlc", seeds=2, budget={"steps": 600, "report_every": 50})
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(root), "--address", address)
    driver = start_sweep(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: _states(root, "ctrlc")[TrialState.RUNNING] >= 1, 120)
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr[-2000:]
    assert "run the same command again" in stderr
    states = _states(root, "ctrlc")
    assert states[TrialState.RUNNING] == 0 and states[TrialState.FAIL] >= 1  # nothing left open
    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = _load(root, "ctrlc").get_trials()
    complete = Counter(
        (t.user_attrs["config_id"], t.user_attrs["seed"]) for t in trials if t.state == TrialState.COMPLETE
    )
    assert len(complete) == 4 and set(complete.values()) == {1}


def test_two_node_cluster_runs_trials_on_both_nodes(make_study, tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        # trials long enough (~5 s) that the second node's worker is up before the first is free
        path = make_study(tmp_path / "c.yaml", name="cluster", seeds=1, budget={"steps": 2000, "report_every": 500})
        root = tmp_path / "runs"
        done = run_sweep("run", str(path), "--root", str(root), "--address", cluster.address, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        trials = _load(root, "cluster").get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
        assert len({t.user_attrs["node_id"] for t in trials}) == 2
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes", "random", "qmc", "nsga2"])
def test_search_asks_the_sampler_once_per_configuration_and_repeats_it_per_seed(make_study, tmp_path, sampler):
    objectives = ["eval/modes", "eval/hq"] if sampler == "nsga2" else ["eval/modes"]
    path = make_study(
        tmp_path / "s.yaml",
        name=f"search-{sampler}",
        kind="search",
        factors={},
        space={
            "lr_g": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "noise_dim": {"type": "int", "low": 2, "high": 8},
            "d_batchnorm": {"type": "categorical", "choices": ["none", "separate"]},
        },
        sampler=sampler,
        trials=3,
        seeds=2,
        objectives=objectives,
    )
    study = spec.load(path)
    store = open_store(tmp_path / "runs")
    optuna_study = runner.open_study(study, store)
    plan = runner.plan(study, optuna_study)
    assert (plan.pending, plan.search_remaining) == ([], 3)
    front = OptunaFront(study, optuna_study, plan)
    assert front.total == 6
    handed = [front.next_population() for _ in range(6)]  # populations of one (resources.population: 1)
    assert front.next_population() is None
    configs = [member.train_config for population in handed for member in population.order.members]
    seeds = [c["seed"] for c in configs]
    assert seeds == [0, 1, 0, 1, 0, 1]
    for first, second in zip(configs[::2], configs[1::2], strict=True):  # same params for both seeds
        strip = {k: v for k, v in first.items() if k != "seed"}
        assert strip == {k: v for k, v in second.items() if k != "seed"}
    for cfg in configs:
        assert 1e-4 <= cfg["lr_g"] <= 1e-2 and 2 <= cfg["noise_dim"] <= 8
    # the stored trials carry the params; a second plan resumes the sampled configurations' seeds
    stored = optuna_study.get_trials(deepcopy=False)
    assert len(stored) == 6 and len({t.user_attrs["config_id"] for t in stored}) == 3


def _qmc_configurations(make_study, tmp_path, tag: str, sampler_seed: int, configurations: int) -> list[dict]:
    """The params a qmc search's front hands out (one seed each), in order, from a fresh store."""
    path = make_study(
        tmp_path / f"{tag}.yaml",
        name=f"qmc-{tag}",
        kind="search",
        factors={},
        space={
            "lambda_cont": {"type": "float", "low": 0.0, "high": 1.0},
            "lr_g": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "d_batchnorm": {"type": "categorical", "choices": ["none", "joint", "separate"]},
        },
        sampler="qmc",
        sampler_seed=sampler_seed,
        trials=configurations,
        seeds=1,
        objectives=["eval/modes"],
    )
    study = spec.load(path)
    optuna_study = runner.open_study(study, open_store(tmp_path / f"runs-{tag}"))
    front = OptunaFront(study, optuna_study, runner.plan(study, optuna_study))
    handed = [front.next_population() for _ in range(configurations)]
    assert front.next_population() is None
    return [population.trials[0].params for population in handed]


def test_a_qmc_search_is_reproducible_from_its_sampler_seed_and_spreads_evenly(make_study, tmp_path):
    once = _qmc_configurations(make_study, tmp_path, "a", 7, 9)
    assert once == _qmc_configurations(make_study, tmp_path, "b", 7, 9)  # the same seed: the same points
    assert once != _qmc_configurations(make_study, tmp_path, "c", 8, 9)
    # after the first (drawn by QMCSampler's independent RandomSampler), 8 points of a scrambled Sobol
    # sequence: one in each eighth of every uniform axis (8 uniform draws would be so 1 time in 400)
    eighths = sorted(int(8 * c["lambda_cont"]) for c in once[1:])
    assert eighths == list(range(8))
    assert all(c["d_batchnorm"] in ("none", "joint", "separate") for c in once)


# --- verdicts through the real runner: a null knob, planned looks, replication ---------------------


def test_a_knob_that_does_not_change_training_is_never_supported_or_contradicted(ray_session, make_study, tmp_path):
    # report_every says how often metrics are reported, not what is trained: eval/fd, computed once at the
    # end, cannot depend on it. The control: lr_g = 1e-6 (G does not learn) must show in the same study.
    path = make_study(
        tmp_path / "null.yaml",
        name="null",
        factors={"report_every": [20], "lr_g": [1.0e-6]},
        objectives=["eval/fd"],
        seeds={"start": 3, "max": 6},
        budget={"steps": 150, "report_every": 10},  # long enough for lr_g to move G far (fd ~6 against ~0.4)
        resources={"cpus": 1, "max_concurrent": 2},
        verdict={
            "metric": "eval/fd",
            "factor": "report_every",
            "baseline": 10,
            "treatment": 20,
            "direction": "less",
            "min_effect": 0.05,
        },
    )
    study, store = spec.load(path), open_store(tmp_path / "runs")
    summary = runner.run(study, store=store)
    result = summary.verdict
    assert result.status not in (Status.SUPPORTED, Status.CONTRADICTED), verdict_text.lines(result)
    # planned looks: 3 seeds could not decide (no test reaches alpha there), so 3 more were added
    assert [(look.seeds, look.status) for look in result.looks] == [(3, Status.INCONCLUSIVE), (6, Status.NO_EFFECT)]
    stored = _load(tmp_path / "runs", "null")
    assert sorted(Counter(t.user_attrs["seed"] for t in stored.get_trials()).items()) == [(s, 3) for s in range(6)]
    # the control: the knob that does change training is found, Holm-adjusted, in the same study's effect table
    table = analysis.effects(analysis.trials_frame(stored), analysis.study_spec(stored))
    tested = table[~table["baseline"]].set_index("factor")
    assert tested.loc["lr_g", "p_holm"] < 0.05 and tested.loc["lr_g", "pairs"] == 6
    assert tested.loc["report_every", ["diff", "p_holm"]].tolist() == [0.0, 1.0]
    # resuming finds the decision in the storage and runs nothing; the verdict is recomputed the same
    again = runner.run(study, store=store)
    assert again.planned == 0 and verdict_text.lines(again.verdict) == verdict_text.lines(result)
    # more seeds after a verdict was seen is optional stopping: refused
    more = study.model_copy(update={"seeds": spec.SeedPlan(start=3, max=12)})
    with pytest.raises(SeedPlanConflictError, match="optional stopping"):
        runner.open_study(more, store)


def test_replicate_runs_fresh_seeds_and_shows_both_verdicts(ray_session, make_study, tmp_path):
    from typer.testing import CliRunner

    from sweep.cli import app

    studies = tmp_path / "studies"
    studies.mkdir()
    rule = {"metric": "eval/modes", "factor": "d_batchnorm", "baseline": "none", "treatment": "separate"}
    path = make_study(studies / "tiny.yaml", verdict={**rule, "direction": "greater", "min_effect": 1})
    root = str(tmp_path / "runs")
    first = CliRunner().invoke(app, ["run", str(path), "--root", root])
    assert first.exit_code == 0, first.output
    rep = CliRunner().invoke(app, ["run", str(path), "--replicate", "--root", root])
    assert rep.exit_code == 0, rep.output
    stored = _load(tmp_path / "runs", "tiny-rep1")
    assert sorted({t.user_attrs["seed"] for t in stored.get_trials()}) == [10_000, 10_001]
    assert stored.user_attrs["replication_of"] == "tiny" and stored.user_attrs["replicate"] == 1
    # a finished replication is not resumed: the next one is a new one, on seeds no earlier run used
    nxt, index = runner.next_replication(spec.load(path), open_store(tmp_path / "runs"))
    assert (nxt.name, index, nxt.seed_list) == ("tiny-rep2", 2, [20_000, 20_001])
    claims = CliRunner().invoke(app, ["claims", "--studies", str(studies), "--root", root], env={"COLUMNS": "200"})
    assert claims.exit_code == 0, claims.output
    assert re.search(r"tiny-rep1\s+INCONCLUSIVE", claims.output) and "n 2" in claims.output
    built = build.build(_load(tmp_path / "runs", "tiny"), store=open_store(tmp_path / "runs"))
    assert [(r.name, r.role) for r in built.replications] == [("tiny-rep1", "replication 1")]
    assert "tiny-rep1" in render.html(built) and "| tiny-rep1 | replication 1 |" in render.markdown(built, "i")[0]


def test_seeds_are_fixed_once_a_verdict_could_decide(make_study, tmp_path):
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import create_trial

    rule = {"metric": "eval/modes", "factor": "d_batchnorm", "baseline": "none", "treatment": "separate"}
    path = make_study(
        tmp_path / "s.yaml", name="fixed", seeds=3, verdict={**rule, "direction": "greater", "min_effect": 1}
    )
    study, store = spec.load(path), open_store(tmp_path / "runs")
    stored = runner.open_study(study, store)

    def add(config_id: str, level: str, seed: int) -> None:
        stored.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=[float(seed)],
                params={"d_batchnorm": level},
                distributions={"d_batchnorm": CategoricalDistribution(["none", "separate"])},
                user_attrs={
                    "config_id": config_id,
                    "seed": seed,
                    "outcome": "completed",
                    "metrics": {"eval/modes": seed},
                },
            )
        )

    for seed in range(2):
        add("base", "none", seed)
        add("d_batchnorm=separate", "separate", seed)
    runner.open_study(study.with_overrides(seeds=[0, 1, 2]), store)  # the same seeds, written another way
    runner.open_study(study.with_overrides(seeds=5), store)  # no look taken yet: more seeds are fine
    runner.open_study(study, store)  # and back: still no look
    add("base", "none", 2)
    add("d_batchnorm=separate", "separate", 2)
    with pytest.raises(SeedPlanConflictError, match=r"already has a verdict \(\w+\) at 3 seeds"):
        runner.open_study(study.with_overrides(seeds=5), store)
    runner.open_study(study, store)  # resuming with the same seeds is not a change
    # a look with fewer pairs than min_seeds (a smoke test) could decide nothing: more seeds are fine
    smoke = study.model_copy(update={"name": "smoke", "seeds": 2})
    stored = runner.open_study(smoke, store)
    for seed in range(2):
        add("base", "none", seed)
        add("d_batchnorm=separate", "separate", seed)
    runner.open_study(smoke.model_copy(update={"seeds": 4}), store)


# --- concurrent drivers, crashed trials, the local Ray instance ------------------------------------


def test_a_second_driver_of_a_running_study_is_refused_and_every_pair_runs_once(ray_session, make_study, tmp_path):
    root = tmp_path / "runs"
    path = make_study(
        tmp_path / "twice.yaml",
        name="twice",
        seeds=2,
        budget={"steps": 150, "report_every": 10},
        resources={"cpus": 1, "max_concurrent": 2},
    )
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(root), "--address", address)
    first = start_sweep(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: _states(root, "twice")[TrialState.RUNNING] >= 1, 120), _states(root, "twice")
        second = run_sweep(*cmd, timeout=120)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(lines) == 1, second.stderr
        assert re.search(
            rf"study 'twice' is being run by another driver: pid {first.pid} on {socket.gethostname()}, last "
            r"heartbeat \d+ s ago",
            lines[0],
        ), lines[0]
        _, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr[-2000:]
    trials = _load(root, "twice").get_trials()
    # today both drivers run every pair: 8 trials for 4 pairs, and the second marks the first's running ones interrupted
    assert sorted((t.user_attrs["config_id"], t.user_attrs["seed"], t.state.name) for t in trials) == [
        ("base", 0, "COMPLETE"),
        ("base", 1, "COMPLETE"),
        ("d_batchnorm=separate", 0, "COMPLETE"),
        ("d_batchnorm=separate", 1, "COMPLETE"),
    ]
    assert lease_holder(f"sqlite:///{root / 'sweep.db'}", "twice") is None


def _write_idx(path: Path, array) -> None:
    """An MNIST-format IDX file (unsigned bytes) of `array`."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype("uint8").tobytes())


def test_crashed_trials_fail_the_run_with_their_reasons_and_rerun_with_retry_crashed(ray_session, make_study, tmp_path):
    import numpy as np

    data = tmp_path / "data"
    path = make_study(
        tmp_path / "missing.yaml",
        name="missing",
        base={
            "dataset": "fashion-mnist",
            "data_dir": str(data),
            "arch": "mlp",
            "batch_size": 16,
            "g_width": 0.1,
            "d_width": 0.1,
            "noise_dim": 4,
            "eval_samples": 100,
        },
        factors={"lambda_cat": [0.0]},
        objectives=["loss/g"],
        seeds=1,
        budget={"steps": 4, "report_every": 2},
    )
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(tmp_path / "runs"), "--address", address)
    crashed = run_sweep(*cmd, timeout=300)
    assert crashed.returncode == 1, crashed.stderr[-2000:]  # today: 0
    assert "2 x crashed: DataError: dataset `fashion-mnist`: train-images-idx3-ubyte(.gz) and" in crashed.stdout
    assert crashed.stderr.strip().endswith(
        "study 'missing': 2 trials crashed in this run (reasons above); fix the cause, then run them again with "
        "--retry-crashed"
    )
    again = run_sweep(*cmd, timeout=300)  # today: "complete", exit 0
    assert again.returncode == 1 and "nothing left to run, but 2 of its" in " ".join(again.stdout.split())
    assert "2 pairs crashed in an earlier run" in again.stderr
    # the user adds the data file; the crashed pairs run again, and only they
    data.mkdir()
    rng = np.random.default_rng(0)
    _write_idx(data / "train-images-idx3-ubyte", rng.integers(0, 256, size=(64, 28, 28)))
    _write_idx(data / "train-labels-idx1-ubyte", np.arange(64) % 10)
    retried = run_sweep(*cmd, "--retry-crashed", timeout=300)
    assert retried.returncode == 0, retried.stdout[-2000:] + retried.stderr[-2000:]
    assert "2 pairs that crashed in an earlier run were run again" in retried.stdout
    stored = _load(tmp_path / "runs", "missing")
    outcomes = [(t.user_attrs["config_id"], t.user_attrs["outcome"]) for t in stored.get_trials()]
    assert sorted(outcomes) == [
        ("base", "completed"),
        ("base", "crashed"),
        ("lambda_cat=0.0", "completed"),
        ("lambda_cat=0.0", "crashed"),
    ]
    design = analysis.design_frame(analysis.trials_frame(stored), spec.load(path))
    assert sorted(design["outcome"]) == ["completed", "completed"]  # each pair counts once: its latest trial


def test_a_diverged_trial_is_a_result_and_a_crashed_one_is_not(make_study, tmp_path):
    study = spec.load(make_study(tmp_path / "s.yaml", name="outcomes", seeds=1))
    store = open_store(tmp_path / "runs")
    optuna_study = runner.open_study(study, store)
    the_plan = runner.plan(study, optuna_study)
    tracker = runner.Tracker(0)
    front = OptunaFront(study, optuna_study, the_plan)
    recorder = Recorder(study, optuna_study, store.artifact_store(), tracker)
    for tune_id, outcome, reason in (("a", "diverged", "loss/d is not finite at step 7"), ("b", "crashed", "OOM")):
        recorder.start(tune_id, front.next_population())
        final = Final(step=20, members=({"outcome": outcome, "reason": reason, "steps_run": 7},))
        recorder.on_result(tune_id, final.to_result())  # as Ray Tune hands it over: the wire form
    assert (tracker.failed, tracker.crashed) == (2, 1)
    assert dict(tracker.failures) == {("diverged", "loss/d is not finite at step 7"): 1, ("crashed", "OOM"): 1}


def test_a_local_ray_listens_on_loopback_only_and_prints_no_token_banner(tmp_path):
    code = (
        "import json, psutil, ray\n"
        "from sweep.runner import ensure_ray\n"
        "ensure_ray(num_cpus=1)\n"
        "found = {(p.name(), c.laddr.ip) for p in psutil.Process().children(recursive=True)\n"
        "         for c in p.net_connections('inet') if c.status == psutil.CONN_LISTEN}\n"
        "print(json.dumps([sorted(found), ray.util.get_node_ip_address()]))\n"
        "ray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # Ray's default: token authentication
    env["HOME"] = str(tmp_path)  # a user who never ran Ray: the token is created, the banner would print
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listening, node_ip = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {name for name, _ in listening} >= {"gcs_server", "raylet"}  # the control: Ray's servers were seen

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return (getattr(address, "ipv4_mapped", None) or address).is_loopback

    assert [(name, ip) for name, ip in listening if not loopback(ip)] == []  # today: '::' (every interface)
    assert node_ip == "127.0.0.1"
    assert "Token authentication" not in proc.stderr
    assert (tmp_path / ".ray" / "auth_token").exists()  # token authentication stays on, as Ray sets it up


def _kill_after_checkpoint(root: Path, name: str, cmd: tuple[str, ...], members: int = 2) -> None:
    """Run the study's driver until its population's `members` trials hold a checkpoint, then SIGKILL it."""

    def checkpointed() -> list:
        try:
            trials = _load(root, name).get_trials(deepcopy=False)
        except Exception:  # not created yet
            return []
        return [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("checkpoint")]

    def finished() -> bool:
        try:
            return any(t.state == TrialState.COMPLETE for t in _load(root, name).get_trials(deepcopy=False))
        except Exception:  # not created yet
            return False

    driver = start_sweep(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # 240 s: a margin for a host that runs the other test worker's Ray trials too
        assert wait_for(lambda: len(checkpointed()) == members or finished(), 240), "no checkpoint was stored"
        assert not finished(), "the population finished before its checkpoint was seen: give it more steps"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)


def test_a_population_interrupted_after_a_checkpoint_resumes_from_it_with_the_numbers_of_a_whole_run(
    ray_session, make_study, tmp_path
):
    root = tmp_path / "runs"
    path = make_study(  # lr_g is a member field: both configurations train as one population of two
        tmp_path / "long.yaml",
        name="long",
        factors={"lr_g": [0.003]},
        seeds=1,
        budget={"steps": 3000, "report_every": 100},
        resources={"cpus": 1, "max_concurrent": 1, "checkpoint_every": 300},
    )
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(root), "--address", address)

    _kill_after_checkpoint(root, "long", cmd)
    killed = [t for t in _load(root, "long").get_trials() if t.state == TrialState.RUNNING]
    assert len(killed) == 2
    assert len({t.user_attrs["checkpoint"] for t in killed}) == 1  # one population, one checkpoint
    step = killed[0].user_attrs["checkpoint_step"]
    assert 300 <= step < 3000 and step % 300 == 0 and Path(killed[0].user_attrs["checkpoint"]).is_dir()

    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = {t.user_attrs["config_id"]: t for t in _load(root, "long").get_trials() if t.state == TrialState.COMPLETE}
    assert sorted(resumed) == ["base", "lr_g=0.003"]
    for trial in resumed.values():  # the whole population resumed, not from step 0
        assert trial.user_attrs["resumed_from_step"] == step and trial.user_attrs["population"] == 2
        assert [h["step"] for h in trial.user_attrs["history"]] == list(range(100, 3001, 100))  # before the kill too
    # their numbers are those of runs never interrupted
    whole = runner.run(spec.load(path).renamed("whole"), store=open_store(tmp_path / "whole"))
    assert whole.completed == 2
    reference = {t.user_attrs["config_id"]: t for t in _load(tmp_path / "whole", "whole").get_trials()}

    def untimed(trial):
        return [{k: v for k, v in h.items() if k != "time/steps_per_s"} for h in trial.user_attrs["history"]]

    for config_id, trial in resumed.items():
        assert trial.values == reference[config_id].values
        assert untimed(trial) == untimed(reference[config_id])
    # checkpoints are deleted once their trials are stored (the one resumed from, too)
    assert not list((root / "ray").rglob("checkpoint_*")) and not Path(killed[0].user_attrs["checkpoint"]).exists()


def test_a_population_whose_checkpoint_is_damaged_starts_over_and_says_so_once(ray_session, make_study, tmp_path):
    root = tmp_path / "runs"
    path = make_study(
        tmp_path / "damaged.yaml",
        name="damaged",
        factors={"lr_g": [0.003]},
        seeds=1,
        budget={"steps": 2000, "report_every": 100},
        resources={"cpus": 1, "max_concurrent": 1, "checkpoint_every": 200},
    )
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(root), "--address", address)

    _kill_after_checkpoint(root, "damaged", cmd)
    folder = Path(_load(root, "damaged").get_trials()[0].user_attrs["checkpoint"])
    state = folder / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])  # truncated, as a full disk leaves it

    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    said = rerun.stdout + rerun.stderr
    assert said.count("cannot be read") == 1 and "trained from step 0" in said  # once, for the population
    done = [t for t in _load(root, "damaged").get_trials() if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["config_id"] for t in done) == ["base", "lr_g=0.003"]  # each pair once
    for trial in done:
        assert "cannot be read" in trial.user_attrs["checkpoint_discarded"]
        assert "resumed_from_step" not in trial.user_attrs
        assert [h["step"] for h in trial.user_attrs["history"]] == list(range(100, 2001, 100))
    assert run_sweep(*cmd, timeout=300).returncode == 0  # and a third run has nothing left to do
