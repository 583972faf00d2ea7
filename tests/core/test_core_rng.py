"""Counter-based random numbers: SplitMix64 words, exact on every SIMD path and at every position in a
tensor, and numbers with the distributions they claim (checked by simulation)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from infogan_core import rng

pytestmark = pytest.mark.usefixtures("core_env")

EDGES = [0, 1, 2, 3, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, rng.GAMMA]


def _unsigned(values: list[int]) -> list[int]:
    return [v & (2**64 - 1) for v in values]


def test_the_tensor_mix_is_splitmix64_modulo_2_to_the_64() -> None:
    # the known first output of splitmix64.c seeded with 0, and the tensor version against Python's integers
    assert rng.mix_int(rng.GAMMA) == 0xE220A8397B1DCDAF
    values = EDGES + [int(v) for v in np.random.default_rng(0).integers(0, 2**63, 2000, dtype=np.int64)] * 2
    values[len(EDGES) + 2000 :] = [v | 2**63 for v in values[len(EDGES) + 2000 :]]  # the high half too
    got = rng.mix(torch.tensor([rng._signed(v) for v in values], dtype=torch.int64)).tolist()
    assert _unsigned(got) == [rng.mix_int(v) for v in values]


def test_a_members_words_are_the_same_alone_and_at_any_row_of_a_population() -> None:
    seeds = [5, 0, 7, 123456789, 4294967295]
    population = rng.Streams(seeds, 1001, torch.device("cpu"))  # an odd width: vector loops leave a tail
    for step in (1, 2, 10**6):
        words = population.words(step)
        for k, seed in enumerate(seeds):
            alone = rng.Streams([seed], 1001, torch.device("cpu")).words(step)
            assert torch.equal(words[k : k + 1], alone)
            for draw in (rng.uniform, rng.normal, rng.gumbel, lambda w: rng.below(w, 60000)):
                assert torch.equal(draw(words)[k : k + 1], draw(alone))
    # the step as a device tensor (a CUDA graph's input) gives the integer step's words
    assert torch.equal(population.words(torch.tensor(7)), population.words(7))


def test_the_words_follow_from_seed_and_step_alone() -> None:
    a = rng.Streams([1, 2], 64, torch.device("cpu"))
    assert torch.equal(a.words(3), rng.Streams([1, 2], 64, torch.device("cpu")).words(3))
    assert not torch.equal(a.words(3)[0], a.words(3)[1]) and not torch.equal(a.words(3), a.words(4))
    # a shorter stream is the start of a longer one: a step's draws do not depend on how many it makes
    assert torch.equal(rng.Streams([1, 2], 16, torch.device("cpu")).words(3), a.words(3)[:, :16])


_DRAWS = """
import json, torch
from infogan_core import rng
w = rng.Streams([0, 1, 2], 4099, torch.device("cpu")).words(11)
out = {"words": w.tolist(), "uniform": rng.uniform(w).tolist(), "normal": rng.normal(w).tolist(),
       "gumbel": rng.gumbel(w).tolist(), "below": rng.below(w, 1797).tolist(),
       "capability": torch.backends.cpu.get_cpu_capability()}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_every_draw_is_the_same_on_every_simd_path() -> None:
    # torch's log and cos differ in the last bit between a CPU's vector loop, its scalar tail and a GPU; the
    # draws use only correctly rounded arithmetic, so every capability gives the same numbers. Each path runs
    # in a process of its own (whatever this one's ATEN_CPU_CAPABILITY); one this CPU lacks falls back to
    # another and is left out
    runs = {}
    for capability in ("default", "avx2", "avx512"):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
        out = subprocess.run([sys.executable, "-c", _DRAWS], env=env, capture_output=True, text=True, check=True)
        run = json.loads(out.stdout)
        if run.pop("capability").lower() == capability:  # the path it was asked for
            runs[capability] = run
    first = next(iter(runs.values()))
    assert len(runs) >= 2 and all(run == first for run in runs.values()), list(runs)


def test_log_and_cos_are_accurate_to_float64_rounding() -> None:
    x = torch.cat([torch.rand(100_000, dtype=torch.float64) + 1e-300, torch.tensor([2.0**-24, 0.5, 1.0])])
    assert (rng.log(x) - torch.log(x)).abs().max() < 1e-12
    u = torch.randint(0, 2**24, (100_000,), dtype=torch.int64).to(torch.float64) * rng.UNIT
    u = torch.cat([u, torch.arange(8, dtype=torch.float64) / 8])  # every octant's first angle
    assert (rng.cos_2pi(u) - torch.cos(2 * math.pi * u)).abs().max() < 1e-13


@pytest.fixture(scope="module")
def words() -> torch.Tensor:
    return rng.Streams([2024], 400_000, torch.device("cpu")).words(1)[0]


def test_normals_are_standard_normal(words: torch.Tensor) -> None:
    z = rng.normal(words).double().numpy()
    n = len(z)
    assert abs(z.mean()) < 4 / math.sqrt(n) and abs(z.var() - 1) < 4 * math.sqrt(2 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the tails: the share beyond 3 sd is 0.27%, within 4 standard errors
    share, expected = float((np.abs(z) > 3).mean()), 2 * stats.norm.sf(3)
    assert abs(share - expected) < 4 * math.sqrt(expected / n)


def test_uniforms_cover_the_unit_interval_evenly(words: torch.Tensor) -> None:
    u = rng.uniform(words).numpy()
    assert u.min() >= 0 and u.max() < 1
    counts = np.bincount((u * 64).astype(int), minlength=64)
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("n", [2, 10, 1797, 60000])
def test_below_n_draws_every_value_equally_often(words: torch.Tensor, n: int) -> None:
    drawn = rng.below(words, n).numpy()
    assert drawn.min() >= 0 and drawn.max() < n
    bins = min(n, 100)  # for large n, the values' hundredths: still uniform
    counts = np.bincount(drawn * bins // n, minlength=bins)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_gumbel_noise_has_the_standard_gumbels_mean_and_variance(words: torch.Tensor) -> None:
    g = rng.gumbel(words).double().numpy()
    n = len(g)
    assert abs(g.mean() - np.euler_gamma) < 4 * math.sqrt(math.pi**2 / 6 / n)
    assert stats.kstest(g, "gumbel_r").pvalue > 1e-3


def test_members_and_steps_draw_independent_numbers() -> None:
    streams = rng.Streams(list(range(8)), 20_000, torch.device("cpu"))
    z = torch.cat([rng.normal(streams.words(s)) for s in (1, 2)]).double().numpy()  # 16 rows: 8 members x 2 steps
    corr = np.corrcoef(z)
    off_diagonal = corr[~np.eye(len(corr), dtype=bool)]
    assert np.abs(off_diagonal).max() < 5 / math.sqrt(z.shape[1])  # |r| of independent rows is ~1/sqrt(n)


def test_below_refuses_a_range_it_cannot_draw_from() -> None:
    with pytest.raises(ValueError, match="0 < n < 2"):
        rng.below(torch.zeros(3, dtype=torch.int64), 0)
