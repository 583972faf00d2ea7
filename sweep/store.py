"""Where studies live: the Optuna storage (the record of every trial), artifacts, Ray directories.

Default root `./runs`: `runs/sweep.db` is the SQLite Optuna storage of every study, `runs/artifacts/`
the artifact store, `runs/ray/<study>/` Ray Tune's files. Any SQLAlchemy URL can replace the SQLite
file for a team.

Every attribute key the tool stores is named here, and the few calls below Optuna's public API
(reaching a trial by its number after its driver died, intermediate values of a study with several
objectives, a trial's start and end as its worker saw them) are made here and nowhere else. So is the
driver lease: one row per running study in a small table of the storage's own database
(`sweep_driver_leases`), so that two drivers never run the same study at once, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.util
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep.errors import StudyBusyError, StudyError
from sweep.lazy import LazyImport
from sweep.vocab import Outcome, masked

if TYPE_CHECKING:
    import optuna
    import sqlalchemy
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import FrozenTrial, TrialState
else:  # loaded when a storage is opened: a command that finds no storage to read never loads them
    optuna = LazyImport("optuna")
    sqlalchemy = LazyImport("sqlalchemy")
_note = LazyImport("optuna_dashboard._note")  # the dashboard's note format (save_first_trial_note)


class TrialAttr:
    """User-attribute keys of every trial: the contract between the runner, `show`, `export` and `report`."""

    CONFIG_ID = "config_id"  # canonical id of the configuration, e.g. "base", "d_batchnorm=joint"
    SEED = "seed"
    INDEX = "index"  # position in the study's expanded trial list (ablation, grid)
    FACTOR = "factor"  # ablation: the factor changed from the base (None for the base)
    LEVEL = "level"  # ablation: its value
    OUTCOME = "outcome"  # a vocab.Outcome value
    REASON = "reason"  # why a trial failed or was pruned, one line
    METRICS = "metrics"  # final metrics, name -> value
    HISTORY = "history"  # every report: list of {step, metric: value}
    CONFIG = "config"  # the resolved TrainConfig as a dict
    STEPS_RUN = "steps_run"  # generator steps the trial trained
    WALL_S = "wall_s"  # seconds the worker spent in the trial
    STARTED_AT = "started_at"  # the worker's clock (epoch seconds) when the trial started, and ended
    ENDED_AT = "ended_at"
    NODE = "node"  # host name of the worker, and Ray's id of its node
    NODE_ID = "node_id"
    TRIAL_DIR = "trial_dir"  # the worker's Ray Tune trial folder
    TRACEBACK = "traceback"  # the end of a crashed trial's traceback
    PROVENANCE = "provenance"  # what trained it: code version and git commit, library versions, device
    POPULATION = "population"  # the pairs trained side by side as one stacked model with it (1: alone)
    PAIRS = "population_pairs"  # its population's pairs, [config_id, seed] in member order
    CHECKPOINT = "checkpoint"  # while it runs: the folder of its population's latest checkpoint (Ray Tune's)
    CHECKPOINT_STEP = "checkpoint_step"  # the step that checkpoint holds
    RESUMED_FROM = "resumed_from_step"  # it resumed an interrupted trial's checkpoint of this step
    CHECKPOINT_DISCARDED = "checkpoint_discarded"  # why the checkpoint it was to resume could not be, so it began anew
    POPULATION_SPLIT = "population_split"  # its population ran out of device memory and trained in parts: how
    LIVE = "live"  # every metric's curve so far and its latest value, one line rewritten at each report
    # what a worker reports at the end of a trial and the driver stores as it is
    FROM_WORKER = (
        STARTED_AT,
        ENDED_AT,
        NODE,
        NODE_ID,
        TRIAL_DIR,
        WALL_S,
        STEPS_RUN,
        REASON,
        TRACEBACK,
        PROVENANCE,
        POPULATION,
        RESUMED_FROM,
        CHECKPOINT_DISCARDED,
        POPULATION_SPLIT,
    )


class StudyAttr:
    """User-attribute keys of every study."""

    FINGERPRINT = "fingerprint"  # hash of what gives the trials their meaning (spec.Study.fingerprint)
    KIND = "kind"  # ablation | grid | search
    CREATED = "created"  # local time the study was first stored
    SPEC = "spec"  # the latest definition the study was run from (claim, verdict, seeds)
    SOURCE = "source"  # the study file it was read from
    REPLICATION_OF = "replication_of"  # a replication: the name of the study it replicates on fresh seeds
    REPLICATE = "replicate"  # a replication: its number (1, 2, ...), which offsets its seeds
    PROVENANCE = "provenance"  # the driver of its latest run: code version and git commit, libraries, machine
    NUMERICS = "numerics"  # infogan_core.NUMERICS of the engine that trained it (absent: 1, before it was kept)


FINAL_IMAGES = "images"  # in a worker's final result, beside the trial attributes: figure name -> base64 PNG


_OPENED: dict[str, Any] = {}  # storage URL -> the RDBStorage this process opened on it


@dataclass(frozen=True)
class Store:
    root: Path
    url: str

    @property
    def display_url(self) -> str:
        """The storage URL as messages show it: with its password hidden."""
        return masked(self.url)

    @property
    def artifact_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def ray_dir(self) -> Path:
        """Ray Tune's storage_path; each study's experiment lands in ray_dir/<study>."""
        return (self.root / "ray").resolve()

    def storage(self) -> optuna.storages.RDBStorage:
        """The Optuna storage, opened once per process (opening checks the schema: a quarter of a second);
        a SQLite file's folder is created on first use."""
        if self.url in _OPENED:
            return _OPENED[self.url]
        try:
            url = _engine_url(self.url)
            if url.get_backend_name() == "sqlite" and url.database and not url.database.startswith("file:"):
                _folder(Path(url.database).parent)  # a file: URI is used as written: SQLite says what is missing
            storage = optuna.storages.RDBStorage(
                url.render_as_string(hide_password=False), engine_kwargs=_engine_kwargs(self.url)
            )
            if url.get_backend_name() == "sqlite":
                _sqlite_wal(storage)
        except StudyError:
            raise
        except Exception as exc:  # a bad URL, an unreachable server, a file that is no database
            problem = storage_problem(exc) or str(exc).splitlines()[0]
            raise StudyError(f"cannot open the study storage {self.display_url}: {problem}") from exc
        _OPENED[self.url] = storage
        return storage

    def exists(self) -> bool:
        """Whether there can be studies to read: False for a SQLite file not created yet (reading it would
        create it, empty), True for every database server."""
        if not self.url.startswith("sqlite:///") or self.url.startswith("sqlite:///file:"):
            return True  # a server, or a file: URI (opened as written: SQLite says what is missing)
        return Path(self.url.removeprefix("sqlite:///")).is_file()

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Say what is wrong with the storage (read-only, not a database, malformed) when it fails, instead of
        Optuna's "invalid data in the commit"."""
        try:
            yield
        except StudyError:
            raise
        except Exception as exc:
            problem = storage_problem(exc)
            if problem is None:
                raise
            raise StudyError(f"study storage {self.display_url}: {problem}") from exc

    @contextlib.contextmanager
    def lease(self, study_name: str) -> Iterator[DriverLease]:
        """Hold `study_name`'s driver lease while the block runs; StudyBusyError if another driver holds it."""
        lease = DriverLease(self.storage().engine, study_name)
        with self.errors():
            lease.acquire()
        try:
            yield lease
        finally:
            lease.release()

    def artifact_store(self) -> FileSystemArtifactStore:
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return optuna.artifacts.FileSystemArtifactStore(str(self.artifact_dir))

    def load_study(self, name: str) -> optuna.Study:
        """A stored study by name; a miss lists the stored names."""
        if not self.exists():
            raise StudyError(f"no study named '{name}' in {self.url}; stored studies: none yet")
        storage = self.storage()
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            known = ", ".join(names) if names else "none yet"
            raise StudyError(f"no study named '{name}' in {self.display_url}; stored studies: {known}") from None

    def study_names(self) -> list[str]:
        if not self.exists():
            return []
        return [s.study_name for s in optuna.get_all_study_summaries(self.storage())]


