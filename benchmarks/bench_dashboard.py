"""The dashboard's study page on studies of many noted trials: optuna-dashboard's own serializer against the
same page with its per-trial lookups indexed (sweep/dashboard_index.py), in one run.

Builds, per size, a SQLite study of N finished trials, each with a note in optuna-dashboard's format (as
`sweep run` writes them: some long enough to take several chunks) and user attributes shaped like a
trial's (its configuration, metrics and a short history); then times GET /api/studies/<id> through the
dashboard's WSGI app in a fresh process per mode (the median of --repeats requests after one warm-up).
Reported: seconds per page and milliseconds per trial, plain and indexed; a per-trial cost that grows
with N is what grows faster than linearly.

    python benchmarks/bench_dashboard.py --trials 400 2000 4000 --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

from sweep.store import save_first_trial_note

PAGE = """
import statistics, sys, time, optuna
from wsgiref.util import setup_testing_defaults
from optuna_dashboard import wsgi
from sweep import dashboard_index
if sys.argv[2] == "indexed":
    assert dashboard_index.install()
storage = optuna.storages.RDBStorage(sys.argv[1])
app = wsgi(storage)
sid = storage.get_all_studies()[0]._study_id
def page():
    environ = {"PATH_INFO": f"/api/studies/{sid}", "QUERY_STRING": "after=0"}  # as the study page asks
    setup_testing_defaults(environ)
    started = time.perf_counter()
    b"".join(app(environ, lambda status, headers, *exc: None))
    return time.perf_counter() - started
page()
print(statistics.median(page() for _ in range(int(sys.argv[3]))))
"""


def noted_study(url: str, trials: int) -> None:
    """A study of `trials` finished trials, each with a note and a trial's kind of user attributes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=url, study_name=f"noted{trials}")
    for i in range(trials):
        trial = study.ask()
        trial.set_user_attr("config_id", f"lr_g={i % 50}")
        trial.set_user_attr("metrics", {"eval/modes": 6.0, "loss/d": 1.3, "loss/g": 0.7})
        trial.set_user_attr("history", [{"step": 10, "loss/d": 1.3}, {"step": 20, "loss/d": 1.2}])
        body = f"## Trial {i}\n- **Outcome:** completed\n" + "- a line of the note\n" * (60 if i % 4 == 0 else 6)
        save_first_trial_note(trial, body)
        study.tell(trial, float(i % 7))


def page_seconds(url: str, mode: str, repeats: int) -> float:
    out = subprocess.run([sys.executable, "-c", PAGE, url, mode, str(repeats)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[400, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.trials:
            url = f"sqlite:///{Path(tmp) / f'noted{n}.db'}"
            noted_study(url, n)
            plain, indexed = (page_seconds(url, mode, args.repeats) for mode in ("plain", "indexed"))
            rows.append(
                {
                    "trials": n,
                    "plain_s": round(plain, 3),
                    "indexed_s": round(indexed, 3),
                    "plain_ms_per_trial": round(1e3 * plain / n, 3),
                    "indexed_ms_per_trial": round(1e3 * indexed / n, 3),
                    "speedup": round(plain / indexed, 2),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'trials':>7} {'plain s':>9} {'indexed s':>10} {'ms/trial':>17} {'speedup':>8}")
    for r in rows:
        per = f"{r['plain_ms_per_trial']} -> {r['indexed_ms_per_trial']}"
        print(f"{r['trials']:>7} {r['plain_s']:>9} {r['indexed_s']:>10} {per:>17} {r['speedup']:>8}")


if __name__ == "__main__":
    main()
