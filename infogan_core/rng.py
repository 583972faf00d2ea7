"""Counter-based random numbers: every draw of a training step is a pure function of (seed, step, index).

A member therefore draws the same numbers alone or in any population, on a CPU of any SIMD path or on a
GPU, and a step's draws for all K members take a fixed number of kernels (a population's step does not
launch more of them as K grows). Nothing needs saving for a resume: the numbers of step s are those of
step s whenever it runs.

Words: member k's j-th 64-bit word of step s is SplitMix64's output (Steele, Lea and Flood, OOPSLA 2014;
the finalizer of Vigna's splitmix64.c) at counter base + j * GAMMA, where base is itself SplitMix64 of the
member's key + s * GAMMA: one SplitMix64 stream per (member, step). The arithmetic runs on int64 tensors,
whose multiplication and addition wrap modulo 2^64 on every device torch runs on (tests/core/test_core_rng.py
checks the words against Python's integers under each CPU capability).

Floats: uniforms take 24 bits of a word; normals are Box-Muller from one word, with the logarithm and the
cosine written as polynomials in float64. Every operation is correctly rounded (+, -, *, /, sqrt, frexp,
where), so the same word gives the same float on every device and at every position in a tensor; torch's
own log and cos are not (a CPU's vector loop and its scalar tail round differently, and GPUs differ again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

_MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2^64 / golden ratio, odd
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_SALT = 0x5EED5EED5EED5EED  # keys of seed s: mix(s * GAMMA + _SALT); any constant, fixed forever
UNIT = 2.0**-24  # the spacing of 24-bit uniforms


def _signed(value: int) -> int:
    """An unsigned 64-bit value as the int64 with the same bits."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def mix_int(value: int) -> int:
    """SplitMix64's finalizer on a Python integer, modulo 2^64 (the reference the tensor version must give)."""
    z = value & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer on an int64 tensor: each >> is made logical by masking its sign bits off."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _signed(_MIX1)
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _signed(_MIX2)
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def key(seed: int) -> int:
    """A member's key (as int64) from its seed."""
    return _signed(mix_int(seed * GAMMA + _SALT))


class Streams:
    """The words of K members' steps: `words(step)` is (K, count) int64, row k a function of (seed k, step)."""

    def __init__(self, seeds: Sequence[int], count: int, device: torch.device) -> None:
        self.keys = torch.tensor([key(s) for s in seeds], dtype=torch.int64, device=device).view(-1, 1)  # (K, 1)
        # j * GAMMA for j = 1..count, wrapped: the counters of one step's stream, the same every step
        self.counters = torch.arange(1, count + 1, dtype=torch.int64, device=device) * _signed(GAMMA)  # (count,)

    def words(self, step: int | torch.Tensor) -> torch.Tensor:
        """(K, count) words of `step` (an int, or an int64 tensor on the device: a CUDA graph's input)."""
        offset = _signed(step * GAMMA) if isinstance(step, int) else step * _signed(GAMMA)  # wraps, as int64 does
        base = mix(self.keys + offset)  # (K, 1): one stream per (member, step)
        return mix(base + self.counters)


class Draws:
    """One step's words (K, W) and the numbers made from them. Uniforms and normals are each computed once,
    for the whole block, when first asked for: however many parts the step cuts the block into, a kind
    costs the same few kernels. `part(a, b)` is columns [a, b), sharing those computations."""

    def __init__(self, words: torch.Tensor, _whole: Draws | None = None, _start: int = 0) -> None:
        self.words = words
        self._whole, self._start = _whole, _start
        self._cache: dict[str, torch.Tensor] = {}

    def part(self, start: int, end: int) -> Draws:
        whole = self._whole or self
        offset = self._start + start
        return Draws(self.words[:, start:end], whole, offset)

    def _made(self, kind: str) -> torch.Tensor:
        whole = self._whole or self
        if kind not in whole._cache:
            whole._cache[kind] = {"uniform": uniform, "normal": normal}[kind](whole.words)
        return whole._cache[kind][:, self._start : self._start + self.words.shape[1]]

    def uniform(self) -> torch.Tensor:
        """float32 in [0, 1) from each word (`uniform`)."""
        return self._made("uniform")

    def normal(self) -> torch.Tensor:
        """float32 N(0, 1) from each word (`normal`)."""
        return self._made("normal")


# --- words to numbers ---------------------------------------------------------------------------------