def _sqlite_wal(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging for SQLite: readers (a dashboard, `sweep show`) never block the driver,
    and each of the many small writes of a run costs no full fsync (synchronous=NORMAL, which WAL
    keeps safe against a killed process)."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        with contextlib.suppress(sqlite3.OperationalError):  # a read-only database keeps its mode, and can be read
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections opened while Optuna set the schema up get the pragmas too


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # the driver writes while a dashboard may read: wait for locks instead of failing at once
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def _engine_url(url: str) -> sqlalchemy.engine.URL:
    """The URL SQLAlchemy opens: `postgresql://` (and `postgres://`) use psycopg 3, the `postgres` extra's
    driver, when psycopg2 (SQLAlchemy's default for that scheme) is not installed."""
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.drivername in ("postgresql", "postgres") and importlib.util.find_spec("psycopg2") is None:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _folder(path: Path) -> Path:
    """`path` as an existing folder, created if missing; a one-line StudyError if it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StudyError(f"{path} is a file, not a folder") from None
    except OSError as e:
        raise StudyError(f"cannot create the folder {path}: {e.strerror}") from None
    return path


# what SQLite and PostgreSQL say, and what it means for the storage
_FULL = "the disk is full: what finished is stored; free space and run the same command again to resume"
_PROBLEMS = (
    ("readonly database", "the database is read-only"),
    ("read-only", "the database is read-only"),
    ("file is not a database", "the file is not a SQLite database"),
    ("malformed", "the database file is corrupted"),
    ("unable to open database file", "the database file cannot be opened: its folder is missing or not writable"),
    ("database is locked", "the database is locked by another process"),
    ("disk is full", _FULL),
    ("no space left", _FULL),
)


def storage_problem(exc: BaseException) -> str | None:
    """What went wrong in the storage, in words, for an error raised while using it (the database's own
    message in parentheses); None when the error did not come from the storage."""
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    full = next((e for e in chain if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    if full is not None:  # the root's disk (artifacts, Ray's files) filled before the database did
        where = f" writing {full.filename}" if full.filename else ""
        return f"{_FULL}{where} ({masked(str(full))})"
    storage_errors = (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError)
    if not any(isinstance(e, storage_errors) for e in chain):
        return None
    root = chain[-1]
    detail = str(getattr(root, "orig", None) or root).strip().splitlines()
    detail_line = masked(detail[0]) if detail else type(root).__name__
    text = " ".join(str(e) for e in chain).lower()
    for needle, meaning in _PROBLEMS:
        if needle in text:
            return f"{meaning} ({detail_line})"
    return detail_line


def open_store(root: str | Path | None = None, storage: str | None = None) -> Store:
    """The store under `root` (default ./runs), with the `storage` URL if given (default: SQLite in root);
    a StudyError at once when `root`, or a folder above it, is a file."""
    root_path = Path(root or "runs")
    for folder in (root_path, *root_path.parents):
        if folder.exists() and not folder.is_dir():
            raise StudyError(f"the root {root_path} cannot be a folder: {folder} is a file")
    return Store(root=root_path, url=storage or f"sqlite:///{root_path / 'sweep.db'}")


# --- the driver lease ---------------------------------------------------------------------------

LEASE_BEAT_S = 5.0  # seconds between a running driver's heartbeats
LEASE_STALE_S = 60.0  # a lease not renewed for this long was left by a driver that died: the next driver takes it

LEASE_TABLE = "sweep_driver_leases"


@functools.cache
def _leases() -> sqlalchemy.Table:
    """The lease table (built on first use: reading a study never loads SQLAlchemy for it)."""
    return sqlalchemy.Table(
        LEASE_TABLE,
        sqlalchemy.MetaData(),
        sqlalchemy.Column("study_name", sqlalchemy.String(512), primary_key=True),
        sqlalchemy.Column("token", sqlalchemy.String(64), nullable=False),  # the holder's random id
        sqlalchemy.Column("host", sqlalchemy.String(255), nullable=False),
        sqlalchemy.Column("pid", sqlalchemy.Integer, nullable=False),
        sqlalchemy.Column("beat", sqlalchemy.Float, nullable=False),  # the holder's clock at its last beat (epoch s)
    )


@dataclass(frozen=True)
class LeaseHolder:
    """The driver that holds (or held) a study's lease."""

    host: str
    pid: int
    beat: float  # epoch seconds of its last heartbeat

    def gone(self, now: float) -> bool:
        """Whether it stopped: no heartbeat for LEASE_STALE_S, or a process of this host that no longer exists."""
        if now - self.beat > LEASE_STALE_S:
            return True
        return self.host == socket.gethostname() and not _process_exists(self.pid)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class DriverLease:
    """The right to drive one study: a row of `sweep_driver_leases`, taken by an atomic insert (or by a
    conditional update of a holder that is gone), kept fresh by a heartbeat thread, deleted on release.

    `lost` turns true if another driver took the lease over (this one's heartbeat stalled for
    LEASE_STALE_S); `took_over` names the gone holder this driver replaced, if any."""

    def __init__(self, engine: sqlalchemy.engine.Engine, study_name: str) -> None:
        self.engine, self.study_name = engine, study_name
        self.token = secrets.token_hex(16)
        self.lost = False
        self.took_over: LeaseHolder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:  # Ray Tune saves its searcher, and this with it: the lease stays here
        return {"study_name": self.study_name, "token": self.token, "lost": self.lost, "took_over": self.took_over}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, engine=None, _stop=threading.Event(), _thread=None)

    def _row(self, conn: sqlalchemy.engine.Connection) -> Any:
        return conn.execute(sqlalchemy.select(_leases()).where(_leases().c.study_name == self.study_name)).first()

    def _mine(self, **where: Any) -> dict[str, Any]:
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "beat": time.time(), **where}

    def acquire(self) -> None:
        """Take the lease, or raise StudyBusyError naming the driver that holds it."""
        try:
            _leases().create(self.engine, checkfirst=True)
        except sqlalchemy.exc.SQLAlchemyError:  # another driver created it at the same moment
            if not sqlalchemy.inspect(self.engine).has_table(LEASE_TABLE):
                raise
        for _ in range(5):  # each pass loses only to a driver that changed the row meanwhile
            try:
                with self.engine.begin() as conn:
                    conn.execute(_leases().insert().values(study_name=self.study_name, **self._mine()))
                break
            except sqlalchemy.exc.IntegrityError:
                pass  # held, or left behind: look at the holder
            with self.engine.begin() as conn:
                row = self._row(conn)
                if row is None:
                    continue  # released meanwhile
                holder = LeaseHolder(row.host, row.pid, row.beat)
                now = time.time()
                if not holder.gone(now):
                    raise StudyBusyError(
                        f"study '{self.study_name}' is being run by another driver: pid {holder.pid} on "
                        f"{holder.host}, last heartbeat {max(0.0, now - holder.beat):.0f} s ago (a driver whose "
                        f"heartbeat stops is taken over after {LEASE_STALE_S:.0f} s)"
                    )
                taken = conn.execute(
                    sqlalchemy.update(_leases())
                    .where(_leases().c.study_name == self.study_name, _leases().c.token == row.token)
                    .values(**self._mine())
                ).rowcount
            if taken == 1:
                self.took_over = holder
                break
        else:
            raise StudyBusyError(f"study '{self.study_name}': other drivers keep taking its lease; try again")
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.study_name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_BEAT_S):
            try:
                with self.engine.begin() as conn:
                    kept = conn.execute(
                        sqlalchemy.update(_leases())
                        .where(_leases().c.study_name == self.study_name, _leases().c.token == self.token)
                        .values(beat=time.time())
                    ).rowcount
            except sqlalchemy.exc.SQLAlchemyError:
                continue  # a passing error (a lock, a dropped connection): the next beat tries again
            if not kept:
                self.lost = True
                return

    def release(self) -> None:
        """Stop the heartbeat and give the lease up (a release that fails leaves a lease that goes stale)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError), self.engine.begin() as conn:
            conn.execute(
                sqlalchemy.delete(_leases()).where(
                    _leases().c.study_name == self.study_name, _leases().c.token == self.token
                )
            )

    def holder(self) -> LeaseHolder | None:
        """Who holds the lease now (None: nobody)."""
        with self.engine.connect() as conn:
            row = self._row(conn)
        return None if row is None else LeaseHolder(row.host, row.pid, row.beat)


# --- below Optuna's public API, in one place ----------------------------------------------------


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage (optuna-dashboard's URLs use it); through the storage's public
    lookup by name rather than the Study's private `_study_id`."""
    return study._storage.get_study_id_from_name(study.study_name)


