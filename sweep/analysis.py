"""Tidy records of a stored study: one row per trial, params and final metrics as columns."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd

from sweep.store import (
    ATTR_CONFIG_ID,
    ATTR_FACTOR,
    ATTR_LEVEL,
    ATTR_METRICS,
    ATTR_OUTCOME,
    ATTR_REASON,
    ATTR_SEED,
)

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
            "outcome": attrs.get(ATTR_OUTCOME, t.state.name.lower()),
            "config_id": attrs.get(ATTR_CONFIG_ID),
            "factor": attrs.get(ATTR_FACTOR),
            "level": attrs.get(ATTR_LEVEL),
            "seed": attrs.get(ATTR_SEED),
        }
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update(attrs.get(ATTR_METRICS) or {})
        for key in ("steps_run", "wall_s", "node"):
            row[key] = attrs.get(key)
        row["reason"] = attrs.get(ATTR_REASON)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=BASE_COLUMNS)
    return frame


def history_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per (trial, report step): number, config_id, seed, step and every reported metric."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        for h in t.user_attrs.get("history") or []:
            rows.append({"number": t.number, "config_id": t.user_attrs.get(ATTR_CONFIG_ID),
                         "seed": t.user_attrs.get(ATTR_SEED), **h})  # fmt: skip
    return pd.DataFrame(rows)


__all__ = ["history_frame", "trials_frame"]
