"""Where a study's trials are logged besides Optuna: TensorBoard, MLflow and W&B, each through its own
library, one run per trial (per member of a population), with the trial's configuration, seed and every
metric at every step it was measured.

The driver's recorder calls these as it writes each member's reports to Optuna: a population trains many
members in one Ray Tune trial, so Ray Tune's logger callbacks would see one trial with every member's
metrics in one message; the recorder sees each member as its own trial. Optuna stays the single record of
results: a tracker that fails is warned about once and left out for the rest of the run, and the study goes
on. A tracker's run is named by the trial's pair (configuration and seed), so a trial that resumes an
interrupted one's checkpoint writes on in the same run (docs/tracking.md says what each library keeps).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import netrc
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sweep.errors import StudyError
from sweep.vocab import TRACKERS, Outcome

log = logging.getLogger(__name__)

# tracker -> (the module it needs, the line that installs it)
PACKAGES = {
    "tensorboard": ("tensorboard", "pip install 'sweep[tensorboard]'"),
    "mlflow": ("mlflow", "pip install 'sweep[mlflow]'"),
    "wandb": ("wandb", "pip install 'sweep[wandb]'"),
}
assert set(PACKAGES) == set(TRACKERS)  # one entry per tracker name (vocab.TRACKERS)


def missing_package(name: str) -> str | None:
    """Why tracker `name` cannot log here (its package is not installed, and the line that installs it), or None."""
    if name not in PACKAGES:
        return f"there is no tracker {name!r}; the trackers are {', '.join(TRACKERS)}"
    module, install = PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        return f"{name} needs the {module} package, which is not installed here: {install}"
    return None


def check_installed(names: Iterable[str], *, where: str = "") -> None:
    """StudyError naming the first tracker whose package is missing, with the line that installs it."""
    for name in names:
        problem = missing_package(name)
        if problem:
            raise StudyError(f"{where}tracking: {problem}")


@dataclass(frozen=True)
class TrackedRun:
    """One trial as the trackers see it."""

    study: str
    config_id: str
    seed: int
    number: int  # its Optuna trial number
    config: dict[str, Any]  # its resolved TrainConfig (the seed included)
    resume_step: int = 0  # the checkpoint's step it resumes from; 0: it starts afresh

    @property
    def name(self) -> str:
        """The run's name in every tracker, a folder name too: the pair, `lr_g=0.003-seed1`."""
        return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", f"{self.config_id}-seed{self.seed}")

    @property
    def key(self) -> str:
        """The pair in its study: the same in every run of the study, so a resumed trial finds its run."""
        return f"{self.study}/{self.config_id}/{self.seed}"

    @property
    def params(self) -> dict[str, str | int | float | bool]:
        """The configuration as scalars (lists and None as JSON text), as trackers' params hold them."""
        return {k: v if isinstance(v, str | int | float | bool) else json.dumps(v) for k, v in self.config.items()}


# --- the trackers: start a run, log a step's metrics, finish it ------------------------------------


