"""Tidy records of a stored study, and the statistics a report rests on.

One row per trial (params and final metrics as columns); seeds aggregated into means with Student-t
confidence intervals; levels compared with Welch's t-test or Mann-Whitney U; the claim's verdict;
hyperparameter importance.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from sweep.errors import SweepError
from sweep.spec import Study, Verdict, factor_levels, format_value, load, parse
from sweep.stats import ONE_SAMPLE_TESTS, TESTS, Comparison, compare, finite, mean_ci, min_attainable_p, one_sample
from sweep.store import Store, StudyAttr, TrialAttr
from sweep.vocab import NOT_FINISHED, Outcome, Status, num

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


# --- grouping trials by factor level ------------------------------------------------------------


def study_spec(optuna_study: optuna.Study) -> Study:
    """The Study a stored Optuna study was run from (its StudyAttr.SPEC user attribute)."""
    data = optuna_study.user_attrs.get(StudyAttr.SPEC)
    if not data:
        raise SweepError(f"study '{optuna_study.study_name}' has no study definition stored; was it run by sweep?")
    return parse(data, source=f"stored study {optuna_study.study_name}")


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


def _finished_values(frame: pd.DataFrame, mask: pd.Series, metric: str) -> pd.Series:
    rows = frame[mask & (frame["outcome"] == Outcome.COMPLETED)]
    if metric not in rows:
        return pd.Series([], dtype=float)
    values = pd.to_numeric(rows[metric], errors="coerce")
    return values[np.isfinite(values)]


def _outcome_counts(frame: pd.DataFrame, mask: pd.Series) -> dict[str, int]:
    outcomes = frame.loc[mask, "outcome"].value_counts()
    return {k.value: int(outcomes.get(k, 0)) for k in (Outcome.COMPLETED, *NOT_FINISHED)}


EFFECT_COLUMNS = [
    "metric",
    "direction",
    "factor",
    "level",
    "baseline",
    "runs",
    "n",
    "completed",
    "pruned",
    "diverged",
    "crashed",
    "mean",
    "ci_low",
    "ci_high",
    "diff",
    "diff_low",
    "diff_high",
    "statistic",
    "df",
    "p",
    "test",
]


def effects(frame: pd.DataFrame, study: Study, *, test: str = "welch", confidence: float = 0.95) -> pd.DataFrame:
    """One row per objective x factor x level: mean and CI over finished runs, difference from the
    factor's baseline level with its Welch CI, a two-sided test (`welch` or `mannwhitney`) and its p-value,
    and how many runs at the level were pruned, diverged or crashed (counted, not averaged)."""
    rows = []
    masks = level_masks(frame, study) if len(frame) else {}
    for objective in study.objectives:
        for factor, groups in masks.items():
            base_values = _finished_values(frame, groups[0][1], objective.metric) if groups else None
            for i, (level, mask) in enumerate(groups):
                values = _finished_values(frame, mask, objective.metric)
                mean, low, high = mean_ci(values, confidence)
                row = {
                    "metric": objective.metric,
                    "direction": objective.direction,
                    "factor": factor,
                    "level": format_value(level),
                    "baseline": i == 0,
                    "runs": int(mask.sum()),
                    "n": len(values),
                    **_outcome_counts(frame, mask),
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "test": test,
                }
                if i > 0:
                    c = compare(values, base_values, test=test, confidence=confidence)
                    row.update(
                        diff=c.diff, diff_low=c.low, diff_high=c.high, statistic=c.statistic, df=c.df, p=c.p_two_sided
                    )
                rows.append(row)
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


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


# --- the claim's verdict ------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictResult:
    """The decision on a study's claim and every number that decided it."""

    status: Status
    message: str  # one sentence: why
    rule: Verdict
    n_baseline: int  # finished runs with a value (0 with a `target`)
    n_treatment: int
    seeds_baseline: int  # distinct seeds among them
    seeds_treatment: int
    not_finished_baseline: dict[str, int]  # outcome -> count (pruned, diverged, crashed)
    not_finished_treatment: dict[str, int]
    mean_baseline: float  # the target itself when the rule compares with a number
    mean_treatment: float
    comparison: Comparison | None  # treatment against baseline (or target); None when too few runs to test
    p_one_sided: float

    @property
    def test_name(self) -> str:
        return (ONE_SAMPLE_TESTS if self.rule.target is not None else TESTS)[self.rule.test]

    def lines(self) -> list[str]:
        """The numbers, one fact a line (for the terminal, notes and reports)."""
        r, c = self.rule, self.comparison
        treat = format_value(r.treatment)
        sign = ">" if r.direction == "greater" else "<"
        where = ", ".join(f"{k}={format_value(v)}" for k, v in r.where.items())
        only = f"; only trials with {where}" if where else ""
        treated = (
            f"{r.factor}={treat} (treatment): mean {num(self.mean_treatment)} over {self.n_treatment} runs "
            f"({self.seeds_treatment} seeds){_not_finished(self.not_finished_treatment)}"
        )
        if r.target is not None:
            out = [
                f"rule: mean {r.metric} at {r.factor}={treat} {sign} {r.target:g} ({self.test_name}, one-sided, "
                f"alpha {r.alpha:g}, at least {r.min_seeds} finished seeds{only})",
                treated,
            ]
            against = "target"
        else:
            base = format_value(r.baseline)
            out = [
                f"rule: {r.metric} at {r.factor}={treat} {sign} at {r.factor}={base} ({self.test_name}, one-sided, "
                f"alpha {r.alpha:g}, at least {r.min_seeds} finished seeds per level{only})",
                f"{r.factor}={base} (baseline): mean {num(self.mean_baseline)} over {self.n_baseline} runs "
                f"({self.seeds_baseline} seeds){_not_finished(self.not_finished_baseline)}",
                treated,
            ]
            against = "baseline"
        if c is not None:
            symbol = {"welch": "t", "student": "t", "mannwhitney": "U", "wilcoxon": "W"}[c.test]
            stat = f"{symbol} = {num(c.statistic)}"
            stat += f", df = {num(c.df)}" if c.test in ("welch", "student") else ""
            out.append(f"difference (treatment - {against}): {num(c.diff)}, 95% CI [{num(c.low)}, {num(c.high)}]")
            out.append(f"{stat}, one-sided p = {num(self.p_one_sided, 3)} (alpha {r.alpha:g})")
        return out


