"""The study report: which factor matters, by how much, and is it more than seed noise?

`build` reads only the Optuna storage (and its artifact store) into a `Report`: the study summary,
the effect table (means and 95% confidence intervals over seeds, differences from the reference level
with Welch intervals, p-values, runs that did not finish), hyperparameter importance, training curves
per level, sample images of the best and worst run per level, and the claim's verdict. `write` renders
it as one self-contained HTML file (images inlined as data URIs, inline CSS, no scripts, no external
addresses: it opens from disk, offline) or as Markdown with PNG files next to it.
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.artifacts import download_artifact, get_all_artifact_meta  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402

from sweep import analysis  # noqa: E402
from sweep.analysis import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, VerdictResult, _num  # noqa: E402
from sweep.errors import SweepError  # noqa: E402
from sweep.spec import Study, format_value  # noqa: E402

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("html", "md")
CURVE_METRICS = ("mi/cat_ratio", "loss/d", "loss/g")  # the paper's Figure 1, and the two losses
SAMPLE_IMAGES = ("samples.png", "scatter.png")  # the first one a trial has is shown


@dataclass
class Figure:
    """A PNG with a title and a caption, inlined in HTML or written next to Markdown."""

    name: str  # file name, e.g. "curves-d_batchnorm.png"
    title: str
    caption: str
    png: bytes


@dataclass
class Sample:
    caption: str  # "best: seed 2, eval/modes 7"
    image: Figure | None
    note: str = ""  # why there is no image


@dataclass
class SampleGroup:
    title: str  # "d_batchnorm = joint"
    samples: list[Sample]
    note: str = ""  # e.g. "no finished runs: 3 diverged"


@dataclass
class Report:
    """Everything a report shows, computed from the storage; rendered by `render_html` or `render_markdown`."""

    study: Study
    summary: list[tuple[str, str]]
    outcomes: dict[str, int]
    effects: pd.DataFrame
    test: str
    verdict: VerdictResult | None
    importance: dict[str, dict[str, float] | str]
    effect_figure: Figure | None
    curves: list[Figure]
    samples: list[SampleGroup]
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))


# --- numbers as text ----------------------------------------------------------------------------


def _p(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return "<0.0001" if p < 1e-4 else f"{p:.3g}"


def _ci(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def _signed(x: float) -> str:
    return "n/a" if math.isnan(x) else ("+" if x > 0 else "") + _num(x)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _not_finished(row: pd.Series) -> str:
    parts = [f"{int(row[k])} {k}" for k in analysis.NOT_FINISHED if row[k]]
    return ", ".join(parts)


# --- building ------------------------------------------------------------------------------------


def _summary(study: Study, optuna_study: optuna.Study, frame: pd.DataFrame) -> list[tuple[str, str]]:
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
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in study.objectives)
    b = study.budget
    rows = [
        ("kind", design),
        ("objectives", objectives),
        ("budget", f"{b.steps} steps per run, metrics every {b.report_every} steps"),
        ("seeds", f"{len(study.seed_list)} per configuration: {', '.join(map(str, study.seed_list))}"),
        ("trials", str(len(frame))),
        ("wall time", f"{_duration(elapsed)} elapsed, {_duration(float(wall))} of training summed over trials"),
        ("created", str(optuna_study.user_attrs.get("created", "-"))),
    ]
    if optuna_study.user_attrs.get("source"):
        rows.append(("study file", str(optuna_study.user_attrs["source"])))
    if study.early_stopping:
        es = study.early_stopping
        rows.append(("early stopping", f"ASHA on {es.metric} ({es.mode}), grace period {es.grace_period} steps"))
    return rows


def _fig_png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _effect_figure(effects: pd.DataFrame, study: Study) -> Figure | None:
    """One panel per objective: each level's mean with its 95% CI, reference levels marked."""
    if effects.empty or not effects["n"].any():
        return None
    metrics = list(dict.fromkeys(effects["metric"]))
    rows = effects[effects["metric"] == metrics[0]]
    height = 0.9 + 0.38 * len(rows) + 0.25 * rows["factor"].nunique()
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(5.2 * len(metrics), 12), height), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = effects[effects["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        labels = [f"{r.factor}={r.level}" + (f" ({_ref(study)})" if r.baseline else "") for r in part.itertuples()]
        for yi, r in zip(y, part.itertuples(), strict=True):
            colour = "#555555" if r.baseline else "#1f77b4"
            if r.n == 0:
                ax.annotate("no finished runs", (0.02, yi), xycoords=("axes fraction", "data"), va="center",
                            fontsize=8, color="#b45309")  # fmt: skip
                continue
            if not math.isnan(r.ci_low):
                ax.plot([r.ci_low, r.ci_high], [yi, yi], color=colour, lw=2, solid_capstyle="butt")
            ax.plot([r.mean], [yi], "o", color=colour, ms=6)
            if r.baseline:
                ax.axvline(r.mean, color="#999999", ls=":", lw=1)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_ylim(-0.7, len(part) - 0.3)
        ax.set_title(f"{metric} ({'higher' if part['direction'][0] == 'maximize' else 'lower'} is better)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="#eeeeee")
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
    fig.tight_layout()
    caption = (
        f"Mean over finished seeds (dot) and its 95% confidence interval (bar); dotted line: the {_ref(study)} mean."
    )
    return Figure("effects.png", "Effects at a glance", caption, _fig_png(fig))


def _curves(study: Study, frame: pd.DataFrame, history: pd.DataFrame) -> list[Figure]:
    """Per factor: mi/cat_ratio, loss/d and loss/g over steps, one line per level (mean) and its seed range."""
    if history.empty or not len(frame):
        return []
    panels = [m for m in CURVE_METRICS if m in history and history[m].notna().any()]
    if not panels:
        return []
    figures = []
    completed = frame["outcome"] == "completed"
    for factor, groups in analysis.level_masks(frame, study).items():
        fig, axes = plt.subplots(1, len(panels), figsize=(4.1 * len(panels), 3.3), squeeze=False)
        for i, (level, mask) in enumerate(groups):
            numbers = set(frame.loc[mask & completed, "number"])
            part = history[history["number"].isin(numbers)]
            if part.empty:
                continue
            label = f"{factor}={format_value(level)}" + (f" ({_ref(study)})" if i == 0 else "")
            for ax, metric in zip(axes[0], panels, strict=True):
                by_step = part.groupby("step")[metric]
                mean, low, high = by_step.mean(), by_step.min(), by_step.max()
                (line,) = ax.plot(mean.index, mean.values, lw=1.8, label=f"{label} (n={len(numbers)})")
                if len(numbers) > 1:
                    ax.fill_between(mean.index, low.values, high.values, color=line.get_color(), alpha=0.18, lw=0)
        for ax, metric in zip(axes[0], panels, strict=True):
            if metric == "mi/cat_ratio":
                ax.axhline(1.0, color="black", ls="--", lw=1, label="H(c) (maximum)")
                ax.set_title("mi/cat_ratio = L_I / H(c)", fontsize=9)
            else:
                ax.set_title(metric, fontsize=9)
            ax.set_xlabel("training step", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(color="#eeeeee")
        axes[0][0].legend(fontsize=7, loc="best")
        fig.tight_layout()
        caption = (f"Lines: mean over the completed runs at each level of {factor}; shaded: the range (min to max) "
                   "across seeds. Dashed: H(c), the most information the categorical code can carry.")  # fmt: skip
        if factor == "lambda_cat":
            caption += " With lambda_cat 1 against 0 this is the InfoGAN paper's Figure 1."
        figures.append(Figure(f"curves-{_slug(factor)}.png", f"Training curves by {factor}", caption, _fig_png(fig)))
    return figures


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _sample_image(optuna_study: optuna.Study, trial: FrozenTrial, artifact_store: Any) -> tuple[bytes, str] | None:
    """The trial's sample grid (or 2-D scatter) from the artifact store, and its file name."""
    metas = {m.filename: m for m in get_all_artifact_meta(trial, storage=optuna_study._storage)}
    for name in SAMPLE_IMAGES:
        if name in metas:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / name
                download_artifact(
                    artifact_store=artifact_store, file_path=str(path), artifact_id=metas[name].artifact_id
                )
                return path.read_bytes(), name
    return None


def _samples(study: Study, optuna_study: optuna.Study, frame: pd.DataFrame, artifact_store: Any) -> list[SampleGroup]:
    """The best and the worst finished run (by the first objective) of each level."""
    if artifact_store is None or not len(frame):
        return []
    objective = study.objectives[0]
    if study.kind == "ablation":
        groups = [(cid, frame["config_id"] == cid) for cid in dict.fromkeys(frame["config_id"].dropna())]
        groups = [(("base configuration" if cid == "base" else cid.replace("=", " = ")), m) for cid, m in groups]
    else:
        masks = analysis.level_masks(frame, study)
        groups = [
            (f"{factor} = {format_value(level)}", mask) for factor, levels in masks.items() for level, mask in levels
        ]
        if not groups:
            groups = [("all configurations", pd.Series(True, index=frame.index))]
    trials = {t.number: t for t in optuna_study.get_trials(deepcopy=False)}
    result = []
    for title, mask in groups:
        rows = frame[mask & (frame["outcome"] == "completed")]
        values = pd.to_numeric(rows.get(objective.metric, pd.Series(dtype=float)), errors="coerce").dropna()
        counts = frame.loc[mask, "outcome"].value_counts()
        not_done = ", ".join(f"{int(counts[k])} {k}" for k in analysis.NOT_FINISHED if k in counts)
        if values.empty:
            result.append(SampleGroup(title, [], note="no finished runs" + (f": {not_done}" if not_done else "")))
            continue
        ordered = values.sort_values(ascending=objective.direction == "minimize", kind="stable")
        picks = [("best", ordered.index[0])] + ([("worst", ordered.index[-1])] if len(ordered) > 1 else [])
        samples = []
        for which, idx in picks:
            row = frame.loc[idx]
            caption = (
                f"{which}: trial {row['number']}, seed {row['seed']}, {objective.metric} {_num(float(values[idx]))}"
            )
            found = _sample_image(optuna_study, trials[int(row["number"])], artifact_store)
            if found is None:
                samples.append(Sample(caption, None, note="no sample image stored"))
            else:
                png, kind = found
                name = f"{_slug(title.replace(' = ', '-'))}-{which}-{kind}"
                samples.append(Sample(caption, Figure(name, title, caption, png)))
        note = f"also at this level: {not_done} (not shown)" if not_done else ""
        result.append(SampleGroup(title, samples, note))
    return result


def build(optuna_study: optuna.Study, *, artifact_store: Any = None) -> Report:
    """Read a stored study into a `Report` (artifact_store: where its images are; None skips them)."""
    study = analysis.study_spec(optuna_study)
    frame = analysis.trials_frame(optuna_study)
    history = analysis.history_frame(optuna_study)
    test = study.verdict.test if study.verdict else "welch"
    effects = analysis.effects(frame, study, test=test)
    outcomes = frame["outcome"].value_counts().to_dict() if len(frame) else {}
    return Report(
        study=study,
        summary=_summary(study, optuna_study, frame),
        outcomes={k: int(v) for k, v in outcomes.items()},
        effects=effects,
        test=test,
        verdict=analysis.verdict(frame, study) if len(frame) else None,
        importance=analysis.importance(optuna_study, study),
        effect_figure=_effect_figure(effects, study),
        curves=_curves(study, frame, history),
        samples=_samples(study, optuna_study, frame, artifact_store),
    )


# --- rendering: shared text ---------------------------------------------------------------------

OUTCOME_ORDER = ("completed", "pruned", "diverged", "crashed", "interrupted")


def _outcome_text(outcomes: dict[str, int]) -> str:
    keys = [k for k in OUTCOME_ORDER if k in outcomes] + [k for k in outcomes if k not in OUTCOME_ORDER]
    return ", ".join(f"{outcomes[k]} {k}" for k in keys) or "none"


def _method_text(study: Study, test: str) -> str:
    if study.kind == "ablation":
        reference = "the base configuration (each factor's first level)"
    elif study.kind == "grid":
        reference = ("each factor's first level; every trial at a level is pooled over the other factors' levels "
                    "(marginal means per level)")  # fmt: skip
    else:
        reference = "each categorical parameter's first choice, trials pooled over the other parameters"
    test = "two-sided Welch's t-test" if test == "welch" else "two-sided Mann-Whitney U test (exact when n is small)"
    return (f"Means are over finished runs only (completed); pruned, diverged and crashed runs are counted at their "
            f"level but left out of the means. 95% CI: Student t interval of the mean across seeds (n/a with fewer "
            f"than 2 runs). Difference: the level's mean minus the {_ref(study)}'s, with its 95% Welch interval. "
            f"p: {test}. Compared with {reference}.")  # fmt: skip


def _ref(study: Study) -> str:
    """What the effect table compares each level with: an ablation's base configuration, else a reference level.
    (Not "baseline", which is the verdict rule's word for its own reference level.)"""
    return "base" if study.kind == "ablation" else "reference"


def _effect_cells(row: pd.Series, ref: str) -> dict[str, str]:
    """The text of one effect-table row."""
    no_runs = row["n"] == 0
    cells = {
        "factor": str(row["factor"]),
        "level": str(row["level"]) + (f" ({ref})" if row["baseline"] else ""),
        "runs": str(int(row["runs"])),
        "finished": str(int(row["n"])),
        "not finished": _not_finished(row) or "-",
        "mean": "no finished runs" if no_runs else _num(row["mean"]),
        "95% CI": "" if no_runs else _ci(row["ci_low"], row["ci_high"]),
    }
    if row["baseline"]:
        cells.update({"diff": ref, "diff 95% CI": "", "stat": "", "p": ""})
    elif no_runs:
        cells.update({"diff": "-", "diff 95% CI": "", "stat": "", "p": ""})
    else:
        cells.update({
            "diff": _signed(row["diff"]),
            "diff 95% CI": _ci(row["diff_low"], row["diff_high"]),
            "stat": _num(row["statistic"], 3),
            "p": _p(row["p"]),
        })  # fmt: skip
    return cells


def _headers(test: str, ref: str) -> list[str]:
    stat = "t" if test == "welch" else "U"
    return ["factor", "level", "runs", "finished", "not finished", "mean", "95% CI", f"diff vs {ref}",
            "95% CI of diff", stat, "p"]  # fmt: skip


# --- HTML ---------------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d2330;
       max-width: 1180px; margin: 28px auto 60px; padding: 0 28px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e3e6ec; }
h3 { font-size: 15px; margin: 22px 0 8px; }
.sub { color: #5b6475; margin: 0 0 16px; }
.claim { font-size: 16px; margin: 14px 0; padding: 10px 16px; background: #f5f7fb; border-left: 4px solid #4a6fa5; }
.note { color: #5b6475; font-size: 13px; max-width: 900px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e6e8ee; text-align: right; vertical-align: top; }
th { background: #f3f5f9; font-weight: 600; white-space: nowrap; }
td.l, th.l { text-align: left; }
table.kv td:first-child { color: #5b6475; text-align: left; white-space: nowrap; }
table.kv td { text-align: left; }
tr.base td { background: #fafbfc; color: #444; }
tr.sig td.p { font-weight: 700; color: #14532d; }
td.warn { color: #b45309; font-weight: 600; }
.verdict { margin: 18px 0; padding: 14px 18px; border-left: 8px solid #888; background: #f4f4f4; }
.verdict .status { font-size: 20px; font-weight: 700; letter-spacing: .02em; }
.verdict ul { margin: 8px 0 0; padding-left: 20px; }
.verdict.supported { border-color: #2e7d32; background: #eef7ef; }
.verdict.supported .status { color: #1b5e20; }
.verdict.not-supported { border-color: #c62828; background: #fdf0f0; }
.verdict.not-supported .status { color: #b71c1c; }
.verdict.inconclusive { border-color: #8a8f98; background: #f3f4f6; }
.verdict.inconclusive .status { color: #4b5160; }
.bar { display: inline-block; height: 11px; background: #4a6fa5; border-radius: 2px; vertical-align: middle; }
figure { margin: 12px 0 22px; }
figure img { max-width: 100%; border: 1px solid #e6e8ee; }
figcaption { font-size: 12.5px; color: #5b6475; margin-top: 4px; max-width: 900px; }
.gallery { display: flex; flex-wrap: wrap; gap: 18px; }
.group { border: 1px solid #e6e8ee; border-radius: 6px; padding: 10px 12px; }
.group h3 { margin: 0 0 8px; font-size: 14px; }
.group .pair { display: flex; gap: 12px; }
.group figure { margin: 0; width: 250px; }
.group img { width: 250px; }
.empty { color: #b45309; font-size: 13px; }
footer { margin-top: 40px; color: #8a8f98; font-size: 12px; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _img(fig: Figure, alt: str = "") -> str:
    data = base64.b64encode(fig.png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt or fig.title)}">'


def _verdict_html(result: VerdictResult | None, study: Study) -> str:
    if result is None:
        if study.verdict is None:
            return '<p class="note">This study has no <code>verdict:</code> rule, so no claim is decided.</p>'
        return '<p class="note">No trials yet: the verdict needs finished runs.</p>'
    css = {SUPPORTED: "supported", NOT_SUPPORTED: "not-supported", INCONCLUSIVE: "inconclusive"}[result.status]
    items = "".join(f"<li>{_e(line)}</li>" for line in result.lines())
    return (f'<div class="verdict {css}"><div class="status">{_e(result.status)}</div>'
            f"<div>{_e(result.message)}</div><ul>{items}</ul></div>")  # fmt: skip


def _effects_html(report: Report) -> str:
    if report.effects.empty:
        why = ("this search study has no categorical parameter to compare levels of; see the importance below"
               if report.study.kind == "search" else "no trials yet")  # fmt: skip
        return f'<p class="note">No effect table: {_e(why)}.</p>'
    alpha = report.study.verdict.alpha if report.study.verdict else 0.05
    ref = _ref(report.study)
    headers = _headers(report.test, ref)
    parts = []
    for metric, part in report.effects.groupby("metric", sort=False):
        direction = part["direction"].iloc[0]
        parts.append(f"<h3>{_e(metric)} <span class='note'>({_e(direction)})</span></h3><table><tr>")
        parts.append("".join(f'<th class="{"l" if i < 2 else ""}">{_e(h)}</th>' for i, h in enumerate(headers)))
        parts.append("</tr>")
        for _, row in part.iterrows():
            cells = _effect_cells(row, ref)
            sig = not row["baseline"] and not math.isnan(row["p"]) and row["p"] < alpha
            cls = "base" if row["baseline"] else ("sig" if sig else "")
            warn = "warn" if cells["not finished"] != "-" else ""
            parts.append(
                f'<tr class="{cls}"><td class="l">{_e(cells["factor"])}</td><td class="l">{_e(cells["level"])}</td>'
                f"<td>{cells['runs']}</td><td>{cells['finished']}</td><td class='{warn}'>{_e(cells['not finished'])}"
                f"</td><td>{_e(cells['mean'])}</td><td>{_e(cells['95% CI'])}</td><td>{_e(cells['diff'])}</td>"
                f"<td>{_e(cells['diff 95% CI'])}</td><td>{_e(cells['stat'])}</td><td class='p'>{_e(cells['p'])}</td>"
                "</tr>"
            )
        parts.append("</table>")
    parts.append(f'<p class="note">{_e(_method_text(report.study, report.test))} Bold p: below {alpha:g}.</p>')
    return "".join(parts)


def _importance_html(report: Report) -> str:
    parts = []
    for metric, value in report.importance.items():
        if isinstance(value, str):
            parts.append(f'<p class="note"><b>{_e(metric)}</b>: skipped: {_e(value)}.</p>')
            continue
        rows = "".join(
            f'<tr><td class="l">{_e(k)}</td><td>{v:.3f}</td><td class="l"><span class="bar" '
            f'style="width:{max(1, round(240 * v))}px"></span></td></tr>'
            for k, v in value.items()
        )
        parts.append(f"<h3>{_e(metric)}</h3><table><tr><th class='l'>parameter</th><th>importance</th><th></th></tr>"
                     f"{rows}</table>")  # fmt: skip
    if any(isinstance(v, dict) for v in report.importance.values()):
        n = report.outcomes.get("completed", 0)
        parts.append('<p class="note">Optuna\'s <code>get_param_importances</code> with its default evaluator, '
                     f"over the {n} completed trials, one objective at a time; importances sum to 1. With few trials "
                     "the estimate is coarse: read it next to the effect table.</p>")  # fmt: skip
    return "".join(parts)


def _samples_html(report: Report) -> str:
    if not report.samples:
        return '<p class="note">No sample images (no artifact store, or no trials).</p>'
    metric = report.study.objectives[0].metric
    groups = []
    for group in report.samples:
        body = "".join(
            f"<figure>{_img(s.image, s.caption)}<figcaption>{_e(s.caption)}</figcaption></figure>"
            if s.image
            else f'<figure><p class="empty">{_e(s.note)}</p><figcaption>{_e(s.caption)}</figcaption></figure>'
            for s in group.samples
        )
        note = f'<p class="empty">{_e(group.note)}</p>' if group.note else ""
        groups.append(f'<div class="group"><h3>{_e(group.title)}</h3><div class="pair">{body}</div>{note}</div>')
    intro = (f'<p class="note">The best and the worst finished run of each level by {_e(metric)}: the sample grid, '
             "or for 2-D data the samples over the mixture's modes.</p>")  # fmt: skip
    return intro + f'<div class="gallery">{"".join(groups)}</div>'


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: inline CSS, images as data URIs, no scripts."""
    s = report.study
    summary = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in report.summary)
    outcomes = _outcome_text(report.outcomes)
    curves = (
        "".join(f"<figure>{_img(f)}<figcaption>{_e(f.caption)}</figcaption></figure>" for f in report.curves)
        or '<p class="note">No training history stored.</p>'
    )
    effect_fig = (f"<figure>{_img(report.effect_figure)}<figcaption>{_e(report.effect_figure.caption)}</figcaption>"
                  "</figure>" if report.effect_figure else "")  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(s.name)}: sweep report</title>
<style>{CSS}</style>
</head>
<body>
<h1>{_e(s.name)}</h1>
<p class="sub">{_e(s.kind)} study, {_e(outcomes)}{" &middot; " + _e(s.description) if s.description else ""}</p>
{f'<div class="claim"><b>Claim.</b> {_e(s.claim)}</div>' if s.claim else ""}
<h2>Verdict</h2>
{_verdict_html(report.verdict, s)}
<h2>Study</h2>
<table class="kv">{summary}<tr><td>outcomes</td><td>{_e(outcomes)}</td></tr></table>
<h2>Effects</h2>
{effect_fig}
{_effects_html(report)}
<h2>Hyperparameter importance</h2>
{_importance_html(report)}
<h2>Training curves</h2>
{curves}
<h2>Samples</h2>
{_samples_html(report)}
<footer>Generated by sweep on {_e(report.generated)} from the Optuna storage; every number here can be recomputed
with <code>sweep show {_e(s.name)} --effects</code>.</footer>
</body>
</html>
"""


# --- Markdown -----------------------------------------------------------------------------------


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, image_dir: str) -> tuple[str, dict[str, bytes]]:
    """The report as Markdown, and the PNG files it links to (name -> bytes) under `image_dir`/."""
    s = report.study
    files: dict[str, bytes] = {}

    def image(fig: Figure, alt: str = "") -> str:
        files[fig.name] = fig.png
        return f"![{_md(alt or fig.title)}]({image_dir}/{fig.name})"

    out = [f"# {s.name}", "", f"_{s.kind} study, {_outcome_text(report.outcomes)}_", ""]
    if s.description:
        out += [s.description, ""]
    if s.claim:
        out += [f"> **Claim.** {s.claim}", ""]
    out += ["## Verdict", ""]
    if report.verdict is None:
        out += [
            "This study has no `verdict:` rule, so no claim is decided." if s.verdict is None else "No trials yet.",
            "",
        ]
    else:
        out += [f"**{report.verdict.status}**: {report.verdict.message}", ""]
        out += [f"- {line}" for line in report.verdict.lines()] + [""]
    out += ["## Study", "", "| | |", "|---|---|"]
    out += [f"| {_md(k)} | {_md(v)} |" for k, v in report.summary] + [
        f"| outcomes | {_outcome_text(report.outcomes)} |",
        "",
    ]
    out += ["## Effects", ""]
    if report.effect_figure:
        out += [image(report.effect_figure), "", f"_{report.effect_figure.caption}_", ""]
    if report.effects.empty:
        out += ["No effect table: no categorical factor or no trials.", ""]
    ref = _ref(s)
    headers = _headers(report.test, ref)
    for metric, part in report.effects.groupby("metric", sort=False):
        out += [f"### {metric} ({part['direction'].iloc[0]})", "", "| " + " | ".join(headers) + " |",
                "|" + "|".join(["---"] * 2 + ["---:"] * (len(headers) - 2)) + "|"]  # fmt: skip
        for _, row in part.iterrows():
            out.append("| " + " | ".join(_md(v) for v in _effect_cells(row, ref).values()) + " |")
        out.append("")
    if not report.effects.empty:
        out += [_method_text(s, report.test), ""]
    out += ["## Hyperparameter importance", ""]
    for metric, value in report.importance.items():
        if isinstance(value, str):
            out += [f"- **{metric}**: skipped: {value}."]
        else:
            out += [f"- **{metric}**: " + ", ".join(f"{k} {v:.3f}" for k, v in value.items())]
    out += ["", "## Training curves", ""]
    for fig in report.curves:
        out += [image(fig), "", f"_{fig.caption}_", ""]
    if not report.curves:
        out += ["No training history stored.", ""]
    out += ["## Samples", ""]
    for group in report.samples:
        out += [f"### {group.title}", ""]
        for sample in group.samples:
            out += [image(sample.image, sample.caption) if sample.image else f"_{sample.note}_", "", sample.caption, ""]
        if group.note:
            out += [f"_{group.note}_", ""]
    out += [f"_Generated by sweep on {report.generated} from the Optuna storage._", ""]
    return "\n".join(out), files


# --- writing, and the terminal ------------------------------------------------------------------


def write(report: Report, output: str | Path | None = None, *, format: str = "html") -> Path:  # noqa: A002
    """Write the report; default `reports/<study>.<format>`. Markdown's images go to `<stem>_files/`."""
    if format not in FORMATS:
        raise SweepError(f"--format must be html or md, but got {format!r}")
    path = Path(output) if output else Path("reports") / f"{report.study.name}.{format}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if format == "html":
            path.write_text(render_html(report), encoding="utf-8")
            return path
        image_dir = f"{path.stem}_files"
        text, files = render_markdown(report, image_dir)
        (path.parent / image_dir).mkdir(exist_ok=True)
        for name, png in files.items():
            (path.parent / image_dir / name).write_bytes(png)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SweepError(f"cannot write the report to {path} ({exc.strerror})") from exc
    return path


def print_effects(optuna_study: optuna.Study, console: Console) -> None:
    """The effect table (and the verdict, when the study has a rule) in the terminal."""
    from rich.table import Table

    study = analysis.study_spec(optuna_study)
    frame = analysis.trials_frame(optuna_study)
    test = study.verdict.test if study.verdict else "welch"
    effects = analysis.effects(frame, study, test=test)
    if effects.empty:
        console.print(f"No effect table for {study.name}: no trials yet, or no categorical factor to compare.")
        return
    alpha = study.verdict.alpha if study.verdict else 0.05
    stat, ref = ("t" if test == "welch" else "U"), _ref(study)
    wide = console.width >= 110  # a narrow terminal gets each interval on its own line
    sep = " " if wide else "\n"
    for metric, part in effects.groupby("metric", sort=False):
        table = Table(title=f"{study.name}: {metric} ({part['direction'].iloc[0]})", title_justify="left")
        table.add_column("level", overflow="fold")
        table.add_column("ok/runs", justify="right")
        table.add_column("not finished", style="yellow")
        table.add_column("mean [95% CI]", justify="right", no_wrap=wide)
        table.add_column(f"diff vs {ref} [95% CI]", justify="right", no_wrap=wide)
        table.add_column(stat, justify="right")
        table.add_column("p", justify="right")
        for _, row in part.iterrows():
            c = _effect_cells(row, ref)
            sig = not row["baseline"] and not math.isnan(row["p"]) and row["p"] < alpha
            style = "dim" if row["baseline"] else ("bold green" if sig else None)
            diff = ref if row["baseline"] else f"{c['diff']}{sep}{c['diff 95% CI']}"
            table.add_row(f"{c['factor']}={row['level']}", f"{c['finished']}/{c['runs']}", c["not finished"],
                          f"{c['mean']}{sep}{c['95% CI']}".strip(), diff, c["stat"], c["p"], style=style)  # fmt: skip
        console.print(table)
    console.print(f"[dim]{_method_text(study, test)}[/]")
    result = analysis.verdict(frame, study)
    if result is not None:
        colour = {SUPPORTED: "green", NOT_SUPPORTED: "red", INCONCLUSIVE: "yellow"}[result.status]
        console.print(f"\nVerdict: [bold {colour}]{result.status}[/]: {result.message}", highlight=False)
        for line in result.lines():
            console.print(f"  {line}", highlight=False)


__all__ = ["FORMATS", "Figure", "Report", "build", "print_effects", "render_html", "render_markdown", "write"]
