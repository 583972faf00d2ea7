"""A module that imports itself on first use, so that commands which never touch it never pay for it.

The same mechanism as Optuna's `_LazyImport` (optuna/_imports.py), the one this project uses for import
cost: `stats = LazyImport("scipy.stats")` at the top of a module costs nothing until `stats.ttest_1samp`
is first looked up. Commands that only read study files (`validate`, `schema`) or a storage without
analysing it (`list`) start in a fraction of a second because of it.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyImport(types.ModuleType):
    """Stands in for module `name` and imports it on the first attribute looked up."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._name = name

    def _load(self) -> types.ModuleType:
        module = importlib.import_module(self._name)
        self.__dict__.update(module.__dict__)
        return module

    def __getattr__(self, item: str) -> Any:
        return getattr(self._load(), item)


__all__ = ["LazyImport"]