def _not_finished(counts: dict[str, int]) -> str:
    parts = [f"{v} {k}" for k, v in counts.items() if v]
    return f"; not finished, left out: {', '.join(parts)}" if parts else ""


def _where(frame: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    """The trials whose parameters have the given levels."""
    keep = pd.Series(True, index=frame.index)
    for name, level in where.items():
        column = f"params.{name}"
        keep &= frame[column].map(lambda v, lv=level: _same(v, lv)) if column in frame else False
    return frame[keep]


def verdict(frame: pd.DataFrame, study: Study) -> VerdictResult | None:
    """Decide the study's claim with its `verdict` rule (None when it has none).

    INCONCLUSIVE when a compared level has fewer than `min_seeds` finished seeds (pruned, diverged and
    crashed runs do not count as finished); otherwise SUPPORTED when the one-sided test in the expected
    direction gives p < alpha, and NOT SUPPORTED when not (including an effect in the other direction).
    Grid studies pool every trial at each level (the other factors marginalized), within the rule's
    `where` levels if it has any. A rule with a `target` compares the treatment's mean with that number
    (one-sample t-test, or Wilcoxon signed-rank for `test: mannwhitney`).
    """
    rule = study.verdict
    if rule is None:
        return None
    frame = _where(frame, rule.where) if rule.where else frame
    groups = {format_value(level): mask for level, mask in level_masks(frame, study).get(rule.factor, [])}
    empty = pd.Series(False, index=frame.index)
    mask_t = groups.get(format_value(rule.treatment), empty)
    mask_b = empty if rule.target is not None else groups.get(format_value(rule.baseline), empty)
    values_b, values_t = (_finished_values(frame, m, rule.metric) for m in (mask_b, mask_t))
    seeds_b, seeds_t = (int(frame.loc[v.index, "seed"].nunique()) if len(v) else 0 for v in (values_b, values_t))
    nf_b, nf_t = (
        {k: v for k, v in _outcome_counts(frame, m).items() if k != Outcome.COMPLETED} for m in (mask_b, mask_t)
    )
    mean_b, mean_t = (float(v.mean()) if len(v) else math.nan for v in (values_b, values_t))
    treat_text = format_value(rule.treatment)
    base_text = f"the target {rule.target:g}" if rule.target is not None else format_value(rule.baseline)
    comparison, p_one = None, math.nan
    if rule.target is not None:
        mean_b = float(rule.target)
        if len(values_t):
            comparison = one_sample(values_t, rule.target, test=rule.test)
    elif len(values_b) and len(values_t):
        comparison = compare(values_t, values_b, test=rule.test)
    if comparison is not None:
        p_one = comparison.p(rule.direction)
    expected = "higher" if rule.direction == "greater" else "lower"
    counted = [(treat_text, seeds_t)] if rule.target is not None else [(base_text, seeds_b), (treat_text, seeds_t)]
    if min(s for _, s in counted) < rule.min_seeds:
        few = [f"{rule.factor}={lv} has {s}" for lv, s in counted]
        status = Status.INCONCLUSIVE
        message = (
            f"too few finished seeds to decide: {' and '.join(few)} (the rule needs {rule.min_seeds} "
            "per level; pruned, diverged and crashed runs do not count)"
        )
    elif math.isnan(p_one):
        status, message = Status.INCONCLUSIVE, "the test could not be computed on these values"
    elif p_one < rule.alpha:
        status = Status.SUPPORTED
        message = (
            f"{rule.metric} is {expected} at {rule.factor}={treat_text} than at {base_text}: one-sided "
            f"p = {num(p_one, 3)} < alpha {rule.alpha:g}"
        )
    else:
        status = Status.NOT_SUPPORTED
        opposite = (comparison.diff < 0) if rule.direction == "greater" else (comparison.diff > 0)
        why = "the effect goes the other way" if opposite else "the difference is within seed noise"
        message = (
            f"{rule.metric} is not significantly {expected} at {rule.factor}={treat_text} than at "
            f"{base_text} ({why}): one-sided p = {num(p_one, 3)} >= alpha {rule.alpha:g}"
        )
        if rule.test == "mannwhitney":
            floor = 0.5 ** len(values_t) if rule.target is not None else min_attainable_p(len(values_t), len(values_b))
            if floor >= rule.alpha:
                message += f"; with these run counts the rank test cannot go below p = {floor:.3g}: add seeds"
    return VerdictResult(
        status,
        message,
        rule,
        len(values_b),
        len(values_t),
        seeds_b,
        seeds_t,
        nf_b,
        nf_t,
        mean_b,
        mean_t,
        comparison,
        p_one,
    )


# --- hyperparameter importance ------------------------------------------------------------------


def importance(optuna_study: optuna.Study, study: Study) -> dict[str, dict[str, float] | str]:
    """Objective -> {param: importance} (Optuna's default evaluator), or a sentence saying why it was skipped."""
    if study.kind == "ablation":
        why = "an ablation changes one factor at a time from the base; read the effect table instead"
        return {o.metric: why for o in study.objectives}
    complete = optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varying = [k for k in {k for t in complete for k in t.params} if len({repr(t.params.get(k)) for t in complete}) > 1]
    result: dict[str, dict[str, float] | str] = {}
    for i, objective in enumerate(study.objectives):
        if len(complete) < 2:
            result[objective.metric] = f"needs at least 2 completed trials, but the study has {len(complete)}"
            continue
        if len(varying) < 2:
            only = f" ({varying[0]})" if varying else ""
            result[objective.metric] = f"only {len(varying)} parameter{only} varies among completed trials"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = optuna.importance.get_param_importances(
                    optuna_study, target=lambda t, i=i: t.values[i], params=sorted(varying)
                )
            result[objective.metric] = {k: float(v) for k, v in scores.items()}
        except Exception as exc:  # a failed estimate is reported, not fatal
            result[objective.metric] = f"Optuna could not estimate it: {type(exc).__name__}: {exc}".splitlines()[0]
    return result


def claim_rows(studies_dir: str | Path, store: Store) -> list[dict[str, Any]]:
    """One row per study file in studies_dir: study, file, claim, cost, verdict and its deciding numbers.

    The verdict is a Status once the study has run; otherwise "INVALID" (with the file's error as the
    numbers), "not run" (not in the storage yet) or "no rule" (a study without a verdict rule).
    """
    files = sorted(Path(studies_dir).glob("*.yaml"))
    if not files:
        raise SweepError(f"no study files (*.yaml) in {studies_dir}")
    stored = set(store.study_names())
    rows = []
    for path in files:
        row: dict[str, Any] = {"study": path.stem, "file": str(path), "claim": "", "cost": "", "numbers": ""}
        try:
            study = load(path)
        except SweepError as exc:
            rows.append({**row, "verdict": "INVALID", "numbers": str(exc)})
            continue
        row.update(study=study.name, claim=study.claim, cost=f"{study.trial_count} trials x {study.budget.steps} steps")
        if study.name not in stored:
            row["verdict"] = "not run"
        else:
            optuna_study = store.load_study(study.name)
            result = verdict(trials_frame(optuna_study), study_spec(optuna_study))
            if result is None:
                row["verdict"] = "no rule"
            else:
                row.update(verdict=result.status, numbers="; ".join([result.message, *result.lines()[1:]]))
        rows.append(row)
    return rows


__all__ = [
    "EFFECT_COLUMNS",
    "VerdictResult",
    "claim_rows",
    "effects",
    "history_frame",
    "importance",
    "level_masks",
    "rank_configs",
    "study_spec",
    "trials_frame",
    "verdict",
]
