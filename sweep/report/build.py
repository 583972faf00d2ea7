"""Build a study's report from the storage alone, into one document model that every renderer shares.

The `Report` holds text and pictures ready to lay out: the summary (with what the trials ran on), the
verdict, the effect tables, the Pareto front of a multi-objective study, a search's top configurations
and parallel coordinates, hyperparameter importance, training curves, and sample images of the best
and worst run per level.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.artifacts import download_artifact, get_all_artifact_meta
from optuna.trial import FrozenTrial

from sweep import analysis
from sweep.analysis import IMPORTANCE_TREES, TABLE_ALPHA, ParamImportance, VerdictResult, param_importance
from sweep.report import verdict_text
from sweep.report.figures import (
    Picture,
    curve_figures,
    effect_figure,
    importance_figures,
    parallel_figures,
    pareto_figure,
    slug,
)
from sweep.report.tables import (
    ConfigTable,
    EffectTable,
    effect_tables,
    method_text,
    pareto_configurations,
    summary_rows,
    top_configurations,
)
from sweep.results import StudyResults, load_results, related_studies
from sweep.spec import Study, format_value
from sweep.store import Store
from sweep.vocab import NOT_FINISHED, STATUS_COLOURS, Outcome, counts, num

SAMPLE_IMAGES = ("samples.png", "scatter.png")  # the first one a trial has is shown


@dataclass(frozen=True)
class Sample:
    caption: str  # "best: trial 3, seed 2, eval/modes 7"
    picture: Picture | None
    note: str = ""  # why there is no picture


@dataclass(frozen=True)
class SampleGroup:
    title: str  # "d_batchnorm = joint"
    samples: list[Sample]
    note: str = ""  # e.g. "no finished runs: 3 diverged"


@dataclass(frozen=True)
class Importance:
    metric: str
    scores: dict[str, ParamImportance]  # parameter -> importance and its interval, largest first; empty when skipped
    skipped: str = ""  # why it was not estimated


@dataclass(frozen=True)
class Replication:
    """Another run of the same study on other seeds, its verdict shown beside this one's."""

    name: str
    role: str  # "original" | "replication 1" ...
    status: str  # a verdict, or why there is none
    colour: str  # the verdict's colour, "" for none
    summary: str  # effect, interval, MDE, n


def _replications(optuna_study: optuna.Study, store: Store | None) -> list[Replication]:
    if store is None:
        return []
    rows = []
    for r in related_studies(store, optuna_study.study_name):
        status = r.verdict.status if r.verdict else "no rule"
        summary = verdict_text.summary(r.verdict) if r.verdict else ""
        rows.append(Replication(r.name, r.role, str(status), STATUS_COLOURS.get(status, ""), summary))
    return rows


@dataclass(frozen=True)
class VerdictText:
    """A verdict as the report writes it (`verdict_text`)."""

    message: str  # one sentence: why
    lines: list[str]  # the numbers, one fact a line
    summary: str  # effect, interval, MDE and n in one line


@dataclass
class Report:
    """Everything a report shows, computed from the storage; rendered by `render.html` or `render.markdown`."""

    results: StudyResults  # what it was built from (the CLI writes the study's note from the same reading)
    study: Study
    outcomes: str  # "6 completed, 3 crashed"
    summary: list[tuple[str, str]]
    verdict: VerdictResult | None
    verdict_text: VerdictText | None  # the verdict in words, None without one
    verdict_colour: str  # the verdict's colour (vocab.STATUS_COLOURS), "" without a verdict
    verdict_note: str  # why there is no verdict, "" with one
    effect_figure: Picture | None
    effect_tables: list[EffectTable]
    effects_note: str  # how the numbers were computed, or why there is no table
    alpha: float  # Holm-adjusted p-values below it are marked
    replications: list[Replication]  # the original and the other replications, beside this study's verdict
    importance: list[Importance]
    importance_note: str
    importance_figures: list[Picture]  # Optuna's plot of each objective's importances (search studies)
    pareto: Picture | None  # Optuna's Pareto front of the trials (2 or 3 objectives)
    pareto_table: ConfigTable | None  # the Pareto-optimal configurations by their means over seeds
    pareto_note: str  # why there is no figure, or ""
    top: list[ConfigTable]  # search: the best configurations by each objective, with their seed intervals
    parallel: list[Picture]  # search: Optuna's parallel coordinates, one per objective
    search_note: str  # what could not be drawn, or ""
    curves: list[Picture]
    samples: list[SampleGroup]
    samples_note: str
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))

    def pictures(self) -> list[Picture]:
        """Every picture in the report, in reading order."""
        found = [self.effect_figure] if self.effect_figure else []
        found += [self.pareto] if self.pareto else []
        found += self.parallel + self.importance_figures
        found += self.curves
        return found + [s.picture for g in self.samples for s in g.samples if s.picture]


