"""The report's text: the study summary and the effect table as rows of formatted cells.

Shared by the HTML and Markdown renderers and by the terminal (`sweep show --effects`), so that each
number is formatted once. No plotting here: the terminal path never loads matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep import provenance
from sweep.analysis import TABLE_ALPHA, look_alphas, rank_configs
from sweep.core import caveats
from sweep.lazy import LazyImport
from sweep.spec import REPLICATION_SEED_OFFSET, SeedPlan, Study, factor_levels, format_value
from sweep.store import StudyAttr, TrialAttr
from sweep.vocab import MISSING, NOT_FINISHED, duration, interval, is_missing, num, p_value, seed_range, signed

if TYPE_CHECKING:
    import optuna
    import pandas as pd
else:  # loaded with the first table: the terminal's commands that print none never load them
    pd = LazyImport("pandas")


@dataclass(frozen=True)
class EffectRow:
    cells: list[str]  # one per EffectTable.headers
    reference: bool  # the level every other level is compared with
    significant: bool  # Holm-adjusted p below the table's alpha (never the unadjusted p)
    not_finished: bool  # some runs at this level did not finish
    label: str = ""  # the row in one phrase: `factor=level`, or `base` (row_label)
    stratum: str = ""  # a grid's block the row compares within (`other=level, ...`); "" for a pooled row


@dataclass(frozen=True)
class EffectTable:
    metric: str
    direction: str  # minimize | maximize
    headers: list[str]
    rows: list[EffectRow]
    caveat: str = ""  # what a reader of this metric must know (vocabulary of the metric table)
    ref: str = "base"  # what each level is compared with (reference_word)

    @property
    def diff_header(self) -> str:
        """The header of the column of each level's difference from the reference."""
        return diff_header(self.ref)

    def column(self, row: EffectRow, header: str) -> str:
        """A row's cell under `header`, "" when the table has no such column."""
        return row.cells[self.headers.index(header)] if header in self.headers else ""


BASE = "base"  # an ablation's base configuration: the one reference row of each of its effect tables


def reference_word(study: Study) -> str:
    """What the effect table compares each level with: an ablation's base configuration, else a reference level.
    (Not "baseline", which is the verdict rule's word for its own reference level.)"""
    return "base" if study.kind == "ablation" else "reference"


DIVERGED_P = "diverged, p (Holm)"  # the column shown when a level of the study had diverged runs


def diff_header(ref: str) -> str:
    """The effect table's column of each level's difference from the reference: "diff vs base"."""
    return f"diff vs {ref}"


def headers(ref: str, *, divergence: bool = False) -> list[str]:
    columns = [
        "factor",
        "level",
        "runs",
        "finished",
        "not finished",
        "mean",
        "95% CI",
        diff_header(ref),
        "95% CI of diff",
        "effect size",
        "p",
        "p (Holm)",
    ]
    return [*columns, DIVERGED_P] if divergence else columns


def not_finished_text(row: pd.Series) -> str:
    parts = [f"{int(row[k])} {k}" for k in NOT_FINISHED if row[k]]
    if row.get("non_finite"):
        parts.append(f"{int(row['non_finite'])} non-finite")
    return ", ".join(parts)


def effect_size_text(row: pd.Series) -> str:
    """d_z on the t path, the rank-biserial r on the rank path (a failed run, or no spread)."""
    if is_missing(row["std_effect"]):
        return MISSING
    return f"{'d_z' if row['method'] == 't' else 'r'} {num(row['std_effect'], 3)}"


def one_base_row(effects: pd.DataFrame, study: Study) -> pd.DataFrame:
    """The effect rows to show: an ablation's base configuration once per metric, first (every factor's
    reference level is the same base runs), as factor `BASE` with the base's levels; other rows as they are."""
    if study.kind != "ablation" or effects.empty:
        return effects
    reference = effects["baseline"].astype(bool)
    first = reference & ~effects["metric"].where(reference).duplicated()
    rows = effects[~reference | first].copy()
    base = ", ".join(f"{k}={format_value(levels[0])}" for k, levels in factor_levels(study).items() if levels)
    rows.loc[rows["baseline"].astype(bool), ["factor", "level"]] = [BASE, base]
    return rows