class _TensorBoard:
    """Event files under ROOT/tensorboard/<study>/<run name>/ (torch.utils.tensorboard, which needs tensorboard)."""

    def __init__(self, root: Path, study: str) -> None:
        from torch.utils.tensorboard import SummaryWriter  # lazy: an optional extra, imported when a study names it

        self.folder, self.writer = root / "tensorboard" / study, SummaryWriter

    def start(self, run: TrackedRun) -> Any:
        # purge_step: TensorBoard drops what an earlier attempt of this pair wrote from this step on
        writer = self.writer(log_dir=str(self.folder / run.name), purge_step=run.resume_step + 1, flush_secs=30)
        if not run.resume_step:
            writer.add_text("config", "```json\n" + json.dumps(run.config, indent=2) + "\n```", global_step=0)
        return writer

    def log(self, writer: Any, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            writer.add_scalar(name, value, global_step=step)

    def finish(self, writer: Any, outcome: Outcome, step: int) -> None:
        writer.add_text("outcome", outcome.value, global_step=step)
        writer.close()


_MLFLOW_STATUS = {Outcome.COMPLETED: "FINISHED", Outcome.PRUNED: "KILLED", Outcome.INTERRUPTED: "KILLED"}
_PAIR_TAG = "sweep_pair"  # a run's pair (TrackedRun.key): how a resumed trial finds its run


class _Mlflow:
    """One MLflow run per trial in the experiment named after the study, at MLFLOW_TRACKING_URI or in
    ROOT/mlflow.db (MLflow 3 keeps its plain-file store in maintenance and refuses it by default)."""

    def __init__(self, root: Path, study: str) -> None:
        from mlflow.tracking import MlflowClient  # lazy: an optional extra, imported when a study names it

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"
        root.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(study)
        self.experiment = experiment.experiment_id if experiment else self.client.create_experiment(study)

    def start(self, run: TrackedRun) -> str:
        if run.resume_step:  # the interrupted trial's run, if it has one: it writes on there
            key = run.key.replace("'", "\\'")
            found = self.client.search_runs(
                [self.experiment], f"tags.{_PAIR_TAG} = '{key}'", order_by=["attributes.start_time DESC"], max_results=1
            )
            if found:
                return found[0].info.run_id
        from mlflow.entities import Param  # lazy: with MlflowClient above

        tags = {_PAIR_TAG: run.key, "config_id": run.config_id, "seed": str(run.seed), "optuna_number": str(run.number)}
        run_id = self.client.create_run(self.experiment, run_name=run.name, tags=tags).info.run_id
        params = [Param(k, str(v)) for k, v in run.params.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=params[i : i + 100])
        return run_id

    def log(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric  # lazy: with MlflowClient above

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, run_id: str, outcome: Outcome, step: int) -> None:
        self.client.set_tag(run_id, "outcome", outcome.value)
        self.client.set_terminated(run_id, _MLFLOW_STATUS.get(outcome, "FAILED"))


def _wandb_logged_in() -> bool:
    """Whether W&B has credentials here (WANDB_API_KEY, or a netrc entry for its host), without asking for them."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class _Wandb:
    """One W&B run per trial in the project named after the study (WANDB_PROJECT overrides), under ROOT/wandb;
    offline unless WANDB_MODE says otherwise or the user has logged in."""

    def __init__(self, root: Path, study: str) -> None:
        import wandb  # lazy: an optional extra, imported when a study names it

        self.wandb, self.study, self.root = wandb, study, root  # W&B writes its runs in ROOT/wandb/
        self.mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_logged_in() else "offline")
        root.mkdir(parents=True, exist_ok=True)

    def start(self, run: TrackedRun) -> Any:
        return self.wandb.init(
            project=os.environ.get("WANDB_PROJECT") or self.study,
            name=run.name,
            id=hashlib.sha256(run.key.encode()).hexdigest()[:16],  # the pair's: a resumed trial writes on in it
            group=run.config_id,
            config=run.config,
            dir=str(self.root),
            mode=self.mode,
            resume="allow",
            reinit="create_new",  # a population's members are runs open side by side in this one process
            settings=self.wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )

    def log(self, handle: Any, step: int, metrics: dict[str, float]) -> None:
        handle.log(metrics, step=step)

    def finish(self, handle: Any, outcome: Outcome, step: int) -> None:
        handle.summary["outcome"] = outcome.value
        handle.finish(exit_code=0 if outcome in (Outcome.COMPLETED, Outcome.PRUNED) else 1)


_KINDS: dict[str, Callable[[Path, str], Any]] = {"tensorboard": _TensorBoard, "mlflow": _Mlflow, "wandb": _Wandb}


class Trackers:
    """The trackers a run logs to, one run per trial each. Every call into a library is guarded: a tracker
    that fails is warned about once (in the log and in `notes`, which the run's summary prints) and left out
    from then on; the study goes on, recorded in Optuna as always."""

    def __init__(self, names: Iterable[str], *, root: Path, study: str, notes: set[str] | None = None) -> None:
        self.names = list(dict.fromkeys(names))
        check_installed(self.names)
        self.notes = notes if notes is not None else set()
        self.study = study
        self._trackers: dict[str, Any] = {}
        self._runs: dict[int, dict[str, Any]] = {}  # Optuna trial number -> tracker name -> its open run
        for name in self.names:
            made = self._guarded(name, "starting", lambda name=name: _KINDS[name](root, study))
            if made is not None:
                self._trackers[name] = made

    def __bool__(self) -> bool:
        return bool(self._trackers)

    def start(self, run: TrackedRun) -> None:
        """Open the trial's run in every tracker."""
        opened = self._runs.setdefault(run.number, {})
        for name, tracker in list(self._trackers.items()):
            handle = self._guarded(name, f"opening the run of trial {run.number}", lambda t=tracker: t.start(run))
            if handle is not None:
                opened[name] = handle

    def log(self, number: int, step: int, metrics: dict[str, float]) -> None:
        """The trial's metrics at `step`, in every tracker."""
        if not metrics:
            return
        for name, handle in list(self._runs.get(number, {}).items()):
            if name in self._trackers:
                self._guarded(name, "logging", lambda n=name, h=handle: self._trackers[n].log(h, step, metrics))

    def finish(self, number: int, outcome: Outcome, step: int) -> None:
        """Close the trial's run in every tracker, with its outcome."""
        for name, handle in self._runs.pop(number, {}).items():
            if name in self._trackers:
                self._guarded(name, "closing", lambda n=name, h=handle: self._trackers[n].finish(h, outcome, step))

    def close(self) -> None:
        """Close every run still open (the run was stopped) as interrupted."""
        for number in list(self._runs):
            self.finish(number, Outcome.INTERRUPTED, 0)

    def _guarded(self, name: str, what: str, call: Callable[[], Any]) -> Any:
        """call(), or None after a failure: then the tracker is left out, and said so once."""
        try:
            return call()
        except Exception as exc:  # a tracker is never worth a study: Optuna holds the results
            self._trackers.pop(name, None)
            first = (str(exc).splitlines() or [""])[0][:200]
            note = f"tracker {name} failed while {what} ({type(exc).__name__}: {first}); the run went on without it"
            log.warning("study %s: %s", self.study, note)
            self.notes.add(note)
            return None


__all__ = ["PACKAGES", "TrackedRun", "Trackers", "check_installed", "missing_package"]
