"""Faults a long study meets, each tried for real: the root's disk fills while the run writes. Each ends with
one clear error, a storage that still opens, and every (configuration, seed) pair stored exactly once after
a rerun. (A damaged checkpoint: test_runner.py; a killed driver: test_runner.py, test_store.py.)"""

from __future__ import annotations

import errno
import re
import signal
import sqlite3
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweep.store import storage_problem

from helpers import run_sweep, start_sweep, wait_for


def _mount(folder: Path, size: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs of its own (root, and the right to mount, needed: as CI runs), unmounted at the end."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = _mount(folder, "2m")
    if mounted.returncode != 0:
        pytest.skip(reason=f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_clear_error_and_the_rerun_completes(
    ray_session, make_study, small_disk: Path, tmp_path: Path
):
    root = small_disk / "runs"
    path = make_study(
        tmp_path / "full.yaml",
        name="full",
        factors={"lr_g": [0.003, 0.002]},
        seeds=4,
        budget={"steps": 40, "report_every": 20, "eval_every": 40},
    )
    cmd = ("run", str(path), "--root", str(root), "--address", ray_session.get_runtime_context().gcs_address)
    first = run_sweep(*cmd, timeout=300)
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert first.returncode == 1, first.stderr[-2000:]
    assert len(errors) == 1 and "the disk is full" in errors[0] and "run the same command again" in errors[0], errors
    assert "Traceback" not in first.stderr
    listed = run_sweep("list", "--root", str(root))
    assert listed.returncode == 0 and "full" in listed.stdout  # the storage still opens

    assert subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)]).returncode == 0  # space is back
    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with sqlite3.connect(root / "sweep.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)  # nothing stored is corrupted
    study = optuna.load_study(study_name="full", storage=f"sqlite:///{root / 'sweep.db'}")
    complete = Counter(
        (t.user_attrs["config_id"], t.user_attrs["seed"]) for t in study.trials if t.state == TrialState.COMPLETE
    )
    assert len(complete) == 12 and set(complete.values()) == {1}  # every pair exactly once
    assert all(t.state != TrialState.RUNNING for t in study.trials)


def test_a_full_disk_outside_the_database_is_said_the_same_way():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "runs/artifacts/ab/cd.png")
        except OSError as exc:
            raise RuntimeError("could not upload the trial's images") from exc
    except RuntimeError as outer:
        problem = storage_problem(outer)
    assert problem is not None and problem.startswith("the disk is full: what finished is stored")
    assert "writing runs/artifacts/ab/cd.png" in problem
    assert storage_problem(OSError(errno.EACCES, "Permission denied")) is None  # other OS errors: not this


@pytest.mark.slow
def test_a_postgresql_restart_mid_run_is_survived_or_said_and_the_rerun_completes(
    ray_session, postgres, make_study, tmp_path: Path
):
    url = postgres.url("restart")
    path = make_study(
        tmp_path / "pg.yaml",
        name="pgrestart",
        factors={"lr_g": [0.003, 0.002]},
        seeds=2,
        budget={"steps": 400, "report_every": 20},
        resources={"cpus": 1, "max_concurrent": 1, "population": 1},  # one pair after another: a long run
    )
    cmd = ("run", str(path), "--root", str(tmp_path / "runs"), "--storage", url)
    cmd += ("--address", ray_session.get_runtime_context().gcs_address)

    def complete() -> int:
        try:
            trials = optuna.load_study(study_name="pgrestart", storage=url).get_trials(deepcopy=False)
        except Exception:  # not created yet, or the server is restarting
            return 0
        return sum(t.state == TrialState.COMPLETE for t in trials)

    driver = start_sweep(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: complete() >= 1, 180), "the study did not get going"
        postgres.restart()  # connections cut while trials run and report
        _, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    # the driver reconnects (the pool pings each connection before use) or stops with one clear error
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert driver.returncode == 0 or (driver.returncode == 1 and len(errors) == 1), stderr[-2000:]
    assert "Traceback" not in stderr
    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = optuna.load_study(study_name="pgrestart", storage=url).get_trials()
    done = Counter((t.user_attrs["config_id"], t.user_attrs["seed"]) for t in trials if t.state == TrialState.COMPLETE)
    assert len(done) == 6 and set(done.values()) == {1}  # every pair exactly once
    assert all(t.state != TrialState.RUNNING for t in trials)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_dashboard_reading_a_running_study_locks_nothing(ray_session, request, make_study, tmp_path: Path, backend):
    storage = () if backend == "sqlite" else ("--storage", request.getfixturevalue("postgres").url("watched"))
    root = tmp_path / "runs"
    where = ("--root", str(root), *storage)
    path = make_study(
        tmp_path / "watched.yaml",
        name="watched",
        factors={"lr_g": [0.003, 0.002, 0.001]},
        seeds=4,
        budget={"steps": 60, "report_every": 5},  # many small writes: every member reports every 5 steps
        resources={"cpus": 1, "max_concurrent": 2, "population": 2},
    )
    run = ("run", str(path), *where, "--address", ray_session.get_runtime_context().gcs_address)
    driver = start_sweep(*run, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    dashboard = None
    pages = 0
    try:
        assert wait_for(lambda: "watched" in run_sweep("list", *where).stdout, 120), "the study was not created"
        dashboard = start_sweep(
            "dashboard", "watched", "--port", "0", *where, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        address = dashboard.stdout.readline() + dashboard.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard/studies/(\d+)", address)
        assert found, address
        api = f"http://127.0.0.1:{found.group(1)}/api/studies/{found.group(2)}"
        while driver.poll() is None:  # read the study as fast as the dashboard serves it, while the run writes
            with urllib.request.urlopen(api, timeout=30) as response:
                assert response.status == 200
            pages += 1
        _, run_errors = driver.communicate(timeout=60)
    finally:
        for process in (driver, dashboard):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(60)
    dashboard_errors = dashboard.stderr.read()
    assert driver.returncode == 0, run_errors[-2000:]
    assert pages >= 5  # control: the dashboard really read while the run wrote
    assert "locked" not in run_errors and "locked" not in dashboard_errors, (
        run_errors[-1000:],
        dashboard_errors[-1000:],
    )
