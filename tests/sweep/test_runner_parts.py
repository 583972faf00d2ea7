"""The runner's parts without Ray running: the driver-worker protocol and its wire form, pending pairs
computed once, the front's stacking verdict, the run's options, and what a worker process imports."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys

import pytest
from ray.tune.utils import flatten_dict

from sweep import core, runner, spec
from sweep.runner import planning, protocol, ray_env
from sweep.runner.front import OptunaFront
from sweep.runner.packing import Packing
from sweep.runner.protocol import Checkpointed, Final, MemberOrder, MemberReport, Progress, WorkOrder
from sweep.store import open_store

from helpers import REPO

# --- protocol ------------------------------------------------------------------------------------


def _order() -> WorkOrder:
    members = (MemberOrder({"steps": 30, "seed": 0}, 12), MemberOrder({"steps": 30, "seed": 1}, 13))
    return WorkOrder(members, cpus=1, stop_board="board", checkpoint_every=300, resume_from="/ck", resume_step=60)


def test_a_work_order_survives_its_wire_form_and_keeps_the_keys_workers_read():
    order = _order()
    config = order.to_config()
    assert list(config) == ["members", "cpus", "stop_board", "checkpoint_every", "resume_from", "resume_step"]
    assert config["members"][1] == {"train_config": {"steps": 30, "seed": 1}, "optuna_number": 13}
    assert WorkOrder.from_config(json.loads(json.dumps(config))) == order
    assert order.steps == 30 and protocol.member_numbers(config) == [12, 13]
    assert protocol.member_numbers({}) == []  # a config that is no order: no members


@pytest.mark.parametrize(
    "message",
    [
        Progress(40, {0: MemberReport({"loss/d": 1.25, "eval/modes": 7.0}, 20), 1: MemberReport({"loss/d": 0.5})}),
        Checkpointed(300),
        Final(30, ({"outcome": "completed", "metrics": {"eval/modes": 8.0}, "wall_s": 2.5}, {"outcome": "pruned"})),
    ],
    ids=["progress", "checkpointed", "final"],
)
def test_every_worker_message_survives_tunes_flattening_of_results(message):
    # Ray Tune flattens nested dicts in a result before the searcher sees it: the message must come back whole
    result = flatten_dict({**message.to_result(), "config": {"a": {"b": 1}}, "training_iteration": 3})
    assert protocol.read_result(result) == message
    assert result["step"] == message.step  # Tune's and ASHA's time attribute is in every result


def test_a_nested_message_would_not_survive_flattening():
    # the control: why messages travel as JSON strings (a dict of members would arrive as 'sweep/members/0/...')
    flat = flatten_dict({protocol.MEMBERS: {"0": {"loss/d": 1.0}}, "step": 10})
    assert protocol.MEMBERS not in flat
    assert protocol.read_result(flat) is None


def test_a_final_result_gives_its_populations_wall_time_once():
    assert Final(30, ({"wall_s": 4.0}, {"wall_s": 4.0})).wall_s == 4.0
    assert Final(30, ()).wall_s is None


# --- planning: each pending pair computed once ----------------------------------------------------


def test_each_pending_pair_is_built_and_judged_once_and_the_front_reuses_it(make_study, tmp_path, monkeypatch):
    path = make_study(tmp_path / "s.yaml", name="once", factors={"lr_g": [0.003]}, seeds=3)
    study = spec.load(path)
    store = open_store(tmp_path / "runs")
    optuna_study = runner.open_study(study, store)
    calls = {"train_config": 0, "population_key": 0, "pair_cost": 0, "inexact_population": 0}
    build = spec.Study.train_config

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(spec.Study, "train_config", counted("train_config", build))
    for name in ("population_key", "pair_cost", "inexact_population"):
        monkeypatch.setattr(core, name, counted(name, getattr(core, name)))
    the_plan = runner.plan(study, optuna_study)
    pairs = len(the_plan.pending)
    assert pairs == 6 and calls == dict.fromkeys(calls, pairs)
    first = the_plan.pending[0]
    assert first.config == build(study, first.spec.params, first.spec.seed)
    assert first.key == core.population_key(first.config) and first.pair == ("base", 0)
    calls.update(dict.fromkeys(calls, 0))
    front = OptunaFront(study, optuna_study, the_plan, packing=Packing.of(the_plan.pending, most=2, slots=2))
    handed = []
    while (population := front.next_population()) is not None:
        handed.append(population)
    assert sum(len(p.trials) for p in handed) == pairs
    assert calls == dict.fromkeys(calls, 0)  # the front asked nobody again
    assert [len(p.trials) for p in handed] == [2, 2, 2]


def test_a_shape_that_would_not_stack_exactly_goes_one_pair_at_a_time_with_a_note(make_study, tmp_path):
    # batch 48 is no multiple of 32: stacked members would not be their single runs bit for bit
    base = {**spec.load(make_study(tmp_path / "b.yaml")).base, "batch_size": 48}
    study = spec.load(make_study(tmp_path / "s.yaml", name="inexact", base=base, factors={"lr_g": [0.003]}))
    optuna_study = runner.open_study(study, open_store(tmp_path / "runs"))
    the_plan = runner.plan(study, optuna_study)
    assert {p.inexact for p in the_plan.pending} == {"batch_size 48 is not a multiple of 32"}
    front = OptunaFront(study, optuna_study, the_plan, packing=Packing.of(the_plan.pending, most=4, slots=1))
    population = front.next_population()
    assert len(population.trials) == 1
    assert population.note.startswith("base ran one pair per trial, not in populations: batch_size 48")


def test_population_auto_is_resolved_in_the_plan_by_device(make_study, tmp_path):
    cpu = spec.load(make_study(tmp_path / "s.yaml", resources={"population": "auto", "cpus": 1}))
    assert planning.population(cpu) == core.auto_population(on_gpu=False)
    fixed = spec.load(make_study(tmp_path / "f.yaml", resources={"population": 3, "cpus": 1}))
    assert planning.population(fixed) == 3


# --- options and the package's surface -------------------------------------------------------------


def test_run_options_are_one_frozen_object_and_a_replication_names_both_halves():
    options = runner.RunOptions(address="auto", keep_checkpoints=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.address = None  # type: ignore[misc]
    with pytest.raises(ValueError, match="`replication_of` and `replicate` go together"):
        runner.RunOptions(replication_of="balance")
    assert runner.RunOptions(replication_of="balance", replicate=1).replicate == 1
    # run takes the study, the store and the options: nothing else is drilled through its signature
    assert list(inspect.signature(runner.run).parameters) == ["study", "store", "options"]


def test_the_public_names_resolve_and_an_unknown_one_fails():
    for name in runner.__all__:
        assert getattr(runner, name) is not None
    assert runner.plan is planning.plan  # a function, not the module of the same job
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        runner.nothing  # noqa: B018


def test_a_worker_process_loads_none_of_the_drivers_parts():
    # Ray imports sweep.runner.worker in every worker: Optuna, pandas' analysis and scipy would cost seconds each
    code = (
        "import sys, sweep.runner.worker\n"
        "print(sorted(m for m in ('optuna', 'scipy.stats', 'sweep.analysis', 'sweep.runner.driver', "
        "'sweep.runner.record') if m in sys.modules))\n"
        "import sweep.runner.driver\n"  # the control: the driver does load them
        "print('optuna' in sys.modules and 'sweep.runner.record' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["[]", "True"]


@pytest.mark.parametrize(
    ("gpus", "cluster", "max_concurrent", "expected"),
    [
        ("auto", {"CPU": 2}, None, 0.0),  # no GPU: the CPUs train
        ("auto", {"CPU": 16, "GPU": 1}, None, 0.25),  # four populations share the GPU
        ("auto", {"CPU": 2, "GPU": 1}, None, 0.5),  # as many as the CPU slots allow
        ("auto", {"CPU": 16, "GPU": 1}, 1, 1.0),  # one trial at a time: the whole GPU
        ("auto", {"CPU": 2, "GPU": 4}, None, 1.0),  # more GPUs than slots: a GPU each
        (0.5, {"CPU": 16, "GPU": 1}, None, 0.5),  # a number is taken as written
        (0, {"CPU": 16, "GPU": 1}, None, 0.0),
    ],
)
def test_auto_gpus_share_a_machines_gpus_among_its_trials(
    make_study, tmp_path, gpus, cluster, max_concurrent, expected
):
    resources = {"gpus": gpus, **({"max_concurrent": max_concurrent} if max_concurrent else {})}
    study = spec.load(make_study(tmp_path / "g.yaml", resources=resources))
    assert ray_env.gpus_per_trial(study, cluster) == expected
