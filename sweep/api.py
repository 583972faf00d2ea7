"""The Python API, for notebooks and scripts: `load` a stored study, `run` a study file; both return the
study's results (its trials as a pandas DataFrame, its effects, its verdict), read as `sweep show` and
`sweep report` read them (`results.load_results`). `run` prepares a study the way `sweep run` does
(`study_from_file`, which the CLI calls too) and runs it on the same driver (`runner.run`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweep import runner, spec
from sweep.results import StudyResults, load_results
from sweep.spec import MAX_TRIALS, Study
from sweep.store import open_store


def study_from_file(
    path: str | Path,
    *,
    steps: int | None = None,
    seeds: int | list[int] | None = None,
    trials: int | None = None,
    set_values: dict[str, Any] | None = None,
    population: int | str | None = None,
    gpus: float | str | None = None,
    new_name: str | None = None,
    max_trials: int | None = MAX_TRIALS,
) -> Study:
    """The study in file `path` with the caller's overrides (budget steps, seeds, search trials, base values,
    population, GPUs per trial, a new name), validated once, of at most `max_trials` trials."""
    study = spec.load(path, max_trials=max_trials)
    if any(v is not None for v in (steps, seeds, trials, population, gpus)) or set_values:
        study = study.with_overrides(
            steps=steps,
            seeds=seeds,
            trials=trials,
            set_values=set_values,
            population=population,
            gpus=gpus,
            max_trials=max_trials,
        )
    return study.renamed(new_name) if new_name else study


def load(name: str, *, root: str | Path | None = None, storage: str | None = None) -> StudyResults:
    """The stored study `name` under `root` (default ./runs) or in the `storage` URL: `.frame` (one row per
    trial), `.effects`, `.verdict`, `.study` (its definition); an unknown name lists the stored ones."""
    return load_results(open_store(root, storage).load_study(name))


def run(
    path: str | Path,
    *,
    root: str | Path | None = None,
    storage: str | None = None,
    steps: int | None = None,
    seeds: int | list[int] | None = None,
    trials: int | None = None,
    set_values: dict[str, Any] | None = None,
    new_name: str | None = None,
    address: str | None = None,
    max_trials: int | None = MAX_TRIALS,
    progress: Callable[[runner.Tracker], None] | None = None,
) -> StudyResults:
    """Run (or resume) the study file `path`, as `sweep run` does with the same overrides, and return its
    results as `load` does. Crashed trials are in `.frame` with their reasons; they do not raise."""
    study = study_from_file(
        path, steps=steps, seeds=seeds, trials=trials, set_values=set_values, new_name=new_name, max_trials=max_trials
    )
    store = open_store(root, storage)
    runner.run(study, store=store, options=runner.RunOptions(address=address, source=str(path), progress=progress))
    return load_results(store.load_study(study.name))


__all__ = ["StudyResults", "load", "run", "study_from_file"]
