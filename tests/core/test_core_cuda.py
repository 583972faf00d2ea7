"""What holds on a CUDA device (skipped without one; `benchmarks/device_check.sh` runs them on the GPU
machine): the counter draws are the CPU's bit for bit, a CUDA graph's replay is the eager step, a member
stays close to its single run, and an out-of-memory error is a torch.OutOfMemoryError the runner can split on."""

from __future__ import annotations

import pytest
import torch

from infogan_core import TrainConfig, rng, train
from infogan_core.training import train_population

from helpers import TINY_DIGITS, TINY_RING

pytestmark = [
    pytest.mark.usefixtures("core_env"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/device_check.sh)"),
]

CUDA = {"device": "cuda", "steps": 100, "report_every": 25, "eval_every": 100}
RING = TrainConfig(**{**TINY_RING, "batch_size": 64, **CUDA}) if torch.cuda.is_available() else None
DIGITS = (
    TrainConfig(**{**TINY_DIGITS, "batch_size": 64, "g_width": 0.25, "d_width": 0.25, **CUDA})
    if torch.cuda.is_available()
    else None
)


def _untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "time/steps_per_s"} for row in history]


def test_the_counter_draws_on_the_gpu_are_the_cpus_bit_for_bit() -> None:
    seeds = [0, 1, 99]
    cpu = rng.Streams(seeds, 5003, torch.device("cpu")).words(17)
    gpu = rng.Streams(seeds, 5003, torch.device("cuda")).words(torch.tensor(17, device="cuda"))
    assert torch.equal(gpu.cpu(), cpu)
    for draw in (rng.uniform, rng.normal, rng.gumbel, lambda w: rng.below(w, 55000)):
        assert torch.equal(draw(gpu).cpu(), draw(cpu))


@pytest.mark.parametrize("base", [RING, DIGITS], ids=["mlp", "conv"])
def test_a_cuda_graphs_replay_gives_the_eager_steps_numbers(base: TrainConfig) -> None:
    graphed, eager = train(base), train(base.replace(cuda_graph=False))
    assert _untimed(graphed.history) == _untimed(eager.history)


@pytest.mark.parametrize("base", [RING, DIGITS], ids=["mlp", "conv"])
def test_a_member_stays_close_to_its_single_run_after_100_steps(base: TrainConfig) -> None:
    # GPU kernels pick their algorithms by shape, and a population's shapes are not a single run's: not bit
    # for bit, but the first report's losses within 1e-3 and every report's finite
    cfgs = [base.replace(seed=s) for s in range(8)]
    members = train_population(cfgs)
    for k in (0, 7):
        single = train(cfgs[k])
        first_m, first_s = members[k].history[0], single.history[0]
        assert abs(first_m["loss/d"] - first_s["loss/d"]) < 1e-3 and abs(first_m["loss/g"] - first_s["loss/g"]) < 1e-3
        assert all(torch.isfinite(torch.tensor(row["loss/d"])) for row in members[k].history)


def test_a_stopped_member_does_not_recapture_the_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    from infogan_core import device

    captures = []
    real = device.GraphedStep._capture
    monkeypatch.setattr(device.GraphedStep, "_capture", lambda self: (captures.append(1), real(self)))
    seen = []

    def stop_member_1(step: int, rows: dict[int, dict[str, float]]) -> list[int]:
        seen.append(sorted(rows))
        return [1] if step == 25 else []

    cfgs = [RING.replace(seed=s) for s in range(3)]
    results = train_population(cfgs, report=stop_member_1)
    assert results[1].stopped_early and results[1].steps_run == 25 and results[0].steps_run == 100
    assert seen[0] == [0, 1, 2] and seen[-1] == [0, 2] and len(captures) == 1
