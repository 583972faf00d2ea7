"""Population throughput: member-steps per second of K runs trained as one, against single-model runs.

Trains K = 1, 4, 16, 32 members of `mlp` on ring8 (widths 1) and of `conv` (width 0.25) on digits, both
at batch 64, and single-model `train()` runs of the same configurations, in one run, at the same thread
count: by default torch's (one per physical core, as `train()` gets in a plain Python session; 2 on this
project's machine), `--threads 1` for what a trial with `resources: {cpus: 1}` gets. Steps per second
come from the training loop's own clock over the middle reports (the first is warm-up, the last holds the
final evaluation). On a machine with CUDA, K goes up to 256.

    python benchmarks/bench_population.py                 # table
    python benchmarks/bench_population.py --json          # one JSON object
    python benchmarks/bench_population.py --json --threads 1   # one thread for populations and single runs
    python benchmarks/bench_population.py --reference /path/to/older/checkout   # also time that tree's train()
    python benchmarks/bench_population.py --study tests/sweep/studies_v1/batchnorm.yaml   # + a study, sweep run
    python benchmarks/bench_population.py --study studies/clipping.yaml --study-only      # that study alone

Keys: speedup_mlp_k16, speedup_conv_k16 (member-steps/s over single-model steps/s at the same thread
count); on several threads also speedup_*_k16_vs_best_single, over the faster of a single run on those
threads and on one (`k1_one_thread`); with --study, study_speedup (the study's wall time without
populations over with them, both through `sweep run`).

Every K is timed once per round (`--repeats`, 3 by default) and a speedup is the median of the rounds'
ratios, with their range beside it (`speedup_*_range`): on a shared 2-core host a single run's rate on
one thread (dispatch-bound: small kernels, Python) measured 197 to 352 steps/s in runs a few hours apart while
K = 16 stayed within 840-900 member-steps/s, so one round's ratio is not a figure to quote.
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
from typing import Any

import torch

from infogan_core import TrainConfig, train
from infogan_core.training import train_population

CONFIGS = {
    "mlp": TrainConfig(dataset="ring8", arch="mlp", cat_codes=[8], cont_codes=0, noise_dim=4, batch_size=64),
    "conv": TrainConfig(dataset="digits", arch="conv", g_width=0.25, d_width=0.25, batch_size=64),
}


def _timed(cfg: TrainConfig, members: int, steps: int, window: int) -> float:
    """Member-steps per second over the middle reports of one population (1 = a single train() run)."""
    run = cfg.replace(steps=steps, report_every=window, eval_every=steps, eval_samples=100, device="auto")
    cfgs = [run.replace(seed=s) for s in range(members)]
    results = [train(cfgs[0])] if members == 1 else train_population(cfgs)
    rates = [row["time/steps_per_s"] for row in results[0].history[1:-1]]
    return statistics.median(rates) * members


def _round(cfg: TrainConfig, sizes: list[int], args: argparse.Namespace) -> dict[int | str, float]:
    """Every K once; on several threads also a single run on one thread ("1_one_thread"), which may be the
    faster single run: its kernels are too small to gain from a second thread."""
    rates: dict[int | str, float] = {k: _timed(cfg, k, args.steps, args.window) for k in sizes}
    if args.threads > 1:
        torch.set_num_threads(1)
        rates["1_one_thread"] = _timed(cfg, 1, args.steps, args.window)
        torch.set_num_threads(args.threads)
    return rates


def _speedup(table: dict[str, Any], key: str, ratios: list[float]) -> None:
    """The median of the rounds' ratios, and their range beside it when there are several."""
    table[key] = round(statistics.median(ratios), 2)
    if len(ratios) > 1:
        table[f"{key}_range"] = [round(min(ratios), 2), round(max(ratios), 2)]


