"""Compare the same studies in two stores trial by trial: state, params, objective values, final
metrics and every history row, all but the timing metrics. Exactness check for refactors and faster
paths: on a CPU the same (configuration, seed) must give bit-identical numbers.

    python benchmarks/compare_runs.py ROOT_A ROOT_B STUDY [STUDY ...]

Prints each difference and ends with IDENTICAL or the number of trials that differ (exit code 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import optuna

from sweep.store import TrialAttr, open_store

TIMING = {"time/steps_per_s", TrialAttr.WALL_S}


def records(root: Path, name: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    """(config_id, seed) -> (state, params, values, final metrics, history), timing left out."""
    study = open_store(root).load_study(name)
    out = {}
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        metrics = {k: v for k, v in (attrs.get(TrialAttr.METRICS) or {}).items() if k not in TIMING}
        history = [{k: v for k, v in h.items() if k not in TIMING} for h in attrs.get(TrialAttr.HISTORY) or []]
        out[(attrs[TrialAttr.CONFIG_ID], attrs[TrialAttr.SEED])] = (t.state.name, t.params, t.values, metrics, history)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root_a", type=Path)
    parser.add_argument("root_b", type=Path)
    parser.add_argument("studies", nargs="+")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    differ = 0
    for name in args.studies:
        a, b = records(args.root_a, name), records(args.root_b, name)
        if set(a) != set(b):
            print(f"{name}: different (configuration, seed) pairs: {sorted(set(a) ^ set(b))}")
            differ += len(set(a) ^ set(b))
        for key in sorted(set(a) & set(b)):
            if a[key] != b[key]:
                differ += 1
                parts = ("state", "params", "values", "metrics", "history")
                for part, x, y in zip(parts, a[key], b[key], strict=True):
                    if x != y:
                        print(f"{name} {key} {part}:\n  a: {str(x)[:300]}\n  b: {str(y)[:300]}")
        print(f"{name}: {len(a)} trials compared")
    print("IDENTICAL" if not differ else f"{differ} trials differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
