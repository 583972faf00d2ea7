"""The report's text: the study summary and the effect table as rows of formatted cells.

Shared by the HTML and Markdown renderers and by the terminal (`sweep show --effects`), so that each
number is formatted once. No plotting here: the terminal path never loads matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
import pandas as pd

from sweep.core import caveats
from sweep.spec import Study, format_value
from sweep.store import StudyAttr
from sweep.vocab import MISSING, NOT_FINISHED, duration, interval, num, p_value, signed


@dataclass(frozen=True)
class EffectRow:
    cells: list[str]  # one per EffectTable.headers
    reference: bool  # the level every other level is compared with
    significant: bool  # p below alpha
    not_finished: bool  # some runs at this level did not finish


@dataclass(frozen=True)
class EffectTable:
    metric: str
    direction: str  # minimize | maximize
    headers: list[str]
    rows: list[EffectRow]
    caveat: str = ""  # what a reader of this metric must know (vocabulary of the metric table)


def reference_word(study: Study) -> str:
    """What the effect table compares each level with: an ablation's base configuration, else a reference level.
    (Not "baseline", which is the verdict rule's word for its own reference level.)"""
    return "base" if study.kind == "ablation" else "reference"


def headers(test: str, ref: str) -> list[str]:
    stat = "t" if test == "welch" else "U"
    return [
        "factor",
        "level",
        "runs",
        "finished",
        "not finished",
        "mean",
        "95% CI",
        f"diff vs {ref}",
        "95% CI of diff",
        stat,
        "p",
    ]


def not_finished_text(row: pd.Series) -> str:
    return ", ".join(f"{int(row[k])} {k}" for k in NOT_FINISHED if row[k])


def _cells(row: pd.Series, ref: str) -> list[str]:
    no_runs = row["n"] == 0
    cells = [
        str(row["factor"]),
        str(row["level"]) + (f" ({ref})" if row["baseline"] else ""),
        str(int(row["runs"])),
        str(int(row["n"])),
        not_finished_text(row) or MISSING,
        "no finished runs" if no_runs else num(row["mean"]),
        "" if no_runs else interval(row["ci_low"], row["ci_high"]),
    ]
    if row["baseline"]:
        return [*cells, ref, "", "", ""]
    if no_runs:
        return [*cells, MISSING, "", "", ""]
    return [
        *cells,
        signed(row["diff"]),
        interval(row["diff_low"], row["diff_high"]),
        num(row["statistic"], 3),
        p_value(row["p"]),
    ]


def effect_tables(effects: pd.DataFrame, study: Study, test: str) -> list[EffectTable]:
    """One table per objective: every factor level's row, formatted."""
    alpha = study.verdict.alpha if study.verdict else 0.05
    ref = reference_word(study)
    tables = []
    for metric, part in effects.groupby("metric", sort=False):
        rows = [
            EffectRow(
                cells=_cells(row, ref),
                reference=bool(row["baseline"]),
                significant=not row["baseline"] and not math.isnan(row["p"]) and row["p"] < alpha,
                not_finished=bool(not_finished_text(row)),
            )
            for _, row in part.iterrows()
        ]
        caveat = " ".join(caveats([metric]))
        tables.append(EffectTable(str(metric), str(part["direction"].iloc[0]), headers(test, ref), rows, caveat))
    return tables


def method_text(study: Study, test: str) -> str:
    """How the effect table's numbers were computed, in one paragraph."""
    if study.kind == "ablation":
        reference = "the base configuration (each factor's first level)"
    elif study.kind == "grid":
        reference = (
            "each factor's first level; every trial at a level is pooled over the other factors' levels "
            "(marginal means per level)"
        )
    else:
        reference = "each categorical parameter's first choice, trials pooled over the other parameters"
    name = "two-sided Welch's t-test" if test == "welch" else "two-sided Mann-Whitney U test (exact when n is small)"
    return (
        f"Means are over finished runs only (completed); pruned, diverged and crashed runs are counted at their "
        f"level but left out of the means. 95% CI: Student t interval of the mean across seeds (- with fewer "
        f"than 2 runs). Difference: the level's mean minus the {reference_word(study)}'s, with its 95% Welch "
        f"interval. p: {name}. Compared with {reference}."
    )


def summary_rows(study: Study, optuna_study: optuna.Study, frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The study at a glance: design, objectives, budget, seeds, trials, time."""
    trials = optuna_study.get_trials(deepcopy=False)
    wall = pd.to_numeric(frame["wall_s"], errors="coerce").sum() if "wall_s" in frame else 0.0
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    elapsed = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    if study.kind == "search":
        design = f"search: {study.trials} configurations sampled by {study.sampler} over {', '.join(study.space)}"
    else:
        levels = "; ".join(f"{k}: {', '.join(map(format_value, v))}" for k, v in study.factors.items())
        design = f"{study.kind}: {levels}"
        if study.kind == "ablation":
            base = {k: format_value(study.base.get(k, "default")) for k in study.factors}
            design += f" (base: {', '.join(f'{k}={v}' for k, v in base.items())})"
    b = study.budget
    rows = [
        ("kind", design),
        ("objectives", ", ".join(f"{o.metric} ({o.direction})" for o in study.objectives)),
        ("budget", f"{b.steps} steps per run, metrics every {b.report_every} steps"),
        ("seeds", f"{len(study.seed_list)} per configuration: {', '.join(map(str, study.seed_list))}"),
        ("trials", str(len(frame))),
        ("wall time", f"{duration(elapsed)} elapsed, {duration(float(wall))} of training summed over trials"),
        ("created", str(optuna_study.user_attrs.get(StudyAttr.CREATED, MISSING))),
    ]
    if optuna_study.user_attrs.get(StudyAttr.SOURCE):
        rows.append(("study file", str(optuna_study.user_attrs[StudyAttr.SOURCE])))
    if study.early_stopping:
        es = study.early_stopping
        rows.append(("early stopping", f"ASHA on {es.metric} ({es.mode}), grace period {es.grace_period} steps"))
    return rows


__all__ = ["EffectRow", "EffectTable", "effect_tables", "headers", "method_text", "reference_word", "summary_rows"]
