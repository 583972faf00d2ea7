"""The storage: the driver lease on SQLite and on a real PostgreSQL server, what a broken storage says, and
that no message shows a password."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from sweep import store as store_module
from sweep.errors import StudyBusyError, StudyError
from sweep.store import open_store
from sweep.vocab import masked

from helpers import lease_holder, run_sweep, start_sweep, wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path) -> str | None:
    """Each lease test runs on both: the default SQLite file, and a database of the session's PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").url(f"lease_{request.node.name.split('[')[0][-40:]}".lower())


def _write_lease(store, study: str, *, host: str, pid: int, beat: float, token: str = "someone-else") -> None:
    """Put a row in the lease table as another driver would have left it."""
    engine = store.storage().engine
    table = sqlalchemy.Table("sweep_driver_leases", sqlalchemy.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.delete(table).where(table.c.study_name == study))
        conn.execute(table.insert().values(study_name=study, token=token, host=host, pid=pid, beat=beat))
    engine.dispose()


def _holder(store, study: str) -> tuple[str, int] | None:
    return lease_holder(store.url, study)


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_second_driver_is_refused_naming_the_first_until_it_releases(tmp_path, storage_url):
    store = open_store(tmp_path / "runs", storage_url)
    with store.lease("s"):
        assert _holder(store, "s") == (socket.gethostname(), os.getpid())
        expected = rf"study 's' is being run by another driver: pid {os.getpid()} on {socket.gethostname()}, "
        with pytest.raises(StudyBusyError, match=expected + r"last heartbeat \d+ s ago"), store.lease("s"):
            pass
        with store.lease("other"):  # the lease is per study
            pass
    assert _holder(store, "s") is None
    with store.lease("s") as again:  # released: the next driver takes it, replacing nobody
        assert again.took_over is None


def test_a_lease_left_by_a_dead_driver_is_taken_over(tmp_path, storage_url):
    store = open_store(tmp_path / "runs", storage_url)
    with store.lease("s"):
        pass  # creates the table
    # another host's driver that has not beaten for longer than LEASE_STALE_S
    old = time.time() - store_module.LEASE_STALE_S - 1
    _write_lease(store, "s", host="elsewhere", pid=4242, beat=old)
    with store.lease("s") as lease:
        assert (lease.took_over.host, lease.took_over.pid) == ("elsewhere", 4242)
    # a driver of this host killed a moment ago (kill -9 leaves no time to release): no need to wait
    pid = _dead_pid()
    _write_lease(store, "s", host=socket.gethostname(), pid=pid, beat=time.time())
    with store.lease("s") as lease:
        assert lease.took_over.pid == pid
    # the control: another host's driver that beat a moment ago is alive as far as anyone here can tell
    _write_lease(store, "s", host="elsewhere", pid=4242, beat=time.time() - 3)
    with pytest.raises(StudyBusyError, match=r"pid 4242 on elsewhere, last heartbeat [34] s ago"), store.lease("s"):
        pass


def test_the_heartbeat_keeps_the_lease_fresh_and_notices_a_takeover(tmp_path, storage_url, monkeypatch):
    monkeypatch.setattr(store_module, "LEASE_BEAT_S", 0.05)
    store = open_store(tmp_path / "runs", storage_url)
    with store.lease("s") as lease:
        first_beat = lease.holder().beat
        assert wait_for(lambda: lease.holder().beat > first_beat, 10, interval=0.05)
        assert not lease.lost
        _write_lease(store, "s", host="elsewhere", pid=4242, beat=time.time())  # another driver took it over
        assert wait_for(lambda: lease.lost, 10, interval=0.05)
    assert _holder(store, "s") == ("elsewhere", 4242)  # releasing a lost lease leaves the new holder's row alone


def test_two_drivers_that_start_at_the_same_moment_get_one_lease(tmp_path, storage_url):
    stores = [open_store(tmp_path / "runs", storage_url) for _ in range(2)]
    with stores[0].lease("warm-up"):  # the table exists; what races is the taking
        pass
    barrier, results = threading.Barrier(2), []
    hold = threading.Event()

    def driver(store) -> None:
        barrier.wait()
        try:
            with store.lease("s"):
                results.append("held")
                hold.wait(10)
        except StudyBusyError:
            results.append("refused")
            hold.set()

    threads = [threading.Thread(target=driver, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["held", "refused"]


# --- what a broken storage says ------------------------------------------------------------------


def _corrupted(path: Path) -> Path:
    """A real study database with pages in the middle overwritten (a disk or copy gone wrong)."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    for i in range(60):
        study.add_trial(
            optuna.trial.create_trial(state=TrialState.COMPLETE, value=float(i), user_attrs={"note": "x" * 500})
        )
    size = path.stat().st_size
    assert size > 8 * 4096
    with path.open("r+b") as f:
        for offset in range(2 * 4096, size, 4096):
            f.seek(offset + 100)
            f.write(os.urandom(1500))
    return path


def test_a_broken_sqlite_file_says_what_is_wrong(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(20_000))
    with pytest.raises(StudyError, match=r"garbage\.db: the file is not a SQLite database \(file is not a database\)"):
        open_store(tmp_path, f"sqlite:///{garbage}").storage()
    store = open_store(tmp_path, f"sqlite:///{_corrupted(tmp_path / 'corrupt.db')}")
    # "(database disk image is malformed)", or "(malformed database schema ...)": where the random bytes land
    corrupted = r"corrupt\.db: the database file is corrupted \(.*malformed"
    with pytest.raises(StudyError, match=corrupted), store.errors():
        store.load_study("s").get_trials()


def test_a_read_only_database_says_so_instead_of_invalid_data(tmp_path):
    path = tmp_path / "ro.db"
    optuna.create_study(study_name="s", storage=f"sqlite:///{path}")
    # mode=ro opens it read-only even for root (CI runs as root, which file permissions do not stop)
    read_only = open_store(tmp_path, f"sqlite:///file:{path}?mode=ro&uri=true")
    assert read_only.load_study("s").study_name == "s"  # reading works
    with pytest.raises(StudyError) as info, read_only.lease("s"):
        pass
    assert "the database is read-only (attempt to write a readonly database)" in str(info.value)
    assert "invalid data in the commit" not in str(info.value)
    if os.geteuid() != 0:  # the everyday case: a file without write permission
        path.chmod(0o444)
        with pytest.raises(StudyError, match="read-only"), open_store(tmp_path, f"sqlite:///{path}").lease("s"):
            pass


def test_a_file_uri_creates_no_folder_and_a_root_that_is_a_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyError, match="cannot be opened: its folder is missing"):
        open_store("runs", "sqlite:///file:sub/x.db?mode=rwc&uri=true").storage()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no stray 'file:sub' folder
    (tmp_path / "a_file").write_text("")
    for root in ("a_file", "a_file/runs"):
        with pytest.raises(StudyError, match="the root .* cannot be a folder: a_file is a file"):
            open_store(root)


def test_no_message_shows_a_password():
    assert masked("postgresql://user:password@host/db") == "postgresql://user:***@host/db"
    assert masked("see postgresql+psycopg://u:p%40ss@h:5/d?x=1 and sqlite:///a/b.db") == (
        "see postgresql+psycopg://u:***@h:5/d?x=1 and sqlite:///a/b.db"
    )
    assert masked("postgresql://user@host/db") == "postgresql://user@host/db"  # no password: nothing to hide
    store = open_store("runs", "postgresql://user:hunter2@127.0.0.1:9/db")
    assert store.display_url == "postgresql://user:***@127.0.0.1:9/db"
    with pytest.raises(StudyError) as info:
        store.storage()  # nothing listens on port 9
    assert "hunter2" not in str(info.value) and "user:***@127.0.0.1:9" in str(info.value)


# --- PostgreSQL for real: a study, its resume after kill -9, the lease -------------------------------


@pytest.mark.slow
def test_a_study_runs_and_resumes_after_kill_9_on_postgresql(ray_session, postgres, make_study, tmp_path):
    url = postgres.url("resume")
    path = make_study(
        tmp_path / "pg.yaml",
        name="pg",
        seeds=2,
        budget={"steps": 300, "report_every": 10},
        resources={"cpus": 1, "max_concurrent": 1},  # one population after the other: killed between them
    )
    address = ray_session.get_runtime_context().gcs_address
    cmd = ("run", str(path), "--root", str(tmp_path / "runs"), "--storage", url, "--address", address)

    def states() -> Counter:
        try:
            return Counter(t.state for t in optuna.load_study(study_name="pg", storage=url).get_trials(deepcopy=False))
        except KeyError:
            return Counter()

    driver = start_sweep(*cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # an event that stays true (a stored result), not a moment that populations can skip
        assert wait_for(lambda: states()[TrialState.COMPLETE] >= 1, 180, interval=0.05)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    before = states()
    assert 1 <= before[TrialState.COMPLETE] < 4, before
    # the killed driver's lease is still in the table; the rerun takes it over at once (its pid is gone)
    assert _holder(open_store(tmp_path, url), "pg") == (socket.gethostname(), driver.pid)
    rerun = run_sweep(*cmd, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    trials = optuna.load_study(study_name="pg", storage=url).get_trials()
    complete = Counter((t.user_attrs["config_id"], t.user_attrs["seed"]) for t in trials if t.state.name == "COMPLETE")
    assert len(complete) == 4 and set(complete.values()) == {1}  # every pair exactly once
    left_open = before[TrialState.RUNNING] + before[TrialState.WAITING]  # WAITING: enqueued, not yet asked for
    assert sum(t.user_attrs.get("outcome") == "interrupted" for t in trials) == left_open
    assert _holder(open_store(tmp_path, url), "pg") is None  # released at the end
    # the password is in the URL the user gave; no output repeats it, not even the commands it suggests
    assert "s3cret" not in rerun.stdout + rerun.stderr
    assert "--storage postgresql://sweep:***@127.0.0.1" in rerun.stdout


def test_a_trials_first_note_is_the_dashboards_note_written_without_reading_every_other(monkeypatch):
    from optuna_dashboard import get_note, save_note

    from sweep.store import save_first_trial_note

    study = optuna.create_study()
    body = "### base (seed 0)\n\n" + "a long line of the note, " * 200  # several chunks
    for _ in range(3):
        save_note(study.ask(), "an earlier trial's note")  # the study's system attributes grow with its trials
    reads = []
    original = study._storage.get_study_system_attrs
    monkeypatch.setattr(study._storage, "get_study_system_attrs", lambda sid: reads.append(sid) or original(sid))
    fast, slow = study.ask(), study.ask()
    save_first_trial_note(fast, body)
    assert reads == []  # nothing read: the cost does not grow with the study
    save_note(slow, body)
    assert len(reads) == 2  # the control: the public call reads every attribute, twice
    assert get_note(fast) == get_note(slow) == body
    attrs = original(study._study_id)
    assert attrs[f"dashboard:{fast._trial_id}:note_ver"] == attrs[f"dashboard:{slow._trial_id}:note_ver"] == 1
