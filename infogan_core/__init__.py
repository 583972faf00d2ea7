"""A minimal PyTorch InfoGAN where every documented training sensitivity is a knob.

Public surface: TrainConfig and its field declarations, the dataset and metric registries, train and
TrainResult, and the errors. Importing the package (or `infogan_core.config`) loads no torch: `train`
and `TrainResult` are imported on first use. This package imports torch, numpy, scipy, scikit-learn
and matplotlib only - never the sweep layer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from infogan_core.config import (
    MEMBER_FIELDS,
    NUMERICS,
    TrainConfig,
    field_docs,
    field_names,
    field_schema,
    inexact_population,
    population_key,
)
from infogan_core.data import DATASETS, Dataset, load_dataset
from infogan_core.errors import CheckpointError, ConfigError, DataError, DivergedError, InfoGANError
from infogan_core.metrics import METRIC_NAMES, METRICS, measured_metrics

if TYPE_CHECKING:
    from infogan_core.training import TrainResult, train

# names whose modules import torch: loaded when first asked for (PEP 562)
_TORCH_NAMES = {"train": "infogan_core.training", "TrainResult": "infogan_core.training"}


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        value = getattr(importlib.import_module(_TORCH_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'infogan_core' has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "MEMBER_FIELDS",
    "METRICS",
    "NUMERICS",
    "METRIC_NAMES",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Dataset",
    "DivergedError",
    "InfoGANError",
    "TrainConfig",
    "TrainResult",
    "field_docs",
    "field_names",
    "field_schema",
    "load_dataset",
    "inexact_population",
    "measured_metrics",
    "population_key",
    "train",
]