def row_label(factor: str, level: str, stratum: Any = "") -> str:
    """How a row is named in one phrase (the terminal, figures): `factor=level`, or `base`; a grid's stratum
    row adds its block: `factor=level | other=level`."""
    label = BASE if factor == BASE else f"{factor}={level}"
    return f"{label} | {stratum}" if isinstance(stratum, str) and stratum else label


def _cells(row: pd.Series, ref: str, divergence: bool) -> list[str]:
    no_runs = row["n"] == 0
    cells = [
        str(row["factor"]),
        str(row["level"])
        + (f" ({ref})" if row["baseline"] and row["factor"] != BASE else "")
        + (f" | {row['stratum']}" if isinstance(row.get("stratum"), str) and row["stratum"] else ""),
        str(int(row["runs"])),
        str(int(row["n"])),
        not_finished_text(row) or MISSING,
        "no finished runs" if no_runs else num(row["mean"]),
        "" if no_runs else interval(row["ci_low"], row["ci_high"]),
    ]
    diverged = ""
    if divergence:
        diverged = f"{num(row['diverged_rate'] * 100, 3)}% diverged" if not is_missing(row["diverged_rate"]) else ""
        if not row["baseline"] and not is_missing(row["diverged_p"]):
            diverged += f", p {p_value(row['diverged_p'])} ({p_value(row['diverged_p_holm'])})"
    tail = [diverged] if divergence else []
    if row["baseline"]:
        return [*cells, ref, "", "", "", "", *tail]
    if is_missing(row["diff"]):
        return [*cells, MISSING, "", "", "", "", *tail]
    return [
        *cells,
        signed(row["diff"]),
        interval(row["diff_low"], row["diff_high"]),
        effect_size_text(row),
        p_value(row["p"]),
        p_value(row["p_holm"]),
        *tail,
    ]


def effect_tables(effects: pd.DataFrame, study: Study) -> list[EffectTable]:
    """One table per objective: every factor level's row, formatted; a divergence column when a level had
    diverged runs."""
    ref = reference_word(study)
    divergence = bool(len(effects)) and bool(pd.to_numeric(effects["diverged"], errors="coerce").fillna(0).any())
    tables = []
    for metric, part in one_base_row(effects, study).groupby("metric", sort=False):
        rows = [
            EffectRow(
                cells=_cells(row, ref, divergence),
                reference=bool(row["baseline"]),
                significant=not row["baseline"] and not is_missing(row["p_holm"]) and row["p_holm"] < TABLE_ALPHA,
                not_finished=bool(not_finished_text(row)),
                label=row_label(str(row["factor"]), str(row["level"]), row.get("stratum", "")),
                stratum=row["stratum"] if isinstance(row.get("stratum"), str) else "",
            )
            for _, row in part.iterrows()
        ]
        caveat = " ".join(caveats([metric]))
        tables.append(
            EffectTable(
                str(metric), str(part["direction"].iloc[0]), headers(ref, divergence=divergence), rows, caveat, ref
            )
        )
    return tables


def method_text(study: Study, test: str = "t") -> str:
    """How the effect table's numbers were computed, in one paragraph."""
    ref = reference_word(study)
    if study.kind == "search":
        return (
            "Means are over completed runs with a finite value, with a Student t 95% CI across seeds (- with fewer "
            "than 2 runs). No differences or p-values: a sampler chose these configurations, so levels are not a "
            "controlled comparison; read the importance below."
        )
    pairing = "the same seed" if study.kind == "ablation" else "the same seed and the same levels of the other factors"
    pruned = study.verdict.pruned if study.verdict and study.verdict.pruned else "exclude"
    pruned_text = "count as the worst outcome" if pruned == "worst" else "are left out of the comparison"
    first = "the base configuration" if study.kind == "ablation" else "each factor's first level"
    path = (
        "the signed-rank test" if test == "rank" else "a paired t-test (effect size d_z = mean / sd of the differences)"
    )
    return (
        f"Mean: over completed runs with a finite value, with a Student t 95% CI across seeds (- with fewer than 2 "
        f"runs). Difference: each level against {first}, paired over runs with {pairing}, by {path}; a diverged "
        f"run or a non-finite value counts as the worst outcome of its arm, and then (or when every difference is "
        f"equal) the Wilcoxon signed-rank test decides, with the Hodges-Lehmann estimate and its exact interval "
        f"(effect size r, the rank-biserial correlation). Crashed runs are left out; pruned runs {pruned_text}. "
        "p: two-sided; p (Holm): adjusted over every comparison in these tables (Holm's step-down method), the "
        f"only p that is ever marked.{_strata_text(study)} Divergence rates (diverged among completed and diverged "
        "runs) are compared "
        f"with the {ref} level by Fisher's exact test, Holm-adjusted over the levels."
    )


