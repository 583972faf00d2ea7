"""The precision knob: fp32, tf32 (a CUDA device's TF32; a CPU computes fp32) and bf16 autocast with
float32 master weights, optimizer state and losses."""

from __future__ import annotations

import pytest
import torch

from infogan_core import TrainConfig, train
from infogan_core.training import train_population

from helpers import TINY_DIGITS, TINY_RING

pytestmark = pytest.mark.usefixtures("core_env")

DIGITS = TrainConfig(
    **{**TINY_DIGITS, "batch_size": 32, "g_width": 0.25, "d_width": 0.25},
    q_std="learned",
    steps=30,
    report_every=10,
    eval_every=30,
)
RING = TrainConfig(**{**TINY_RING, "batch_size": 32}, steps=30, report_every=10, eval_every=30)


def _untimed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "time/steps_per_s"} for row in history]


@pytest.mark.parametrize("base", [RING, DIGITS], ids=["mlp", "conv"])
def test_tf32_on_a_cpu_computes_fp32(base: TrainConfig) -> None:
    assert _untimed(train(base.replace(precision="tf32")).history) == _untimed(train(base).history)


@pytest.mark.parametrize("base", [RING, DIGITS], ids=["mlp", "conv"])
def test_bf16_computes_in_bfloat16_and_keeps_float32_weights(base: TrainConfig, monkeypatch) -> None:
    seen: list[torch.dtype] = []
    real_bmm = torch.bmm

    def recording_bmm(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = real_bmm(*args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch, "bmm", recording_bmm)
    bf16 = train(base.replace(precision="bf16"))
    monkeypatch.undo()
    assert torch.bfloat16 in seen  # the matrix products ran in bfloat16
    assert all(t.dtype == torch.float32 for t in bf16.model.state_dict().values() if t.is_floating_point())
    fp32 = train(base)
    last = {k: v for k, v in bf16.history[-1].items() if k != "time/steps_per_s"}
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert _untimed(bf16.history) != _untimed(fp32.history)  # it changed the arithmetic...
    assert abs(bf16.history[0]["loss/d"] - fp32.history[0]["loss/d"]) < 0.05  # ...not the computation


def test_members_of_a_bf16_population_are_their_single_runs_on_a_cpu() -> None:
    cfgs = [DIGITS.replace(seed=s, precision="bf16", lr_g=1e-3 * (1 + s)) for s in range(3)]
    for member, cfg in zip(train_population(cfgs), cfgs, strict=True):
        single = train(cfg)
        assert _untimed(member.history) == _untimed(single.history)
