"""Run a study: Ray Tune schedules the trials, Optuna proposes or enumerates them and records all.

Each Optuna trial is one (configuration, seed) pair. Each Ray Tune trial trains a population of them:
pairs of one network shape (`resources.population` at most, 1 by default) trained as one stacked model
(the core's population engine), each member still its own Optuna trial with its own values, history,
images, note and outcome. Only the driver process talks to the Optuna storage, so SQLite works on a
cluster's head node: workers send their metrics, history and PNG images back inside their reported
results, and the driver attaches them to the Optuna trial before telling Optuna how it ended. One driver
at a time: a run holds the study's lease in the storage.

The parts, in the order a run uses them:

- `driver`: `run` and its `RunOptions`; the look loop and the Tuner.
- `optuna_study`: opening the Optuna study (the checks that keep a stored study's meaning), value
  encoding, which replication runs.
- `planning`: what still has to run, each pending pair carrying its config, population key, cost and
  stacking verdict, computed once.
- `packing`: how many pairs each population trains (pure arithmetic on the plan's costs).
- `front`: hands out the next population, its members' Optuna trials open.
- `protocol`: the typed messages between the driver and a worker, and their wire form.
- `worker`: what runs in a Ray worker for one population.
- `record`: what a worker sent, written to its members' trials; early stopping (ASHA) per member.
- `hooks`: Ray Tune's view of the front and the recorder (searcher, callbacks, trial names).
- `progress`: the counts the progress display and the summary read.
- `ray_env`: joining or starting Ray, and how many trials fit at once.

The driver's names load with their modules on first use: Ray imports `worker` in every worker process,
which then does not load Optuna, pandas and scipy (seconds per worker) for the driver's parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweep.lazy import LazyImport
from sweep.runner.progress import Tracker, TrialProgress

if TYPE_CHECKING:
    from sweep.runner.driver import RunOptions, RunSummary, run
    from sweep.runner.optuna_study import next_replication, open_study
    from sweep.runner.planning import PendingPair, Plan, crashed_pairs, plan
    from sweep.runner.ray_env import ensure_ray

_driver = LazyImport("sweep.runner.driver")
_optuna_study = LazyImport("sweep.runner.optuna_study")
_planning = LazyImport("sweep.runner.planning")
_ray_env = LazyImport("sweep.runner.ray_env")
_HOME = {  # public name -> the module it lives in
    "RunOptions": _driver,
    "RunSummary": _driver,
    "run": _driver,
    "next_replication": _optuna_study,
    "open_study": _optuna_study,
    "PendingPair": _planning,
    "Plan": _planning,
    "crashed_pairs": _planning,
    "plan": _planning,
    "ensure_ray": _ray_env,
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(_HOME[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PendingPair",
    "Plan",
    "RunOptions",
    "RunSummary",
    "Tracker",
    "TrialProgress",
    "crashed_pairs",
    "ensure_ray",
    "next_replication",
    "open_study",
    "plan",
    "run",
]