def method_brief(study: Study, test: str = "t") -> str:
    """How the effect table's numbers were computed, in one sentence (the terminal's narrow table)."""
    if study.kind == "search":
        return "Means over completed runs with a 95% CI across seeds; no differences: a sampler chose the levels."
    pairing = "by seed" if study.kind == "ablation" else "by seed within the other factors' levels"
    path = "signed-rank test" if test == "rank" else "paired t-test (signed-rank where a run failed)"
    family, strata = "every row", ""
    if _strata(study):
        family = "the pooled rows (and the `| other=level` rows apart)"
        strata = " A seed counts once, its blocks averaged; a row `| other=level` compares within that block."
    return (
        f"runs: finished of run; diff: each level minus the {reference_word(study)}, paired {pairing}, 95% CI by a "
        f"{path}; p (Holm): adjusted over {family}, bold below 0.05.{strata}"
    )


def _strata(study: Study) -> bool:
    """Whether the effect table has stratum rows: a grid with more than one factor."""
    return study.kind == "grid" and len(study.factors) > 1


def _strata_text(study: Study) -> str:
    if not _strata(study):
        return ""
    return (
        " In a grid a seed's runs at the other factors' levels share its luck, so each seed counts once: the mean "
        "of its differences over those blocks (a seed whose failed runs on one side outnumber the other side's is "
        "that side's worst outcome). Rows marked `| other=level` compare the level within one block; Holm adjusts "
        "them as a family of their own, apart from the pooled rows."
    )


@dataclass(frozen=True)
class ConfigTable:
    """Configurations as rows of formatted cells: the top ones by an objective, or the Pareto-optimal ones."""

    title: str
    headers: list[str]
    rows: list[list[str]]


TOP = 5  # configurations listed per objective


def _params_text(frame: pd.DataFrame, config_id: str) -> str:
    """A configuration's sampled parameters in one phrase: 'lr_g=0.001, clip=norm'."""
    params = [c for c in frame.columns if c.startswith("params.")]
    first = frame[frame["config_id"] == config_id].iloc[0]
    return ", ".join(
        f"{c.removeprefix('params.')}={num(first[c]) if isinstance(first[c], float) else format_value(first[c])}"
        for c in params
    )


def _estimate_text(mean: float, low: float, high: float) -> str:
    """'41.2 [38.1, 44.3]', or the mean alone where there is no interval (one seed)."""
    return num(mean) if is_missing(low) or is_missing(high) else f"{num(mean)} {interval(low, high)}"


