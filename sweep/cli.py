"""The `sweep` command line: parses, calls the library, prints through `console`. Errors are one red line.

Each command imports the library modules it needs when it runs (marked `# lazy:`), so that `--help`
and the commands that only read files never load torch, Ray or matplotlib.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sweep import console
from sweep.cli_options import (
    AddressOpt,
    DryRunOpt,
    GpusOpt,
    KeepCheckpointsOpt,
    MaxTrialsOpt,
    NewNameOpt,
    PopulationOpt,
    ReplicateOpt,
    RetryCrashedOpt,
    RootOpt,
    SeedsOpt,
    SetOpt,
    StepsOpt,
    StorageOpt,
    StoragePathOpt,
    StudyArg,
    StudyFileArg,
    TrackOpt,
    TrialsOpt,
    WideOpt,
)
from sweep.errors import (
    AddressInUseError,
    CrashedTrialsError,
    DefinitionConflictError,
    SeedPlanConflictError,
    StudyBusyError,
    StudyError,
    SweepError,
    TooManyTrialsError,
)
from sweep.report.render import Format as ReportFormat
from sweep.store import Store, StudyAttr, TrialAttr, open_store  # Optuna itself loads when a storage is opened
from sweep.vocab import counts, masked

if TYPE_CHECKING:
    from sweep.runner import RunSummary

app = typer.Typer(
    name="sweep",
    help="Ablation and hyperparameter sweeps for InfoGAN: YAML studies on Ray Tune, scored and stored by Optuna.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# what to type next, for the library's errors that a flag resolves
HINTS: dict[type[Exception], str] = {
    SeedPlanConflictError: "confirm the verdict on fresh seeds with --replicate, or plan looks (seeds: {start, max}) "
    "under --new-name NAME",
    DefinitionConflictError: "run it under another name with --new-name NAME",
    AddressInUseError: "pick another port with --port",
    TooManyTrialsError: "raise the limit with --max-trials N if you mean it",
    StudyBusyError: "wait for that run to end, or stop it",
    CrashedTrialsError: "fix the cause, then run them again with --retry-crashed",
}


class ExportFormat(str, Enum):
    CSV = "csv"
    JSON = "json"


def _store(root: Path | None, storage: str | None, *, writing: bool = False) -> Store:
    """The store of --root/--storage; Optuna's info lines quiet once there is a storage to read or write."""
    store = open_store(root, storage)
    if writing or store.exists():
        import optuna  # lazy: Optuna loads only where there is a storage to read or write

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    return store


def _location_flags(root: Path | None, storage: str | None) -> str:
    """The --root/--storage flags the user gave, to repeat in the commands we suggest (no password shown)."""
    flags = f" --root {root}" if root else ""
    return flags + (f" --storage {masked(storage)}" if storage else "")


def _max_trials(value: int | None) -> int:
    """--max-trials, or the library's default limit."""
    from sweep.spec import MAX_TRIALS  # lazy: pydantic and the core's config load only for commands that read studies

    return MAX_TRIALS if value is None else value


def _parse_sets(values: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars or lists (lr_g=1e-3, cat_codes=[10])."""
    import yaml  # lazy: only commands with --set parse YAML values

    parsed: dict[str, Any] = {}
    for item in values or []:
        if "=" not in item:
            raise typer.BadParameter(
                f"takes key=value, but got {item!r} (for example --set lr_g=0.0005)", param_hint="--set"
            )
        key, raw = item.split("=", 1)
        try:
            parsed[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            parsed[key.strip()] = raw
    return parsed


def _parse_seeds(text: str | None) -> int | list[int] | None:
    """`--seeds 5` (a count) or `--seeds 10,11,12` (the seeds themselves)."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise typer.BadParameter(
            f"takes a count (5) or a list of seeds (10,11,12), but got {text!r}", param_hint="--seeds"
        ) from None


# --- run ----------------------------------------------------------------------------------------


