"""Start-up time of the commands that neither train nor plot, as a user types them, in one run.

Each command runs as its own process through the installed `sweep` console script (interpreter start,
imports, work, exit), from the repository root: one warm-up run each (so the disk cache is warm), then
`--runs` timed runs each, alternating commands so that a burst of load hits them all alike. Reported:
the median wall time, and its ratio to a bare interpreter start (`python -c pass`) measured in the same
run. The heavy libraries a command loaded are listed (read from one more run under
PYTHONPROFILEIMPORTTIME): none of torch, ray or matplotlib may appear.

Two storages: `fresh` (a root with no storage yet, a fresh clone) and `stored` (a storage holding one
study with a verdict, as after the quick start, so that `list` and `claims` read and analyse it).

    python benchmarks/bench_startup.py           # table
    python benchmarks/bench_startup.py --json    # one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = str(Path(sys.executable).parent / "sweep")
HEAVY = ("torch", "ray", "matplotlib", "optuna", "pandas", "scipy", "sqlalchemy", "pydantic")


def commands() -> dict[str, list[str]]:
    studies = sorted(str(p.relative_to(REPO)) for p in (REPO / "studies").glob("*.yaml"))
    return {
        "validate studies/*.yaml": ["validate", *studies],
        "schema": ["schema"],
        "list": ["list"],
        "claims": ["claims"],
    }


def store_one_study(root: Path) -> None:
    """`balance` stored as a finished run with a verdict (made-up values, no training), in root's storage."""
    sys.path[:0] = [str(REPO), str(REPO / "tests" / "sweep")]
    import numpy as np

    from sweep import spec

    from fakes import store_design  # the tests' hand-built stored studies

    rng = np.random.default_rng(0)
    study = spec.load(REPO / "studies" / "balance.yaml")

    def value(trial: spec.TrialSpec) -> dict[str, float]:
        return {"eval/fd": 40 + (8 if trial.config_id == "d_width=1.0" else 0) + rng.normal(), "eval/cat_acc": 0.6}

    root.mkdir(parents=True, exist_ok=True)
    store_design(study, value, storage=f"sqlite:///{root / 'sweep.db'}")


def once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return took


def loaded(argv: list[str], env: dict[str, str]) -> list[str]:
    """The heavy top-level packages a run of argv imported."""
    proc = subprocess.run(argv, cwd=REPO, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True)
    names = {line.rpartition("|")[2].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    return [name for name in HEAVY if name in names]


def measure(runs: int) -> dict[str, object]:
    results: dict[str, object] = {"runs": runs, "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"fresh": Path(tmp) / "fresh", "stored": Path(tmp) / "stored"}
        store_one_study(roots["stored"])
        cases = {"python -c pass": ([sys.executable, "-c", "pass"], None)}
        for state, root in roots.items():
            for name, args in commands().items():
                cases[f"{name} ({state})" if name in ("list", "claims") else name] = ([SWEEP, *args], root)
        env_of = {
            label: {**os.environ, "SWEEP_ROOT": str(root), "COLUMNS": "80"} if root else dict(os.environ)
            for label, (_, root) in cases.items()
        }
        for label, (argv, _) in cases.items():  # warm-up
            once(argv, env_of[label])
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(runs):
            for label, (argv, _) in cases.items():
                times[label].append(once(argv, env_of[label]))
        reference = statistics.median(times["python -c pass"])
        rows = []
        for label, (argv, _) in cases.items():
            median = statistics.median(times[label])
            rows.append(
                {
                    "command": label,
                    "median_s": round(median, 3),
                    "min_s": round(min(times[label]), 3),
                    "ratio_to_python": round(median / reference, 1),
                    "loads": loaded(argv, env_of[label]) if argv[0] == SWEEP else [],
                }
            )
    results["commands"] = rows
    results["load_after"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = measure(args.runs)
    if args.json:
        print(json.dumps(results))
        return
    load = ", ".join(f"{x:.2f}" for x in results["load_before"])  # type: ignore[union-attr]
    print(f"median of {args.runs} process runs each; load average before: {load} ({os.cpu_count()} CPUs)")
    print(f"{'command':<34} {'median s':>9} {'min s':>7} {'x python':>9}  heavy libraries loaded")
    for row in results["commands"]:  # type: ignore[union-attr]
        loads = ", ".join(row["loads"]) or "-"
        print(
            f"{row['command']:<34} {row['median_s']:>9.3f} {row['min_s']:>7.3f} {row['ratio_to_python']:>9.1f}  {loads}"
        )


if __name__ == "__main__":
    main()
