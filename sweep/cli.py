"""The `sweep` command line: parses, calls the library, prints. Errors are one red line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="sweep",
    help="Ablation and hyperparameter sweeps for InfoGAN: YAML studies on Ray Tune, scored and stored by Optuna.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

RootOpt = Annotated[
    Path | None, typer.Option("--root", help="Folder for the default SQLite storage, artifacts and Ray files "
                              "(default: $SWEEP_ROOT or ./runs).", show_default=False)]  # fmt: skip
StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="Optuna storage URL (any SQLAlchemy URL) "
                             "(default: $SWEEP_STORAGE or sqlite:///ROOT/sweep.db).", show_default=False)]  # fmt: skip


def _store(root: Path | None, storage: str | None):
    import optuna

    from sweep.store import open_store

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    return open_store(root, storage)


def _parse_sets(values: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars or lists (lr_g=1e-3, cat_codes=[10])."""
    import yaml

    from sweep.errors import SweepError

    parsed: dict[str, Any] = {}
    for item in values or []:
        if "=" not in item:
            raise SweepError(f"--set takes key=value, but got {item!r} (for example --set lr_g=0.0005)")
        key, raw = item.split("=", 1)
        try:
            parsed[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            parsed[key.strip()] = raw
    return parsed


def _parse_seeds(text: str | None) -> int | list[int] | None:
    """`--seeds 5` (a count) or `--seeds 10,11,12` (the seeds themselves)."""
    from sweep.errors import SweepError

    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",")] if "," in text else int(text)
    except ValueError:
        raise SweepError(f"--seeds takes a count (5) or a list of seeds (10,11,12), but got {text!r}") from None


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN: no value
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- run ----------------------------------------------------------------------------------------