def _config_means(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Per configuration: n (finished seeds of the first objective) and, per objective, mean, ci_low, ci_high."""
    table = None
    for o in study.objectives:
        ranked = rank_configs(frame, o.metric, str(o.direction)).set_index("config_id")
        part = ranked[["mean", "ci_low", "ci_high"]].add_prefix(f"{o.metric}:")
        table = part.assign(n=ranked["n"]) if table is None else table.join(part, how="inner")
    return table if table is not None else pd.DataFrame()


def _objective_cells(row: pd.Series, study: Study) -> list[str]:
    cells = []
    for o in study.objectives:
        cells.append(_estimate_text(row[f"{o.metric}:mean"], row[f"{o.metric}:ci_low"], row[f"{o.metric}:ci_high"]))
    return cells


def top_configurations(frame: pd.DataFrame, study: Study) -> list[ConfigTable]:
    """The best `TOP` configurations by each objective: their parameters, finished seeds and every objective's
    mean with its 95% interval over seeds (- with one seed)."""
    means = _config_means(frame, study) if len(frame) else pd.DataFrame()
    if means.empty:
        return []
    headers = ["configuration", "parameters", "seeds", *(f"{o.metric} [95% CI]" for o in study.objectives)]
    tables = []
    for o in study.objectives:
        ranked = means.sort_values(f"{o.metric}:mean", ascending=o.direction == "minimize", kind="stable").head(TOP)
        rows = [
            [str(cid), _params_text(frame, str(cid)), str(int(row["n"])), *_objective_cells(row, study)]
            for cid, row in ranked.iterrows()
        ]
        tables.append(ConfigTable(f"Top configurations by {o.metric} ({o.direction})", headers, rows))
    return tables


def pareto_configurations(frame: pd.DataFrame, study: Study) -> ConfigTable | None:
    """The configurations no other beats on every objective at once, by their means over seeds (None with one
    objective); each with every objective's mean and 95% interval."""
    if len(study.objectives) < 2 or not len(frame):
        return None
    means = _config_means(frame, study)
    if means.empty:
        return None
    signs = np.array([1.0 if o.direction == "minimize" else -1.0 for o in study.objectives])
    costs = means[[f"{o.metric}:mean" for o in study.objectives]].to_numpy(dtype=float) * signs  # lower is better
    front = [
        i
        for i, c in enumerate(costs)
        if not any((other <= c).all() and (other < c).any() for j, other in enumerate(costs) if j != i)
    ]
    first = study.objectives[0]
    part = means.iloc[front].sort_values(f"{first.metric}:mean", ascending=first.direction == "minimize")
    headers = ["configuration", "seeds", *(f"{o.metric} [95% CI]" for o in study.objectives)]
    rows = [[str(cid), str(int(row["n"])), *_objective_cells(row, study)] for cid, row in part.iterrows()]
    if study.kind == "search":
        headers.insert(1, "parameters")
        for row in rows:
            row.insert(1, _params_text(frame, row[0]))
    return ConfigTable("Pareto-optimal configurations (by their means over seeds)", headers, rows)


def provenance_rows(optuna_study: optuna.Study) -> list[tuple[str, str]]:
    """What the trials ran on (each distinct code, libraries and device, with how many trials), and the driver
    of the latest run."""
    records = [
        t.user_attrs[TrialAttr.PROVENANCE]
        for t in optuna_study.get_trials(deepcopy=False)
        if t.user_attrs.get(TrialAttr.PROVENANCE)
    ]
    rows = [(f"trials ran on: {what}", text) for what, text in provenance.summary(records)]
    driver = optuna_study.user_attrs.get(StudyAttr.PROVENANCE)
    if driver:
        rows.append(("latest run's driver", provenance.text(driver)))
    return rows or [("provenance", "not recorded (the study was stored before sweep recorded it)")]


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
        ("seeds", _seeds_text(study)),
        ("trials", str(len(frame))),
        ("wall time", f"{duration(elapsed)} elapsed, {duration(float(wall))} of training summed over trials"),
        ("created", str(optuna_study.user_attrs.get(StudyAttr.CREATED, MISSING))),
    ]
    replicate = optuna_study.user_attrs.get(StudyAttr.REPLICATE)
    if replicate:
        original = optuna_study.user_attrs.get(StudyAttr.REPLICATION_OF)
        rows.append(
            (
                "replication",
                f"number {replicate} of {original}: its seeds offset by {replicate * REPLICATION_SEED_OFFSET}",
            )
        )
    if optuna_study.user_attrs.get(StudyAttr.SOURCE):
        rows.append(("study file", str(optuna_study.user_attrs[StudyAttr.SOURCE])))
    if study.early_stopping:
        es = study.early_stopping
        rows.append(("early stopping", f"ASHA on {es.metric} ({es.mode}), grace period {es.grace_period} steps"))
    return rows + provenance_rows(optuna_study)


def _seeds_text(study: Study) -> str:
    seeds = study.seed_list
    listed = seed_range(seeds)
    plan = study.seeds
    if not isinstance(plan, SeedPlan):
        return f"{len(seeds)} per configuration: {listed}"
    alpha = study.verdict.alpha if study.verdict else 0.05
    looks = ", ".join(f"{n} (alpha {num(a, 2)})" for n, a in zip(study.looks, look_alphas(study, alpha), strict=True))
    return f"planned looks at {looks} seeds per configuration, {plan.spending} spending; seeds {listed}"


__all__ = [
    "BASE",
    "DIVERGED_P",
    "TOP",
    "ConfigTable",
    "EffectRow",
    "EffectTable",
    "diff_header",
    "effect_size_text",
    "effect_tables",
    "headers",
    "method_brief",
    "method_text",
    "one_base_row",
    "pareto_configurations",
    "provenance_rows",
    "reference_word",
    "row_label",
    "summary_rows",
    "top_configurations",
]
