"""The runs behind the core-fidelity changes: each knob's before/after, measured, not assumed.

    python benchmarks/bench_fidelity.py arrangement   # where Q learns: q_update g_step (before) vs d_step (the paper)
    python benchmarks/bench_fidelity.py prior         # a learned categorical prior on digits-imbalanced, 5 seeds
    python benchmarks/bench_fidelity.py clipping      # which optimizer/loss settings let clipping matter
    python benchmarks/bench_fidelity.py eval_last     # one noisy checkpoint vs the mean of the last three
    python benchmarks/bench_fidelity.py paper --steps 1900   # Table 1's network on mnist-5k, 5 seeds
    ... --workers 2 --json out.json

Every run is one process with one torch thread; `--workers` runs that many at once. Prints a Markdown
table per experiment (the figures quoted in the project's notes) and the wall time of each run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

RESULT_KEYS = ("eval/cat_acc", "eval/prior_kl", "mi/cat_ratio", "eval/modes", "eval/fd", "grad/peak")


def run_one(settings: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration; its final metrics, the last evaluations, the prior, or where it diverged."""
    import torch

    from infogan_core import DivergedError, TrainConfig, train

    torch.set_num_threads(1)
    started = time.perf_counter()
    out: dict[str, Any] = {"settings": settings}
    try:
        result = train(TrainConfig(**settings))
        out["metrics"] = {k: result.metrics[k] for k in RESULT_KEYS if k in result.metrics}
        out["evaluations"] = [
            {k: v for k, v in row.items() if k.startswith("eval/") or k == "step"}
            for row in result.history
            if any(k.startswith("eval/") for k in row)
        ]
        if settings.get("learn_cat_prior"):
            prior = torch.softmax(result.model.cat_prior[0].detach(), 0)
            out["prior_max_over_min"] = float(prior.max() / prior.min())
    except DivergedError as exc:
        out["diverged_at"], out["grad_peak"] = exc.step, exc.grad_peak
    out["wall_s"] = time.perf_counter() - started
    return out


def _runs(configs: list[dict[str, Any]], workers: int) -> list[dict[str, Any]]:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_one, configs))


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def _conv(dataset: str, width: float, steps: int, *, report_every: int, eval_every: int) -> dict[str, Any]:
    """The conv network at `width` on `dataset`, batch 64, as every conv run here trains it."""
    return dict(
        dataset=dataset,
        arch="conv",
        g_width=width,
        d_width=width,
        batch_size=64,
        steps=steps,
        report_every=report_every,
        eval_every=eval_every,
        eval_samples=1000,
        device="cpu",
    )


def arrangement(workers: int, seeds: int = 3, steps: int = 3000) -> list[dict[str, Any]]:
    base = _conv("mnist-5k", 0.5, steps, report_every=100, eval_every=500)
    configs = [{**base, "q_update": q, "seed": s} for q in ("g_step", "d_step") for s in range(seeds)]
    results = _runs(configs, workers)
    print(
        "\n| q_update | seeds | eval/cat_acc per seed | mean +- sd | mi/cat_ratio | wall per run |\n"
        "|---|---|---|---|---|---|"
    )
    for q in ("g_step", "d_step"):
        rows = [r for r in results if r["settings"]["q_update"] == q]
        acc = [r["metrics"]["eval/cat_acc"] for r in rows]
        mi = [r["metrics"]["mi/cat_ratio"] for r in rows]
        print(
            f"| {q} | {seeds} | {', '.join(f'{a:.3f}' for a in acc)} | {_mean_sd(acc)} | {_mean_sd(mi)} | "
            f"{statistics.mean(r['wall_s'] for r in rows):.0f} s |"
        )
    return results


def prior(workers: int, seeds: int = 5, steps: int = 3000) -> list[dict[str, Any]]:
    base = _conv("digits-imbalanced", 0.25, steps, report_every=100, eval_every=500)
    arms = [
        ("fixed uniform", {"learn_cat_prior": False}),
        ("learned, score", {"learn_cat_prior": True, "prior_grad": "score"}),
        ("learned, straight_through", {"learn_cat_prior": True, "prior_grad": "straight_through"}),
    ]
    configs = [{**base, **arm, "seed": s} for _, arm in arms for s in range(seeds)]
    results = _runs(configs, workers)
    print("\n| prior | eval/prior_kl per seed | mean +- sd | max/min prior | eval/cat_acc |\n|---|---|---|---|---|")
    for i, (name, _) in enumerate(arms):
        rows = results[i * seeds : (i + 1) * seeds]
        kl = [r["metrics"]["eval/prior_kl"] for r in rows]
        ratio = [r.get("prior_max_over_min", 1.0) for r in rows]
        acc = [r["metrics"]["eval/cat_acc"] for r in rows]
        print(
            f"| {name} | {', '.join(f'{k:.3f}' for k in kl)} | {_mean_sd(kl)} | {_mean_sd(ratio)} | {_mean_sd(acc)} |"
        )
    return results