@app.command()
def run(
    study_file: Annotated[Path, typer.Argument(help="Study file (YAML).", show_default=False)],
    steps: Annotated[int | None, typer.Option(help="Override budget.steps (e.g. a 50-step smoke test).")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(help="Override the seeds: a count (5) or a list (10,11,12) for a rerun on other seeds."),
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Override a search study's number of configurations.")] = None,
    set_values: Annotated[
        list[str] | None, typer.Option("--set", help="Override a base value, key=value; repeatable.")
    ] = None,
    new_name: Annotated[
        str | None, typer.Option("--new-name", help="Run under this study name instead of the file's.")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join ('auto' or HOST:PORT) (default: a local Ray).")
    ] = None,
    storage_path: Annotated[
        str | None, typer.Option(help="Ray's storage_path; must be shared storage on a multi-node cluster.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the expanded trial table and stop.")] = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Run a study: every (configuration, seed) as a Ray Tune trial, recorded in Optuna. Resumes.

    Example: sweep run studies/balance.yaml --steps 100 --seeds 2
    """
    from sweep import runner, spec

    study = spec.load(study_file)
    if steps is not None or seeds is not None or trials is not None or set_values:
        study = study.with_overrides(
            steps=steps, seeds=_parse_seeds(seeds), trials=trials, set_values=_parse_sets(set_values)
        )
    if new_name:
        study = study.model_copy(update={"name": new_name})
    if dry_run:
        _print_plan(study)
        return
    store = _store(root, storage)
    summary = runner.run(
        study, store=store, address=address, progress=_ProgressView(study), source=str(study_file),
        storage_path=storage_path,
    )  # fmt: skip
    _print_summary(study, summary, _location_flags(root, storage))
    if summary.unfinished:
        raise typer.Exit(130)  # stopped with Ctrl-C: not a success, and nothing stored is lost


def _print_plan(study) -> None:  # noqa: ANN001
    from sweep import spec

    if study.kind == "search":
        out.print(f"[bold]{study.name}[/]: search with the {study.sampler} sampler over {len(study.space)} "
                  f"parameters, {study.trials} configurations x {len(study.seed_list)} seeds "
                  f"= {study.trial_count} trials of {study.budget.steps} steps")  # fmt: skip
        for name, dist in study.space.items():
            out.print(f"  {name}: {dist.model_dump(exclude_none=True)}")
        return
    trials = spec.expand(study)
    table = Table(title=f"{study.name}: {study.kind}, {len(trials)} trials of {study.budget.steps} steps")
    for col in ("index", "config", "seed", *study.factors):
        table.add_column(col)
    for t in trials:
        table.add_row(str(t.index), t.config_id, str(t.seed), *(spec.format_value(t.params[f]) for f in study.factors))
    out.print(table)


class _ProgressView:
    """Live progress of a run: trials done / running / failed / pruned, best so far, time left."""

    def __init__(self, study) -> None:  # noqa: ANN001
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.metric = study.objectives[0].metric if len(study.objectives) == 1 else None
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("left {task.fields[eta]}"),
            console=err, transient=False,
        )  # fmt: skip
        self.task = None
        self.started = time.perf_counter()

    def __call__(self, tracker) -> None:  # noqa: ANN001
        finished = tracker.done + tracker.failed + tracker.pruned
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("trials", total=tracker.total, info="", eta="?")
        best = f" best {self.metric} {tracker.best:.4g}" if self.metric and tracker.best is not None else ""
        info = f"done {tracker.done} running {tracker.running} failed {tracker.failed} pruned {tracker.pruned}{best}"
        elapsed = time.perf_counter() - self.started
        eta = "?" if finished == 0 else f"{elapsed / finished * (tracker.total - finished):.0f}s"
        self.progress.update(self.task, completed=finished, info=info, eta=eta)
        if finished >= tracker.total:
            self.progress.stop()


def _location_flags(root: Path | None, storage: str | None) -> str:
    """The --root/--storage flags the user gave, to repeat in the commands we suggest."""
    flags = f" --root {root}" if root else ""
    return flags + (f" --storage {storage}" if storage else "")


def _print_summary(study, summary, opts: str) -> None:  # noqa: ANN001
    if summary.planned == 0:
        out.print(f"[green]Study '{study.name}' is complete[/]: all {summary.skipped} (configuration, seed) "
                  "pairs are already stored; nothing to run.")  # fmt: skip
    else:
        table = Table(title=f"{study.name}: {summary.planned} trials in {summary.wall_s:.0f} s")
        for col in ("completed", "pruned", "failed", "already stored", "rerun after interruption"):
            table.add_column(col, justify="right")
        table.add_row(*(str(x) for x in (summary.completed, summary.pruned, summary.failed, summary.skipped,
                                         summary.interrupted)))  # fmt: skip
        out.print(table)
    if summary.unfinished:
        err.print(f"[yellow]stopped before the end[/]: {summary.unfinished} trials did not finish; run the same "
                  "command again to resume (finished pairs are never run twice)")  # fmt: skip
    out.print("Look further:")
    out.print(f"  sweep show {study.name}{opts}            trials, params, metrics")
    out.print(f"  sweep report {study.name}{opts}          effects, curves, images and the verdict (HTML)")
    out.print(f"  sweep dashboard {study.name}{opts}       every trial in optuna-dashboard")


# --- validate, schema ---------------------------------------------------------------------------


@app.command()
def validate(
    study_files: Annotated[list[Path], typer.Argument(help="Study files to check.", show_default=False)],
) -> None:
    """Check study files: schema, TrainConfig values, metric names. One line per problem.

    Example: sweep validate studies/*.yaml
    """
    from sweep import spec
    from sweep.errors import StudyError

    failed = 0
    for path in study_files:
        try:
            study = spec.load(path)
        except StudyError as exc:
            failed += 1
            err.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
            continue
        count = study.trial_count
        out.print(f"[green]ok[/] {path}: {study.kind}, {count} trials of {study.budget.steps} steps", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the study file's JSON Schema (for editors' YAML validation).

    Example: sweep schema > study.schema.json
    """
    from sweep.spec import study_json_schema

    print(json.dumps(study_json_schema(), indent=2))


# --- show, list, export -------------------------------------------------------------------------


@app.command("list")
def list_studies(root: RootOpt = None, storage: StorageOpt = None) -> None:
    """List the studies in the storage, with their trials by state.

    Example: sweep list --storage postgresql://user@host/sweep
    """
    import optuna

    store = _store(root, storage)
    summaries = optuna.get_all_study_summaries(store.storage(), include_best_trial=False)
    if not summaries:
        out.print(f"No studies in {store.url} yet: run one with `sweep run studies/balance.yaml`.")
        return
    table = Table(title=f"Studies in {store.url}")
    for col in ("study", "kind", "trials", "complete", "pruned", "failed", "running", "created"):
        table.add_column(col)
    for s in summaries:
        study = optuna.load_study(study_name=s.study_name, storage=store.storage())
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        table.add_row(s.study_name, str(s.user_attrs.get("kind", "-")), str(len(states)),
                      *(str(states.count(k)) for k in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")),
                      str(s.user_attrs.get("created", "-")))  # fmt: skip
    out.print(table)


@app.command()
def show(
    study_name: Annotated[str, typer.Argument(help="Study name (see `sweep list`).", show_default=False)],
    effects: Annotated[bool, typer.Option("--effects", help="Print the effect table per factor and level.")] = False,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Show a study's trials: configuration, seed, state and final metrics.

    Example: sweep show balance --effects
    """
    from sweep.analysis import trials_frame

    store = _store(root, storage)
    study = store.load_study(study_name)
    if effects:
        from sweep.report import print_effects

        print_effects(study, out)
        return
    frame = trials_frame(study)
    spec_dict = study.user_attrs.get("spec", {})
    objectives = [o["metric"] for o in spec_dict.get("objectives", [])]
    params = [c for c in frame.columns if c.startswith("params.")]
    table = Table(title=f"{study_name}: {len(frame)} trials")
    for col in ("#", "config", "seed", "state", *(p.removeprefix("params.") for p in params), *objectives, "note"):
        table.add_column(col)
    for _, row in frame.iterrows():
        note = row.get("reason") if isinstance(row.get("reason"), str) else ""
        table.add_row(str(row["number"]), str(row["config_id"]), _fmt(row["seed"]), str(row["outcome"]),
                      *(_fmt(row[p]) for p in params), *(_fmt(row.get(o)) for o in objectives),
                      str(note)[:60])  # fmt: skip
    out.print(table)


@app.command()
def export(
    study_name: Annotated[str, typer.Argument(help="Study name (see `sweep list`).", show_default=False)],
    format: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")] = None,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Export a study as tidy records: one row per trial, params and final metrics flattened.

    Example: sweep export balance --format csv -o balance.csv
    """
    from sweep.analysis import trials_frame
    from sweep.errors import SweepError

    if format not in ("csv", "json"):
        raise SweepError(f"--format must be csv or json, but got {format!r}")
    frame = trials_frame(_store(root, storage).load_study(study_name))
    text = frame.to_csv(index=False) if format == "csv" else frame.to_json(orient="records", indent=2)
    if output:
        output.write_text(text)
        err.print(f"wrote {len(frame)} trials to {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# --- report, dashboard --------------------------------------------------------------------------


@app.command()
def report(
    study_name: Annotated[str, typer.Argument(help="Study name (see `sweep list`).", show_default=False)],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: reports/STUDY.html or .md).")
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(help="html: one self-contained file; md: Markdown with PNGs beside it (default: -o's suffix)."),
    ] = None,
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Write a study's report: effects with confidence intervals, importance, curves, samples, the verdict.

    Example: sweep report balance -o balance.html
    """
    from sweep import analysis, review
    from sweep import report as report_module

    fmt = format or (output.suffix.lstrip(".").lower() if output and output.suffix.lower() in (".md", ".html")
                     else "html")  # fmt: skip
    store = _store(root, storage)
    optuna_study = store.load_study(study_name)
    built = report_module.build(optuna_study, artifact_store=store.artifact_store())
    path = report_module.write(built, output, format=fmt)
    review.attach_study_review(analysis.study_spec(optuna_study), optuna_study)
    if built.verdict is not None:
        colour = {"SUPPORTED": "green", "NOT SUPPORTED": "red"}.get(built.verdict.status, "yellow")
        out.print(f"verdict: [bold {colour}]{built.verdict.status}[/]: {built.verdict.message}", highlight=False)
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)


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
    from sweep import review

    store = _store(root, storage)
    optuna_study = store.load_study(study_name) if study_name else None
    server = review.dashboard_server(store, host=host, port=port)
    url = review.dashboard_url(server, optuna_study)
    out.print(f"optuna-dashboard for {store.url} at [bold]{url}[/]", highlight=False, soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        out.print("[yellow]the dashboard has no authentication: anyone who can reach this address can edit notes[/]")
    out.print("Press Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.print("dashboard stopped")
    finally:
        server.server_close()


@app.command()
def claims(
    studies_dir: Annotated[Path, typer.Option("--studies", help="Folder of study files.")] = Path("studies"),
    root: RootOpt = None,
    storage: StorageOpt = None,
) -> None:
    """List every study file's claim and, where it has been run, its verdict, in one table.

    Example: sweep claims --studies studies
    """
    from sweep.analysis import claim_rows

    rows = claim_rows(studies_dir, _store(root, storage))
    table = Table(title=f"Claims of the studies in {studies_dir}", show_lines=True)
    for col in ("study", "claim", "default cost", "verdict", "deciding numbers"):
        table.add_column(col, overflow="fold")
    colours = {"SUPPORTED": "green", "NOT SUPPORTED": "red", "INCONCLUSIVE": "yellow"}
    for row in rows:
        status = row["verdict"]
        shown = f"[{colours[status]}]{status}[/]" if status in colours else status
        table.add_row(row["study"], row["claim"], row["cost"], shown, row["numbers"])
    out.print(table)


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from infogan_core import TrainConfig
    from infogan_core import train as train_run

    cfg = TrainConfig.from_dict(_parse_sets(set_values))
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), console=err) as progress:  # fmt: skip
        task = progress.add_task("train", total=cfg.steps, info="")

        def report(step: int, metrics: dict[str, float]) -> None:
            keys = ("loss/d", "loss/g", "mi/cat_ratio", "eval/cat_acc", "eval/modes")
            info = " ".join(f"{k} {metrics[k]:.3g}" for k in keys if k in metrics)
            progress.update(task, completed=step, info=info)

        result = train_run(cfg, report=report, image_dir=image_dir)
    table = Table(title=f"final metrics after {result.steps_run} steps ({result.wall_s:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted(result.metrics.items()):
        table.add_row(k, _fmt(v))
    out.print(table)
    (image_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    for name, path in result.images.items():
        out.print(f"{name}: {path}")


# --- entry point ----------------------------------------------------------------------------


def main() -> None:
    """Console script: run the app; known errors become one red line and exit code 1."""
    from sweep.errors import SweepError

    debug = os.environ.get("SWEEP_DEBUG") == "1"
    try:
        code = app(standalone_mode=False)  # returns the exit code of typer.Exit in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]: what finished is stored; run the same command again to resume")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        # the core's errors, without importing torch for commands that never load the core
        core = sys.modules.get("infogan_core.errors")
        if isinstance(exc, SweepError) or (core is not None and isinstance(exc, core.InfoGANError)):
            err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # Typer's usage errors: exit 2
            exc.show()
            sys.exit(exc.exit_code)
        err.print(f"[red]error:[/] {type(exc).__name__}: {exc} (set SWEEP_DEBUG=1 for the traceback)",
                  highlight=False, soft_wrap=True)  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    main()
