"""All terminal output, on rich: the run's plan, live progress and summary, tables of studies and
trials, effect tables and verdicts, claims, and the one-line errors.

Numbers, outcomes and verdict colours come from `vocab`, so the terminal, the notes and the report
write them alike. The CLI parses and calls; everything it shows is drawn here.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sweep.vocab import MISSING, STATUS_COLOURS, Status, masked, num, p_value

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from sweep.runner import RunSummary, Tracker
    from sweep.spec import Study, TrialSpec

out = Console()
err = Console(stderr=True)
PLAN_ROWS = 20  # trials a dry run lists: a screenful, then the total


def error(message: str) -> None:
    """One red line on stderr (any URL in it without its password)."""
    err.print(f"[red]error:[/] {masked(message)}", highlight=False, soft_wrap=True)


def status_text(status: Status | str) -> str:
    """A verdict in its colour (rich markup); other words as they are."""
    colour = STATUS_COLOURS.get(status)  # type: ignore[call-overload]  # words that are no verdict have none
    return f"[bold {colour}]{status}[/]" if colour else str(status)


def _cell(value: Any) -> str:
    return num(value) if isinstance(value, float) or value is None else str(value)


# --- run ----------------------------------------------------------------------------------------


def print_plan(study: Study, trials: Iterable[TrialSpec] | None) -> None:
    """The first PLAN_ROWS trials of an ablation or grid study and their total, or the search space of a
    search study."""
    from sweep.spec import format_value  # lazy: pydantic and the core's config load only for commands that plan

    if trials is None:
        out.print(
            f"[bold]{study.name}[/]: search with the {study.sampler} sampler over {len(study.space)} "
            f"parameters, {study.trials} configurations x {len(study.seed_list)} seeds "
            f"= {study.trial_count} trials of {study.budget.steps} steps"
        )
        for name, dist in study.space.items():
            out.print(f"  {name}: {dist.model_dump(exclude_none=True)}")
        return
    looks = f", run in looks at {', '.join(map(str, study.looks))} seeds" if study.sequential else ""
    total = study.trial_count
    title = f"{study.name}: {study.kind}, {'up to ' if looks else ''}{total} trials of {study.budget.steps} steps"
    table = Table(title=title + looks)
    for col in ("index", "config", "seed", *study.factors):
        table.add_column(col)
    for t in itertools.islice(trials, PLAN_ROWS):
        table.add_row(str(t.index), t.config_id, str(t.seed), *(format_value(t.params[f]) for f in study.factors))
    out.print(table)
    if total > PLAN_ROWS:
        out.print(f"... and {total - PLAN_ROWS} more: {total} trials in all")


class ProgressView:
    """Live progress of a run: trials done / running / failed / pruned, best so far, time left."""

    def __init__(self, study: Study) -> None:
        self.metric = study.objectives[0].metric if len(study.objectives) == 1 else None
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("left {task.fields[eta]}"),
            console=err,
            transient=False,
        )
        self.task: Any = None
        self.live = False
        self.started = time.perf_counter()

    def __call__(self, tracker: Tracker) -> None:
        finished = tracker.done + tracker.failed + tracker.pruned
        if self.task is None:
            self.task = self.progress.add_task("trials", total=tracker.total, info="", eta="?")
        if not self.live and finished < tracker.total:  # the first call, or the next look's seeds
            self.progress.start()
            self.live = True
        best = f" best {self.metric} {num(tracker.best)}" if self.metric and tracker.best is not None else ""
        info = f"done {tracker.done} running {tracker.running} failed {tracker.failed} pruned {tracker.pruned}{best}"
        elapsed = time.perf_counter() - self.started
        eta = "?" if finished == 0 else f"{elapsed / finished * (tracker.total - finished):.0f}s"
        self.progress.update(self.task, total=tracker.total, completed=finished, info=info, eta=eta)
        if self.live and finished >= tracker.total:
            self.progress.stop()
            self.live = False


def print_run_summary(study: Study, summary: RunSummary, location_flags: str) -> None:
    """What a run did, and the commands that look further (with the user's --root/--storage)."""
    crashed_before = sum(summary.crashed_before.values())
    if summary.planned == 0 and crashed_before:
        out.print(
            f"[yellow]Study '{study.name}' has nothing left to run[/], but {crashed_before} of its (configuration, "
            "seed) pairs crashed in an earlier run:"
        )
    elif summary.planned == 0:
        out.print(
            f"[green]Study '{study.name}' is complete[/]: its {summary.skipped} (configuration, seed) "
            "pairs are already stored; nothing to run."
        )
    else:
        table = Table(title=f"{study.name}: {summary.planned} trials in {summary.wall_s:.0f} s")
        for col in ("completed", "pruned", "failed", "already stored", "rerun after interruption"):
            table.add_column(col, justify="right")
        table.add_row(
            *(str(x) for x in (summary.completed, summary.pruned, summary.failed, summary.skipped, summary.interrupted))
        )
        out.print(table)
    _print_failures(summary)
    if summary.unfinished:
        err.print(
            f"[yellow]stopped before the end[/]: {summary.unfinished} trials did not finish; run the same "
            "command again to resume (finished pairs are never run twice)"
        )
    if summary.verdict is not None:
        print_verdict(summary.verdict)
    out.print("Look further:")
    out.print(f"  sweep show {study.name}{location_flags}            trials, params, metrics")
    out.print(f"  sweep report {study.name}{location_flags}          effects, curves, images and the verdict (HTML)")
    out.print(f"  sweep dashboard {study.name}{location_flags}       every trial in optuna-dashboard")


def _print_failures(summary: RunSummary) -> None:
    """Why trials failed, count x reason: this run's, then the crashes of earlier runs left as they are."""
    if summary.failures:
        out.print("Failed in this run:")
    for (outcome, reason), count in summary.failures.most_common():
        out.print(f"  {count} x {outcome}: {reason}", highlight=False, markup=False)
    if summary.crashed_before and summary.planned:
        out.print("Crashed in an earlier run, not run again:")
    for reason, count in summary.crashed_before.most_common():
        out.print(f"  {count} x crashed: {reason}", highlight=False, markup=False)
    if summary.retried:
        out.print(f"{summary.retried} pairs that crashed in an earlier run were run again.")


# --- validate, list, show ------------------------------------------------------------------------


def print_valid(path: Path, study: Study) -> None:
    trials = f"up to {study.trial_count}" if study.sequential else str(study.trial_count)
    out.print(f"[green]ok[/] {path}: {study.kind}, {trials} trials of {study.budget.steps} steps", highlight=False)


def print_invalid(message: str) -> None:
    err.print(f"[red]{message}[/]", highlight=False, soft_wrap=True)


def print_studies(url: str, rows: Iterable[dict[str, Any]]) -> None:
    """One row per stored study: kind, trials by state, creation time."""
    rows = list(rows)
    if not rows:
        out.print(f"No studies in {url} yet: run one with `sweep run studies/balance.yaml`.")
        return
    table = Table(title=f"Studies in {url}")
    columns = ("study", "kind", "trials", "complete", "pruned", "failed", "running", "created")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(col, MISSING)) for col in columns))
    out.print(table)


