"""sweep: ablation and hyperparameter sweeps for InfoGAN, from YAML study files.

The Python API (docs/python-api.md): `load(name, root=...)` reads a stored study and `run(path, ...)` runs a
study file; both return its `StudyResults` (`.frame`, `.effects`, `.verdict`, `.study`). The names load on
first use, so that `import sweep` (and the CLI, which imports this package) loads no pandas, Optuna or Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweep.errors import StudyError, SweepError
from sweep.lazy import LazyImport

if TYPE_CHECKING:
    from sweep.api import StudyResults, load, run

_api = LazyImport("sweep.api")


def __getattr__(name: str) -> Any:
    if name in ("StudyResults", "load", "run"):
        return getattr(_api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["StudyError", "StudyResults", "SweepError", "load", "run"]
