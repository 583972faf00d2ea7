"""Trackers: every trial (every member of a population) logged to TensorBoard, MLflow and W&B through their own
libraries, and read back with them; every metric's live curve on the trial for optuna-dashboard."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from sweep import runner, spec, tracking
from sweep.cli import app
from sweep.errors import StudyError
from sweep.review import live_curves, sparkline
from sweep.store import TrialAttr, open_store
from sweep.tracking import TrackedRun, Trackers
from sweep.vocab import Outcome

HAS_WANDB = importlib.util.find_spec("wandb") is not None


def _history(trial: optuna.trial.FrozenTrial) -> dict[str, dict[int, float]]:
    """metric -> step -> value of a stored trial's history, the finite values only (what trackers get)."""
    curves: dict[str, dict[int, float]] = {}
    for row in trial.user_attrs[TrialAttr.HISTORY]:
        for name, value in row.items():
            if name != "step" and isinstance(value, int | float) and math.isfinite(value):
                curves.setdefault(name, {})[int(row["step"])] = float(value)
    return curves


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """metric -> step -> value in a TensorBoard run folder, as TensorBoard itself reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # lazy: an optional extra

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


# --- the study key and the option -----------------------------------------------------------------


def test_tracking_names_known_trackers_once_and_is_not_part_of_the_meaning(make_study, tmp_path):
    plain = spec.load(make_study(tmp_path / "a.yaml"))
    tracked = spec.load(make_study(tmp_path / "b.yaml", tracking=["tensorboard", "mlflow"]))
    assert tracked.tracking == ["tensorboard", "mlflow"] and plain.tracking == []
    assert tracked.fingerprint() == plain.fingerprint()  # a resumed study may add or drop trackers
    with pytest.raises(
        StudyError, match=r"tracking\[0\]: unknown tracker 'neptune'; expected one of: tensorboard, mlflow, wandb"
    ):
        spec.load(make_study(tmp_path / "c.yaml", tracking=["neptune"]))
    with pytest.raises(StudyError, match=r"tracking\[1\]: unknown tracker 'tensorbord'; did you mean 'tensorboard'\?"):
        spec.load(make_study(tmp_path / "c.yaml", tracking=["mlflow", "tensorbord"]))
    with pytest.raises(StudyError, match="'mlflow' is repeated"):
        spec.load(make_study(tmp_path / "d.yaml", tracking=["mlflow", "mlflow"]))


def test_a_tracker_whose_package_is_missing_is_refused_with_the_line_that_installs_it(
    make_study, tmp_path, monkeypatch
):
    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    tracking.check_installed(["tensorboard", "mlflow"])  # installed here (the dev extra)
    with pytest.raises(StudyError, match=r"tracking: wandb needs the wandb package.*pip install 'sweep\[wandb\]'"):
        tracking.check_installed(["tensorboard", "wandb"])
    path = make_study(tmp_path / "w.yaml", tracking=["wandb"])
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "pip install 'sweep[wandb]'" in result.output, result.output
    result = CliRunner().invoke(app, ["run", str(make_study(tmp_path / "t.yaml")), "--track", "tensorbord"])
    assert result.exit_code == 2  # Typer checks the choice


# --- the trackers alone -----------------------------------------------------------------------------


def _run(number: int = 0, resume_step: int = 0) -> TrackedRun:
    return TrackedRun("tiny", "lr_g=0.003", 1, number, {"lr_g": 0.003, "seed": 1, "cat_codes": [8]}, resume_step)


def test_a_resumed_trial_writes_on_in_its_pairs_tensorboard_run_and_replaces_what_followed_its_checkpoint(tmp_path):
    first = Trackers(["tensorboard"], root=tmp_path, study="tiny")
    first.start(_run(0))
    for step in (10, 20, 30):
        first.log(0, step, {"loss/d": float(step)})
    first.close()  # the driver stopped after step 30; the checkpoint holds step 20
    again = Trackers(["tensorboard"], root=tmp_path, study="tiny")
    again.start(_run(7, resume_step=20))  # another Optuna trial, the same pair
    for step in (30, 40):
        again.log(7, step, {"loss/d": -float(step)})
    again.finish(7, Outcome.COMPLETED, 40)
    assert [p.name for p in (tmp_path / "tensorboard" / "tiny").iterdir()] == ["lr_g=0.003-seed1"]
    assert _scalars(tmp_path / "tensorboard" / "tiny" / "lr_g=0.003-seed1") == {
        "loss/d": {10: 10.0, 20: 20.0, 30: -30.0, 40: -40.0}
    }


def test_a_failing_tracker_is_warned_about_once_and_the_others_go_on(tmp_path, monkeypatch, caplog):
    calls = []

    class Broken:
        def __init__(self, root: Path, study: str) -> None: ...

        def start(self, run: TrackedRun) -> str:
            return "handle"

        def log(self, handle: str, step: int, metrics: dict) -> None:
            calls.append(step)
            raise ConnectionError("the server went away")

    monkeypatch.setitem(tracking._KINDS, "mlflow", Broken)
    notes: set[str] = set()
    trackers = Trackers(["mlflow", "tensorboard"], root=tmp_path, study="tiny", notes=notes)
    trackers.start(_run(0))
    for step in (10, 20, 30):
        trackers.log(0, step, {"loss/d": 1.0})
    trackers.finish(0, Outcome.COMPLETED, 30)
    assert calls == [10]  # left out after its first failure
    assert notes == {
        "tracker mlflow failed while logging (ConnectionError: the server went away); the run went on without it"
    }
    assert sum("tracker mlflow failed" in r.getMessage() for r in caplog.records) == 1
    assert _scalars(tmp_path / "tensorboard" / "tiny" / "lr_g=0.003-seed1") == {"loss/d": {10: 1.0, 20: 1.0, 30: 1.0}}


def test_live_curves_are_one_line_of_every_metric():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3.0, 1.0]) == "█▁" and sparkline([2.0, 2.0]) == "▄▄" and sparkline([]) == ""
    line = live_curves(30, {"loss/g": [1.0, 2.0, 8.0], "loss/d": [7.0, 3.0, 0.5]})
    assert line == "step 30 · loss/d █▄▁ 0.5 · loss/g ▁▂█ 8"


# --- a study, read back with each library ------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked(ray_session, tmp_path_factory, make_study):
    """A tiny study (two configurations x two seeds, populations of two) logged to every installed tracker."""
    folder = tmp_path_factory.mktemp("tracking")
    path = make_study(
        folder / "tiny.yaml",
        name="tracked",
        tracking=["tensorboard"],
        resources={"population": 2},
        budget={"steps": 20, "report_every": 10, "eval_every": 10},
    )
    root = folder / "runs"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("MLFLOW_TRACKING_URI", "WANDB_PROJECT", "WANDB_API_KEY"):
            mp.delenv(var, raising=False)
        mp.setenv("WANDB_MODE", "offline")
        track = ("mlflow", "wandb") if HAS_WANDB else ("mlflow",)  # --track adds to the study's list
        summary = runner.run(spec.load(path), store=open_store(root), options=runner.RunOptions(track=track))
    assert summary.completed == 4, summary
    trials = optuna.load_study(study_name="tracked", storage=f"sqlite:///{root / 'sweep.db'}").get_trials()
    return root, trials


def test_every_trial_has_its_tensorboard_run_with_the_stored_history(tracked):
    root, trials = tracked
    folders = {p.name for p in (root / "tensorboard" / "tracked").iterdir()}
    assert len(trials) == 4 and len(folders) == 4
    assert {t.user_attrs[TrialAttr.POPULATION] for t in trials} == {2}  # members of populations, each logged alone
    for t in trials:
        name = TrackedRun("tracked", t.user_attrs["config_id"], t.user_attrs["seed"], t.number, {}).name
        logged, stored = _scalars(root / "tensorboard" / "tracked" / name), _history(t)
        assert logged.keys() == stored.keys() and {"eval/modes", "loss/d"} <= stored.keys()
        for metric, curve in stored.items():
            assert logged[metric].keys() == curve.keys(), metric  # eval/* at the steps it was measured
            assert logged[metric] == pytest.approx(curve, rel=1e-6), metric  # TensorBoard keeps float32


def test_every_trial_has_its_mlflow_run_with_its_configuration_seed_and_history(tracked):
    from mlflow.tracking import MlflowClient  # lazy: an optional extra

    root, trials = tracked
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = {r.data.tags["optuna_number"]: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(str(t.number) for t in trials)
    for t in trials:
        run = runs[str(t.number)]
        assert run.info.status == "FINISHED" and run.data.tags["outcome"] == "completed"
        assert run.data.params["seed"] == str(t.user_attrs["seed"])
        assert run.data.params["d_batchnorm"] == t.user_attrs["config"]["d_batchnorm"]
        assert run.data.params["cat_codes"] == "[8]"
        for metric, curve in _history(t).items():
            logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, metric)}
            assert logged == curve, metric


def test_every_metric_of_a_trial_is_on_its_live_curves(tracked):
    _, trials = tracked
    for t in trials:
        last = t.user_attrs[TrialAttr.HISTORY][-1]
        line = t.user_attrs[TrialAttr.LIVE]
        assert line.startswith(f"step {last['step']} · ")
        for metric in _history(t):
            assert f" {metric} " in line, (metric, line)


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'sweep[wandb]')")
def test_every_trial_has_its_offline_wandb_run(tracked):
    root, trials = tracked
    folders = list((root / "wandb").glob("offline-run-*"))
    assert len(folders) == len(trials)
    for t in trials:
        run = TrackedRun("tracked", t.user_attrs["config_id"], t.user_attrs["seed"], t.number, {})
        run_id = tracking.hashlib.sha256(run.key.encode()).hexdigest()[:16]
        (log,) = [f for folder in folders for f in folder.glob(f"run-{run_id}.wandb")]
        data = log.read_bytes()  # W&B's record log: its history items hold each metric's name as text
        for metric in _history(t):
            assert metric.encode() in data, metric
