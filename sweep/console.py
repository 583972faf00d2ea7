"""All terminal output of the commands, on rich: the run's plan and summary, tables of studies and trials,
effect tables and verdicts, claims, comparisons, and the one-line errors; live progress is `live`'s, the
shared tables and consoles `terminal`'s (both re-exported here).

Numbers, outcomes and verdict colours come from `vocab`, so the terminal, the notes and the report
write them alike. The CLI parses and calls; everything it shows is drawn here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sweep.live import ProgressView, TrainProgress
from sweep.terminal import (
    PROGRESS_INTERVAL,
    cell,
    err,
    error,
    metric_caveats,
    new_table,
    out,
    plural,
    print_lines,
    print_table,
    status_text,
)
from sweep.vocab import MISSING, Status, duration, num, p_value, seed_range, visible

if TYPE_CHECKING:
    import pandas as pd

    from sweep.analysis import VerdictResult
    from sweep.compare import Comparison
    from sweep.report.tables import EffectTable
    from sweep.results import StudyResults
    from sweep.runner import RunSummary
    from sweep.spec import Study, TrialSpec

PLAN_ROWS = 20  # trials a dry run lists: a screenful, then the total


# --- run ----------------------------------------------------------------------------------------


def print_plan(study: Study, trials: Iterable[TrialSpec] | None, *, wide: bool = False) -> None:
    """An ablation or grid study's plan: its first PLAN_ROWS configurations with their seeds (trials, with
    `wide`) and the totals; or the search space of a search study. Counted, never listed whole."""
    from sweep.spec import format_value  # lazy: pydantic and the core's config load only for commands that plan

    if trials is None:
        table = new_table()
        table.add_column("parameter", overflow="fold")
        table.add_column("distribution")
        for name, dist in study.space.items():
            table.add_row(name, _distribution_text(dist.model_dump(exclude_none=True)))
        title = (
            f"{study.name}: search with the {study.sampler} sampler, {plural(study.trials or 0, 'configuration')} "
            f"x {plural(len(study.seed_list), 'seed')} = {study.trial_count} trials of {study.budget.steps} steps"
        )
        print_table(title, table)
        return
    looks = f", run in looks at {', '.join(map(str, study.looks))} seeds" if study.sequential else ""
    total, n_configs = study.trial_count, study.configuration_count
    title = (
        f"{study.name}: {study.kind}, {'up to ' if looks else ''}{total} trials of {study.budget.steps} "
        f"steps ({plural(n_configs, 'configuration')} x {plural(study.seed_count, 'seed')}){looks}"
    )
    if wide:
        table = new_table()
        for col in ("index", "config", "seed", *study.factors):
            table.add_column(col, overflow="fold")
        for t in itertools.islice(trials, PLAN_ROWS):
            table.add_row(str(t.index), t.config_id, str(t.seed), *(format_value(t.params[f]) for f in study.factors))
        print_table(title, table, wide=True)
        if total > PLAN_ROWS:
            out.print(f"... and {total - PLAN_ROWS} more: {total} trials in all")
        return
    table = new_table()
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("configuration", overflow="fold")
    table.add_column("seeds", overflow="fold")
    table.add_column("trials", justify="right", no_wrap=True)
    by_config = itertools.groupby(trials, key=lambda t: t.config_id)  # trials come configuration by configuration
    for number, (config_id, group) in enumerate(itertools.islice(by_config, PLAN_ROWS)):
        seeds = [t.seed for t in group]
        table.add_row(str(number), config_id, seed_range(seeds), str(len(seeds)))
    print_table(title, table)
    if n_configs > PLAN_ROWS:
        out.print(f"... and {n_configs - PLAN_ROWS} more configurations: {total} trials in all")
    out.print("[dim]Each trial with its index and factor levels: --dry-run --wide.[/]", markup=True)
    if study.resources.population != 1:
        out.print(
            f"[dim]Populations ({study.resources.population}): pairs of one network shape train together, each "
            "with the numbers it has alone; --population 1 trains each pair on its own.[/]",
            markup=True,
        )


def _distribution_text(dist: dict[str, Any]) -> str:
    """'float in [0.0001, 0.01], log scale', 'one of none, joint, separate'."""
    if dist.get("type") == "categorical":
        from sweep.spec import format_value  # lazy: pydantic loads only for commands that plan

        return "one of " + ", ".join(format_value(c) for c in dist.get("choices", []))
    text = f"{dist.get('type')} in [{dist.get('low')}, {dist.get('high')}]"
    if dist.get("step") not in (None, 1):
        text += f", step {dist['step']}"
    return text + (", log scale" if dist.get("log") else "")


def print_run_summary(study: Study, summary: RunSummary, location_flags: str) -> None:
    """What a run did, and the commands that look further (with the user's --root/--storage)."""
    crashed_before = sum(summary.crashed_before.values())
    if summary.planned == 0 and crashed_before:
        out.print(
            f"[yellow]Study '{study.name}' has nothing left to run[/], but {crashed_before} of its (configuration, "
            "seed) pairs crashed in an earlier run:",
            markup=True,
        )
    elif summary.planned == 0:
        out.print(
            f"[green]Study '{study.name}' is complete[/]: its {summary.skipped} (configuration, seed) "
            "pairs are already stored; nothing to run.",
            markup=True,
        )
    else:
        table = new_table()
        for col in ("completed", "pruned", "failed", "already stored", "rerun after interruption"):
            table.add_column(col, justify="right")
        table.add_row(
            *(str(x) for x in (summary.completed, summary.pruned, summary.failed, summary.skipped, summary.interrupted))
        )
        print_table(f"{study.name}: {summary.planned} trials in {duration(summary.wall_s)}", table)
    _print_failures(summary)
    for note in summary.notes:
        err.print(f"[yellow]note[/]: {escape(note)}", markup=True)
    if summary.unfinished:
        err.print(
            f"[yellow]stopped before the end[/]: {summary.unfinished} trials did not finish; run the same "
            "command again to resume (finished pairs are never run twice)",
            markup=True,
        )
    if summary.verdict is not None:
        print_verdict(summary.verdict)
    out.print("Look further:")
    _print_commands(
        [
            (f"sweep show {study.name}{location_flags}", "trials, configurations, metrics"),
            (f"sweep report {study.name}{location_flags}", "effects, curves, images and the verdict (HTML)"),
            (f"sweep dashboard {study.name}{location_flags}", "every trial in optuna-dashboard"),
        ]
    )


def _print_commands(commands: list[tuple[str, str]]) -> None:
    """Commands to type, each whole on one line (to copy), with what it shows as a shell comment: beside
    it when both fit the terminal, else on the line above."""
    width = max(len(command) for command, _ in commands) + 2
    for command, what in commands:
        if 2 + width + len(what) + 2 <= out.width:
            out.print(f"  {command:<{width}}# {what}", highlight=False, soft_wrap=True)
        else:
            out.print(f"  # {what}", highlight=False)
            out.print(f"  {command}", highlight=False, soft_wrap=True)


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
    out.print(
        f"[green]ok[/] {escape(str(path))}: {study.kind}, {trials} trials of {study.budget.steps} steps",
        markup=True,
        highlight=False,
    )


def print_invalid(message: str) -> None:
    err.print(Text(visible(message), style="red"), highlight=False, soft_wrap=True)


def print_studies(url: str, rows: Iterable[dict[str, Any]]) -> None:
    """One row per stored study: kind, trials by outcome, creation time."""
    rows = list(rows)
    if not rows:
        out.print(f"No studies in {url} yet: run one with `sweep run studies/balance.yaml`.", soft_wrap=False)
        return
    table = new_table()
    table.add_column("study", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("trials", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("outcomes")
    for row in rows:
        table.add_row(*(cell(row.get(col, MISSING)) for col in ("study", "kind", "trials", "created", "outcomes")))
    print_table(f"Studies in {url}", table)


def print_trials(name: str, frame: pd.DataFrame, objectives: list[str], *, wide: bool = False) -> None:
    """Each trial: configuration, seed, outcome, objective values, and why it failed; its parameters, steps,
    time and node with `wide`."""
    params = [c for c in frame.columns if c.startswith("params.")]
    table = new_table()
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("config", overflow="fold")
    table.add_column("seed", justify="right", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    if wide:
        for p in params:
            table.add_column(p.removeprefix("params."), overflow="fold")
    for o in objectives:
        table.add_column(o, justify="right", no_wrap=True)
    if wide:
        for col in ("steps", "wall s", "node", "note"):
            table.add_column(col)
    notes = []
    for _, row in frame.iterrows():
        note = row.get("reason") if isinstance(row.get("reason"), str) else ""
        cells = [str(row["number"]), str(row["config_id"]), cell(row["seed"]), str(row["outcome"])]
        cells += [cell(row[p]) for p in params] if wide else []
        cells += [cell(row.get(o)) for o in objectives]
        if wide:
            cells += [cell(row.get("steps_run")), cell(row.get("wall_s")), cell(row.get("node")), note]
        elif note:
            notes.append(f"#{row['number']} {row['outcome']}: {note}")
        table.add_row(*cells)
    print_table(f"{name}: {len(frame)} trials", table, wide=wide)
    print_lines(notes, indent=1)
    for line in metric_caveats(objectives):
        out.print(Text(line, style="dim"), highlight=False)
    if not wide:
        out.print("[dim]Parameters, steps, time and node of every trial: --wide (or sweep export).[/]", markup=True)


def print_effects(results: StudyResults, *, wide: bool = False) -> None:
    """The effect table per objective (and the verdict, when the study has a rule): each level's finished runs,
    mean, difference from the reference with its 95% CI, and Holm-adjusted p; with `wide`, every column of the
    report's table (the mean's CI, effect size, unadjusted p, divergence) and the method in full."""
    from sweep.report.tables import effect_tables, method_brief, method_text  # lazy: pandas loads only to print effects

    study, effects = results.study, results.effects
    if effects.empty:
        out.print(f"No effect table for {study.name}: no trials yet, or no categorical factor to compare.")
    for t in effect_tables(effects, study):
        title = f"{study.name}: {t.metric} ({t.direction})"
        if wide:
            print_table(title, _wide_effect_table(t), wide=True)
        else:
            _print_effect_table(title, t, compared=study.kind != "search")
        if t.caveat:
            print_lines([t.caveat], indent=0, style="dim")
    if not effects.empty:
        if wide:
            print_lines([method_text(study, results.test)], indent=0, style="dim")
        else:
            more = "" if study.kind == "search" else " Each mean's CI, effect sizes, unadjusted p: --wide."
            print_lines([method_brief(study, results.test) + more], indent=0, style="dim")
    if results.verdict is not None:
        print_verdict(results.verdict)


def _print_effect_table(title: str, t: EffectTable, *, compared: bool) -> None:
    """One objective's effect table for an 80-column terminal; `compared` false for a search's levels (a
    sampler's levels are no controlled comparison: means only)."""
    from sweep.report.tables import BASE, DIVERGED_P  # lazy: pandas loads only to print effects

    table = new_table()
    table.add_column("level", overflow="fold")
    headers = ("runs", "mean", "diff [95% CI]", "p (Holm)") if compared else ("runs", "mean [95% CI]")
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    notes = []
    strata = sum(bool(row.stratum) for row in t.rows)
    for row in t.rows:
        if row.stratum:  # the rows within each block of the other factors: too wide for 80 columns
            continue
        c = dict(zip(t.headers, row.cells, strict=True))
        label = row.label
        cells = [label, f"{c['finished']}/{c['runs']}"]
        if not compared:
            table.add_row(*cells, f"{c['mean']} {c['95% CI']}".strip())
        else:
            p = Text(c["p (Holm)"], style="bold green" if row.significant else "")
            diff = f"{c[t.diff_header]} {c['95% CI of diff']}".strip()
            if row.reference:  # the reference level of its factor: the cell names it
                diff = "" if c["factor"] == BASE else f"({c[t.diff_header]})"
            table.add_row(*cells, c["mean"], diff, p, style="dim" if row.reference else None)
        if row.not_finished:
            notes.append(f"{label}: {c['not finished']} (not in the mean)")
        if c.get(DIVERGED_P):
            notes.append(f"{label}: {c[DIVERGED_P]}")
    print_table(title, table)
    print_lines(notes, indent=1, style="yellow")
    if strata:
        print_lines([f"Each level within each combination of the other factors ({strata} rows): --wide."], indent=0)


def _wide_effect_table(t: EffectTable) -> Table:
    """Every column of the report's effect table (a report.tables.EffectTable)."""
    table = new_table()
    for i, header in enumerate(t.headers):
        table.add_column(header, justify="left" if i < 2 or header == "not finished" else "right", no_wrap=True)
    for row in t.rows:
        cells = list(row.cells)
        if row.significant:
            i = t.headers.index("p (Holm)")
            cells[i] = Text(cells[i], style="bold green")
        table.add_row(*cells, style="dim" if row.reference else None)
    return table


def print_verdict(result: VerdictResult) -> None:
    """A verdict, its reason and its numbers."""
    from sweep.report import verdict_text  # lazy: pydantic and the study schema load only to print a verdict

    out.print()
    out.print(Text("Verdict: ").append_text(status_text(result.status)).append(": " + verdict_text.message(result)))
    print_lines(verdict_text.lines(result), indent=2)


def print_claims(studies_dir: Path, rows: list[dict[str, Any]], location_flags: str, *, wide: bool = False) -> None:
    """Every study file's claim and its verdict where it has been run, with the effect, its interval, the MDE,
    n and the p-value Holm-adjusted over the claims, and its replications' verdicts; each study's default
    cost and the verdict's reason with `wide`."""
    table = new_table()
    table.add_column("study", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    if wide:
        table.add_column("default cost")
    table.add_column("claim, and the numbers behind its verdict", overflow="fold")  # a long --root wraps, never cut
    not_run = []
    for row in rows:
        details = row["summary"]
        if row["verdict"] == "not run":
            details = ""
            not_run.append(row["file"])
        elif row["verdict"] == "no rule":
            details = f"no verdict rule: sweep report {row['study']}{location_flags}"
        elif row["verdict"] == "INVALID":
            details = row["message"]
        else:
            details += f"; p {p_value(row['p'])} (Holm {p_value(row['p_holm'])})"
            details += f"\n{row['message']}" if wide else ""
        claim = Text(visible(row["claim"]) + ("\n" if row["claim"] and details else "")).append(details, style="dim")
        table.add_row(row["study"], status_text(row["verdict"]), *([row["cost"]] if wide else []), claim)
        for name, status, summary in row["replications"]:
            table.add_row(
                f"  {name}", status_text(status), *([""] if wide else []), Text(visible(summary), style="dim")
            )
    print_table(f"Claims of the studies in {studies_dir}", table, wide=wide)
    notes = [
        "p: the deciding test's (two-sided against 0 or a target's margin; for an equivalence claim, the larger "
        "TOST p), scaled to the rule's alpha at the look that decided; Holm: adjusted over the claims listed. "
        "A verdict reads off the effect's interval (studies/README.md: 'Reading a verdict')."
        + ("" if wide else " Each study's cost and the verdict's reason: --wide.")
    ]
    if not_run:
        example = Path(not_run[0]).parent / "STUDY.yaml"
        notes.append(f"Run a study not run yet with: sweep run {example}{location_flags}")
    print_lines(notes, indent=0, style="dim")


def print_comparison(c: Comparison, *, wide: bool = False) -> None:
    """Two studies side by side (a compare.Comparison): what differs in their definitions and in what they ran
    on, their verdicts, and each level's effect in both; the p-values and the verdicts' reasons with `wide`."""
    from sweep.report import verdict_text  # lazy: pydantic and the study schema load only to compare

    a, b = c.a, c.b
    out.print(Text(visible(f"{a.name} (A) against {b.name} (B)"), style="bold"))
    print_lines([f"A: {a.trials}", f"B: {b.trials}"], indent=2)
    if c.definition:
        table = new_table()
        table.add_column("definition", overflow="fold")
        table.add_column(f"A: {a.name}", overflow="fold")
        table.add_column(f"B: {b.name}", overflow="fold")
        for d in c.definition:
            table.add_row(d.key, d.a, d.b)
        print_table("What differs in their definitions", table, wide=wide)
    else:
        out.print("Their definitions are the same.")
    if c.runs:
        table = new_table()
        table.add_column("ran on", no_wrap=True)
        table.add_column(f"A: {a.name}")
        table.add_column(f"B: {b.name}")
        for d in c.runs:
            table.add_row(d.key, d.a, d.b)
        print_table("What differs in the code and machines that ran them", table, wide=wide)
    print_lines([f"Both ran on the same {what}: {text}" for what, text in c.same_runs], indent=0)
    verdicts = new_table()
    verdicts.add_column("study", overflow="fold")
    verdicts.add_column("verdict", no_wrap=True)
    verdicts.add_column("effect, interval, MDE, n")
    for label, side in (("A", a), ("B", b)):
        v = side.verdict
        summary = "no verdict rule, or no trials"
        if v is not None:
            summary = verdict_text.summary(v) + (f"\n{verdict_text.message(v)}" if wide else "")
        verdicts.add_row(f"{label}: {side.name}", status_text(v.status) if v else MISSING, summary)
    print_table("Verdicts", verdicts, wide=wide)
    metrics = list(dict.fromkeys(pair.metric for pair in c.effects))
    for metric in metrics:
        table = new_table()
        table.add_column("level", overflow="fold")
        for label in ("A", "B"):
            table.add_column(f"{label}: diff [95% CI]", justify="right", no_wrap=True)
            if wide:
                table.add_column(f"{label}: p (Holm)", justify="right", no_wrap=True)
        for pair in (p for p in c.effects if p.metric == metric):
            cells = [pair.label]
            for side, study in ((pair.a, a), (pair.b, b)):
                if side is None:
                    cells += [MISSING] + ([MISSING] if wide else [])
                    continue
                diff = f"{side[study.diff_header]} {side['95% CI of diff']}".strip()
                cells.append(f"mean {side['mean']}" if pair.reference else diff)
                if wide:
                    cells.append("" if pair.reference else side["p (Holm)"])
            table.add_row(*cells, style="dim" if pair.reference else None)
        print_table(f"Effects on {metric}: each level against its study's reference", table, wide=wide)
    if not wide:
        out.print("[dim]Holm-adjusted p of each effect and the verdicts' reasons: --wide.[/]", markup=True)


# --- report, export, dashboard -------------------------------------------------------------------


def print_interrupted() -> None:
    err.print("[red]interrupted[/]: what finished is stored; run the same command again to resume", markup=True)


def print_verdict_line(status: Status, message: str) -> None:
    out.print(Text("verdict: ").append_text(status_text(status)).append(f": {message}"), highlight=False)


def print_wrote(path: Path, what: str = "") -> None:
    (err if what else out).print(f"wrote {what + ' to ' if what else ''}{path}", highlight=False, soft_wrap=True)


def print_dashboard(url: str, storage_url: str, exposed: bool) -> None:
    out.print(
        f"optuna-dashboard for {escape(storage_url)} at [bold]{escape(url)}[/]",
        markup=True,
        highlight=False,
        soft_wrap=True,
    )
    if exposed:
        out.print(
            "[yellow]the dashboard has no authentication: anyone who can reach this address can edit notes[/]",
            markup=True,
        )
    out.print("Press Ctrl-C to stop.")


def print_fetched(dataset: str, folder: Path, data_dir: Path | None) -> None:
    out.print(f"[green]ok[/] {escape(dataset)}: {escape(str(folder))}", markup=True, highlight=False, soft_wrap=True)
    root = data_dir or folder.parent
    out.print(
        f"Use it with --set dataset={dataset} --set data_dir={root}, or export INFOGAN_DATA_DIR={root}",
        highlight=False,
        soft_wrap=True,
    )


def print_final_metrics(metrics: dict[str, float], steps: int, wall_s: float, images: dict[str, str]) -> None:
    table = new_table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted(metrics.items()):
        table.add_row(k, num(v))
    print_table(f"Final metrics after {steps} steps ({duration(wall_s)})", table)
    for line in metric_caveats(metrics):
        out.print(Text(line, style="dim"), highlight=False)
    for name, path in images.items():
        out.print(f"{name}: {path}")


__all__ = [
    "PROGRESS_INTERVAL",
    "ProgressView",
    "TrainProgress",
    "err",
    "error",
    "out",
    "print_claims",
    "print_comparison",
    "print_dashboard",
    "print_effects",
    "print_fetched",
    "print_final_metrics",
    "print_interrupted",
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
