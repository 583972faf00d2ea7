"""Training-step throughput of infogan_core, as a fraction of the device's float32 matmul rate, beside a
peer's loop timed in the same run.

Times the real training loop (train(), a report every 10 steps) on the paper's MNIST network at batch
128 on synthetic 28x28 data: warm-up, then a timed phase, median step time. Counts one step's FLOPs
with torch.utils.flop_counter and measures the float32 matrix-multiply rate in the same run, so the
ratio achieved / matmul rate compares like with like on any machine. The peer is Natsu6767/InfoGAN-
PyTorch's training loop (its MNIST models and train.py step, rewritten here with its data already on
the device): `speedup_over_reference` is our step's rate over its.

    python benchmarks/bench_step.py                      # table, on the CPU
    python benchmarks/bench_step.py --json               # one JSON object
    python benchmarks/bench_step.py --device cuda --json # on the GPU (--precision tf32 | bf16 for ours)
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


WINDOW = 10  # steps between the reports step_times reads its clock at (a report waits for the device)


def step_times(cfg: TrainConfig, warmup: int, timed: int) -> list[float]:
    """Seconds per training step, measured between consecutive reports of the real loop, WINDOW steps apart
    (on a GPU a report is where the host waits for the device, so each window's time is the device's)."""
    stamps: list[float] = []
    windows = max(1, timed // WINDOW)
    first = -(-warmup // WINDOW)  # whole windows of warm-up
    train(
        cfg.replace(steps=(first + windows + 1) * WINDOW, report_every=WINDOW, eval_every=10**7),
        report=lambda step, metrics: stamps.append(time.perf_counter()) and None,
    )
    # stamps[i] is taken after window i+1; the last window also ran the final evaluation: drop it
    deltas = [(b - a) / WINDOW for a, b in zip(stamps, stamps[1:], strict=False)][first - 1 : -1]
    return deltas[:windows]


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
    """One training step as Natsu6767/InfoGAN-PyTorch's train.py runs it (rewritten here, not copied): D's
    loss on the real batch and on the detached fakes, each with its own backward; then G and Q together,
    D's trunk run again on the fakes; the two losses read back to the host every step, for its curves."""
    from torch.nn import functional as F

    g, trunk, d_head, q_head = nets
    n, device = len(real), real.device
    codes = torch.randint(10, (n,), device=device)
    cont = torch.rand(n, 2, device=device) * 2 - 1
    z = torch.cat([torch.randn(n, 62, device=device), F.one_hot(codes, 10).float(), cont], 1)
    opt_d.zero_grad()
    loss_real = F.binary_cross_entropy(torch.sigmoid(d_head(trunk(real))).flatten(), torch.ones(n, device=device))
    loss_real.backward()
    fake = g(z[:, :, None, None])
    loss_fake = F.binary_cross_entropy(
        torch.sigmoid(d_head(trunk(fake.detach()))).flatten(), torch.zeros(n, device=device)
    )
    loss_fake.backward()
    opt_d.step()
    opt_g.zero_grad()
    h = trunk(fake)
    q = q_head(h).flatten(1)  # 10 logits, 2 means, 2 log-variances
    loss_g = F.binary_cross_entropy(torch.sigmoid(d_head(h)).flatten(), torch.ones(n, device=device))
    var = q[:, 12:14].exp()
    nll = (0.5 * (2 * torch.pi * var).log() + (cont - q[:, 10:12]).pow(2) / (2 * var)).sum(1).mean()
    loss_g = loss_g + F.cross_entropy(q[:, :10], codes) + 0.1 * nll
    loss_g.backward()
    opt_g.step()
    (loss_real + loss_fake).item(), loss_g.item()  # noqa: B018 - the peer logs both every step


def reference_rate(warmup: int, timed: int, device: str = "cpu") -> tuple[float, float]:
    """(median seconds per step, FLOPs per step) of the peer's loop at batch 128, its data already on `device`."""
    torch.manual_seed(0)
    nets = tuple(net.to(device) for net in _reference_networks())
    g, trunk, d_head, q_head = nets
    opt_d = torch.optim.Adam([*trunk.parameters(), *d_head.parameters()], lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam([*g.parameters(), *q_head.parameters()], lr=1e-3, betas=(0.5, 0.999))
    real = torch.rand(128, 1, 28, 28, device=device)
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


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(n: int = 1024, reps: int = 20, device: str = "cpu") -> float:
    """Median float32 GFLOP/s of an n x n matrix product on `device` (n = 8192 on a GPU, to fill it)."""
    n = 8192 if device == "cuda" else n
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def small_model_rate(cfg: TrainConfig, warmup: int = 10, timed: int = 40) -> float:
    return 1.0 / statistics.median(step_times(cfg, warmup, timed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where every run trains")
    parser.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32", help="our loop's precision")
    args = parser.parse_args()
    device = args.device
    _register_synthetic()
    paper = dict(dataset="synthetic28", arch="paper", batch_size=128, eval_samples=100)
    cfg = TrainConfig(**paper, device=device, precision=args.precision)
    matmul_before = matmul_gflops(device=device)
    times = step_times(cfg, args.warmup, args.steps)
    matmul = max(matmul_before, matmul_gflops(device=device))
    median = statistics.median(times)
    flops = step_flops(cfg.replace(device="cpu"))  # counted on the CPU: the same operations
    achieved = flops / median / 1e9
    ref_median, ref_flops = reference_rate(args.warmup, max(5, args.steps // 3), device)
    # the small models the shipped studies train (see studies/)
    mlp = TrainConfig(dataset="ring8", arch="mlp", cat_codes=(8,), cont_codes=0, noise_dim=8, device=device)
    conv = TrainConfig(dataset="digits", arch="conv", g_width=0.25, d_width=0.25, batch_size=64, device=device)
    out = {
        "device": torch.cuda.get_device_name() if device == "cuda" else torch.backends.cpu.get_cpu_capability(),
        "precision": args.precision,
        "speedup_over_reference": ref_median / median,
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
    print(f"paper network, batch 128, 28x28, {args.precision}, on {device} {out['device']} (torch {out['torch']})")
    print(f"  step time (median of {args.steps}): {median * 1e3:.1f} ms  -> {out['steps_per_s']:.2f} steps/s")
    print(f"  FLOPs per step: {out['gflop_per_step']:.2f} GFLOP  -> achieved {achieved:.1f} GFLOP/s")
    print(f"  float32 matmul rate (1024^3): {matmul:.1f} GFLOP/s")
    print(f"  ratio achieved / matmul: {out['ratio']:.2f}")
    print(
        f"the peer's loop (Natsu6767/InfoGAN-PyTorch: FC layers as full-size convolutions, NCHW): "
        f"{out['reference_steps_per_s']:.2f} steps/s at {out['reference_gflop_per_step']:.2f} GFLOP/step, "
        f"ratio {out['reference_ratio']:.2f}"
    )
    print(
        f"small models: mlp on ring8 {out['mlp_ring8_steps_per_s']:.0f} steps/s, "
        f"conv (width 0.25) on digits {out['conv_digits_steps_per_s']:.0f} steps/s"
    )


if __name__ == "__main__":
    main()