def print_trials(name: str, frame: pd.DataFrame, objectives: list[str]) -> None:
    """Each trial: configuration, seed, outcome, parameters, objective values, and why it failed."""
    params = [c for c in frame.columns if c.startswith("params.")]
    table = Table(title=f"{name}: {len(frame)} trials")
    for col in ("#", "config", "seed", "state", *(p.removeprefix("params.") for p in params), *objectives, "note"):
        table.add_column(col)
    for _, row in frame.iterrows():
        note = row.get("reason") if isinstance(row.get("reason"), str) else ""
        table.add_row(
            str(row["number"]),
            str(row["config_id"]),
            _cell(row["seed"]),
            str(row["outcome"]),
            *(_cell(row[p]) for p in params),
            *(_cell(row.get(o)) for o in objectives),
            str(note)[:60],
        )
    out.print(table)
    for line in _caveats(objectives):
        out.print(f"[dim]{line}[/]", highlight=False)


def _caveats(metrics: Iterable[str]) -> list[str]:
    from sweep.core import caveats  # lazy: the core's metric table loads only where metrics are shown

    return caveats(metrics)


def print_effects(optuna_study: optuna.Study) -> None:
    """The effect table per objective (and the verdict, when the study has a rule)."""
    from sweep import analysis  # lazy: scipy and pandas load only for the commands that analyse
    from sweep.report.tables import DIVERGED_P, effect_tables, method_text  # lazy: pandas loads only to print effects

    study = analysis.study_spec(optuna_study)
    frame = analysis.trials_frame(optuna_study)
    test = study.verdict.test if study.verdict else "t"
    effects = analysis.effects(frame, study, test=test)
    if effects.empty:
        out.print(f"No effect table for {study.name}: no trials yet, or no categorical factor to compare.")
    wide = out.width >= 140  # a narrower terminal gets each interval, and the Holm p, on a line of its own
    sep = " " if wide else "\n"
    for t in effect_tables(effects, study):
        caption = f"[dim]{t.caveat}[/]" if t.caveat else None
        table = Table(title=f"{study.name}: {t.metric} ({t.direction})", title_justify="left", caption=caption)
        h = t.headers
        table.add_column("level", overflow="fold")
        table.add_column("ok/runs", justify="right")
        table.add_column("not finished", style="yellow")
        table.add_column("mean [95% CI]", justify="right", no_wrap=wide)
        table.add_column(f"{h[7]} [95% CI]", justify="right", no_wrap=wide)
        table.add_column("effect size", justify="right")
        table.add_column("p (Holm)", justify="right")
        if DIVERGED_P in h:
            table.add_column(DIVERGED_P, justify="right")
        for row in t.rows:
            c = dict(zip(h, row.cells, strict=True))
            style = "dim" if row.reference else None
            diff = c[h[7]] if row.reference else f"{c[h[7]]}{sep}{c['95% CI of diff']}".strip()
            p = f"{c['p']}{sep}({c['p (Holm)']})" if c["p"] else ""
            p = f"[bold green]{p}[/]" if row.significant else p
            cells = [f"{c['factor']}={c['level']}", f"{c['finished']}/{c['runs']}", c["not finished"]]
            cells += [f"{c['mean']}{sep}{c['95% CI']}".strip(), diff, c["effect size"], p]
            table.add_row(*cells, *([c[DIVERGED_P]] if DIVERGED_P in h else []), style=style)
        out.print(table)
    if not effects.empty:
        out.print(f"[dim]{method_text(study, test)}[/]")
    result = analysis.verdict(frame, study)
    if result is not None:
        print_verdict(result)


