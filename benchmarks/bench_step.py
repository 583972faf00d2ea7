"""Training-step throughput of infogan_core, as a fraction of this machine's float32 matmul rate.

Times the real training loop (train() with a report every step) on the paper's MNIST network at
batch 128 on synthetic 28x28 data: warm-up, then a timed phase, median step time. Counts one step's
FLOPs with torch.utils.flop_counter and measures the float32 matrix-multiply rate in the same run,
so the ratio achieved / matmul rate compares like with like on any machine.

    python benchmarks/bench_step.py            # table
    python benchmarks/bench_step.py --json     # one JSON object
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from infogan_core import TrainConfig, train
from infogan_core.data import DATASETS, Dataset, DatasetEntry


def _register_synthetic() -> None:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(4096, 1, 28, 28, generator=gen) * 2 - 1).numpy()
    DATASETS["synthetic28"] = DatasetEntry(lambda data_dir=None: Dataset("synthetic28", x), (1, 28, 28), frozenset())


def step_times(cfg: TrainConfig, warmup: int, timed: int) -> list[float]:
    """Seconds per training step, measured between consecutive reports of the real loop."""
    stamps: list[float] = []
    train(
        cfg.replace(steps=warmup + timed + 1, report_every=1, eval_every=10**7),
        report=lambda step, metrics: stamps.append(time.perf_counter()) and None,
    )
    # stamps[i] is taken after step i+1; the last step also ran the final evaluation: drop it
    deltas = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][warmup - 1 : -1]
    return deltas[:timed]


def step_flops(cfg: TrainConfig) -> float:
    """FLOPs of one training step: the count for two steps minus the count for one."""
    counts = []
    for steps in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter:
            train(cfg.replace(steps=steps, report_every=1, eval_every=10**7))
        counts.append(counter.get_total_flops())
    return float(counts[1] - counts[0])


def _reference_networks():
    """The paper's network as typical public PyTorch ports write it: every fully connected layer a
    convolution (D's FC 1024 a 7x7 conv, G's FCs 1x1 and 7x7 transposed convs), NCHW layout."""
    from torch import nn

    g = nn.Sequential(
        nn.ConvTranspose2d(74, 1024, 1, bias=False),
        nn.BatchNorm2d(1024),
        nn.ReLU(),
        nn.ConvTranspose2d(1024, 128, 7, bias=False),
        nn.BatchNorm2d(128),
        nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False),
        nn.Sigmoid(),
    )
    trunk = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False),
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.1),
        nn.Conv2d(128, 1024, 7, bias=False),
        nn.BatchNorm2d(1024),
        nn.LeakyReLU(0.1),
    )
    d_head = nn.Conv2d(1024, 1, 1)
    q_head = nn.Sequential(
        nn.Conv2d(1024, 128, 1, bias=False), nn.BatchNorm2d(128), nn.LeakyReLU(0.1), nn.Conv2d(128, 10 + 2 + 2, 1)
    )
    return g, trunk, d_head, q_head


def reference_step(nets, opt_d, opt_g, real: torch.Tensor) -> None:
    """One training step as such ports run it: D on real, D on detached fake, then G and Q together."""
    from torch.nn import functional as F

    g, trunk, d_head, q_head = nets
    n = len(real)
    z = torch.cat([torch.randn(n, 62), F.one_hot(torch.randint(10, (n,)), 10).float(), torch.rand(n, 2) * 2 - 1], 1)
    fake = g(z[:, :, None, None])
    opt_d.zero_grad()
    loss_d = F.binary_cross_entropy_with_logits(d_head(trunk(real)).flatten(), torch.ones(n))
    loss_d = loss_d + F.binary_cross_entropy_with_logits(d_head(trunk(fake.detach())).flatten(), torch.zeros(n))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    h = trunk(fake)
    q = q_head(h).flatten(1)
    loss_g = F.binary_cross_entropy_with_logits(d_head(h).flatten(), torch.ones(n))
    loss_g = loss_g + F.cross_entropy(q[:, :10], z[:, 62:72].argmax(1)) + 0.1 * (q[:, 10:12] - z[:, 72:]).pow(2).mean()
    loss_g.backward()
    opt_g.step()


def reference_rate(warmup: int, timed: int) -> tuple[float, float]:
    """(median seconds per step, FLOPs per step) of the conv-for-FC reference at batch 128."""
    torch.manual_seed(0)
    nets = _reference_networks()
    g, trunk, d_head, q_head = nets
    opt_d = torch.optim.Adam([*trunk.parameters(), *d_head.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam([*g.parameters(), *q_head.parameters()], lr=1e-3, betas=(0.5, 0.999))
    real = torch.rand(128, 1, 28, 28)
    for _ in range(warmup):
        reference_step(nets, opt_d, opt_g, real)
    times = []
    for _ in range(timed):
        t = time.perf_counter()
        reference_step(nets, opt_d, opt_g, real)
        times.append(time.perf_counter() - t)
    counter = FlopCounterMode(display=False)
    with counter:
        reference_step(nets, opt_d, opt_g, real)
    return statistics.median(times), float(counter.get_total_flops())


def matmul_gflops(n: int = 1024, reps: int = 20) -> float:
    """Median float32 GFLOP/s of an n x n matrix product on this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def small_model_rate(cfg: TrainConfig, warmup: int = 10, timed: int = 40) -> float:
    return 1.0 / statistics.median(step_times(cfg, warmup, timed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    args = parser.parse_args()
    _register_synthetic()
    cfg = TrainConfig(dataset="synthetic28", arch="paper", batch_size=128, device="cpu", eval_samples=100)
    matmul_before = matmul_gflops()
    times = step_times(cfg, args.warmup, args.steps)
    matmul = max(matmul_before, matmul_gflops())
    median = statistics.median(times)
    flops = step_flops(cfg)
    achieved = flops / median / 1e9
    ref_median, ref_flops = reference_rate(args.warmup, max(5, args.steps // 3))
    # the small models the shipped studies train (see studies/)
    mlp = TrainConfig(dataset="ring8", arch="mlp", cat_codes=(8,), cont_codes=0, noise_dim=8, device="cpu")
    conv = TrainConfig(dataset="digits", arch="conv", g_width=0.25, d_width=0.25, batch_size=64, device="cpu")
    out = {
        "steps_per_s": 1.0 / median,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": achieved,
        "matmul_gflops": matmul,
        "ratio": achieved / matmul,
        "reference_steps_per_s": 1.0 / ref_median,
        "reference_gflop_per_step": ref_flops / 1e9,
        "reference_ratio": ref_flops / ref_median / 1e9 / matmul,
        "mlp_ring8_steps_per_s": small_model_rate(mlp),
        "conv_digits_steps_per_s": small_model_rate(conv),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(out))
        return
    print(f"paper network, batch 128, 28x28, float32, {out['threads']} threads (torch {out['torch']})")
    print(f"  step time (median of {args.steps}): {median * 1e3:.1f} ms  -> {out['steps_per_s']:.2f} steps/s")
    print(f"  FLOPs per step: {out['gflop_per_step']:.2f} GFLOP  -> achieved {achieved:.1f} GFLOP/s")
    print(f"  float32 matmul rate (1024^3): {matmul:.1f} GFLOP/s")
    print(f"  ratio achieved / matmul: {out['ratio']:.2f}")
    print(
        f"reference port (FC layers as full-size convolutions, NCHW, one G forward per step): "
        f"{out['reference_steps_per_s']:.2f} steps/s at {out['reference_gflop_per_step']:.2f} GFLOP/step, "
        f"ratio {out['reference_ratio']:.2f}"
    )
    print(
        f"small models: mlp on ring8 {out['mlp_ring8_steps_per_s']:.0f} steps/s, "
        f"conv (width 0.25) on digits {out['conv_digits_steps_per_s']:.0f} steps/s"
    )


if __name__ == "__main__":
    main()
