"""Levels compared run by run: each run's kind on a metric (a value, the worst outcome, left out, missing),
the paired units of a treatment against its baseline (by seed, blocked by the other factors in a grid),
and their differences."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.analysis.frames import MISSING_RUN, _where, level_masks
from sweep.core import METRICS
from sweep.lazy import LazyImport
from sweep.spec import DIVERGED, Study, format_value
from sweep.stats import seed_units
from sweep.vocab import Outcome

if TYPE_CHECKING:
    import pandas as pd
else:  # loaded by the first study read
    pd = LazyImport("pandas")


def better_direction(study: Study, metric: str) -> str:
    """The direction in which `metric` is better: its objective's, else its natural one."""
    for objective in study.objectives:
        if objective.metric == metric:
            return str(objective.direction)
    return METRICS[metric].direction


def _kinds(
    rows: pd.DataFrame, metric: str, pruned: str | None, censored_above: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kind, value, why) of each run for a comparison on `metric`.

    kind: "ok" (a finite value), "failed" (the worst outcome of its arm: diverged, a non-finite value, a
    time censored at the budget (a value above `censored_above`: the event never happened), or pruned with
    `pruned: worst`), "excluded" (crashed, or pruned with `pruned: exclude`) or "missing" (not finished
    yet). why: "", "diverged", "non-finite", "censored", "pruned", "crashed" or "missing".
    For DIVERGED the value does not matter: a run either failed or not.
    """
    outcome = rows["outcome"].astype(str).to_numpy()
    if metric == DIVERGED or metric not in rows:
        values = np.zeros(len(rows)) if metric == DIVERGED else np.full(len(rows), np.nan)
    else:
        values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
    completed = outcome == Outcome.COMPLETED
    non_finite = completed & ~np.isfinite(values) if metric != DIVERGED else np.zeros(len(rows), bool)
    with np.errstate(invalid="ignore"):
        censored = completed & (values > censored_above) if censored_above is not None else np.zeros(len(rows), bool)
    why = np.select(
        [outcome == MISSING_RUN, outcome == Outcome.CRASHED, outcome == Outcome.PRUNED, outcome == Outcome.DIVERGED],
        [MISSING_RUN, "crashed", "pruned", "diverged"],
        np.select([non_finite, censored], ["non-finite", "censored"], ""),
    )
    kind = np.select(
        [why == MISSING_RUN, why == "crashed", (why == "pruned") & (pruned != "worst"), why == ""],
        [MISSING_RUN, "excluded", "excluded", "ok"],
        "failed",
    )
    return kind, values, why


def comparison_units(
    design: pd.DataFrame,
    study: Study,
    *,
    factor: str,
    treatment: Any,
    baseline: Any,
    metric: str,
    pruned: str | None = None,
    where: dict[str, Any] | None = None,
    stratum: str | None = None,
) -> pd.DataFrame:
    """The paired units of treatment against baseline, in seed order: one row per (seed, block) with each
    arm's kind, value and why (`t_*`, `b_*`; only `t_*` when baseline is None, against a target).

    Levels share seeds by construction, so units pair by seed; in a grid, a block is one combination of
    the other factors' levels (within `where`; `block` names them, `name=level, ...`), so that only runs
    that differ in `factor` are compared. A seed's blocks share its luck: `seed_differences` makes them one
    unit before anything is tested. With `stratum` (another factor), a `stratum` column holds its level.
    """
    part = _where(design, where or {})
    # a time to an event reported past the budget never happened: the worst outcome, ties at the worst rank
    censored_above = float(study.budget.steps) if metric in METRICS and METRICS[metric].censored else None
    masks = {format_value(level): mask for level, mask in level_masks(part, study).get(factor, [])}
    blocks = [f"params.{f}" for f in study.factors if f != factor] if study.kind == "grid" else []

    def arm(level: Any, prefix: str) -> pd.DataFrame:
        rows = part[masks[format_value(level)]] if format_value(level) in masks else part.iloc[:0]
        kind, value, why = _kinds(rows, metric, pruned, censored_above)
        block = [block_label(blocks, r) for r in rows[blocks].itertuples(index=False)] if blocks else ""
        return pd.DataFrame(
            {
                "seed": rows["seed"].to_numpy(),
                "seed_index": rows["seed_index"].to_numpy(),
                "block": block,
                **({"stratum": [format_value(v) for v in rows[f"params.{stratum}"]]} if stratum else {}),
                f"{prefix}_kind": kind,
                f"{prefix}_value": value,
                f"{prefix}_why": why,
            }
        )

    units = arm(treatment, "t")
    if baseline is not None:
        keys = ["seed", "seed_index", "block", *(["stratum"] if stratum else [])]
        units = units.merge(arm(baseline, "b"), on=keys, how="inner")
    return units.sort_values(["seed_index", "block"], kind="stable").reset_index(drop=True)


def block_label(columns: list[str], levels: Any) -> str:
    """A grid block's name: `name=level` of each other factor (columns `params.name`), comma-separated."""
    return ", ".join(f"{c.removeprefix('params.')}={format_value(v)}" for c, v in zip(columns, levels, strict=True))


def _arm_kinds(units: pd.DataFrame) -> pd.DataFrame:
    return units[[c for c in ("t_kind", "b_kind") if c in units]]


def differences(units: pd.DataFrame, better: str, *, origin: float = 0.0) -> np.ndarray:
    """Treatment minus baseline per unit (or treatment minus `origin` against a target); a failed run is the
    worst value its metric can take (-inf when higher is better, +inf when lower is), so two failed
    runs in one pair tie at 0."""
    worst = -math.inf if better == "maximize" else math.inf
    t = np.where(units["t_kind"] == "failed", worst, units["t_value"].to_numpy(dtype=float))
    if "b_kind" not in units:
        return t - origin
    b = np.where(units["b_kind"] == "failed", worst, units["b_value"].to_numpy(dtype=float))
    with np.errstate(invalid="ignore"):
        d = t - b
    return np.where((units["t_kind"] == "failed") & (units["b_kind"] == "failed"), 0.0, d)


def seed_differences(units: pd.DataFrame, better: str, *, origin: float = 0.0) -> pd.Series:
    """One difference per seed (indexed by seed_index, in seed order) from usable units: a seed's blocks
    share its luck, so they count once (`stats.seed_units`: the mean of its block differences; a seed
    whose failed runs on one side outnumber the other side's is that side's worst outcome)."""
    d = differences(units, better, origin=origin)
    index = units["seed_index"].to_numpy()
    if len(np.unique(index)) == len(index):  # one block per seed: the differences themselves
        return pd.Series(d, index=index, dtype=float)
    table = pd.DataFrame({"seed_index": index, "block": units["block"].to_numpy(), "d": d})
    wide = table.pivot(index="seed_index", columns="block", values="d")
    return pd.Series(seed_units(wide.to_numpy(dtype=float)), index=wide.index, dtype=float)


def _usable(units: pd.DataFrame) -> pd.Series:
    return _arm_kinds(units).isin(["ok", "failed"]).all(axis=1)
