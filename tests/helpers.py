"""What several test modules share: the real `sweep` console script and the environment it runs in.

Importable as `helpers` from every test module (pytest puts `tests/` on sys.path for its conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SWEEP = str(Path(sys.executable).parent / "sweep")  # the console script installed beside this interpreter


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


__all__ = ["REPO", "SWEEP", "run_sweep", "start_sweep", "sweep_env"]
