"""Where a result came from: the project's version and git commit, the library versions, the device.

Recorded per study by the driver and per trial by the worker that trained it, so that a reader can
trace every number to the code and machine that produced it. Reading it loads no library: versions
come from the installed packages' metadata, the device from the operating system (and, in a worker
that trains on a GPU, from torch, which that worker has loaded already).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"  # a fact that cannot be read here (outside a git checkout, a package not installed)
LIBRARIES = ("torch", "optuna", "ray")  # whose versions a result depends on, besides Python and this project
PROJECT = "sweep"  # the distribution this package is installed as
CHECKOUT = Path(__file__).resolve().parents[1]  # the folder a git checkout of this project has at its root


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(CHECKOUT), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout this package runs from; (UNKNOWN, None) outside a git checkout of it
    (an installed wheel, or a copy inside some other repository). Dirty: tracked files changed since it."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != CHECKOUT:
        return UNKNOWN, None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return UNKNOWN, None
    return commit, bool(status)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or UNKNOWN


def cpu_device(threads: int | None = None) -> str:
    """'CPU <model>, <n> threads': the threads a process computes with (default: the machine's logical CPUs)."""
    threads = threads if threads is not None else os.cpu_count()
    return f"CPU {cpu_model()}, {threads} thread{'s' if threads != 1 else ''}"


def collect(device: str) -> dict[str, Any]:
    """The provenance record: project version, git commit and dirty flag, library and Python versions, device."""
    commit, dirty = git_state()
    return {
        "version": _version(PROJECT),
        "commit": commit,
        "dirty": dirty,
        **{name: _version(name) for name in LIBRARIES},
        "python": platform.python_version(),
        "device": device,
    }


def code_text(record: dict[str, Any]) -> str:
    """'sweep 0.1.0, git 1a2b3c4d5e6f (uncommitted changes)': what code ran."""
    commit = record.get("commit") or UNKNOWN
    if commit == UNKNOWN:
        where = "git commit unknown (not run from a git checkout)"
    else:
        where = f"git {commit[:12]}" + {True: " (uncommitted changes)", False: " (clean)"}.get(record.get("dirty"), "")
    return f"{PROJECT} {record.get('version', UNKNOWN)}, {where}"


def libraries_text(record: dict[str, Any]) -> str:
    """'torch 2.13.0, optuna 5.0.0, ray 2.60.0, Python 3.11.7'."""
    return ", ".join([*(f"{n} {record.get(n, UNKNOWN)}" for n in LIBRARIES), f"Python {record.get('python', UNKNOWN)}"])


def text(record: dict[str, Any]) -> str:
    """The whole record in one line."""
    return f"{code_text(record)}; {libraries_text(record)}; {record.get('device', UNKNOWN)}"


def summary(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What several trials ran on, as (what, text) rows: each distinct code, libraries and device, with how
    many trials had it (so that a study resumed on other code or another machine shows it)."""
    rows = []
    for what, describe in (("code", code_text), ("libraries", libraries_text), ("device", _device)):
        seen: dict[str, int] = {}
        for record in records:
            key = describe(record)
            seen[key] = seen.get(key, 0) + 1
        if len(seen) == 1:
            rows.append((what, next(iter(seen))))
        elif seen:
            rows.append((what, "; ".join(f"{k} ({n} trials)" for k, n in seen.items())))
    return rows


def _device(record: dict[str, Any]) -> str:
    return str(record.get("device", UNKNOWN))


__all__ = [
    "LIBRARIES",
    "UNKNOWN",
    "code_text",
    "collect",
    "cpu_device",
    "cpu_model",
    "git_state",
    "libraries_text",
    "summary",
    "text",
]
