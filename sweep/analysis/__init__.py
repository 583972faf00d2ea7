"""Tidy records of a stored study, and the statistics a report rests on.

One row per trial (params and final metrics as columns); each expected (configuration, seed) joined with
its stored outcome (the design); levels compared paired by seed, blocked by the other factors' levels in
a grid, with failed runs as the worst outcome; the claim's four-way verdict at its planned looks;
hyperparameter importance. The numbers and statuses only: their sentences are `report.verdict_text`'s.

- `frames`: the trials, history, curves and design frames, the stored definition, level masks
- `units`: each run's kind on a metric, the paired comparison units and their differences
- `effect_table`: the effect table, configurations ranked
- `param_importance`: hyperparameter importance over configurations, with bootstrap intervals
- `verdicts`: the looks, the verdict and every number behind it
"""

from __future__ import annotations

from sweep.analysis.effect_table import EFFECT_COLUMNS, TABLE_ALPHA, effects, rank_configs
from sweep.analysis.frames import (
    MISSING_RUN,
    curves_frame,
    design_frame,
    history_frame,
    level_masks,
    study_spec,
    trials_frame,
)
from sweep.analysis.param_importance import (
    IMPORTANCE_RESAMPLES,
    IMPORTANCE_TREES,
    ParamImportance,
    configuration_study,
    configuration_trials,
    importance,
    importance_evaluator,
)
from sweep.analysis.units import better_direction, comparison_units, differences
from sweep.analysis.verdicts import ArmCounts, Look, VerdictResult, is_complete, look_alphas, verdict

__all__ = [
    "EFFECT_COLUMNS",
    "IMPORTANCE_RESAMPLES",
    "IMPORTANCE_TREES",
    "MISSING_RUN",
    "ParamImportance",
    "TABLE_ALPHA",
    "ArmCounts",
    "Look",
    "VerdictResult",
    "better_direction",
    "comparison_units",
    "configuration_study",
    "configuration_trials",
    "curves_frame",
    "design_frame",
    "differences",
    "effects",
    "history_frame",
    "importance",
    "importance_evaluator",
    "is_complete",
    "level_masks",
    "look_alphas",
    "rank_configs",
    "study_spec",
    "trials_frame",
    "verdict",
]