def reopen_trial(study: optuna.Study, trial: FrozenTrial) -> optuna.Trial:
    """A live handle on a stored, unfinished trial, so that attributes can be set before it is told.

    Needed only for trials a dead driver left RUNNING: Optuna's public API hands out live trials from
    `ask()` alone. The id comes from the storage's public lookup by number.
    """
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study_id(study), trial.number)
    return optuna.Trial(study, trial_id)


def close_stale_trials(study: optuna.Study, reason: str) -> int:
    """Mark every trial a dead driver left open (RUNNING, or WAITING in the queue) FAIL, outcome
    `interrupted`, with `reason`; returns how many. Their (configuration, seed) pairs run again."""
    closed = 0
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        trial = study.ask()  # pops the oldest waiting trial: the public way to take it out of the queue
        end_trial(study, trial, optuna.trial.TrialState.FAIL, Outcome.INTERRUPTED, reason)
        closed += 1
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        end_trial(study, reopen_trial(study, frozen), optuna.trial.TrialState.FAIL, Outcome.INTERRUPTED, reason)
        closed += 1
    return closed


def save_first_trial_note(trial: optuna.Trial, body: str) -> None:
    """Write a new trial's optuna-dashboard note, as `optuna_dashboard.save_note` writes it (version 1, the
    body in chunks of study system attributes). save_note itself reads every system attribute of the study
    twice per call (to find the version and the chunks to clear), and each trial's note adds some, so a study's
    notes cost O(trials^2): 82% of the driver's time at 1,800 trials. A trial's first note has version 0
    before it and no chunks to clear, so it is written without reading anything."""
    storage, study_id = trial.storage, trial.study._study_id
    storage.set_study_system_attr(study_id, _note.note_ver_key(trial._trial_id), 1)
    for key, chunk in _note.split_body(body, trial._trial_id).items():
        storage.set_study_system_attr(study_id, key, chunk)


