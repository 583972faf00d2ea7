"""The sweep layer's one door into infogan_core: the configuration class and its field declarations,
the metric table, what each dataset provides (and fetching IDX files), and training itself.

Every other sweep module reaches the core through these names, never through the core's internals.
Importing this module loads no torch: `train`, `curves_png` and `set_threads` load it on first use,
which happens in the Ray worker that trains, not in the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import infogan_core
from infogan_core import (
    DATASETS,
    MEMBER_FIELDS,
    METRIC_NAMES,
    METRICS,
    NUMERICS,
    CheckpointError,
    ConfigError,
    DivergedError,
    InfoGANError,
    TrainConfig,
    field_docs,
    field_names,
    field_schema,
    inexact_population,
    measured_metrics,
    population_key,
)
from infogan_core.cost import pair_cost, population_overhead
from infogan_core.data import (
    IDX_SOURCES,
    check_dataset,
    dataset_digest,
    fetch_idx,
    is_data_path,
    record_dataset,
)
from infogan_core.errors import DataError
from sweep.provenance import cpu_device

if TYPE_CHECKING:
    from infogan_core import TrainResult


def caveats(metrics: object) -> list[str]:
    """What a reader must know about these metrics (e.g. that mi/cont can be negative), one line each."""
    # each distinct line once: several metrics share one (eval/precision, eval/recall, ...)
    return list(dict.fromkeys(METRICS[m].caveat for m in metrics if m in METRICS and METRICS[m].caveat))  # type: ignore[attr-defined]


def train(
    cfg: TrainConfig,
    *,
    report: Callable[[int, dict[str, float]], bool | None] | None = None,
    image_dir: str | Path | None = None,
) -> TrainResult:
    """Train one run of `cfg` (the core's `train`, loaded with torch on first use)."""
    return infogan_core.train(cfg, report=report, image_dir=image_dir)


def train_population(
    cfgs: Sequence[TrainConfig],
    *,
    report: Callable[[int, dict[int, dict[str, float]]], Iterable[int] | None] | None = None,
    image_dirs: Sequence[str | Path] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> list[TrainResult | DivergedError]:
    """Train K runs of one network shape as one stacked model (the core's `train_population`): member k's
    numbers are those of `train(cfgs[k])`; each result is a TrainResult or the DivergedError that stopped it.

    With `checkpoint_dir`, the whole state is saved there every `checkpoint_every` steps (None: every
    CHECKPOINT_EVERY_S seconds of training), `on_checkpoint(step)` is called after each save, and a state
    already there is resumed: the numbers are those of an uninterrupted run."""
    from infogan_core import training  # lazy: torch loads in the worker

    checkpoints = None
    if checkpoint_dir is not None:
        checkpoints = training.Checkpoints(checkpoint_dir, checkpoint_every, on_checkpoint, every_s=CHECKPOINT_EVERY_S)
    return training.train_population(cfgs, report=report, image_dirs=image_dirs, checkpoints=checkpoints)


CHECKPOINT_EVERY_S = 300.0  # a trial's default checkpoint interval: five minutes of training


AUTO_POPULATION_CPU = 16  # what bench_population.py measured to pay off on a CPU
AUTO_POPULATION_GPU_MOST = 1024  # the largest population bench_population.py --device cuda times


def auto_population(on_gpu: bool) -> int:
    """Members per population when a study says `population: auto`: 16 on a CPU; on a GPU, at most 1024,
    and for each network shape as many as fit in the device's memory (`members_that_fit`)."""
    return AUTO_POPULATION_GPU_MOST if on_gpu else AUTO_POPULATION_CPU


def members_that_fit(cfg: TrainConfig, budget_bytes: int) -> int:
    """How many members of cfg's shape train in `budget_bytes` of device memory (infogan_core.cost's
    estimate of a member's), at least 1."""
    from infogan_core.cost import member_bytes  # lazy: the driver reads it only for populations sized by a GPU

    return max(1, int(budget_bytes // member_bytes(cfg)))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is a device running out of memory (torch.OutOfMemoryError, CUDA's included)."""
    import torch  # lazy: only a process that trains loads torch

    return isinstance(exc, torch.OutOfMemoryError)


def release_device_memory() -> None:
    """Hand the memory of tensors no longer referenced back to the device (after an out-of-memory error)."""
    import gc  # lazy: only after a device ran out of memory

    import torch  # lazy: only a process that trains loads torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def curves_png(history: Sequence[dict[str, float]], path: Path) -> Path:
    """The training-curves figure of a history (for runs that ended without their other figures)."""
    from infogan_core.images import curves  # lazy: matplotlib and torch load in the worker, not the driver

    return curves(history, path)


def set_threads(count: int) -> None:
    """Intra-op threads torch may use in this process (a trial's share of the CPU)."""
    import torch  # lazy: only a process that trains loads torch

    torch.set_num_threads(max(1, count))


def device_description(name: str) -> str:
    """What a run with `device: name` trains on here: 'GPU <name>', or 'CPU <model>, <n> threads, <SIMD path>'
    (torch's intra-op threads in this process, and the capability its kernels use: AVX2 and AVX-512 round
    differently, so a run's numbers belong to one)."""
    import torch  # lazy: only a process that trains loads torch

    from infogan_core.training import resolve_device  # lazy: the training module loads torch

    device = resolve_device(name)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"{cpu_device(torch.get_num_threads())}, {torch.backends.cpu.get_cpu_capability()}"


__all__ = [
    "DATASETS",
    "IDX_SOURCES",
    "MEMBER_FIELDS",
    "METRICS",
    "METRIC_NAMES",
    "NUMERICS",
    "CheckpointError",
    "DataError",
    "check_dataset",
    "dataset_digest",
    "is_data_path",
    "record_dataset",
    "ConfigError",
    "DivergedError",
    "InfoGANError",
    "TrainConfig",
    "caveats",
    "curves_png",
    "device_description",
    "field_docs",
    "field_names",
    "fetch_idx",
    "field_schema",
    "CHECKPOINT_EVERY_S",
    "AUTO_POPULATION_CPU",
    "AUTO_POPULATION_GPU_MOST",
    "auto_population",
    "members_that_fit",
    "inexact_population",
    "is_out_of_memory",
    "measured_metrics",
    "pair_cost",
    "population_overhead",
    "population_key",
    "release_device_memory",
    "set_threads",
    "train",
    "train_population",
]
