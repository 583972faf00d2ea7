"""What workers send, written to their members' Optuna trials: learning curves as intermediate values,
every metric's live curve, checkpoints, and at the end each member's outcome, values, history, images and
note. Early stopping (ASHA) is decided here, per member, and posted on the stop board that the members'
worker reads. The study's trackers (TensorBoard, MLflow, W&B) get each member's metrics here too: this is
where a population's members are each their own trial (Ray Tune's logger callbacks see one trial).

Only this driver process writes the Optuna storage, so SQLite works on a cluster's head node.
"""

from __future__ import annotations

import math
import shutil
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler

from sweep import review
from sweep.runner.front import Population
from sweep.runner.progress import Tracker, TrialProgress, population_label
from sweep.runner.protocol import Checkpointed, Final, MemberReport, Progress, read_result
from sweep.spec import Study
from sweep.store import TrialAttr, end_trial, record_intermediate, set_trial_times
from sweep.tracking import TrackedRun, Trackers
from sweep.vocab import Outcome, counts


@dataclass(frozen=True)
class _Member:
    """One member of a population as ASHA sees it: a trial id of its own."""

    trial_id: str


def _asha(study: Study) -> ASHAScheduler | None:
    """ASHA over members: each member's results, one rung decision each, as Tune's scheduler decides
    for whole trials (Tune's ASHAScheduler itself, fed here with one id per member)."""
    if study.early_stopping is None:
        return None
    es = study.early_stopping
    return ASHAScheduler(
        time_attr="step",
        metric=es.metric,
        mode=es.mode,
        max_t=study.budget.steps,
        grace_period=es.grace_period,
        reduction_factor=es.reduction_factor,
        stop_last_trials=False,  # a member at its last step ends by itself, with its final result
    )


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metrics: non-finite floats become None (the storage keeps JSON)."""
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in metrics.items()}


def _measured(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a history row or report, its step left out: what trackers and live curves get."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


class Recorder:
    """Writes each running population's results to its members' Optuna trials, and counts on the tracker."""

    def __init__(
        self,
        study: Study,
        optuna_study: optuna.Study,
        artifact_store: Any,
        tracker: Tracker,
        *,
        stop_board: Any = None,
        keep_checkpoints: bool = False,
        trackers: Trackers | None = None,
    ) -> None:
        self.study, self.optuna_study = study, optuna_study
        self.artifact_store = artifact_store  # where images go (Optuna's artifact store)
        self.tracker = tracker
        self.stop_board = stop_board  # a StopBoard actor when the study stops members early, else None
        self.asha = _asha(study) if stop_board is not None else None
        self.keep_checkpoints = keep_checkpoints
        self.live: dict[str, list[optuna.Trial]] = {}  # Tune trial id -> its members' open Optuna trials
        self.checkpoints: dict[str, str] = {}  # Tune trial id -> the folder of its latest checkpoint
        self.resumed: dict[str, str] = {}  # Tune trial id -> the interrupted population's checkpoint it resumed
        self.trackers = trackers  # where members are logged besides Optuna (the study's `tracking:`), or None
        self.logged: dict[int, int] = {}  # Optuna number -> the last step its trackers were given
        self.curves: dict[int, dict[str, deque]] = {}  # Optuna number -> metric -> its latest values (live curves)

    def start(self, tune_id: str, population: Population) -> None:
        """A population was handed out as this Tune trial: its results are recorded from now on."""
        trials = list(population.trials)
        self.live[tune_id] = trials
        if population.order.resume_from:
            self.resumed[tune_id] = population.order.resume_from
        if population.note:
            self.tracker.notes.add(population.note)
        resume_step = (population.order.resume_step or 0) if population.order.resume_from else 0
        for member, trial in zip(population.order.members, trials, strict=True):
            self.logged[trial.number] = resume_step
            if self.trackers:
                attrs = trial.user_attrs
                run = TrackedRun(
                    self.study.name,
                    attrs[TrialAttr.CONFIG_ID],
                    attrs[TrialAttr.SEED],
                    trial.number,
                    member.train_config,
                    resume_step,
                )
                self.trackers.start(run)
        label = population_label(trials)
        self.tracker.trials[tune_id] = TrialProgress(label, population.order.steps, members=len(trials))
        if self.asha is not None:
            for k in range(len(trials)):
                self.asha.on_trial_add(None, _Member(f"{tune_id}/{k}"))

    def on_result(self, tune_id: str, result: Mapping[str, Any]) -> None:
        """A result of this Tune trial's worker (see protocol)."""
        trials = self.live.get(tune_id)
        if trials is None:
            return
        if self.tracker.first_step_at is None:
            self.tracker.first_step_at = time.perf_counter()
        message = read_result(result)
        progress = self.tracker.trials.get(tune_id)
        if message is not None and progress is not None:
            progress.step = message.step
        if isinstance(message, Final):
            self._finish(tune_id, message)
        elif isinstance(message, Checkpointed):  # its folder arrives in on_checkpoint
            for trial in trials:
                trial.set_user_attr(TrialAttr.CHECKPOINT_STEP, message.step)
        elif isinstance(message, Progress):
            for k, report in message.members.items():
                self._member_result(tune_id, k, trials[k], message.step, report)

    def _member_result(self, tune_id: str, k: int, trial: optuna.Trial, step: int, report: MemberReport) -> None:
        # the first objective's learning curve, at the steps where it was measured (eval/* metrics are
        # measured every eval_every steps; results between repeat the latest evaluation)
        metric = self.study.objectives[0].metric
        value = report.metrics.get(metric)
        measured = not metric.startswith("eval/") or report.eval_step == step
        if measured and isinstance(value, int | float) and math.isfinite(value):
            record_intermediate(self.optuna_study, trial, step, float(value))
        row = _measured(
            {k: v for k, v in report.metrics.items() if not k.startswith("eval/") or report.eval_step == step}
        )
        self._live(trial, step, row)
        if self.trackers and step > self.logged.get(trial.number, 0):
            self.trackers.log(trial.number, step, row)
            self.logged[trial.number] = step
        if self.asha is not None and step < self.study.budget.steps:
            member = _Member(f"{tune_id}/{k}")
            if self.asha.on_trial_result(None, member, {**report.metrics, "step": step}) == ASHAScheduler.STOP:
                self.stop_board.stop.remote(tune_id, k)

    def _live(self, trial: optuna.Trial, step: int, row: dict[str, float]) -> None:
        """Every metric's curve so far, as one line on the trial (optuna-dashboard shows it as it polls)."""
        curves = self.curves.setdefault(trial.number, {})
        for name, value in row.items():
            curves.setdefault(name, deque(maxlen=review.LIVE_POINTS)).append(value)
        trial.set_user_attr(TrialAttr.LIVE, review.live_curves(step, {k: list(v) for k, v in curves.items()}))

    def _track_end(self, trial: optuna.Trial, outcome: Outcome, history: list[dict[str, Any]]) -> None:
        """The trial's reports its trackers were not given yet (its last, or all of a diverged run's after the
        latest progress message), then its run closed with the outcome."""
        self.curves.pop(trial.number, None)
        logged = self.logged.pop(trial.number, 0)
        if not self.trackers:
            return
        for row in history:
            if int(row.get("step", 0)) > logged:
                self.trackers.log(trial.number, int(row["step"]), _measured(row))
                logged = int(row["step"])
        self.trackers.finish(trial.number, outcome, logged)

    def on_checkpoint(self, tune_id: str, path: str) -> None:
        """Ray Tune stored a checkpoint of this population: where, on each member (to resume from it)."""
        self.checkpoints[tune_id] = path
        for trial in self.live.get(tune_id, []):
            trial.set_user_attr(TrialAttr.CHECKPOINT, path)

    def _finish(self, tune_id: str, final: Final) -> None:
        trials = self.live.pop(tune_id)
        if not self.keep_checkpoints:  # finished: its checkpoints (and those it resumed from) are no longer needed
            for path in (self.checkpoints.pop(tune_id, None), self.resumed.pop(tune_id, None)):
                if path:
                    shutil.rmtree(path, ignore_errors=True)
        outcomes = [self._finish_member(trial, member) for trial, member in zip(trials, final.members, strict=True)]
        for attr in (TrialAttr.CHECKPOINT_DISCARDED, TrialAttr.POPULATION_SPLIT):
            said = final.members[0].get(attr) if final.members else None
            if said:  # said once, for the population
                self.tracker.notes.add(f"{self.tracker.trials[tune_id].label}: {said}")
        if final.members:
            self.tracker.trial_seconds += final.members[0].get(TrialAttr.WALL_S, 0.0)  # the population's, once
        outcome = outcomes[0] if len(outcomes) == 1 else counts(dict(Counter(o.value for o in outcomes)))
        self.tracker.end(tune_id, outcome, final.wall_s)
        if self.stop_board is not None:
            self.stop_board.forget.remote(tune_id)

    def _finish_member(self, trial: optuna.Trial, final: dict[str, Any]) -> Outcome:
        outcome = Outcome(final[TrialAttr.OUTCOME])
        for key in TrialAttr.FROM_WORKER:
            if key in final:
                trial.set_user_attr(key, final[key])
        if TrialAttr.METRICS in final:
            trial.set_user_attr(TrialAttr.METRICS, _finite(final[TrialAttr.METRICS]))
        if final.get(TrialAttr.HISTORY):
            trial.set_user_attr(TrialAttr.HISTORY, [_finite(h) for h in final[TrialAttr.HISTORY]])
        values = None
        if outcome is Outcome.COMPLETED:
            values = [final[TrialAttr.METRICS].get(o.metric) for o in self.study.objectives]
            missing = [o.metric for o, v in zip(self.study.objectives, values, strict=True) if v is None]
            if missing:
                outcome = Outcome.CRASHED
                trial.set_user_attr(TrialAttr.REASON, f"objective {missing[0]} is not measured on this dataset")
            elif not all(math.isfinite(v) for v in values):
                outcome = Outcome.DIVERGED
                trial.set_user_attr(TrialAttr.REASON, "an objective value is not finite")
        trial.set_user_attr(TrialAttr.OUTCOME, outcome.value)
        self._track_end(trial, outcome, final.get(TrialAttr.HISTORY) or [])
        review.attach_trial_review(self.study, trial, final, self.artifact_store)
        self._tell(trial, outcome, values, final)
        if TrialAttr.STARTED_AT in final and TrialAttr.ENDED_AT in final:
            set_trial_times(self.optuna_study, trial, final[TrialAttr.STARTED_AT], final[TrialAttr.ENDED_AT])
        return outcome

    def _tell(self, trial: optuna.Trial, outcome: Outcome, values: list | None, final: dict[str, Any]) -> None:
        """Tell Optuna how the member ended, and count it."""
        if outcome is Outcome.COMPLETED:
            self.optuna_study.tell(trial, values)
            self.tracker.done += 1
            if len(values) == 1:
                better = max if self.study.objectives[0].direction == "maximize" else min
                self.tracker.best = values[0] if self.tracker.best is None else better(self.tracker.best, values[0])
        elif outcome is Outcome.PRUNED:
            self.optuna_study.tell(trial, state=TrialState.PRUNED)
            self.tracker.pruned += 1
        else:
            self.optuna_study.tell(trial, state=TrialState.FAIL)
            self._failed(outcome, trial.user_attrs.get(TrialAttr.REASON) or final.get(TrialAttr.REASON))

    def _failed(self, outcome: Outcome, reason: str | None) -> None:
        self.tracker.failed += 1
        self.tracker.crashed += outcome is Outcome.CRASHED
        self.tracker.failures[(outcome.value, reason or "no reason recorded")] += 1

    def close_unfinished(self) -> None:
        """Mark trials still open when Tune stopped (the run was interrupted) FAIL "interrupted"."""
        reason = "the run was stopped before this trial finished; its pair is run again"
        for tune_id, trials in self.live.items():
            for trial in trials:
                end_trial(self.optuna_study, trial, TrialState.FAIL, Outcome.INTERRUPTED, reason)
                self._track_end(trial, Outcome.INTERRUPTED, [])
            self.tracker.end(tune_id, Outcome.INTERRUPTED)
        self.live = {}
        self.tracker.started.clear()

    def on_complete(self, tune_id: str, error: bool) -> None:
        """A Tune trial ended; without its final result (still live here), its worker failed."""
        trials = self.live.pop(tune_id, None)
        if trials is None:
            return
        reason = "the Ray worker running this trial failed" if error else "the trial ended without its final result"
        for trial in trials:
            end_trial(self.optuna_study, trial, TrialState.FAIL, Outcome.CRASHED, reason)
            self._track_end(trial, Outcome.CRASHED, [])
            self._failed(Outcome.CRASHED, reason)
        self.tracker.end(tune_id, Outcome.CRASHED)


__all__ = ["Recorder"]