def _reference(tree: str, name: str, steps: int, window: int) -> float:
    """Steps per second of another source tree's train() on the same configuration, in a fresh process."""
    cfg = CONFIGS[name].replace(steps=steps, report_every=window, eval_every=steps, eval_samples=100)
    fields = {
        k: v
        for k, v in cfg.to_dict().items()
        if k
        in (
            "dataset",
            "arch",
            "cat_codes",
            "cont_codes",
            "noise_dim",
            "batch_size",
            "g_width",
            "d_width",
            "steps",
            "report_every",
            "eval_every",
            "eval_samples",
        )
    }
    code = (
        "import json, statistics, sys, torch\n"
        f"torch.set_num_threads({torch.get_num_threads()})\n"
        "from infogan_core import TrainConfig, train\n"
        f"r = train(TrainConfig(**{fields!r}))\n"
        "print(statistics.median(row['time/steps_per_s'] for row in r.history[1:-1]))\n"
    )
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tree, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _study(study: str, populations: bool, root: Path) -> float:
    """Wall time of `sweep run STUDY` (a fresh store), with populations or one run per trial."""
    sweep = str(Path(sys.executable).parent / "sweep")
    name = f"bench-{'pop' if populations else 'single'}"
    args = [
        sweep,
        "run",
        study,
        "--root",
        str(root),
        "--new-name",
        name,
        "--population",
        "auto" if populations else "1",
    ]
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads for every run (default: torch's)"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of every K; speedups are medians of per-round ratios"
    )
    parser.add_argument("--reference", default=None, help="another checkout whose train() to time too")
    parser.add_argument("--study", default=None, help="a study to run with and without populations")
    parser.add_argument("--study-only", action="store_true", help="time --study alone, not the engine")
    args = parser.parse_args()
    if args.study_only and not args.study:
        parser.error("--study-only needs --study STUDY.yaml")
    torch.set_num_threads(args.threads)
    sizes = [1, 4, 16, 32] + ([64, 128, 256] if torch.cuda.is_available() else [])
    table: dict[str, Any] = {"threads": args.threads, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    engines = {} if args.study_only else CONFIGS  # the configurations whose member-steps/s to time
    for name, cfg in engines.items():
        _timed(cfg, 4, 2 * args.window + 1, args.window)  # warm up the kernels and the dataset cache
        # every K once per round, so that each ratio's two rates are taken minutes apart (see the docstring)
        rounds = [_round(cfg, sizes, args) for _ in range(args.repeats)]
        table[name] = {f"k{k}": round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}
        for k in sizes[1:]:
            _speedup(table, f"speedup_{name}_k{k}", [r[k] / r[1] for r in rounds])
            if args.threads > 1:
                ratios = [r[k] / max(r[1], r["1_one_thread"]) for r in rounds]  # over the faster single run
                _speedup(table, f"speedup_{name}_k{k}_vs_best_single", ratios)
        if args.reference:
            table[f"reference_{name}"] = round(_reference(args.reference, name, args.steps, args.window), 1)
    if args.study:
        with tempfile.TemporaryDirectory() as tmp:
            single = _study(args.study, False, Path(tmp) / "single")
            pooled = _study(args.study, True, Path(tmp) / "pop")
        table.update(
            study=args.study,
            study_single_s=round(single, 1),
            study_population_s=round(pooled, 1),
            study_speedup=round(single / pooled, 2),
        )
    if args.json or args.study_only:
        print(json.dumps(table, indent=2))
        return
    print(f"member-steps per second ({table['device']}, {args.threads} thread(s); K = 1 is a single train() run)")
    print(f"{'K':>5} " + " ".join(f"{n:>10}" for n in CONFIGS))
    for k in sizes:
        print(f"{k:>5} " + " ".join(f"{table[n][f'k{k}']:>10}" for n in CONFIGS))
    for name in CONFIGS:
        line = f"speedup {name} at K=16: {table[f'speedup_{name}_k16']}x"
        if args.threads > 1:
            line += f" ({table[f'speedup_{name}_k16_vs_best_single']}x over the faster single run)"
        if args.reference:
            line += f"; the reference tree's train(): {table[f'reference_{name}']} steps/s"
        print(line)
    if args.study:
        print(
            f"{args.study}: {table['study_single_s']} s without populations, {table['study_population_s']} s "
            f"with them: {table['study_speedup']}x"
        )


if __name__ == "__main__":
    main()
