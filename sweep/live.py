"""Live progress while work runs: a run's trials (done, running, failed, pruned, best so far, time left,
each running trial's step) and one training run's steps; bars on a terminal, plain timed lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from sweep.terminal import PROGRESS_INTERVAL, StatusProgress, err, progress_bars
from sweep.vocab import counts, duration, num, visible

if TYPE_CHECKING:
    from sweep.runner import Tracker
    from sweep.spec import Study


class ProgressView:
    """Live progress of a run: trials done / running / failed / pruned, best so far, time left, and each
    running trial's step out of its total.

    On a terminal: a bar for the study and one per running trial. Elsewhere (CI, a log file): a plain line
    every `interval` seconds and one as each trial ends, instead of nothing until the end.
    """

    def __init__(
        self,
        study: Study,
        *,
        console: Console | None = None,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metric = study.objectives[0].metric if len(study.objectives) == 1 else None
        self.console = console or err
        self.interval, self.clock = interval, clock
        self.started = clock()
        self.last_line: float | None = None  # when the last plain line was printed
        self.ended = 0  # trial ends already printed (plain lines)
        self.said_done = False  # the line that says every trial finished was printed
        self.bars: StatusProgress | None = None
        self.tasks: dict[str, Any] = {}  # trial label -> its bar (terminal)

    def __call__(self, tracker: Tracker) -> None:
        if self.console.is_terminal:
            self._draw(tracker)
        else:
            self._lines(tracker)

    def _status(self, tracker: Tracker) -> tuple[str, str]:
        """(how the trials stand, how long so far and how long left)."""
        finished = tracker.done + tracker.failed + tracker.pruned
        tally = counts({"completed": tracker.done, "failed": tracker.failed, "pruned": tracker.pruned}, ())
        best = f", best {self.metric} {num(tracker.best)}" if self.metric and tracker.best is not None else ""
        elapsed = self.clock() - self.started
        left = "?" if finished == 0 else "~" + duration(elapsed / finished * (tracker.total - finished))
        standing = f"{tracker.running} running" + (f", {tally}" if finished else "")
        return standing + best, f"{duration(elapsed)} elapsed, {left} left"

    def _draw(self, tracker: Tracker) -> None:
        finished = tracker.done + tracker.failed + tracker.pruned
        if self.bars is None:
            self.bars = progress_bars(self.console)
            self.tasks["trials"] = self.bars.add_task("trials", total=tracker.total)
        bars = self.bars
        bars.update(self.tasks["trials"], total=tracker.total, completed=finished)
        running = {t.label: t for t in tracker.running_trials()}
        for label in [k for k in self.tasks if k != "trials" and k not in running]:
            bars.remove_task(self.tasks.pop(label))
        for label, trial in running.items():
            if label not in self.tasks:
                self.tasks[label] = bars.add_task(label, total=trial.steps)
            bars.update(self.tasks[label], completed=trial.step, total=trial.steps, description=f"steps {label}")
        bars.status = Text(visible("; ".join(self._status(tracker))), style="dim")
        if not bars.live.is_started and finished < tracker.total:  # the first call, or the next look's seeds
            bars.start()
        if bars.live.is_started:
            bars.refresh()
            if finished >= tracker.total:
                bars.stop()

    def _lines(self, tracker: Tracker) -> None:
        finished = tracker.done + tracker.failed + tracker.pruned
        for trial in tracker.ended[self.ended :]:
            took = f" in {duration(trial.seconds)}" if trial.seconds is not None else ""
            self._say(f"trial {trial.label}: {trial.outcome}{took} ({finished}/{tracker.total} finished)")
        self.ended = len(tracker.ended)
        now = self.clock()
        done = finished >= tracker.total
        due = self.last_line is None or now - self.last_line >= self.interval or (done and not self.said_done)
        if not due or (self.last_line is None and not tracker.trials):
            return  # not yet (the first line comes with the first trial handed out)
        self.last_line, self.said_done = now, done
        standing, timing = self._status(tracker)
        self._say(f"trials {finished}/{tracker.total}: {standing}; {timing.partition(', ')[2]}")
        for trial in tracker.running_trials():
            self._say(f"  {trial.label}: step {trial.step}/{trial.steps}")

    def _say(self, line: str) -> None:
        self.console.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False, highlight=False)


TRAIN_PROGRESS_METRICS = ("loss/d", "loss/g", "mi/cat_ratio", "eval/cat_acc", "eval/modes")


class TrainProgress:
    """Progress over one training run's steps, with its latest key metrics: a bar on a terminal, else a
    plain line every `interval` seconds and at the end."""

    def __init__(
        self,
        steps: int,
        *,
        console: Console | None = None,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or err
        self.steps, self.interval, self.clock = steps, interval, clock
        self.last_line: float | None = None
        self.bars = progress_bars(self.console)
        self.task = self.bars.add_task("steps", total=steps)

    def __enter__(self) -> TrainProgress:
        return self  # the bar appears with the first step: a run that fails before it draws nothing

    def __exit__(self, *exc: object) -> None:
        if self.bars.live.is_started:
            self.bars.stop()

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        info = ", ".join(f"{k} {num(metrics[k], 3)}" for k in TRAIN_PROGRESS_METRICS if k in metrics)
        if self.console.is_terminal:
            self.bars.update(self.task, completed=step)
            self.bars.status = Text(visible(info), style="dim")
            if not self.bars.live.is_started:
                self.bars.start()
            return
        now = self.clock()
        if self.last_line is None or now - self.last_line >= self.interval or step >= self.steps:
            self.last_line = now
            self.console.print(f"{time.strftime('%H:%M:%S')} step {step}/{self.steps}: {info}", highlight=False)


__all__ = ["TRAIN_PROGRESS_METRICS", "ProgressView", "TrainProgress"]
