"""The README's quick start and tour, the CLI as a new user meets it: word for word, in a fresh folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, STUDIES_V1, SWEEP, sweep_env

README = (REPO / "README.md").read_text()
VENV_BIN = Path(SWEEP).parent


def bash_block(section: str) -> list[str]:
    """The commands of the first ```bash block under the README heading `section`."""
    start = README.index(f"## {section}")
    text = README[start : README.index("\n## ", start + 1)]
    block = text[text.index("```bash\n") + len("```bash\n") :]
    return [line for line in block[: block.index("```")].splitlines() if line.strip()]


def test_the_quick_start_leaves_sweep_on_path_before_any_command_uses_it():
    quick = bash_block("Quick start")
    first_bare = next(i for i, line in enumerate(quick) if line.startswith("sweep "))
    activate = next(i for i, line in enumerate(quick) if line.startswith("source .venv/bin/activate"))
    assert activate < first_bare and quick[0].startswith("python3 -m venv .venv && .venv/bin/pip install")
    # activating a virtual environment with this project installed puts its `sweep` first on PATH
    proc = subprocess.run(
        ["bash", "-c", f"source {VENV_BIN / 'activate'} && command -v sweep"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == SWEEP, (proc.stdout, proc.stderr)
    # CI runs the README's test command as written
    assert "```bash\n.venv/bin/python -m pytest -q\n```" in README


def test_the_tour_names_every_command():
    from sweep import cli

    commands = {c.name or c.callback.__name__ for c in cli.app.registered_commands} - {"fetch"}  # needs a network
    toured = {line.split()[1] for line in bash_block("A tour of the CLI")}
    assert commands <= toured, commands - toured


@pytest.fixture
def fresh_clone(tmp_path: Path, stored: Path) -> Path:
    """A folder as after the quick start: the shipped studies, and a storage in ./runs where `balance` and its
    replication have run (hand-built: the tour's `sweep run` lines take minutes; they are planned here)."""
    # the study files the storage was built from (the first library, frozen in tests/sweep/studies_v1): the
    # tour's commands read them beside that storage
    shutil.copytree(STUDIES_V1, tmp_path / "studies")
    shutil.copytree(REPO / "studies" / "paper", tmp_path / "studies" / "paper")  # new since; none of it stored
    shutil.copytree(stored, tmp_path / "runs")
    return tmp_path


@pytest.mark.slow
def test_the_tour_runs_word_for_word(fresh_clone: Path):
    env = sweep_env(columns=80) | {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SWEEP_ROOT", None)
    ran = []
    for line in bash_block("A tour of the CLI"):
        command = line.split("#")[0].strip()
        if command.startswith("sweep run ") and "--dry-run" not in command:
            command += " --dry-run"  # runs take minutes: their plan shows the same overrides are valid
        if command.startswith("sweep dashboard "):
            _serves(command, fresh_clone, env)
            continue
        proc = subprocess.run(
            ["bash", "-c", command], cwd=fresh_clone, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
        ran.append(command)
    assert len(ran) >= 15
    assert (fresh_clone / "reports" / "balance.html").stat().st_size > 10_000
    assert len((fresh_clone / "balance.csv").read_text().splitlines()) == 16  # a header and 15 trials
    assert "step,metric,value" in (fresh_clone / "balance_curves.csv").read_text().splitlines()[0]
    assert "properties" in json.loads((fresh_clone / "study.schema.json").read_text())


def _serves(command: str, cwd: Path, env: dict[str, str]) -> None:
    """A server command: it prints its address, then stops on Ctrl-C (on a free port, not 8080)."""
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command} --port 0"], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True
    )
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            if m := re.search(r"http://127\.0\.0\.1:\d+/dashboard/studies/\d+", line):
                found.append(m.group(0))
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120), command
        with urllib.request.urlopen(found[0], timeout=30) as page:  # it serves the study's page
            assert page.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0  # it stops in ~1 s; the margin is for the other test worker's load