def print_verdict(result: Any) -> None:
    """A verdict, its reason and its numbers (an analysis.VerdictResult)."""
    out.print(f"\nVerdict: {status_text(result.status)}: {result.message}", highlight=False)
    for line in result.lines():
        out.print(f"  {line}", highlight=False)


def print_claims(studies_dir: Path, rows: list[dict[str, Any]], location_flags: str) -> None:
    """Every study file's claim, its default cost, its verdict where it has been run (with the effect, its
    interval, the MDE, n and the p-value Holm-adjusted over the claims), and its replications' verdicts."""
    table = Table(title=f"Claims of the studies in {studies_dir}", show_lines=True)
    for col in ("study", "claim", "default cost", "verdict", "effect, interval, MDE, n; p (Holm over claims)"):
        table.add_column(col, overflow="fold")
    for row in rows:
        verdict = status_text(row["verdict"])
        numbers = row["summary"]
        if row["verdict"] == "not run":
            numbers = f"sweep run {row['file']}{location_flags}"
        elif row["verdict"] == "no rule":
            numbers = f"see sweep report {row['study']}{location_flags}"
        elif row["verdict"] == "INVALID":
            numbers = row["message"]
        else:
            numbers += f"; p {p_value(row['p'])} ({p_value(row['p_holm'])})\n{row['message']}"
        for name, status, summary in row["replications"]:
            verdict += f"\n{name}: {status_text(status)}"
            numbers += f"\n{name}: {summary}" if summary else ""
        table.add_row(row["study"], row["claim"], row["cost"], verdict, numbers)
    out.print(table)
    out.print(
        "[dim]p: two-sided, scaled to the rule's alpha at the look that decided; Holm: adjusted over the claims "
        "listed. A verdict reads off the effect's interval (studies/README.md: 'Reading a verdict').[/]"
    )


# --- report, export, dashboard -------------------------------------------------------------------


def print_verdict_line(status: Status, message: str) -> None:
    out.print(f"verdict: {status_text(status)}: {message}", highlight=False)


def print_wrote(path: Path, what: str = "") -> None:
    (err if what else out).print(f"wrote {what + ' to ' if what else ''}{path}", highlight=False, soft_wrap=True)


def print_dashboard(url: str, storage_url: str, exposed: bool) -> None:
    out.print(f"optuna-dashboard for {storage_url} at [bold]{url}[/]", highlight=False, soft_wrap=True)
    if exposed:
        out.print("[yellow]the dashboard has no authentication: anyone who can reach this address can edit notes[/]")
    out.print("Press Ctrl-C to stop.")


def print_fetched(dataset: str, folder: Path, data_dir: Path | None) -> None:
    out.print(f"[green]ok[/] {dataset}: {folder}", highlight=False, soft_wrap=True)
    root = data_dir or folder.parent
    out.print(
        f"Use it with --set dataset={dataset} --set data_dir={root}, or export INFOGAN_DATA_DIR={root}",
        highlight=False,
        soft_wrap=True,
    )


# --- train --------------------------------------------------------------------------------------

TRAIN_PROGRESS_METRICS = ("loss/d", "loss/g", "mi/cat_ratio", "eval/cat_acc", "eval/modes")


class TrainProgress:
    """A progress bar over one training run's steps, with its latest key metrics."""

    def __init__(self, steps: int) -> None:
        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task = self.progress.add_task("train", total=steps, info="")

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        info = " ".join(f"{k} {num(metrics[k], 3)}" for k in TRAIN_PROGRESS_METRICS if k in metrics)
        self.progress.update(self.task, completed=step, info=info)


def print_final_metrics(metrics: dict[str, float], steps: int, wall_s: float, images: dict[str, str]) -> None:
    table = Table(title=f"final metrics after {steps} steps ({wall_s:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted(metrics.items()):
        table.add_row(k, num(v))
    out.print(table)
    for line in _caveats(metrics):
        out.print(f"[dim]{line}[/]", highlight=False)
    for name, path in images.items():
        out.print(f"{name}: {path}")


__all__ = [
    "ProgressView",
    "TrainProgress",
    "err",
    "error",
    "out",
    "print_claims",
    "print_dashboard",
    "print_effects",
    "print_fetched",
    "print_final_metrics",
    "print_invalid",
    "print_plan",
    "print_run_summary",
    "print_studies",
    "print_trials",
    "print_valid",
    "print_verdict",
    "print_verdict_line",
    "print_wrote",
    "status_text",
]
