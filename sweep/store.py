"""Where studies live: the Optuna storage (the record of every trial), artifacts, Ray directories.

Default root `./runs`: `runs/sweep.db` is the SQLite Optuna storage of every study, `runs/artifacts/`
the artifact store, `runs/ray/<study>/` Ray Tune's files. Any SQLAlchemy URL can replace the SQLite
file for a team.

Every attribute key the tool stores is named here, and the few calls below Optuna's public API
(reaching a trial by its number after its driver died, intermediate values of a study with several
objectives, a trial's start and end as its worker saw them) are made here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep.errors import StudyError
from sweep.lazy import LazyImport
from sweep.vocab import Outcome

if TYPE_CHECKING:
    import optuna
    import sqlalchemy
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import FrozenTrial, TrialState
else:  # loaded when a storage is opened: a command that finds no storage to read never loads them
    optuna = LazyImport("optuna")
    sqlalchemy = LazyImport("sqlalchemy")


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
    # what a worker reports at the end of a trial and the driver stores as it is
    FROM_WORKER = (STARTED_AT, ENDED_AT, NODE, NODE_ID, TRIAL_DIR, WALL_S, STEPS_RUN, REASON, TRACEBACK, PROVENANCE)


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


FINAL_IMAGES = "images"  # in a worker's final result, beside the trial attributes: figure name -> base64 PNG


_OPENED: dict[str, Any] = {}  # storage URL -> the RDBStorage this process opened on it


@dataclass(frozen=True)
class Store:
    root: Path
    url: str

    @property
    def artifact_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def ray_dir(self) -> Path:
        """Ray Tune's storage_path; each study's experiment lands in ray_dir/<study>."""
        return (self.root / "ray").resolve()

    def storage(self) -> optuna.storages.BaseStorage:
        """The Optuna storage, opened once per process (opening checks the schema: a quarter of a second);
        a SQLite file's folder is created on first use."""
        if self.url in _OPENED:
            return _OPENED[self.url]
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            storage = optuna.storages.RDBStorage(self.url, engine_kwargs=_engine_kwargs(self.url))
        except Exception as exc:  # a bad URL or an unreachable database server
            raise StudyError(f"cannot open the study storage {self.url}: {str(exc).splitlines()[0]}") from exc
        if self.url.startswith("sqlite"):
            _sqlite_wal(storage)
        _OPENED[self.url] = storage
        return storage

    def exists(self) -> bool:
        """Whether there can be studies to read: False for a SQLite file not created yet (reading it would
        create it, empty), True for every database server."""
        return not self.url.startswith("sqlite:///") or Path(self.url.removeprefix("sqlite:///")).is_file()

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
            raise StudyError(f"no study named '{name}' in {self.url}; stored studies: {known}") from None

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


def open_store(root: str | Path | None = None, storage: str | None = None) -> Store:
    """The store under `root` (default ./runs), with the `storage` URL if given (default: SQLite in root)."""
    root_path = Path(root or "runs")
    return Store(root=root_path, url=storage or f"sqlite:///{root_path / 'sweep.db'}")


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
    "Store",
    "StudyAttr",
    "TrialAttr",
    "close_stale_trials",
    "end_trial",
    "open_store",
    "record_intermediate",
    "reopen_trial",
    "set_trial_times",
    "study_id",
]
