"""The report's figures, each drawn on its own `matplotlib.figure.Figure` (no pyplot, no backend switched),
and Optuna's own matplotlib plots for search and multi-objective studies (Pareto front, parallel
coordinates, parameter importance). Optuna draws those with pyplot: each is drawn inside
`matplotlib.rc_context` (its style sheet does not leak), saved from the figure it returns and closed
at once, in whatever backend the caller's pyplot already uses (none is chosen here)."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweep import analysis
from sweep.report.tables import BASE, one_base_row, reference_word, row_label
from sweep.spec import Study, format_value
from sweep.vocab import Outcome

if TYPE_CHECKING:
    import optuna

CURVE_METRICS = ("mi/cat_ratio", "loss/d", "loss/g")  # the paper's Figure 1, and the two losses


@dataclass(frozen=True)
class Picture:
    """A PNG with a title and a caption, inlined in HTML or written next to Markdown."""

    name: str  # file name, e.g. "curves-d_batchnorm.png"
    title: str
    caption: str
    png: bytes


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def slug(text: str) -> str:
    """A file-name-safe form of text."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def effect_figure(effects: pd.DataFrame, study: Study) -> Picture | None:
    """One panel per objective: each level's mean with its 95% CI, reference levels marked."""
    if effects.empty or not effects["n"].any():
        return None
    ref = reference_word(study)
    effects = one_base_row(effects, study)
    metrics = list(dict.fromkeys(effects["metric"]))
    rows = effects[effects["metric"] == metrics[0]]
    height = 0.9 + 0.38 * len(rows) + 0.25 * rows["factor"].nunique()
    fig = Figure(figsize=(min(5.2 * len(metrics), 12), height))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = effects[effects["metric"] == metric].reset_index(drop=True)
        y = np.arange(len(part))[::-1]
        labels = [
            row_label(r.factor, r.level, r.stratum) + (f" ({ref})" if r.baseline and r.factor != BASE else "")
            for r in part.itertuples()
        ]
        for yi, r in zip(y, part.itertuples(), strict=True):
            colour = "#555555" if r.baseline else "#1f77b4"
            if r.n == 0:
                ax.annotate(
                    "no finished runs",
                    (0.02, yi),
                    xycoords=("axes fraction", "data"),
                    va="center",
                    fontsize=8,
                    color="#b45309",
                )
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
    caption = f"Mean over finished seeds (dot) and its 95% confidence interval (bar); dotted line: the {ref} mean."
    return Picture("effects.png", "Effects at a glance", caption, png(fig))


def curve_figures(study: Study, frame: pd.DataFrame, history: pd.DataFrame) -> list[Picture]:
    """Per factor: mi/cat_ratio, loss/d and loss/g over steps, one line per level (mean) and its seed range."""
    if history.empty or not len(frame):
        return []
    panels = [m for m in CURVE_METRICS if m in history and history[m].notna().any()]
    if not panels:
        return []
    ref = reference_word(study)
    pictures = []
    completed = frame["outcome"] == Outcome.COMPLETED
    for factor, groups in analysis.level_masks(frame, study).items():
        fig = Figure(figsize=(4.1 * len(panels), 3.3))
        axes = fig.subplots(1, len(panels), squeeze=False)
        for i, (level, mask) in enumerate(groups):
            numbers = set(frame.loc[mask & completed, "number"])
            part = history[history["number"].isin(numbers)]
            if part.empty:
                continue
            label = f"{factor}={format_value(level)}" + (f" ({ref})" if i == 0 else "")
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
        caption = (
            f"Lines: mean over the completed runs at each level of {factor}; shaded: the range (min to max) "
            "across seeds. Dashed: H(c), the most information the categorical code can carry."
        )
        if factor == "lambda_cat":
            caption += " With lambda_cat 1 against 0 this is the InfoGAN paper's Figure 1."
        pictures.append(Picture(f"curves-{slug(factor)}.png", f"Training curves by {factor}", caption, png(fig)))
    return pictures


# --- Optuna's plots ------------------------------------------------------------------------------


