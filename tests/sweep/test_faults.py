"""Faults a long study meets, each tried for real: the root's disk fills while the run writes. Each ends with
one clear error, a storage that still opens, and every (configuration, seed) pair stored exactly once after
a rerun. (A damaged checkpoint: test_runner.py; a killed driver: test_runner.py, test_store.py.)"""

from __future__ import annotations

import errno
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweep.store import storage_problem

from helpers import run_sweep


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
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
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