def record_intermediate(study: optuna.Study, trial: optuna.Trial, step: int, value: float) -> None:
    """Store `value` as the trial's intermediate value at `step` (optuna-dashboard draws learning curves from
    these). Through the storage, because `Trial.report` refuses studies with several objectives; a step
    recorded again is overwritten."""
    study._storage.set_trial_intermediate_value(trial._trial_id, step, value)


def set_trial_times(study: optuna.Study, trial: optuna.Trial, start: float, end: float) -> None:
    """Record a finished trial's start and end as its worker's clock gave them (epoch seconds), so that its
    duration in optuna-dashboard is the time it trained, not the time the driver held it open (Optuna stamps
    both when a trial is asked and told, and has no setter). RDB storages only; others keep Optuna's."""
    storage = getattr(study._storage, "_backend", study._storage)  # below Optuna's cache, if any
    if not isinstance(storage, optuna.storages.RDBStorage):
        return
    trials = sqlalchemy.table(  # the columns of Optuna's `trials` table written here
        "trials",
        sqlalchemy.column("trial_id"),
        sqlalchemy.column("datetime_start", sqlalchemy.DateTime),
        sqlalchemy.column("datetime_complete", sqlalchemy.DateTime),
    )
    update = trials.update().where(trials.c.trial_id == trial._trial_id)
    with storage.engine.begin() as connection:
        connection.execute(
            update.values(datetime_start=datetime.fromtimestamp(start), datetime_complete=datetime.fromtimestamp(end))
        )


def end_trial(study: optuna.Study, trial: optuna.Trial, state: TrialState, outcome: Outcome, reason: str) -> None:
    """Tell Optuna a trial ended without values (PRUNED or FAIL), with its outcome and reason attached."""
    trial.set_user_attr(TrialAttr.OUTCOME, outcome.value)
    trial.set_user_attr(TrialAttr.REASON, reason)
    study.tell(trial, state=state)


__all__ = [
    "FINAL_IMAGES",
    "LEASE_BEAT_S",
    "LEASE_STALE_S",
    "DriverLease",
    "LeaseHolder",
    "Store",
    "StudyAttr",
    "TrialAttr",
    "close_stale_trials",
    "end_trial",
    "open_store",
    "record_intermediate",
    "save_first_trial_note",
    "reopen_trial",
    "storage_problem",
    "set_trial_times",
    "study_id",
]
