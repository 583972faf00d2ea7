"""Scheduling efficiency of `sweep run` against a plain Ray Tune setup, measured in one run.

A study of 16 short trials (about 5 s of training each, ring8) runs twice on this machine's cores:
once through sweep's runner (Optuna as record, actor reuse, Tune's file loggers off) and once as a
plain Ray Tune job (function trainable, default loggers, no actor reuse) training the same configs.

efficiency = sum of the trials' own wall times / (run wall time x concurrent slots), where the run
    starts when `runner.run` is called (Ray already up) and ends when it returns
scheduling_efficiency = the same sum / ((last trial's end - first trial's start) x slots): how well
    the scheduler keeps the slots busy once trial workers exist (it leaves out the one-time start of
    each worker process, ~3-4 s of process spawn and torch/Ray imports on this machine)
first_step_s = seconds from the start of `runner.run` to the first reported step
Ray's start-up, paid once per driver, is printed separately (`ray_init_s`).

    python benchmarks/bench_sweep.py           # table
    python benchmarks/bench_sweep.py --json    # one JSON object
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import optuna
import yaml

STEPS = 2100  # about 5 s of training per trial on one core of this 2-core machine (the setting)

STUDY = {
    "name": "bench",
    "kind": "grid",
    "base": {"dataset": "ring8", "arch": "mlp", "cat_codes": [8], "cont_codes": 0, "batch_size": 64},
    "factors": {"noise_dim": [2, 4, 8, 16], "d_batchnorm": ["none", "separate"]},
    "seeds": 2,
    "objectives": ["eval/modes"],
    "resources": {"cpus": 1},
    "budget": {"steps": STEPS, "report_every": 100},
}


def run_sweep(root: Path, steps: int) -> dict[str, float]:
    from sweep import runner, spec
    from sweep.store import open_store

    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "budget": {"steps": steps, "report_every": 100}}))
    study = spec.load(path)
    store = open_store(root / "runs")
    summary = runner.run(study, store=store)
    trials = optuna.load_study(study_name=study.name, storage=store.storage()).trials
    span = max(t.user_attrs["ended_at"] for t in trials) - min(t.user_attrs["started_at"] for t in trials)
    return {
        "trials": summary.completed,
        "trial_s": summary.trial_seconds,
        "wall_s": summary.wall_s,
        "first_step_s": summary.first_step_s,
        "span_s": span,
    }


def _plain_trainable(config: dict) -> None:
    import time as _time

    from ray import tune

    from infogan_core import TrainConfig, train

    started, started_at = _time.perf_counter(), _time.time()
    cfg = TrainConfig.from_dict(config["train_config"])
    train(cfg, report=lambda step, metrics: tune.report(dict(metrics, step=step)))
    tune.report(
        {
            "trial_s": _time.perf_counter() - started,
            "step": cfg.steps,
            "started_at": started_at,
            "ended_at": _time.time(),
        }
    )


def run_plain(root: Path, steps: int) -> dict[str, float]:
    """The same 16 configurations as a plain Tune job: default loggers, a new actor per trial."""
    from ray import tune

    from sweep import spec

    path = root / "plain.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "budget": {"steps": steps, "report_every": 100}}))
    study = spec.load(path)
    configs = [study.train_config(t.params, t.seed).to_dict() for t in spec.expand(study)]
    saved = os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)  # plain: Tune's defaults
    try:
        started = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(_plain_trainable, {"cpu": 1}),
            param_space={"train_config": tune.grid_search(configs)},
            run_config=tune.RunConfig(storage_path=str((root / "plain").resolve()), verbose=0),
        )
        results = tuner.fit()
        wall = time.perf_counter() - started
    finally:
        if saved is not None:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = saved
    trial_s = sum(r.metrics.get("trial_s", 0.0) for r in results)
    span = max(r.metrics["ended_at"] for r in results) - min(r.metrics["started_at"] for r in results)
    return {"trials": len(results), "trial_s": trial_s, "wall_s": wall, "span_s": span}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps per trial")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Ray Tune reference")
    args = parser.parse_args()
    import ray

    from sweep import runner  # sets sweep's Tune environment before Ray starts

    slots = int(os.cpu_count() or 1)
    t0 = time.perf_counter()
    runner.ensure_ray(num_cpus=slots)
    ray_init_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_sweep(Path(tmp), args.steps)
        plain = None if args.no_plain else run_plain(Path(tmp), args.steps)
    ray.shutdown()
    out = {
        "efficiency": ours["trial_s"] / (ours["wall_s"] * slots),
        "scheduling_efficiency": ours["trial_s"] / (ours["span_s"] * slots),
        "first_step_s": ours["first_step_s"],
        "trials": ours["trials"],
        "wall_s": ours["wall_s"],
        "trial_s": ours["trial_s"],
        "slots": slots,
        "ray_init_s": ray_init_s,
        "efficiency_with_ray_init": ours["trial_s"] / ((ours["wall_s"] + ray_init_s) * slots),
    }
    if plain:
        out["plain_efficiency"] = plain["trial_s"] / (plain["wall_s"] * slots)
        out["plain_scheduling_efficiency"] = plain["trial_s"] / (plain["span_s"] * slots)
        out["plain_wall_s"] = plain["wall_s"]
        out["ratio_vs_plain"] = out["efficiency"] / out["plain_efficiency"]
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['trials']} trials of {args.steps} steps on {slots} slots")
    print(
        f"  sweep runner: wall {out['wall_s']:.1f} s, trial time {out['trial_s']:.1f} s, "
        f"efficiency {out['efficiency']:.3f} (with Ray start-up {out['efficiency_with_ray_init']:.3f}), "
        f"scheduling efficiency {out['scheduling_efficiency']:.3f}"
    )
    print(f"  first trial's first step after {out['first_step_s']:.1f} s (Ray start-up {ray_init_s:.1f} s before)")
    if plain:
        print(
            f"  plain Ray Tune: wall {plain['wall_s']:.1f} s, efficiency {out['plain_efficiency']:.3f}, "
            f"scheduling efficiency {out['plain_scheduling_efficiency']:.3f}; "
            f"ratio sweep / plain {out['ratio_vs_plain']:.2f}"
        )


if __name__ == "__main__":
    main()
