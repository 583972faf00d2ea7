"""What "bit for bit" means across CPUs: torch's SIMD path (ATEN_CPU_CAPABILITY: default, avx2, avx512)
rounds differently, so a run's numbers belong to one machine and capability. A checkpoint taken under
one capability resumes under another and finishes correctly, but not with the numbers of a run never
interrupted there; under the same capability it does (test_core_population.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import REPO, TINY_RING

pytestmark = pytest.mark.usefixtures("core_env")

# one script, three jobs: an uninterrupted run, a run that dies after its step-30 checkpoint, a resume
SCRIPT = textwrap.dedent(
    """
    import json, math, sys
    import torch
    from infogan_core import TrainConfig
    from infogan_core.training import Checkpoints, train_population

    torch.set_num_threads(1)
    job, folder, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    cfg = TrainConfig(**config)
    checkpoints = Checkpoints(folder, every=30) if job != "whole" else None
    stop = (lambda step, rows: list(rows) if step >= 40 else []) if job == "die" else None
    (result,) = train_population([cfg], report=stop, checkpoints=checkpoints)
    print(json.dumps({
        "capability": torch.backends.cpu.get_cpu_capability(),
        "steps_run": result.steps_run,
        "history": result.history,
        "finite": all(math.isfinite(v) for row in result.history for v in row.values()),
    }))
    """
)
CONFIG = {**TINY_RING, "steps": 80, "report_every": 10, "eval_every": 40}


def _job(job: str, folder: Path, capability: str) -> dict:
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, job, str(folder), json.dumps(CONFIG)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _numbers(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time/steps_per_s"} for row in history]


@pytest.mark.slow
def test_a_checkpoint_resumes_under_another_cpu_capability_correctly_but_not_identically(tmp_path: Path) -> None:
    first = _job("die", tmp_path, "avx2")  # saved at step 30, stopped at 40, as a kill would
    if first["capability"] != "AVX2":
        pytest.skip(reason=f"this CPU has no AVX2 (torch runs {first['capability']})")
    assert first["steps_run"] == 40 and (tmp_path / "state.pt").is_file()
    resumed = _job("resume", tmp_path, "default")  # another machine: no SIMD at all
    assert resumed["capability"] == "DEFAULT"
    whole_avx2 = _job("whole", tmp_path / "whole", "avx2")
    whole_default = _job("whole", tmp_path / "whole", "default")

    # it finishes, with finite numbers and one history row per report
    assert resumed["steps_run"] == 80 and resumed["finite"]
    assert [row["step"] for row in resumed["history"]] == list(range(10, 81, 10))
    # the rows before the checkpoint are the first machine's, as saved
    assert _numbers(resumed["history"])[:3] == _numbers(whole_avx2["history"])[:3]
    # the rounding of each capability shows: the two machines' whole runs differ, and the resumed run is
    # neither of them after the break (the check fails if the capability had no effect)
    assert _numbers(whole_avx2["history"]) != _numbers(whole_default["history"])
    assert _numbers(resumed["history"])[3:] != _numbers(whole_avx2["history"])[3:]
    assert _numbers(resumed["history"])[3:] != _numbers(whole_default["history"])[3:]


def test_a_trial_records_the_simd_path_its_numbers_came_from() -> None:
    code = "from sweep.core import device_description; print(device_description('cpu'))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("CPU ") and proc.stdout.strip().endswith(", DEFAULT"), proc.stdout