@app.command()
def run(
    study_file: StudyFileArg,
    steps: StepsOpt = None,
    seeds: SeedsOpt = None,
    trials: TrialsOpt = None,
    set_values: SetOpt = None,
    population: PopulationOpt = None,
    gpus: GpusOpt = None,
    new_name: NewNameOpt = None,
    address: AddressOpt = None,
    storage_path: StoragePathOpt = None,
    replicate: ReplicateOpt = False,
    retry_crashed: RetryCrashedOpt = False,
    keep_checkpoints: KeepCheckpointsOpt = False,
    track: TrackOpt = None,
    dry_run: DryRunOpt = False,
    max_trials: MaxTrialsOpt = None,
    wide: WideOpt = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Run a study: every (configuration, seed) as a Ray Tune trial, recorded in Optuna. Resumes.

    Example: sweep run studies/balance.yaml --steps 100 --seeds 2
    """
    from sweep import api, spec  # lazy: pydantic and the core's config load only for commands that read studies

    study = api.study_from_file(
        study_file,
        steps=steps,
        seeds=_parse_seeds(seeds),
        trials=trials,
        set_values=_parse_sets(set_values),
        population=population,
        gpus=gpus,
        new_name=new_name,
        max_trials=_max_trials(max_trials),
    )
    original, index = None, None
    if replicate:
        from sweep import runner  # lazy: Ray and Optuna load only when a study runs

        original = study.name
        study, index = runner.next_replication(study, _store(root, storage, writing=True))
    if dry_run:
        console.print_plan(study, None if study.kind == "search" else spec.iter_trials(study), wide=wide)
        return
    from sweep import runner  # lazy: Ray and Optuna load only when a study runs

    store = _store(root, storage, writing=True)
    options = runner.RunOptions(
        address=address,
        storage_path=storage_path,
        source=str(study_file),
        replication_of=original,
        replicate=index,
        retry_crashed=retry_crashed,
        keep_checkpoints=keep_checkpoints,
        track=tuple(t.value for t in track or ()),
        progress=console.ProgressView(study),
    )
    summary = runner.run(study, store=store, options=options)
    console.print_run_summary(study, summary, _location_flags(root, storage))
    _exit_for(study.name, summary)


def _exit_for(study_name: str, summary: RunSummary) -> None:
    """Exit 130 for a run stopped with Ctrl-C; fail a run that left crashed pairs (of this run or earlier)."""
    if summary.unfinished:
        raise typer.Exit(130)  # stopped with Ctrl-C: not a success, and nothing stored is lost
    crashed_before = sum(summary.crashed_before.values())
    if summary.crashed or crashed_before:  # a success only when every trial ended with a measured outcome
        what = [f"{summary.crashed} trials crashed in this run"] if summary.crashed else []
        what += [f"{crashed_before} pairs crashed in an earlier run"] if crashed_before else []
        raise CrashedTrialsError(f"study '{study_name}': {' and '.join(what)} (reasons above)")


# --- validate, schema ---------------------------------------------------------------------------


@app.command()
def validate(
    study_files: Annotated[list[Path], typer.Argument(help="Study files to check.", show_default=False)],
    max_trials: MaxTrialsOpt = None,
) -> None:
    """Check study files: schema, every configuration's TrainConfig against its dataset, metric names, the
    trial count. One line per problem; every file is checked.

    Example: sweep validate studies/*.yaml
    """
    from sweep import spec, tracking  # lazy: pydantic and the core's config load only for commands that read studies

    failed = 0
    limit = _max_trials(max_trials)
    for path in study_files:
        try:
            study = spec.load(path, max_trials=limit)
            tracking.check_installed(study.tracking, where=f"{path}: ")
            console.print_valid(path, study)
        except StudyError as exc:
            failed += 1
            console.print_invalid(str(exc))
    if failed:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the study file's JSON Schema (for editors' YAML validation).

    Example: sweep schema > study.schema.json
    """
    from sweep.spec import study_json_schema  # lazy: pydantic and the core's config load only when needed

    print(json.dumps(study_json_schema(), indent=2))


# --- show, list, export -------------------------------------------------------------------------


@app.command("list")
def list_studies(root: RootOpt = None, storage: StorageOpt = None) -> None:
    """List the studies in the storage, with their trials by state.

    Example: sweep list --storage postgresql://user@host/sweep
    """
    store = _store(root, storage)
    if not store.exists():
        console.print_studies(store.url, [])
        return
    import optuna  # lazy: Optuna loads only where there is a storage to read

    rows = []
    for s in optuna.get_all_study_summaries(store.storage(), include_best_trial=False):
        trials = store.load_study(s.study_name).get_trials(deepcopy=False)
        # how each trial ended (the tool's outcomes), or the state it is in while it has not
        tally = Counter(t.user_attrs.get(TrialAttr.OUTCOME) or t.state.name.lower() for t in trials)
        rows.append(
            {
                "study": s.study_name,
                "kind": s.user_attrs.get(StudyAttr.KIND),
                "trials": len(trials),
                "outcomes": counts(dict(tally)),
                "created": s.user_attrs.get(StudyAttr.CREATED),
            }
        )
    console.print_studies(store.display_url, rows)


@app.command()
def show(
    study_name: StudyArg,
    effects: Annotated[bool, typer.Option("--effects", help="Print the effect table per factor and level.")] = False,
    wide: WideOpt = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Show a study's trials: configuration, seed, state and final metrics.

    Example: sweep show balance --effects
    """
    from sweep.results import load_results  # lazy: scipy and pandas load only to analyse

    results = load_results(_store(root, storage).load_study(study_name))
    if effects:
        console.print_effects(results, wide=wide)
        return
    console.print_trials(study_name, results.frame, [o.metric for o in results.study.objectives], wide=wide)


@app.command()
def export(
    study_name: StudyArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = ExportFormat.CSV,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")] = None,
    curves: Annotated[
        bool,
        typer.Option(
            "--curves",
            help="Every trial's history instead, in long format: one row per (trial, step, metric) with its seed "
            "and factor levels.",
        ),
    ] = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Export a study as tidy records: one row per trial, params and final metrics flattened (or, with --curves,
    one row per trial, step and metric).

    Example: sweep export balance --format csv -o balance.csv
    """
    from sweep.analysis import curves_frame, trials_frame  # lazy: pandas loads only for commands that analyse

    optuna_study = _store(root, storage).load_study(study_name)
    frame = curves_frame(optuna_study) if curves else trials_frame(optuna_study)
    text = frame.to_csv(index=False) if fmt is ExportFormat.CSV else frame.to_json(orient="records", indent=2)
    if output:
        output.write_text(text)
        console.print_wrote(output, f"{len(frame)} {'rows of curves' if curves else 'trials'}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command()
def compare(
    study_a: Annotated[str, typer.Argument(help="A stored study (see `sweep list`).", show_default=False)],
    study_b: Annotated[str, typer.Argument(help="Another stored study to set beside it.", show_default=False)],
    wide: WideOpt = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Compare two stored studies: what differs in their definitions and code, their verdicts and effects.

    Example: sweep compare balance balance-rep1
    """
    from sweep.compare import compare as compare_studies  # lazy: scipy and pandas load only to analyse

    store = _store(root, storage)
    console.print_comparison(compare_studies(store.load_study(study_a), store.load_study(study_b)), wide=wide)


# --- report, dashboard, claims ------------------------------------------------------------------


@app.command()
def report(
    study_name: StudyArg,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: reports/STUDY.html or .md).")
    ] = None,
    fmt: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            help="html: one self-contained file; md: Markdown with PNGs beside it (default: -o's suffix, else html).",
        ),
    ] = None,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Write a study's report: effects with confidence intervals, importance, curves, samples, the verdict.

    Example: sweep report balance -o balance.html
    """
    from sweep import review  # lazy: scipy, pandas and optuna-dashboard load only to write a report
    from sweep.report import build, render  # lazy: matplotlib and Jinja2 load only to write a report

    fmt = fmt or ReportFormat.of(output)
    store = _store(root, storage)
    built = build.build(store.load_study(study_name), store=store)
    path = render.write(built, output, fmt=fmt)
    review.attach_study_review(built.study, built.results.optuna_study, results=built.results)
    if built.verdict is not None and built.verdict_text is not None:
        console.print_verdict_line(built.verdict.status, built.verdict_text.message)
    console.print_wrote(path)


@app.command()
def dashboard(
    study_name: Annotated[
        str | None, typer.Argument(help="Study to open (default: the list of studies).", show_default=False)
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Serve optuna-dashboard on the study storage, with every trial's images, config and note. Ctrl-C stops it.

    Example: sweep dashboard balance --port 8080
    """
    from sweep import review  # lazy: optuna-dashboard loads only to serve

    store = _store(root, storage)
    optuna_study = store.load_study(study_name) if study_name else None
    server = review.dashboard_server(store, host=host, port=port)
    console.print_dashboard(
        review.dashboard_url(server, optuna_study),
        store.display_url,
        exposed=host not in ("127.0.0.1", "localhost", "::1"),
    )
    try:
        review.serve(server)
    except KeyboardInterrupt:
        console.out.print("dashboard stopped")


@app.command()
def claims(
    studies_dir: Annotated[Path, typer.Option("--studies", help="Folder of study files.")] = Path("studies"),
    wide: WideOpt = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """List every study file's claim and, where it has been run, its verdict, in one table.

    Example: sweep claims --studies studies
    """
    from sweep.claims import claim_rows  # lazy: scipy and pandas load only for commands that analyse

    rows = claim_rows(studies_dir, _store(root, storage))
    console.print_claims(studies_dir, rows, _location_flags(root, storage), wide=wide)


# --- train ------------------------------------------------------------------------------------


@app.command()
def train(
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="A TrainConfig value, key=value; repeatable.")
    ] = None,
    image_dir: Annotated[Path, typer.Option(help="Where the run's PNG images go.")] = Path("runs/train"),
) -> None:
    """Train one InfoGAN run (no Ray, no storage), to debug a configuration.

    Example: sweep train --set dataset=ring8 --set arch=mlp --set cat_codes=[8] --set steps=500
    """
    from sweep import core  # lazy: the core's config loads here, torch on the first step

    cfg = core.TrainConfig.from_dict(_parse_sets(set_values))
    with console.TrainProgress(cfg.steps) as progress:
        result = core.train(cfg, report=progress, image_dir=image_dir)
    console.print_final_metrics(result.metrics, result.steps_run, result.wall_s, result.images)
    (image_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))


@app.command()
def fetch(
    dataset: Annotated[str, typer.Argument(help="mnist or fashion-mnist.", show_default=False)],
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            envvar="INFOGAN_DATA_DIR",
            show_default=False,
            help="Folder the IDX files go to, under DATASET/ (default: ./data).",
        ),
    ] = None,
    mirror: Annotated[
        str | None, typer.Option(help="Base URL to fetch from instead of the known mirrors (files are checked).")
    ] = None,
) -> None:
    """Download a dataset's original IDX training files once, checked against their published MD5 sums.

    Example: sweep fetch mnist --data-dir data
    """
    from sweep import core  # lazy: the core's data module loads only for commands that use data

    folder = core.fetch_idx(dataset, data_dir, mirror=mirror)
    console.print_fetched(dataset, folder, data_dir)


# --- entry point ----------------------------------------------------------------------------


def main() -> None:
    """Console script: run the app; known errors become one red line and exit code 1."""
    debug = os.environ.get("SWEEP_DEBUG") == "1"
    try:
        code = app(standalone_mode=False)  # returns the exit code of typer.Exit in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except KeyboardInterrupt:
        console.print_interrupted()
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        # the core's errors, without importing torch for commands that never load the core
        core = sys.modules.get("infogan_core.errors")
        if isinstance(exc, SweepError) or (core is not None and isinstance(exc, core.InfoGANError)):
            hint = next((h for kind, h in HINTS.items() if isinstance(exc, kind)), "")
            console.error(f"{exc}; {hint}" if hint else str(exc))
            sys.exit(1)
        # the storage's own errors (read-only, not a database), without importing Optuna for commands that never do
        store = sys.modules.get("sweep.store")
        problem = store.storage_problem(exc) if store is not None else None
        if problem is not None:
            console.error(f"study storage: {problem}")
            sys.exit(1)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # Typer's usage errors: exit 2
            exc.show()
            sys.exit(exc.exit_code)
        console.error(f"{type(exc).__name__}: {exc} (set SWEEP_DEBUG=1 for the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