def _optuna_picture(
    draw: Callable[[Any], Any], name: str, title: str, caption: str, *, size: tuple[float, float] = (8.0, 4.6)
) -> tuple[Picture | None, str]:
    """(the plot Optuna draws with `draw(plots)`, "") or (None, why it could not be drawn); `size` in inches."""
    import matplotlib  # lazy: the report loads matplotlib only when it draws
    from matplotlib import pyplot  # lazy: Optuna's plots are drawn with pyplot, so closing them needs it
    from optuna.visualization import matplotlib as plots  # lazy: it imports pyplot

    before = set(pyplot.get_fignums())
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warnings of Optuna's matplotlib plots
        try:
            drawn = draw(plots)
            fig = (drawn.flat[0] if hasattr(drawn, "flat") else drawn).figure
            fig.set_size_inches(*size)
            fig.tight_layout()
            return Picture(name, title, caption, png(fig)), ""
        except Exception as exc:  # a plot Optuna cannot draw for these trials is reported, not fatal
            return None, f"Optuna could not draw it: {type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            for number in set(pyplot.get_fignums()) - before:  # every figure Optuna opened, drawn or not
                pyplot.close(number)


def pareto_figure(optuna_study: optuna.Study, study: Study) -> tuple[Picture | None, str]:
    """Optuna's Pareto front of the trials (2 or 3 objectives)."""
    names = [o.metric for o in study.objectives]
    if not 2 <= len(names) <= 3:
        return None, f"Optuna draws a Pareto front of 2 or 3 objectives; this study has {len(names)}."
    caption = (
        "Each completed trial (one seed of one configuration) by its objective values, as Optuna draws it; the "
        "Pareto-optimal trials stand out. The table below takes each configuration's mean over its seeds."
    )
    return _optuna_picture(
        lambda plots: plots.plot_pareto_front(optuna_study, target_names=names),
        "pareto-front.png",
        "Pareto front",
        caption,
    )


def parallel_figures(optuna_study: optuna.Study, study: Study) -> list[tuple[Picture | None, str]]:
    """Optuna's parallel-coordinate plot of the parameters, one per objective."""
    size = (max(8.0, 1.2 * (len(study.space) + 1)), 5.2)  # an axis per parameter, each readable
    return _per_objective(
        optuna_study,
        study,
        "plot_parallel_coordinate",
        "parallel",
        "Parallel coordinates",
        lambda o: f"Each completed trial's parameters, a line coloured by its {o.metric} ({o.direction}).",
        size=size,
    )


def importance_figures(optuna_study: optuna.Study, study: Study) -> list[tuple[Picture | None, str]]:
    """Optuna's parameter-importance plot, one per objective: the table's estimates (fANOVA, seed fixed,
    over configurations each the mean over its seeds), drawn by Optuna."""
    configurations = analysis.configuration_trials(optuna_study, study)
    return [
        _optuna_picture(
            lambda plots, o=o: plots.plot_param_importances(
                analysis.configuration_study(configurations[o.metric], o.direction),
                evaluator=analysis.importance_evaluator(),
                target_name=o.metric,
            ),
            f"importance-{slug(o.metric)}.png",
            f"Parameter importance: {o.metric}",
            f"How much of {o.metric}'s variance each parameter explains across configurations (fANOVA).",
        )
        for o in study.objectives
    ]


def _per_objective(
    optuna_study: optuna.Study, study: Study, plot: str, stem: str, title: str, caption: Any, **kwargs: Any
) -> list[tuple[Picture | None, str]]:
    """One of Optuna's matplotlib plots (`plot`, by name) for each objective, its target that objective."""
    return [
        _optuna_picture(
            lambda plots, i=i, o=o: getattr(plots, plot)(
                optuna_study, target=lambda t: t.values[i], target_name=o.metric
            ),
            f"{stem}-{slug(o.metric)}.png",
            f"{title}: {o.metric}",
            caption(o),
            **kwargs,
        )
        for i, o in enumerate(study.objectives)
    ]


__all__ = [
    "CURVE_METRICS",
    "Picture",
    "curve_figures",
    "effect_figure",
    "importance_figures",
    "parallel_figures",
    "pareto_figure",
    "png",
    "slug",
]
