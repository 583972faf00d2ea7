"""Ray Tune's view of the driver: the searcher that asks the front for the next population and passes
every result to the recorder, the callbacks that keep the progress display and the checkpoints' folders
current, and the trials' names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.search import Searcher

from sweep.runner.front import OptunaFront
from sweep.runner.progress import Tracker
from sweep.runner.protocol import member_numbers
from sweep.runner.record import Recorder


class FrontSearcher(Searcher):
    """Suggests the front's next population as a Tune trial's config; passes its results to the recorder."""

    def __init__(self, front: OptunaFront, recorder: Recorder) -> None:
        super().__init__(metric=None, mode=None)
        self.front, self.recorder = front, recorder

    def suggest(self, trial_id: str) -> dict[str, Any] | str:
        population = self.front.next_population()
        if population is None:
            return Searcher.FINISHED
        self.recorder.start(trial_id, population)
        return population.order.to_config()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.recorder.on_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        # a trial's last result can arrive here rather than in on_trial_result
        if result:
            self.recorder.on_result(trial_id, result)
        self.recorder.on_complete(trial_id, error)


class ProgressCallback(Callback):
    """A Tune callback that calls fn after each result and trial end; pickles to a no-op."""

    def __init__(self, fn: Callable[[], None] | None, tracker: Tracker | None = None) -> None:
        self.fn = fn
        self.tracker = tracker

    def __getstate__(self) -> dict:  # Tune pickles its run config; the live display stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.fn, self.tracker = None, None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.tracker is not None:
            self.tracker.started.add(trial.trial_id)
        if self.fn:
            self.fn()

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if self.fn:
            self.fn()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.fn:
            self.fn()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        # Tune's event loop turns several times a second: a steady clock for a display that prints at intervals
        if self.fn:
            self.fn()


class CheckpointCallback(Callback):
    """Tells the recorder where Ray Tune stored each checkpoint; pickles to a no-op."""

    def __init__(self, recorder: Recorder | None) -> None:
        self.recorder = recorder

    def __getstate__(self) -> dict:  # Tune pickles its run config; the recorder stays here
        return {}

    def __setstate__(self, state: dict) -> None:
        self.recorder = None

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        if self.recorder is not None:
            self.recorder.on_checkpoint(trial.trial_id, checkpoint.path)


def trial_name(trial: Any) -> str:
    """trial_12 for one pair (its Optuna number), population_12-27 for a population."""
    numbers = member_numbers(trial.config)
    if not numbers:
        return f"trial_{trial.trial_id}"
    return f"trial_{numbers[0]}" if len(numbers) == 1 else f"population_{numbers[0]}-{numbers[-1]}"


__all__ = ["CheckpointCallback", "FrontSearcher", "ProgressCallback", "trial_name"]