def clipping(workers: int, seeds: int = 5, steps: int = 300) -> list[dict[str, Any]]:
    base = dict(
        dataset="ring8",
        cat_codes=[8],
        cont_codes=0,
        noise_dim=4,
        batch_size=64,
        g_width=0.5,
        d_width=0.5,
        d_batchnorm="none",
        g_batchnorm=False,
        steps=steps,
        report_every=50,
        eval_every=steps,
        eval_samples=1000,
        device="cpu",
    )
    arms = [
        ("adam lr 0.01, logits", {"optimizer": "adam", "lr_g": 0.01, "lr_d": 0.01, "loss_space": "logits"}),
        ("adam lr 0.01, probs", {"optimizer": "adam", "lr_g": 0.01, "lr_d": 0.01, "loss_space": "probs"}),
        ("sgd lr 0.1 m 0.9, logits", {"optimizer": "sgd", "lr_g": 0.1, "lr_d": 0.1, "loss_space": "logits"}),
        ("sgd lr 0.1 m 0.9, probs", {"optimizer": "sgd", "lr_g": 0.1, "lr_d": 0.1, "loss_space": "probs"}),
        ("sgd lr 0.02 m 0.9, probs", {"optimizer": "sgd", "lr_g": 0.02, "lr_d": 0.02, "loss_space": "probs"}),
    ]
    configs = [
        {**base, **arm, "clip": clip, "clip_value": 1.0, "seed": s}
        for _, arm in arms
        for clip in ("none", "norm")
        for s in range(seeds)
    ]
    results = _runs(configs, workers)
    print(
        "\n| setting | clip | diverged | at steps | grad/peak (median) | eval/modes of the rest |\n"
        "|---|---|---|---|---|---|"
    )
    for i, (name, _) in enumerate(arms):
        for j, clip in enumerate(("none", "norm")):
            rows = results[(2 * i + j) * seeds : (2 * i + j + 1) * seeds]
            div = [r for r in rows if "diverged_at" in r]
            peaks = [r["grad_peak"] if "diverged_at" in r else r["metrics"]["grad/peak"] for r in rows]
            modes = [r["metrics"]["eval/modes"] for r in rows if "metrics" in r]
            steps_at = ", ".join(str(r["diverged_at"]) for r in div) or "-"
            print(f"| {name} | {clip} | {len(div)}/{seeds} | {steps_at} | {np.median(peaks):.3g} | {_mean_sd(modes)} |")
    return results


def eval_last(workers: int, seeds: int = 5, steps: int = 2000) -> list[dict[str, Any]]:
    base = _conv("digits", 0.25, steps, report_every=50, eval_every=250)
    results = _runs([{**base, "seed": s} for s in range(seeds)], workers)
    print(
        "\n| seed | eval/cat_acc at the last three evaluations | last one | mean of the last three |\n|---|---|---|---|"
    )
    last, mean = [], []
    for r in results:
        accs = [e["eval/cat_acc"] for e in r["evaluations"]][-3:]
        last.append(accs[-1])
        mean.append(r["metrics"]["eval/cat_acc"])
        print(f"| {r['settings']['seed']} | {', '.join(f'{a:.3f}' for a in accs)} | {accs[-1]:.3f} | {mean[-1]:.3f} |")
    print(f"| sd across seeds | | {statistics.stdev(last):.4f} | {statistics.stdev(mean):.4f} |")
    return results


def paper(workers: int, seeds: int = 5, steps: int = 1900) -> list[dict[str, Any]]:
    base = dict(
        dataset="mnist-5k",
        arch="paper",
        batch_size=128,
        steps=steps,
        report_every=100,
        eval_every=max(1, steps // 4),
        eval_samples=2000,
        device="cpu",
    )
    results = _runs([{**base, "seed": s} for s in range(seeds)], workers)
    acc = [r["metrics"]["eval/cat_acc"] for r in results]
    half = 2.776 * statistics.stdev(acc) / math.sqrt(len(acc)) if len(acc) == 5 else float("nan")
    print(f"\narch paper, mnist-5k, batch 128, {steps} steps, seeds 0-{seeds - 1}")
    print("| seed | eval/cat_acc (mean of the last 3 evaluations) | mi/cat_ratio | wall |\n|---|---|---|---|")
    for r in results:
        m = r["metrics"]
        print(f"| {r['settings']['seed']} | {m['eval/cat_acc']:.3f} | {m['mi/cat_ratio']:.3f} | {r['wall_s']:.0f} s |")
    print(
        f"mean {statistics.mean(acc):.3f}, 95% CI [{statistics.mean(acc) - half:.3f}, "
        f"{statistics.mean(acc) + half:.3f}] (t, 4 df); the paper reports 0.95"
    )
    return results


EXPERIMENTS = {"arrangement": arrangement, "prior": prior, "clipping": clipping, "eval_last": eval_last, "paper": paper}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--workers", type=int, default=2, help="runs at once, one torch thread each")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--json", default=None, help="write every run's results here")
    args = parser.parse_args()
    kwargs = {k: v for k, v in (("seeds", args.seeds), ("steps", args.steps)) if v is not None}
    started = time.perf_counter()
    results = EXPERIMENTS[args.experiment](args.workers, **kwargs)
    print(f"\n{len(results)} runs in {time.perf_counter() - started:.0f} s with {args.workers} workers")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
