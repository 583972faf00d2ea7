"""The driver: one run of a study. It holds the study's lease, takes its looks one at a time (the pairs of
a look's seeds, then the verdict at that look), and runs each look's pending pairs on one Ray Tune
Tuner, whose searcher is the front and whose results go to the recorder.

Seeds planned in looks (`seeds: {start, max}`) run one look at a time: every pair of a look's seeds,
then the verdict at that look (recomputed from the storage, so a resumed run decides the same), and
the next look's seeds only while it is INCONCLUSIVE.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
import ray
from ray import tune

from sweep import analysis, core, review
from sweep import spec as spec_module
from sweep.errors import StudyBusyError, StudyError
from sweep.results import load_results
from sweep.runner import ray_env
from sweep.runner.front import OptunaFront
from sweep.runner.hooks import CheckpointCallback, FrontSearcher, ProgressCallback, trial_name
from sweep.runner.optuna_study import open_study
from sweep.runner.packing import Packing, population_cap
from sweep.runner.planning import Plan, crashed_pairs, plan
from sweep.runner.progress import Tracker
from sweep.runner.record import Recorder
from sweep.runner.worker import StopBoard, trainable
from sweep.spec import Study
from sweep.store import DriverLease, Store
from sweep.tracking import Trackers, check_installed
from sweep.vocab import DECISIVE


@dataclass(frozen=True)
class RunOptions:
    """How to run a study, as the caller (the CLI) chose: built once, read where each setting is used."""

    address: str | None = None  # the Ray cluster to join ("auto" or HOST:PORT); None: a local Ray on this machine
    storage_path: str | None = None  # Ray Tune's storage (shared storage on a multi-node cluster); None: ROOT/ray
    source: str = ""  # the study file the study came from, stored with it
    replication_of: str | None = None  # the study this run replicates on fresh seeds, or None
    replicate: int | None = None  # which replication it is (1, 2, ...), given with replication_of
    retry_crashed: bool = False  # run again the pairs whose stored trial crashed
    keep_checkpoints: bool = False  # keep each trial's last checkpoint after it is stored
    track: tuple[str, ...] = ()  # trackers to log to besides the study's `tracking:` (not part of its meaning)
    progress: Callable[[Tracker], None] | None = None  # called with the counts as trials report and end

    def __post_init__(self) -> None:
        if (self.replication_of is None) != (self.replicate is None):
            raise ValueError(
                f"`replication_of` and `replicate` go together, but got {self.replication_of!r} and {self.replicate!r}"
            )


@dataclass
class RunSummary:
    """What a run did, for the summary the CLI prints."""

    study_name: str
    planned: int
    completed: int
    pruned: int
    failed: int
    skipped: int  # pairs already finished before this run
    interrupted: int  # trials of an earlier, dead driver that were run again
    unfinished: int  # trials this run left unfinished (stopped with Ctrl-C); run again to resume
    wall_s: float
    trial_seconds: float
    first_step_s: float | None
    best: float | None
    verdict: analysis.VerdictResult | None = None  # the claim's verdict after the run (with its looks)
    crashed: int = 0  # of the failed: trials that ended without a measured outcome (not diverged)
    failures: Counter = field(default_factory=Counter)  # (outcome, reason) -> trials of this run that failed
    crashed_before: Counter = field(default_factory=Counter)  # reason -> pairs that crashed in earlier runs, not rerun
    retried: int = 0  # pairs that crashed in earlier runs, run again (--retry-crashed)
    notes: list[str] = field(default_factory=list)  # what the run wants its user to know


def run(study: Study, *, store: Store, options: RunOptions = RunOptions()) -> RunSummary:
    """Run every pending trial of `study` on Ray Tune, recorded in `store`; resumes what is stored. With
    `options.retry_crashed`, the pairs whose trial crashed run again. A trial interrupted after a checkpoint
    resumes from it; a finished trial's checkpoints are deleted unless `options.keep_checkpoints`.

    With planned looks, the pairs of one look run at a time, and the next look's seeds only while the
    verdict at the looks taken so far is INCONCLUSIVE.

    The run holds the study's driver lease in the storage: while it runs, another driver of the same study
    is refused (StudyBusyError, naming this one); a driver that died is taken over.
    """
    try:  # a Study built in code skips validation; its name becomes a folder under the root
        spec_module.check_study_name(study.name)
    except ValueError as e:
        raise StudyError(f"study name {e}") from None
    with store.lease(study.name) as lease, store.errors():
        summary = _run(study, store, options, lease)
    if lease.lost:
        raise StudyBusyError(
            f"study '{study.name}': this driver stopped beating and another driver took the study over; what this "
            "driver finished is stored"
        )
    return summary


def _run(study: Study, store: Store, options: RunOptions, lease: DriverLease) -> RunSummary:
    """The look loop: each look's pending pairs, then its verdict, until one decides or the looks end."""
    started = time.perf_counter()
    track = [*study.tracking, *(t for t in options.track if t not in study.tracking)]
    check_installed(track)  # before anything is stored: a tracker named but not installed is the user's to fix
    optuna_study = open_study(
        study, store, source=options.source, replication_of=options.replication_of, replicate=options.replicate
    )
    ray_env.quiet_ray()
    ray_env.ensure_ray(options.address)  # once per run, before any look: `gpus: auto` needs the cluster
    study = ray_env.with_gpus(study)  # `gpus: auto` on this cluster, before populations are sized for a device
    looks: list[int | None] = list(study.looks) if study.sequential else [None]
    tracker = Tracker(total=0)
    study, memory = _device_memory(study, tracker)
    retry = crashed_pairs(optuna_study) if options.retry_crashed else set()  # crashed in earlier runs, not this one
    first = plan(study, optuna_study, seeds=looks[0], retry=retry)
    result = None
    trackers = Trackers(track, root=store.root, study=study.name, notes=tracker.notes)
    try:
        for seeds in looks:
            the_plan = first if seeds == looks[0] else plan(study, optuna_study, seeds=seeds, retry=retry)
            if the_plan.pending or the_plan.search_remaining:
                _run_trials(
                    study,
                    optuna_study,
                    store,
                    the_plan,
                    tracker,
                    options=options,
                    lease=lease,
                    memory=memory,
                    trackers=trackers,
                )
            if tracker.done + tracker.failed + tracker.pruned < tracker.total:
                break  # stopped before the end of this look: no look is taken on a part of its pairs
            if study.sequential:
                result = load_results(optuna_study, study=study).verdict
                if result is not None and result.deciding is not None and result.deciding.status in DECISIVE:
                    break
    finally:
        trackers.close()
    results = load_results(optuna_study, study=study)  # what is stored now, read once for the verdict and the note
    if result is None and study.verdict is not None:
        result = results.verdict
    if tracker.total:  # the study's note in optuna-dashboard: outcomes, best, verdict
        review.attach_study_review(study, optuna_study, results=results)
    return _summary(study, tracker, first, result, started)


