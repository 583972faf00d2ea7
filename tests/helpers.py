"""What several test modules share: the real `sweep` console script and the environment it runs in.

Importable as `helpers` from every test module (pytest puts `tests/` on sys.path for its conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The first shipped library, frozen: the sweep tests' stored fixtures are built from these definitions, so
# redesigning a shipped study does not change the tests of the console, reports and tour.
STUDIES_V1 = REPO / "tests" / "sweep" / "studies_v1"
SWEEP = str(Path(sys.executable).parent / "sweep")  # the console script installed beside this interpreter


# tiny configurations (TrainConfig keyword arguments): the tests need a real loop, not a good model
TINY_RING = {
    "dataset": "ring8",
    "arch": "mlp",
    "cat_codes": [8],
    "cont_codes": 0,
    "noise_dim": 4,
    "batch_size": 32,
    "g_width": 0.25,
    "d_width": 0.25,
    "eval_samples": 100,
    "device": "cpu",
}
TINY_DIGITS = {
    "dataset": "digits",
    "arch": "conv",
    "noise_dim": 8,
    "batch_size": 16,
    "g_width": 0.1,
    "d_width": 0.1,
    "eval_samples": 100,
    "device": "cpu",
}


def sweep_env(columns: int = 200, **extra: str) -> dict[str, str]:
    """The environment every `sweep` subprocess of the tests runs in: a local Ray without token prompts,
    unbuffered output, a terminal width, and no SWEEP_DEBUG (errors stay one line)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1", "COLUMNS": str(columns), **extra}
    env.pop("SWEEP_DEBUG", None)
    return env


def run_sweep(
    *args: str, cwd: Path | None = None, timeout: float = 120, columns: int = 200
) -> subprocess.CompletedProcess:
    """`sweep ARGS` through the real console script; output captured as text."""
    return subprocess.run(
        [SWEEP, *args], capture_output=True, text=True, cwd=cwd, env=sweep_env(columns), timeout=timeout
    )


def start_sweep(*args: str, **popen: Any) -> subprocess.Popen:
    """`sweep ARGS` started in the background (a driver to kill, a server to stop)."""
    return subprocess.Popen([SWEEP, *args], env=sweep_env(), **popen)


def lease_holder(url: str, study: str) -> tuple[str, int] | None:
    """(host, pid) of the driver whose lease on `study` is in the storage at `url`, read as any client would."""
    import sqlalchemy  # lazy: only the tests of the driver lease read its table

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        table = sqlalchemy.Table("sweep_driver_leases", sqlalchemy.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            row = conn.execute(sqlalchemy.select(table.c.host, table.c.pid).where(table.c.study_name == study)).first()
    finally:
        engine.dispose()
    return None if row is None else (row.host, row.pid)


def wait_for(predicate: Callable[[], bool], timeout: float, *, interval: float = 0.3) -> bool:
    """Poll `predicate` every `interval` seconds until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


__all__ = [
    "REPO",
    "SWEEP",
    "TINY_DIGITS",
    "TINY_RING",
    "lease_holder",
    "run_sweep",
    "start_sweep",
    "sweep_env",
    "wait_for",
]
