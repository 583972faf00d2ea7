"""Ray for a run: joining a cluster or starting a local instance that listens on loopback only, quieting
Tune's noise, and how many trials fit on the cluster at once."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import ray
import ray._private.ray_constants as ray_constants

from sweep.errors import SweepError
from sweep.spec import GPUS_PER_DEVICE, Study


def quiet_ray() -> None:
    """Tune's per-result files are off (the Optuna storage is the record, see benchmarks/), and its
    warnings about files it was told not to write, and similar, are noise here."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # eval metrics arrive later
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    for name in ("ray.tune", "ray.train", "ray.air", "ray._private", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)


LOOPBACK = "127.0.0.1"  # the address a local Ray instance listens on: nothing outside this machine reaches it


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Join `address` (a Ray cluster, or "auto"), or start a local Ray on this machine's cores that listens on
    the loopback interface only. Ray's token authentication stays as Ray sets it up; the banner it prints
    about it at every start ("Token authentication is enabled...", which users read as a to-do) does not."""
    if ray.is_initialized():
        return
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
        return
    # ray.init turns a loopback node address into this machine's network address (so that other nodes
    # could join), unless Ray runs single-node, as it does on macOS: then its GCS, raylet and workers bind
    # the loopback interface. That switch is below Ray's public API, hence set only around this call.
    clustered = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK, **kwargs)  # never a found cluster
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clustered


def gpus_per_trial(study: Study, resources: Mapping[str, float]) -> float:
    """The GPUs each trial asks Ray for: `resources.gpus` as written, or for `auto` none on a cluster without
    GPUs, else a share of one GPU so that up to GPUS_PER_DEVICE populations train on each GPU at once (their
    kernel launches overlap), as many as the CPU slots (and max_concurrent) allow."""
    wanted = study.resources.gpus
    if wanted != "auto":
        return float(wanted)
    gpus = resources.get("GPU", 0)
    if gpus <= 0:
        return 0.0
    cpu_slots = max(1, int(resources.get("CPU", 1) // study.resources.cpus))
    if study.resources.max_concurrent:
        cpu_slots = min(cpu_slots, study.resources.max_concurrent)
    return 1.0 / max(1, min(GPUS_PER_DEVICE, cpu_slots // max(1, int(gpus))))


def with_gpus(study: Study) -> Study:
    """The study with `gpus: auto` resolved on the cluster Ray is connected to (what its trials ask for)."""
    gpus = gpus_per_trial(study, ray.cluster_resources())
    return study.model_copy(update={"resources": study.resources.model_copy(update={"gpus": gpus})})


def slots(study: Study) -> int:
    """How many trials of this study can run at once on the cluster Ray is connected to."""
    resources = ray.cluster_resources()
    fit = int(resources.get("CPU", 1) // study.resources.cpus)
    gpus = gpus_per_trial(study, resources)
    if gpus:
        if resources.get("GPU", 0) < gpus:  # Ray would wait for it forever
            raise SweepError(
                f"study {study.name!r} asks for {gpus:g} GPU per trial (resources.gpus) and the Ray cluster has "
                f"{resources.get('GPU', 0):g}: run it on a machine with a GPU, or with --gpus auto (or "
                "resources.gpus: 0 in a copy of the study file)"
            )
        fit = min(fit, int(resources.get("GPU", 0) // gpus))
    if study.resources.max_concurrent:
        fit = min(fit, study.resources.max_concurrent)
    return max(1, fit)


TRIAL_RESERVE_BYTES = 2**30  # what a trial's process holds on its GPU besides the population: CUDA context, data


@ray.remote(num_cpus=0)
def _free_gpu_memory() -> tuple[int, int] | str:
    """(free, total) bytes of the GPU this task was given, or why they cannot be read."""
    try:
        import torch  # lazy: a GPU worker's import; the driver never loads torch
    except ImportError as exc:
        return f"torch does not import there ({exc})"
    if not torch.cuda.is_available():
        return "torch there sees no CUDA device"
    free, total = torch.cuda.mem_get_info()
    return int(free), int(total)


def gpu_budget(study: Study, timeout_s: float = 120.0) -> tuple[int | None, str]:
    """Device memory one trial's population may fill: a GPU's free memory (read by a task on one of the
    cluster's GPUs) times the share of it the trial asks for, less TRIAL_RESERVE_BYTES; with a line for
    the run's summary. None, and why, when it cannot be read (the population then gets the CPU's size)."""
    share = float(study.resources.gpus)
    try:
        got = ray.get(_free_gpu_memory.options(num_gpus=share).remote(), timeout=timeout_s)
    except Exception as exc:  # a GPU Ray lists but no worker can reach within the timeout
        got = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if isinstance(got, str):
        return None, f"population: auto could not read a GPU's free memory ({got}): populations of at most 16"
    free, total = got
    budget = max(0, int(free * min(share, 1.0)) - TRIAL_RESERVE_BYTES)
    return budget, (
        f"population: auto sized from a GPU's free memory ({free / 2**30:.1f} of {total / 2**30:.1f} GiB, "
        f"{budget / 2**30:.1f} GiB a trial)"
    )


__all__ = [
    "LOOPBACK",
    "TRIAL_RESERVE_BYTES",
    "ensure_ray",
    "gpu_budget",
    "gpus_per_trial",
    "quiet_ray",
    "slots",
    "with_gpus",
]
