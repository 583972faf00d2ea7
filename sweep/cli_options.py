"""The command line's shared arguments and options: each declared once, with its help text."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from sweep.vocab import TRACKERS


def study_name(value: str | None) -> str | None:
    """--new-name follows the rule a study file's `name:` does (a usage error otherwise)."""
    from sweep.spec import check_study_name  # lazy: pydantic and the core's config load only when a name is given

    try:
        return None if value is None else check_study_name(value)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--new-name") from None


RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="SWEEP_ROOT",
        show_default=False,
        help="Folder for the default SQLite storage, artifacts and Ray files (default: ./runs).",
    ),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="SWEEP_STORAGE",
        show_default=False,
        help="Optuna storage URL (any SQLAlchemy URL) (default: sqlite:///ROOT/sweep.db).",
    ),
]
StudyArg = Annotated[str, typer.Argument(help="Study name (see `sweep list`).", show_default=False)]
MaxTrialsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-trials",
        min=1,
        show_default=False,
        help="Refuse a study with more trials than this (default: 10000), so that a typo cannot queue millions.",
    ),
]
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Every detail, in as many columns as it takes (default: fits 80 columns).")
]

StudyFileArg = Annotated[Path, typer.Argument(help="Study file (YAML).", show_default=False)]
StepsOpt = Annotated[int | None, typer.Option(help="Override budget.steps (e.g. a 50-step smoke test).")]
SeedsOpt = Annotated[
    str | None, typer.Option(help="Override the seeds: a count (5) or a list (10,11,12) for a rerun on other seeds.")
]
TrialsOpt = Annotated[int | None, typer.Option(help="Override a search study's number of configurations.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a base value, key=value; repeatable.")]
PopulationOpt = Annotated[
    str | None,
    typer.Option(
        help="Override resources.population: pairs trained as one stacked model per Ray trial (a number, or "
        "auto); the stored numbers are the same.",
        show_default=False,
    ),
]
NewNameOpt = Annotated[
    str | None,
    typer.Option("--new-name", callback=study_name, help="Run under this study name instead of the file's."),
]
AddressOpt = Annotated[
    str | None, typer.Option(help="Ray cluster to join ('auto' or HOST:PORT) (default: a local Ray).")
]
StoragePathOpt = Annotated[
    str | None, typer.Option(help="Ray's storage_path; must be shared storage on a multi-node cluster.")
]
ReplicateOpt = Annotated[
    bool,
    typer.Option(
        "--replicate",
        help="Run the study again on fresh seeds (each offset by 10000 per replication) as NAME-rep1, "
        "NAME-rep2, ...; resumes the latest one while it is unfinished.",
    ),
]
RetryCrashedOpt = Annotated[
    bool,
    typer.Option(
        "--retry-crashed",
        help="Run again the pairs whose trial crashed (a lost worker, out of memory, a data file added since); "
        "diverged runs are results and stay.",
    ),
]
KeepCheckpointsOpt = Annotated[
    bool,
    typer.Option(
        "--keep-checkpoints",
        help="Keep each trial's last checkpoint (under the root's ray/ folder) after it finishes; by default "
        "they are deleted once the trial is stored.",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print the first trials of the expanded table, and their total, and stop.")
]
Tracker = Enum("Tracker", {name: name for name in TRACKERS}, type=str)  # Typer checks the choice (exit 2)
TrackOpt = Annotated[
    list[Tracker] | None,
    typer.Option(
        "--track",
        help="Also log every trial to this tracker (tensorboard, mlflow, wandb), besides the study's `tracking:`; "
        "repeatable. Trackers are not part of a study's meaning: a resumed study may name others.",
        show_default=False,
    ),
]
GpusOpt = Annotated[
    str | None,
    typer.Option(
        help="Override resources.gpus: GPUs per trial (a number; fractions share a GPU), or auto (the GPUs this "
        "machine or cluster has, a few populations on each).",
        show_default=False,
    ),
]

__all__ = [
    "AddressOpt",
    "DryRunOpt",
    "GpusOpt",
    "KeepCheckpointsOpt",
    "MaxTrialsOpt",
    "NewNameOpt",
    "PopulationOpt",
    "ReplicateOpt",
    "RetryCrashedOpt",
    "RootOpt",
    "SeedsOpt",
    "SetOpt",
    "StepsOpt",
    "StorageOpt",
    "StoragePathOpt",
    "StudyArg",
    "StudyFileArg",
    "TrackOpt",
    "TrialsOpt",
    "WideOpt",
]
