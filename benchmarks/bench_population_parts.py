"""Where a population's step goes: milliseconds per step in each part of the training loop, at K members.

Wraps the loop's parts (the batched matrix products, batch norm, the optimizers, gradient norms,
sampling, forward passes, backward) with wall-clock timers and trains one population of `mlp` on ring8
or `conv` (width 0.25) on digits, as bench_population.py does. Parts nest (a forward pass holds its
matrix products), so they do not add up to the step; the step's own time is printed first. Use it
to see what limits `speedup_*_k16`: what grows with K, and what a single run (K = 1) pays.

    python benchmarks/bench_population_parts.py --members 16 --arch mlp
    python benchmarks/bench_population_parts.py --members 1 --arch conv --steps 300
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from collections.abc import Callable

import torch
from bench_population import CONFIGS  # the configurations bench_population.py times
from torch.nn import functional as F

from infogan_core import population as P
from infogan_core import rng
from infogan_core import step as S
from infogan_core import training as T

SPENT: dict[str, float] = collections.defaultdict(float)


def _timed(owner: object, name: str, part: str) -> None:
    original: Callable = getattr(owner, name)

    def timed(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[part] += time.perf_counter() - started

    setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--arch", choices=list(CONFIGS), default="mlp")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for owner, name, part in [
        (torch, "baddbmm", "matmul, forward (baddbmm)"),
        (torch, "bmm", "matmul, backward and one-channel convs (bmm)"),
        (F, "batch_norm", "batch norm, forward"),
        (F, "conv2d", "grouped convolution, forward"),
        (F, "conv_transpose2d", "grouped transposed convolution, forward"),
        (torch.Tensor, "backward", "backward passes (all)"),
        (P.MemberGroup, "step", "optimizer steps"),
        (P.MemberGroup, "squared_norms", "gradient norms"),
        (rng.Streams, "words", "counter words"),
        (S, "from_words", "latents from the words"),
        (S, "_discriminate", "D forward, D step"),
        (S, "info_terms", "Q forward and information terms"),
    ]:
        _timed(owner, name, part)
    cfg = CONFIGS[args.arch].replace(steps=args.steps, report_every=50, eval_every=10 * args.steps, eval_samples=100)
    started = time.perf_counter()
    results = T.train_population([cfg.replace(seed=s) for s in range(args.members)])
    wall = time.perf_counter() - started
    rows = results[0].history[1:-1] or results[0].history  # the first window warms up, the last evaluates
    rate = statistics.median(row["time/steps_per_s"] for row in rows)
    print(f"{args.arch}, K = {args.members}, {args.threads} thread(s), {args.steps} steps (the last one evaluates)")
    print(f"  {1e3 / rate:8.2f} ms a step (median window; {rate * args.members:.0f} member-steps/s)")
    print(f"  {1e3 * wall / args.steps:8.2f} ms a step over the whole run")
    for part, seconds in sorted(SPENT.items(), key=lambda item: -item[1]):
        print(f"  {1e3 * seconds / args.steps:8.2f} ms  {part}")


if __name__ == "__main__":
    main()
