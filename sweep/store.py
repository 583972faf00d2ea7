"""Where studies live: the Optuna storage (the record of every trial), artifacts, Ray directories.

Default root `./runs` (option `--root`, or $SWEEP_ROOT): `runs/sweep.db` is the SQLite Optuna
storage of every study, `runs/artifacts/` the artifact store, `runs/ray/<study>/` Ray Tune's files.
Any SQLAlchemy URL (`--storage`, or $SWEEP_STORAGE) can replace the SQLite file for a team.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore

from sweep.errors import StudyError

ROOT_ENV = "SWEEP_ROOT"
STORAGE_ENV = "SWEEP_STORAGE"

# user attributes of every trial (the contract between the runner, `show`, `export` and `report`)
ATTR_CONFIG_ID = "config_id"  # canonical id of the configuration, e.g. "base", "d_batchnorm=joint"
ATTR_SEED = "seed"
ATTR_INDEX = "index"  # position in the study's expanded trial list (ablation, grid)
ATTR_FACTOR = "factor"  # ablation: the factor changed from the base (None for the base)
ATTR_LEVEL = "level"  # ablation: its value
ATTR_OUTCOME = "outcome"  # completed | pruned | diverged | crashed | interrupted
ATTR_REASON = "reason"  # why a trial failed or was pruned, one line
ATTR_METRICS = "metrics"  # final metrics, name -> value
ATTR_HISTORY = "history"  # every report: list of {step, metric: value}
ATTR_CONFIG = "config"  # the resolved TrainConfig as a dict
FINISHED_OUTCOMES = ("completed", "pruned", "diverged", "crashed")


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
        """The Optuna storage; a SQLite file's folder is created on first use."""
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            storage = optuna.storages.RDBStorage(self.url, engine_kwargs=_engine_kwargs(self.url))
        except Exception as exc:  # a bad URL or an unreachable database server
            raise StudyError(f"cannot open the study storage {self.url}: {str(exc).splitlines()[0]}") from exc
        if self.url.startswith("sqlite"):
            _sqlite_wal(storage)
        return storage

    def artifact_store(self) -> FileSystemArtifactStore:
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        return FileSystemArtifactStore(str(self.artifact_dir))

    def load_study(self, name: str) -> optuna.Study:
        """A stored study by name; a miss lists the stored names."""
        storage = self.storage()
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
            known = ", ".join(names) if names else "none yet: run one with `sweep run STUDY.yaml`"
            raise StudyError(f"no study named '{name}' in {self.url}; stored studies: {known}") from None

    def study_names(self) -> list[str]:
        return [s.study_name for s in optuna.get_all_study_summaries(self.storage())]


def _sqlite_wal(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging for SQLite: readers (a dashboard, `sweep show`) never block the driver,
    and each of the many small writes of a run costs no full fsync (synchronous=NORMAL, which WAL
    keeps safe against a killed process)."""
    import sqlalchemy

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
    """The store under `root` (default $SWEEP_ROOT or ./runs), with `storage` URL if given."""
    root_path = Path(root or os.environ.get(ROOT_ENV) or "runs")
    url = storage or os.environ.get(STORAGE_ENV) or f"sqlite:///{root_path / 'sweep.db'}"
    return Store(root=root_path, url=url)


__all__ = ["FINISHED_OUTCOMES", "Store", "open_store"]
