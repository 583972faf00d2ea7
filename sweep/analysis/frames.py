"""Tidy records of a stored study: one row per trial, per report step, per (trial, step, metric); the
study's definition as stored; which trials sit at each factor level; and the design, each expected
(configuration, seed) joined with its stored outcome."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from sweep.errors import SweepError
from sweep.lazy import LazyImport
from sweep.spec import Study, expand, factor_levels, format_value, parse_stored
from sweep.store import StudyAttr, TrialAttr
from sweep.vocab import FINISHED, Outcome

if TYPE_CHECKING:
    import optuna
    import pandas as pd
else:  # loaded by the first study read: `sweep claims` on a storage with no studies needs neither
    pd = LazyImport("pandas")

BASE_COLUMNS = ["number", "state", "outcome", "config_id", "factor", "level", "seed"]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, outcome, config_id, factor, level, seed, `params.<name>`,
    each final metric under its own name (e.g. `eval/modes`), steps_run, wall_s, node, reason."""
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "outcome": attrs.get(TrialAttr.OUTCOME, t.state.name.lower()),
            "config_id": attrs.get(TrialAttr.CONFIG_ID),
            "factor": attrs.get(TrialAttr.FACTOR),
            "level": attrs.get(TrialAttr.LEVEL),
            "seed": attrs.get(TrialAttr.SEED),
        }
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update(attrs.get(TrialAttr.METRICS) or {})
        for key in (TrialAttr.STEPS_RUN, TrialAttr.WALL_S, TrialAttr.NODE):
            row[key] = attrs.get(key)
        row["reason"] = attrs.get(TrialAttr.REASON)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS)
    return _levels_as_written(frame, rows)


def _levels_as_written(frame: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Keep factor levels as the values they are (pandas would make a column of 10 and None floats: 10.0),
    so that they match the study's levels as written."""
    for column in ["level", *(c for c in frame if c.startswith("params."))]:
        if column in frame:
            frame[column] = pd.Series([row.get(column) for row in rows], index=frame.index, dtype=object)
    return frame


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per (trial, report step): number, config_id, seed, step and every reported metric."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        for h in t.user_attrs.get(TrialAttr.HISTORY) or []:
            rows.append(
                {
                    "number": t.number,
                    "config_id": t.user_attrs.get(TrialAttr.CONFIG_ID),
                    "seed": t.user_attrs.get(TrialAttr.SEED),
                    **h,
                }
            )
    return pd.DataFrame(rows)


CURVE_COLUMNS = ["trial", "config_id", "seed", "outcome"]  # then params.<name>..., then step, metric, value


def curves_frame(study: optuna.Study) -> pd.DataFrame:
    """Every trial's history in long format, for pandas: one row per (trial, step, metric) with the trial's
    number, config_id, seed, outcome and factor levels (`params.<name>`), the step, the metric and its value
    (None where it was not finite)."""
    rows = []
    params: dict[str, None] = {}
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        head = {
            "trial": t.number,
            "config_id": attrs.get(TrialAttr.CONFIG_ID),
            "seed": attrs.get(TrialAttr.SEED),
            "outcome": attrs.get(TrialAttr.OUTCOME, t.state.name.lower()),
            **{f"params.{k}": v for k, v in t.params.items()},
        }
        params.update(dict.fromkeys(k for k in head if k.startswith("params.")))
        for report in attrs.get(TrialAttr.HISTORY) or []:
            rows += [
                {**head, "step": report.get("step"), "metric": k, "value": v} for k, v in report.items() if k != "step"
            ]
    columns = [*CURVE_COLUMNS, *params, "step", "metric", "value"]
    return _levels_as_written(pd.DataFrame(rows, columns=columns), rows)


# --- grouping trials by factor level ------------------------------------------------------------


def study_spec(optuna_study: optuna.Study) -> Study:
    """The Study a stored Optuna study was run from (its StudyAttr.SPEC user attribute)."""
    data = optuna_study.user_attrs.get(StudyAttr.SPEC)
    if not data:
        raise SweepError(f"study '{optuna_study.study_name}' has no study definition stored; was it run by sweep?")
    return parse_stored(data, source=f"stored study {optuna_study.study_name}")


def _same(value: Any, level: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return level is None
    return format_value(value) == format_value(level)


def level_masks(frame: pd.DataFrame, study: Study) -> dict[str, list[tuple[Any, pd.Series]]]:
    """factor -> [(level, rows at that level)], the baseline level first.

    Ablation: a factor's baseline is the base configuration, its other levels the trials that change
    that factor alone. Grid and search (categorical parameters only): every trial with the parameter at
    that level, pooled over the other factors' levels (marginal). Interrupted trials (rerun) are left out.
    """
    live = frame["outcome"] != Outcome.INTERRUPTED if "outcome" in frame else pd.Series(True, index=frame.index)
    result: dict[str, list[tuple[Any, pd.Series]]] = {}
    for factor, levels in factor_levels(study).items():
        if not levels:
            continue
        groups = []
        for i, level in enumerate(levels):
            if study.kind == "ablation":
                if i == 0:
                    mask = frame["config_id"] == "base"
                else:
                    mask = (frame["factor"] == factor) & frame["level"].map(lambda v, lv=level: _same(v, lv))
            else:
                column = f"params.{factor}"
                if column not in frame:
                    continue
                mask = frame[column].map(lambda v, lv=level: _same(v, lv))
            groups.append((level, (mask & live).astype(bool)))
        result[factor] = groups
    return result


def _where(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    """The trials whose parameters have the given levels."""
    keep = pd.Series(True, index=frame.index)
    for name, level in where.items():
        column = f"params.{name}"
        keep &= frame[column].map(lambda v, lv=level: _same(v, lv)) if column in frame else False
    return frame[keep]


# --- the design: every expected trial, with the outcome stored for it -----------------------------

MISSING_RUN = "missing"  # the outcome of an expected (configuration, seed) not finished in the storage
FINISHED_OUTCOMES = tuple(o.value for o in FINISHED)


def design_frame(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """One row per (configuration, seed) an ablation or grid study expands into: config_id, seed, seed_index
    (position in the study's seeds), factor, level, `params.<name>`, and the outcome and final metrics of
    its latest finished trial; outcome "missing" where none finished yet. Each pair counts once, however
    often it was run (an interrupted trial is run again; only the finished one counts)."""
    order = {seed: i for i, seed in enumerate(study.seed_list)}
    expected = [
        {
            "config_id": s.config_id,
            "seed": s.seed,
            "seed_index": order[s.seed],
            "factor": s.factor,
            "level": s.level,
            **{f"params.{k}": v for k, v in s.params.items()},
        }
        for s in expand(study)
    ]
    design = _levels_as_written(pd.DataFrame(expected), expected)
    stored = frame[frame["outcome"].isin(FINISHED_OUTCOMES)] if len(frame) else frame
    stored = stored[stored["seed"].notna() & stored["config_id"].notna()] if len(stored) else stored
    if not len(stored):
        return design.assign(outcome=MISSING_RUN, number=np.nan)
    stored = stored.assign(seed=pd.to_numeric(stored["seed"]).astype(int))
    stored = stored.sort_values("number", kind="stable").drop_duplicates(["config_id", "seed"], keep="last")
    stored = stored.drop(columns=[c for c in stored if c in ("factor", "level", "state") or c.startswith("params.")])
    merged = design.merge(stored, on=["config_id", "seed"], how="left")
    merged["outcome"] = merged["outcome"].fillna(MISSING_RUN)
    return merged
