"""A minimal PyTorch InfoGAN where every documented training sensitivity is a knob.

Public surface: TrainConfig, train, TrainResult, the dataset and metric registries, and the errors.
This package imports torch, numpy, scipy, scikit-learn and matplotlib only - never the sweep layer.
"""

from __future__ import annotations

from infogan_core.config import TrainConfig, field_docs, field_names
from infogan_core.data import DATASETS, Dataset, load_dataset
from infogan_core.errors import ConfigError, DataError, DivergedError, InfoGANError
from infogan_core.metrics import METRIC_NAMES, METRICS
from infogan_core.train import TrainResult, train

__all__ = [
    "DATASETS",
    "METRICS",
    "METRIC_NAMES",
    "ConfigError",
    "DataError",
    "Dataset",
    "DivergedError",
    "InfoGANError",
    "TrainConfig",
    "TrainResult",
    "field_docs",
    "field_names",
    "load_dataset",
    "train",
]
