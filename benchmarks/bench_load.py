"""Load: a study of many short trials through the real CLI, and what reading it back costs.

Runs `sweep run` on a grid of 20-step `mlp` runs on ring8 (lr_g x lr_d levels x seeds, one network shape,
so populations of up to 16 pairs), at each requested size, in a fresh root each; then times `sweep show`,
`sweep report` and the dashboard's study page (its API call, as the page makes it) on the stored study.
Reported per size: the run's wall time and the driver's cost per trial (wall time over trials, and the
driver process's CPU seconds per trial), the driver's peak memory (RSS of the `sweep run` process tree's
driver, sampled), and each reading command's wall time. Per-trial costs that grow with the size are
what grows faster than linearly.

    python benchmarks/bench_load.py --trials 500 2000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

SWEEP = str(Path(sys.executable).parent / "sweep")
SEEDS = 8


def study_file(folder: Path, trials: int) -> Path:
    """A grid of lr_g x lr_d levels with SEEDS seeds each: `trials` trials (a multiple of SEEDS)."""
    configs = max(1, trials // SEEDS)
    lr_d = [round(1e-4 * (1 + i), 6) for i in range(10)]
    lr_g = [round(1e-4 * (1 + i), 6) for i in range(max(1, configs // len(lr_d)))]
    study = {
        "name": f"load{trials}",
        "kind": "grid",
        "base": {
            "dataset": "ring8",
            "arch": "mlp",
            "cat_codes": [8],
            "cont_codes": 0,
            "noise_dim": 4,
            "batch_size": 32,
        },
        "factors": {"lr_g": lr_g, "lr_d": lr_d},
        "seeds": SEEDS,
        "objectives": ["eval/modes"],
        "budget": {"steps": 20, "report_every": 10, "eval_every": 20},
        "resources": {"cpus": 1, "population": 16},
    }
    path = folder / f"load{trials}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "COLUMNS": "120"}


def timed_run(path: Path, root: Path) -> dict[str, float]:
    """`sweep run`: wall seconds, the driver's CPU seconds and its peak RSS (MB), sampled every 0.2 s."""
    started = time.perf_counter()
    process = subprocess.Popen([SWEEP, "run", str(path), "--root", str(root)], env=_env(), stdout=subprocess.DEVNULL)
    driver = psutil.Process(process.pid)
    peak, cpu = 0.0, 0.0
    while process.poll() is None:
        try:
            peak = max(peak, driver.memory_info().rss / 2**20)
            times = driver.cpu_times()
            cpu = times.user + times.system
        except psutil.Error:
            pass
        time.sleep(0.2)
    if process.returncode != 0:
        raise SystemExit(f"sweep run failed ({process.returncode})")
    return {"run_s": time.perf_counter() - started, "driver_cpu_s": cpu, "driver_peak_mb": peak}


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([SWEEP, *args], env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def dashboard_page(name: str, root: Path) -> float:
    """Seconds for the dashboard's study page data (GET /api/studies/<id>), as its page loads it."""
    process = subprocess.Popen(
        [SWEEP, "dashboard", name, "--port", "0", "--root", str(root)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        found: list[re.Match] = []
        ready = threading.Event()

        def read() -> None:
            for line in process.stdout:
                if m := re.search(r"http://127\.0\.0\.1:(\d+)/dashboard/studies/(\d+)", line):
                    found.append(m)
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120):
            raise SystemExit("the dashboard did not start")
        url = f"http://127.0.0.1:{found[0].group(1)}/api/studies/{found[0].group(2)}"
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=600) as response:
            response.read()
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(60)


def measure(trials: int, folder: Path) -> dict[str, float]:
    path = study_file(folder, trials)
    root = folder / f"runs{trials}"
    name = f"load{trials}"
    found: dict[str, float] = {"trials": trials, **timed_run(path, root)}
    found["run_s_per_trial"] = found["run_s"] / trials
    found["driver_cpu_ms_per_trial"] = 1000 * found["driver_cpu_s"] / trials
    found["show_s"] = timed(["show", name, "--root", str(root)])
    found["report_s"] = timed(["report", name, "--root", str(root), "-o", str(folder / f"{name}.html")])
    found["dashboard_page_s"] = dashboard_page(name, root)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[500, 2000], help="study sizes (multiples of 8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sweep-load-"))
    try:
        rows = [measure(n, folder) for n in args.trials]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps({"rows": rows}, indent=1))
        return
    for row in rows:
        print(", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