def _sample_image(trial: FrozenTrial, storage: Any, artifact_store: Any) -> tuple[bytes, str] | None:
    """The trial's sample grid (or 2-D scatter) from the artifact store, and its file name."""
    metas = {m.filename: m for m in get_all_artifact_meta(trial, storage=storage)}
    for name in SAMPLE_IMAGES:
        if name in metas:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / name
                download_artifact(
                    artifact_store=artifact_store, file_path=str(path), artifact_id=metas[name].artifact_id
                )
                return path.read_bytes(), name
    return None


def _sample_groups(study: Study, frame: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    if study.kind == "ablation":
        ids = dict.fromkeys(frame["config_id"].dropna())
        return [
            ("base configuration" if cid == "base" else cid.replace("=", " = "), frame["config_id"] == cid)
            for cid in ids
        ]
    groups = [
        (f"{factor} = {format_value(level)}", mask)
        for factor, levels in analysis.level_masks(frame, study).items()
        for level, mask in levels
    ]
    return groups or [("all configurations", pd.Series(True, index=frame.index))]


def _samples(study: Study, optuna_study: optuna.Study, frame: pd.DataFrame, store: Store | None) -> list[SampleGroup]:
    """The best and the worst finished run (by the first objective) of each level."""
    if store is None or not len(frame):
        return []
    storage, artifact_store = store.storage(), store.artifact_store()
    objective = study.objectives[0]
    trials = {t.number: t for t in optuna_study.get_trials(deepcopy=False)}
    result = []
    for title, mask in _sample_groups(study, frame):
        rows = frame[mask & (frame["outcome"] == Outcome.COMPLETED)]
        values = pd.to_numeric(rows.get(objective.metric, pd.Series(dtype=float)), errors="coerce").dropna()
        tally = frame.loc[mask, "outcome"].value_counts().to_dict()
        not_done = counts({k: tally.get(k, 0) for k in NOT_FINISHED}) if any(tally.get(k) for k in NOT_FINISHED) else ""
        if values.empty:
            result.append(SampleGroup(title, [], note="no finished runs" + (f": {not_done}" if not_done else "")))
            continue
        ordered = values.sort_values(ascending=objective.direction == "minimize", kind="stable")
        picks = [("best", ordered.index[0])] + ([("worst", ordered.index[-1])] if len(ordered) > 1 else [])
        samples = []
        for which, idx in picks:
            row = frame.loc[idx]
            caption = (
                f"{which}: trial {row['number']}, seed {row['seed']}, {objective.metric} {num(float(values[idx]))}"
            )
            found = _sample_image(trials[int(row["number"])], storage, artifact_store)
            if found is None:
                samples.append(Sample(caption, None, note="no sample image stored"))
            else:
                image, kind = found
                name = f"{slug(title.replace(' = ', '-'))}-{which}-{kind}"
                samples.append(Sample(caption, Picture(name, title, caption, image)))
        result.append(SampleGroup(title, samples, f"also at this level: {not_done} (not shown)" if not_done else ""))
    return result


def _importance(optuna_study: optuna.Study, study: Study) -> tuple[list[Importance], str]:
    sections = [
        Importance(metric, value) if isinstance(value, dict) else Importance(metric, {}, skipped=value)
        for metric, value in analysis.importance(optuna_study, study).items()
    ]
    note = ""
    if any(s.scores for s in sections):
        note = (
            "fANOVA's share of each objective's variance (Optuna's FanovaImportanceEvaluator, "
            f"{IMPORTANCE_TREES} trees, seed 0), over configurations: each counts once, its value the mean over "
            "its completed seeds, so seed noise is not taken for an effect. Importances sum to 1. The interval is "
            f"a 95% percentile bootstrap over the configurations ({param_importance.IMPORTANCE_RESAMPLES} "
            "resamples, seeded): a knob whose interval starts above another's end matters more on this data; "
            "one that reaches down near 0 is no evidence the knob matters."
        )
    return sections, note


def build(optuna_study: optuna.Study, *, store: Store | None = None) -> Report:
    """Read a stored study into a `Report`; `store` is where its images are (None leaves them out)."""
    results = load_results(optuna_study)
    study, frame, effects, tally = results.study, results.frame, results.effects, results.outcomes
    history = analysis.history_frame(optuna_study)
    verdict = results.verdict_once_run
    if verdict is None:
        why = (
            "This study has no verdict: rule, so no claim is decided."
            if study.verdict is None
            else ("No trials yet: the verdict needs finished runs.")
        )
    if effects.empty:
        effects_note = (
            "No effect table: this search study has no categorical parameter to compare levels of; "
            "see the importance below."
            if study.kind == "search"
            else "No effect table: no trials yet."
        )
    else:
        effects_note = method_text(study, results.test)
    importance, importance_note = _importance(optuna_study, study)
    samples = _samples(study, optuna_study, frame, store)
    multi = len(study.objectives) > 1 and int(tally.get(Outcome.COMPLETED, 0)) > 0
    pareto, pareto_note = pareto_figure(optuna_study, study) if multi else (None, "")
    searched = study.kind == "search" and int(tally.get(Outcome.COMPLETED, 0)) > 0
    parallel = parallel_figures(optuna_study, study) if searched else []
    importances = importance_figures(optuna_study, study) if searched and any(i.scores for i in importance) else []
    skipped = [
        f"{kind} of {o.metric}: {why}"
        for kind, drawn in (("parallel coordinates", parallel), ("importance plot", importances))
        for o, (_, why) in zip(study.objectives, drawn, strict=False)
        if why
    ]
    return Report(
        results=results,
        study=study,
        outcomes=counts(tally),
        summary=summary_rows(study, optuna_study, frame),
        verdict=verdict,
        verdict_text=VerdictText(
            verdict_text.message(verdict), verdict_text.lines(verdict), verdict_text.summary(verdict)
        )
        if verdict
        else None,
        verdict_colour=STATUS_COLOURS[verdict.status] if verdict else "",
        verdict_note="" if verdict else why,
        effect_figure=effect_figure(effects, study),
        effect_tables=effect_tables(effects, study),
        effects_note=effects_note,
        alpha=TABLE_ALPHA,
        replications=_replications(optuna_study, store),
        importance=importance,
        importance_note=importance_note,
        importance_figures=[p for p, _ in importances if p],
        pareto=pareto,
        pareto_table=pareto_configurations(frame, study) if multi else None,
        pareto_note=pareto_note,
        top=top_configurations(frame, study) if searched else [],
        parallel=[p for p, _ in parallel if p],
        search_note="; ".join(skipped),
        curves=curve_figures(study, frame, history),
        samples=samples,
        samples_note="" if samples else "No sample images (no artifact store, or no trials).",
    )


__all__ = ["ConfigTable", "Importance", "Replication", "Report", "Sample", "SampleGroup", "VerdictText", "build"]
