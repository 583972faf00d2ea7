"""The effect table (each level against its factor's reference, paired by seed, Holm over the table, and
the divergence rates by Fisher's exact test), and configurations ranked by their means."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.analysis.frames import MISSING_RUN, design_frame, level_masks
from sweep.analysis.units import _usable, block_label, comparison_units, seed_differences
from sweep.lazy import LazyImport
from sweep.rates import fisher_two_sided
from sweep.spec import Study, format_value
from sweep.stats import estimate, finite, holm, mean_ci
from sweep.vocab import NOT_FINISHED, Outcome

if TYPE_CHECKING:
    import pandas as pd
else:  # loaded by the first study read
    pd = LazyImport("pandas")

EFFECT_COLUMNS = [
    "metric",
    "direction",
    "factor",
    "level",
    "stratum",
    "baseline",
    "runs",
    "n",
    "completed",
    "pruned",
    "diverged",
    "crashed",
    "non_finite",
    "mean",
    "ci_low",
    "ci_high",
    "pairs",
    "method",
    "diff",
    "diff_low",
    "diff_high",
    "std_effect",
    "p",
    "p_holm",
    "diverged_rate",
    "diverged_p",
    "diverged_p_holm",
]

TABLE_ALPHA = 0.05  # the effect table's intervals are 95%, its Holm-adjusted p-values marked below 0.05


def _level_counts(rows: pd.DataFrame, metric: str) -> dict[str, Any]:
    outcomes = rows["outcome"].value_counts()
    values = pd.to_numeric(rows[metric], errors="coerce") if metric in rows else pd.Series([], dtype=float)
    completed = rows["outcome"] == Outcome.COMPLETED
    ok = values[completed & np.isfinite(values)] if len(values) else values
    mean, low, high = mean_ci(ok)
    return {
        "runs": len(rows),
        "n": len(ok),
        **{k.value: int(outcomes.get(k, 0)) for k in (Outcome.COMPLETED, *NOT_FINISHED)},
        "non_finite": int(completed.sum()) - len(ok),
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
    }


def effects(frame: pd.DataFrame, study: Study, *, test: str = "t") -> pd.DataFrame:
    """One row per objective x factor x level: the level's runs by outcome, its mean with a 95% CI over
    finished runs, and against the factor's first (reference) level: the paired effect over seeds with its
    95% CI, a standardized effect (d_z, or the rank-biserial r on the rank path), the two-sided p and its
    Holm adjustment; and the divergence rate with Fisher's exact test against the reference (Holm over the
    levels).

    In a grid, a seed's runs at the other factors' levels (its blocks) share its luck, so the pooled row
    (`stratum` "") counts each seed once: the mean of its block differences (`stats.seed_units`). Below it,
    one row per block (`stratum` "d_width=4.0, ...": the level's runs there and the effect within it), so
    an effect that differs between strata shows. Holm adjusts the pooled rows together and the stratum
    rows together: two families.

    Diverged runs and non-finite values count as the worst outcome (the rank path); crashed runs are left
    out; pruned runs count as the rule's `pruned` says (left out without a rule). A search study gets the
    per-level rows only: a sampler's choices are no controlled comparison.
    """
    if not len(frame):
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    if study.kind == "search":  # each pair once: the latest of a crashed run and its retry (--retry-crashed)
        data = frame[frame["outcome"] != Outcome.INTERRUPTED].sort_values("number", kind="stable")
        data = data.drop_duplicates(["config_id", "seed"], keep="last")
    else:
        data = design_frame(frame, study)
    ran = data[data["outcome"] != MISSING_RUN]
    pruned = study.verdict.pruned if study.verdict else None
    masks = level_masks(ran, study)
    rows: list[dict[str, Any]] = []
    for objective in study.objectives:
        for factor, groups in masks.items():
            for i, (level, mask) in enumerate(groups):
                row: dict[str, Any] = {
                    "metric": objective.metric,
                    "direction": objective.direction,
                    "factor": factor,
                    "level": format_value(level),
                    "stratum": "",
                    "baseline": i == 0,
                    **_level_counts(ran[mask], objective.metric),
                }
                rows.append(row)
                if i > 0 and study.kind != "search":
                    units = comparison_units(
                        data,
                        study,
                        factor=factor,
                        treatment=level,
                        baseline=groups[0][0],
                        metric=objective.metric,
                        pruned=pruned,
                    )
                    rows += _compared(row, units[_usable(units)], ran[mask], study, test)
    table = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    pooled = table["stratum"] == ""
    p = pd.to_numeric(table["p"], errors="coerce").to_numpy(dtype=float)
    table["p_holm"] = math.nan
    table.loc[pooled, "p_holm"] = holm(p[pooled.to_numpy()])
    table.loc[~pooled, "p_holm"] = holm(p[~pooled.to_numpy()])
    _divergence_columns(table, ran, masks)
    table.loc[~pooled, ["diverged_rate", "diverged_p", "diverged_p_holm"]] = math.nan  # the level's, pooled
    return table


def _compared(
    row: dict[str, Any], usable: pd.DataFrame, level_runs: pd.DataFrame, study: Study, test: str
) -> list[dict[str, Any]]:
    """A level's comparison with its reference: the pooled row's effect (filled in `row`; each seed one unit,
    its grid blocks averaged), and in a grid with other factors one row per block (stratum), each with its
    runs of the level and its effect over the seeds of that block."""
    better = str(row["direction"])
    _effect(row, seed_differences(usable, better).to_numpy(), test)
    strata = list(dict.fromkeys(b for b in usable["block"] if b))
    if len(strata) < 2:
        return []
    others = [f for f in study.factors if f != row["factor"]]
    labels = pd.Series(
        [block_label([f"params.{f}" for f in others], r) for r in level_runs[[f"params.{f}" for f in others]].values],
        index=level_runs.index,
        dtype=object,
    )
    found = []
    for stratum in strata:
        part = {**row, "stratum": stratum, **_level_counts(level_runs[labels == stratum], str(row["metric"]))}
        part.update({k: math.nan for k in ("diff", "diff_low", "diff_high", "std_effect", "p")}, method=None)
        _effect(part, seed_differences(usable[usable["block"] == stratum], better).to_numpy(), test)
        found.append(part)
    return found


def _effect(row: dict[str, Any], d: np.ndarray, test: str) -> None:
    """The paired effect over per-seed differences `d` into `row` (pairs, method, diff and its CI, d_z, p)."""
    row["pairs"] = len(d)
    if len(d) >= 2:
        e = estimate(d, alpha=TABLE_ALPHA, test=test).item()
        row.update(
            method=e.method,
            diff=e.effect,
            diff_low=e.low,
            diff_high=e.high,
            std_effect=e.standardized,
            p=float(e.p_two_sided),
        )


def _divergence_columns(table: pd.DataFrame, ran: pd.DataFrame, masks: dict[str, list[tuple[Any, pd.Series]]]) -> None:
    """Each level's divergence rate (diverged among completed and diverged runs) and Fisher's exact test
    against the reference level, Holm-adjusted over the (factor, level) pairs."""
    found: dict[tuple[str, str], tuple[float, float]] = {}
    for factor, groups in masks.items():
        counts = []
        for _, mask in groups:
            outcome = ran.loc[mask, "outcome"]
            counts.append((int((outcome == Outcome.DIVERGED).sum()), int(outcome.isin(RATE_OUTCOMES).sum())))
        x_ref, n_ref = counts[0] if counts else (0, 0)
        for i, ((level, _), (x, n)) in enumerate(zip(groups, counts, strict=True)):
            p = fisher_two_sided(x, n, x_ref, n_ref) if i > 0 else math.nan
            found[(factor, format_value(level))] = (x / n if n else math.nan, p)
    keys = list(found)
    adjusted = dict(zip(keys, holm(np.array([found[k][1] for k in keys], dtype=float)), strict=True))
    pairs = list(zip(table["factor"], table["level"], strict=True))
    table["diverged_rate"] = [found.get(k, (math.nan, math.nan))[0] for k in pairs]
    table["diverged_p"] = [found.get(k, (math.nan, math.nan))[1] for k in pairs]
    table["diverged_p_holm"] = [adjusted.get(k, math.nan) for k in pairs]


RATE_OUTCOMES = (Outcome.COMPLETED.value, Outcome.DIVERGED.value)  # the runs a divergence rate is over


def rank_configs(frame: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Configurations by their mean over finished seeds, best first: config_id, n, mean, ci_low, ci_high."""
    rows = []
    live = frame[frame["outcome"] == Outcome.COMPLETED] if len(frame) else frame
    for config_id, group in live.groupby("config_id", sort=False) if len(live) else ():
        values = finite(group[metric]) if metric in group else np.array([])
        if len(values):
            mean, low, high = mean_ci(values)
            rows.append({"config_id": config_id, "n": len(values), "mean": mean, "ci_low": low, "ci_high": high})
    ranked = pd.DataFrame(rows, columns=["config_id", "n", "mean", "ci_low", "ci_high"])
    return ranked.sort_values("mean", ascending=direction == "minimize", kind="stable").reset_index(drop=True)