def _device_memory(study: Study, tracker: Tracker) -> tuple[Study, int | None]:
    """For `population: auto` on GPUs: the device memory each trial's population may fill (populations are
    then sized per network shape to fit it), said in the run's summary. A GPU whose memory cannot be read
    gets the CPU's population size instead, said too."""
    if study.resources.population != "auto" or not study.resources.gpus:
        return study, None
    budget, note = ray_env.gpu_budget(study)
    tracker.notes.add(note)
    if budget is None:
        fallback = study.resources.model_copy(update={"population": core.AUTO_POPULATION_CPU})
        return study.model_copy(update={"resources": fallback}), None
    return study, budget


def _summary(
    study: Study, tracker: Tracker, first: Plan, verdict: analysis.VerdictResult | None, started: float
) -> RunSummary:
    return RunSummary(
        study_name=study.name,
        planned=tracker.total,
        completed=tracker.done,
        pruned=tracker.pruned,
        failed=tracker.failed,
        skipped=first.finished,
        interrupted=first.interrupted,
        unfinished=tracker.total - tracker.done - tracker.failed - tracker.pruned,  # stopped, or never started
        wall_s=time.perf_counter() - started,
        trial_seconds=tracker.trial_seconds,
        first_step_s=tracker.first_step_at - started if tracker.first_step_at else None,
        best=tracker.best,
        verdict=verdict,
        crashed=tracker.crashed,
        failures=tracker.failures,
        crashed_before=first.crashed,
        retried=first.retried,
        notes=sorted(tracker.notes),
    )


def _run_trials(
    study: Study,
    optuna_study: optuna.Study,
    store: Store,
    the_plan: Plan,
    tracker: Tracker,
    *,
    options: RunOptions,
    lease: DriverLease | None = None,
    memory: int | None = None,
    trackers: Trackers | None = None,
) -> None:
    """Run the plan's pending trials on Ray Tune (one Tuner), recording each in Optuna; trials still open
    when Tune stops (Ctrl-C) are marked interrupted. Ray is up: `_run` started or joined it. `memory`: the
    device memory a trial's population may fill, when populations are sized to it."""
    slots = ray_env.slots(study)
    pairs = len(the_plan.pending) + the_plan.search_remaining * len(study.seed_list)
    fits = None if memory is None else {p.key: core.members_that_fit(p.config, memory) for p in the_plan.pending}
    most = population_cap(the_plan.population, pairs, slots)
    packing = Packing.of(the_plan.pending, most=most, slots=slots, fits=fits)
    # members stopped early are posted on a board their workers read at each report
    board, board_name = None, None
    if study.early_stopping is not None:  # a fresh name each time: a killed board's name may not be free yet
        board_name = f"sweep-stop-board-{uuid.uuid4().hex}"
        board = StopBoard.options(name=board_name).remote()
    front = OptunaFront(study, optuna_study, the_plan, packing=packing, lease=lease, board_name=board_name)
    keep = options.keep_checkpoints
    recorder = Recorder(
        study, optuna_study, store.artifact_store(), tracker, stop_board=board, keep_checkpoints=keep, trackers=trackers
    )
    count = front.total
    tracker.total += count
    # Tune lets a custom searcher keep one trial pending at a time, so trial actors would start one
    # after another (~3 s each here); let every slot start its actor at once.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(slots)
    progress = options.progress
    callbacks = [
        ProgressCallback((lambda: progress(tracker)) if progress else None, tracker),
        CheckpointCallback(recorder),
    ]
    tuner = _tuner(study, FrontSearcher(front, recorder), count, callbacks, options.storage_path or str(store.ray_dir))
    try:
        tuner.fit()
    finally:
        if board is not None:
            ray.kill(board)
    # Tune returns early on Ctrl-C (SIGINT): trials still open did not finish in this run
    recorder.close_unfinished()
    if progress:
        progress(tracker)


def _tuner(study: Study, searcher: FrontSearcher, count: int, callbacks: list, storage_path: str) -> tune.Tuner:
    """One Tuner over the study's trainable: `count` Tune trials at most, as many at once as the study allows."""
    resources: dict[str, float] = {"cpu": study.resources.cpus}
    if study.resources.gpus:
        resources["gpu"] = study.resources.gpus
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=count,  # at most: populations hand out several pairs per Tune trial
            max_concurrent_trials=study.resources.max_concurrent,
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=storage_path,
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False, num_to_keep=1),
        ),
    )


__all__ = ["RunOptions", "RunSummary", "run"]