def _bits(words: torch.Tensor, shift: int, width: int) -> torch.Tensor:
    return (words >> shift) & ((1 << width) - 1)


def uniform(words: torch.Tensor) -> torch.Tensor:
    """float32 in [0, 1), multiples of 2^-24: a word's top 24 bits."""
    return _bits(words, 40, 24).to(torch.float32) * UNIT


def below(words: torch.Tensor, n: int) -> torch.Tensor:
    """int64 in [0, n): the top 32 bits of a word times n, shifted back (Lemire's multiply-shift; no modulo,
    and a bias below n / 2^32)."""
    if not 0 < n < 2**31:
        raise ValueError(f"below() draws from [0, n) for 0 < n < 2^31, but got n={n}")
    return (_bits(words, 32, 32) * n) >> 32


def open_uniform(words: torch.Tensor) -> torch.Tensor:
    """float64 in (0, 1): 24 bits of a word, centred in their cell (never 0 or 1, so a log is finite)."""
    return (_bits(words, 40, 24).to(torch.float64) + 0.5) * UNIT


# log(m) for m in [1/sqrt 2, sqrt 2): 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716; the series' terms
# s^(2i+1) / (2i+1) up to s^13 leave an error below 2e-14 there
_ATANH = [1.0 / (2 * i + 1) for i in range(7)]
_LN2 = math.log(2.0)


def log(x: torch.Tensor) -> torch.Tensor:
    """Natural log of positive float64 values from correctly rounded operations only (see the module)."""
    m, e = torch.frexp(x)  # x = m * 2^e, m in [0.5, 1)
    low = m < 2**-0.5
    m = torch.where(low, m * 2, m)
    e = (e - low.to(e.dtype)).to(torch.float64)
    s = (m - 1) / (m + 1)
    s2 = s * s
    series = torch.full_like(s, _ATANH[-1])
    for c in reversed(_ATANH[:-1]):
        series = series * s2 + c
    return e * _LN2 + 2 * s * series


# sin and cos of t in [0, pi/4] by their Taylor series to t^15 and t^14: errors below 1e-14 there
_SIN = [(-1) ** i / math.factorial(2 * i + 1) for i in range(8)]
_COS = [(-1) ** i / math.factorial(2 * i) for i in range(8)]


def _series(t2: torch.Tensor, coefficients: list[float]) -> torch.Tensor:
    out = torch.full_like(t2, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        out = out * t2 + c
    return out


def cos_2pi(u: torch.Tensor) -> torch.Tensor:
    """cos(2 pi u) for float64 u in [0, 1) that are multiples of 2^-24: the octant of u found exactly, then
    the sine or cosine of an angle in [0, pi/4]."""
    v = u * 8  # exact
    octant = v.floor()
    f = v - octant  # exact, in [0, 1)
    odd = torch.remainder(octant, 2) == 1
    t = torch.where(odd, 1 - f, f) * (math.pi / 4)  # the angle from the octant's nearer axis
    t2 = t * t
    sin_t, cos_t = t * _series(t2, _SIN), _series(t2, _COS)
    # cos(2 pi u) by octant 0..7: cos t, sin t', -sin t, -cos t', -cos t, -sin t', sin t, cos t'
    use_sin = (octant == 1) | (octant == 2) | (octant == 5) | (octant == 6)
    negative = (octant >= 2) & (octant <= 5)
    value = torch.where(use_sin, sin_t, cos_t)
    return torch.where(negative, -value, value)


def normal(words: torch.Tensor) -> torch.Tensor:
    """float32 N(0, 1) from one word each: Box-Muller, sqrt(-2 ln u1) cos(2 pi u2), with u1 in (0, 1] from the
    top 24 bits and u2 in [0, 1) from the next 24 (|z| < 5.77)."""
    u1 = (_bits(words, 40, 24).to(torch.float64) + 1) * UNIT
    u2 = _bits(words, 16, 24).to(torch.float64) * UNIT
    return (torch.sqrt(-2 * log(u1)) * cos_2pi(u2)).to(torch.float32)


def gumbel(words: torch.Tensor) -> torch.Tensor:
    """float32 standard Gumbel noise, -log(-log u), u in (0, 1)."""
    return (-log(-log(open_uniform(words)))).to(torch.float32)


__all__ = [
    "GAMMA",
    "Draws",
    "Streams",
    "below",
    "cos_2pi",
    "gumbel",
    "key",
    "log",
    "mix",
    "mix_int",
    "normal",
    "uniform",
]
