"""Hand-built studies, trial frames and stored Optuna studies for the analysis and report tests (no Ray)."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from sweep import spec

BASE = {"dataset": "ring8", "arch": "mlp", "cat_codes": [8], "cont_codes": 0, "lambda_cat": 1.0}


def make_study(kind: str = "ablation", **overrides) -> spec.Study:
    data = {
        "name": "stats",
        "claim": "lambda_cat = 0 keeps little mutual information",
        "kind": kind,
        "base": dict(BASE),
        "factors": {"lambda_cat": [0.0]},
        "seeds": 3,
        "objectives": ["mi/cat_ratio"],
        "budget": {"steps": 20, "report_every": 10},
        "verdict": {
            "metric": "mi/cat_ratio",
            "factor": "lambda_cat",
            "baseline": 1.0,
            "treatment": 0.0,
            "direction": "less",
            "min_effect": 0.05,
        },
    }
    data.update(overrides)
    return spec.parse(data)


def ablation_frame(baseline: list, treatment: list, metric: str = "mi/cat_ratio") -> pd.DataFrame:
    """Trials as trials_frame gives them; a value "diverged"/"crashed"/"pruned" is a run that did not finish."""
    rows = []
    for config_id, factor, level, values in (
        ("base", None, None, baseline),
        ("lambda_cat=0.0", "lambda_cat", 0.0, treatment),
    ):
        for seed, value in enumerate(values):
            outcome = value if isinstance(value, str) else "completed"
            rows.append(
                {
                    "number": len(rows),
                    "state": "COMPLETE" if outcome == "completed" else "FAIL",
                    "outcome": outcome,
                    "config_id": config_id,
                    "factor": factor,
                    "level": level,
                    "seed": seed,
                    "params.lambda_cat": 1.0 if level is None else level,
                    metric: value if outcome == "completed" else None,
                }
            )
    return pd.DataFrame(rows)


# --- a stored study, without Ray --------------------------------------------------


def stored_study(study: spec.Study, trials: list[tuple[dict, str, float | None]]) -> optuna.Study:
    """An in-memory Optuna study holding `study` and trials (params, outcome, value), as the runner stores them."""
    metric = study.objectives[0].metric
    stored = optuna.create_study(study_name=study.name, directions=[o.direction for o in study.objectives])
    stored.set_user_attr("spec", study.model_dump(mode="json"))
    stored.set_user_attr("kind", study.kind)
    names = {k: sorted({p[k] for p, _, _ in trials}, key=str) for k in trials[0][0]}
    for i, (params, outcome, value) in enumerate(trials):
        state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(outcome, TrialState.FAIL)
        config_id = ",".join(f"{k}={spec.format_value(v)}" for k, v in params.items())
        stored.add_trial(
            create_trial(
                state=state,
                params=params,
                values=[value] if state == TrialState.COMPLETE else None,
                distributions={k: CategoricalDistribution(names[k]) for k in params},
                user_attrs={
                    "config_id": config_id,
                    "seed": i % 3,
                    "outcome": outcome,
                    "wall_s": 1.0,
                    "metrics": {metric: value} if value is not None else {},
                    "history": [
                        {"step": s, metric: (value or 0) * s / 20, "loss/d": 1.3, "loss/g": 0.7} for s in (10, 20)
                    ],
                },
            )
        )
    return stored


GRID = {"lambda_cat": [1.0, 0.0], "d_batchnorm": ["none", "separate"]}


def grid_trials() -> list[tuple[dict, str, float | None]]:
    rng = np.random.default_rng(1)
    trials = []
    for lam in GRID["lambda_cat"]:
        for bn in GRID["d_batchnorm"]:
            for _ in range(3):
                value = float((0.9 if lam else 0.1) + 0.02 * rng.normal())
                trials.append(({"lambda_cat": lam, "d_batchnorm": bn}, "completed", value))
    trials[-1] = (trials[-1][0], "diverged", None)
    return trials
