"""What a training step costs, from the configuration alone (no torch): multiply-accumulates (MACs).

The runner sizes and orders populations by it (sweep.runner.population_sizes): a study whose network
shapes differ a lot in cost (a D 16x wider than another) would otherwise leave a core idle while the
costly population trains. The layer sizes mirror models.py; tests/core/test_core_cost.py counts them on
the built networks, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from infogan_core.config import TrainConfig, scaled_units
from infogan_core.data import dataset_entry

KERNEL = 4 * 4  # every convolution of the conv family: 4x4, stride 2, padding 1

# the fixed part of a population's step (Python, op dispatch, the optimizer's calls), in MACs: the mlp of
# bench_population.py takes 2.9 ms a step alone and 18.7 ms for 16 members on one CPU thread, t = A + K b
# with A = 1.9 ms, about 30M MACs at b's rate (1.05 ms for 19M MACs)
STEP_OVERHEAD_MACS = 30_000_000


class NetMacs(NamedTuple):
    """Forward MACs of one sample through each network."""

    generator: int
    d_trunk: int
    d_head: int
    q: int  # Q's head, and an isolated encoder's trunk


def _mlp_stack(inputs: int, units: int, depth: int) -> int:
    """`depth` fully connected layers of `units`, the first from `inputs`."""
    return inputs * units + (depth - 1) * units * units


def _conv_trunk(cfg: TrainConfig, shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(MACs, features) of a conv trunk at width `scale`: convolutions halving the image, then FC."""
    channels, height, width = shape
    macs, c_in = 0, channels
    for i in range(cfg.d_depth):
        c = scaled_units(64 * 2**i, scale)
        height, width = height // 2, width // 2
        macs += c * height * width * c_in * KERNEL
        c_in = c
    features = scaled_units(1024, scale)
    return macs + c_in * height * width * features, features


def _conv_generator(cfg: TrainConfig, shape: tuple[int, ...]) -> int:
    channels, height, width = shape
    g_ch = [scaled_units(64 * 2**i, cfg.g_width) for i in reversed(range(cfg.g_depth))]
    g_fc = scaled_units(1024, cfg.g_width)
    h, w = height // 2**cfg.g_depth, width // 2**cfg.g_depth
    macs = cfg.latent_dim * g_fc + g_fc * g_ch[0] * h * w
    for c_in, c_out in zip(g_ch, [*g_ch[1:], channels], strict=True):  # each input pixel spreads a 4x4 kernel
        macs += c_in * h * w * c_out * KERNEL
        h, w = h * 2, w * 2
    return macs


def net_macs(cfg: TrainConfig) -> NetMacs:
    """Forward MACs per sample of G, D's trunk, D's head and Q, at cfg's family, widths and depths."""
    shape = dataset_entry(cfg.dataset).sample_shape
    q_hidden = scaled_units(128, cfg.q_scale)
    q_outputs = cfg.cat_dim + cfg.cont_codes * (2 if cfg.q_std == "learned" else 1)
    if cfg.family == "mlp":
        out = math.prod(shape)
        g_units = scaled_units(128, cfg.g_width)
        generator = _mlp_stack(cfg.latent_dim, g_units, cfg.g_depth) + g_units * out

        def trunk(scale: float) -> tuple[int, int]:
            units = scaled_units(128, scale)
            return _mlp_stack(out, units, cfg.d_depth), units

    else:
        generator = _conv_generator(cfg, shape)

        def trunk(scale: float) -> tuple[int, int]:
            return _conv_trunk(cfg, shape, scale)

    d_trunk, d_features = trunk(cfg.d_width)
    q_trunk, q_features = trunk(cfg.q_scale) if cfg.encoder == "isolated" else (0, d_features)
    q = q_trunk + q_features * q_hidden + q_hidden * q_outputs
    return NetMacs(generator, d_trunk, d_features, q)


class NetSize(NamedTuple):
    """Parameters, and activations per sample that a training pass keeps for its backward pass, of one network."""

    params: int
    activations: int


def _dense(inputs: int, units: int, bn: bool, kept: int = 3) -> NetSize:
    """A fully connected layer (with BN): its weights, and its output kept `kept` times (linear, BN, activation)."""
    return NetSize(inputs * units + units + (2 * units if bn else 0), kept * units)


def _conv_layer(c_in: int, c_out: int, pixels: int, bn: bool) -> NetSize:
    """A 4x4 convolution (or transposed one) to `pixels` output positions."""
    return NetSize(c_in * c_out * KERNEL + c_out + (2 * c_out if bn else 0), 3 * c_out * pixels)


def _total(parts: list[NetSize]) -> NetSize:
    return NetSize(sum(p.params for p in parts), sum(p.activations for p in parts))


def net_sizes(cfg: TrainConfig) -> tuple[NetSize, NetSize, NetSize]:
    """(G, D with its head, Q with an isolated trunk) of one member, the layers as models.py builds them."""
    shape = dataset_entry(cfg.dataset).sample_shape
    bn_d = cfg.d_batchnorm != "none"
    q_hidden = scaled_units(128, cfg.q_scale)
    q_outputs = cfg.cat_dim + cfg.cont_codes * (2 if cfg.q_std == "learned" else 1)
    if cfg.family == "mlp":
        out = math.prod(shape)
        g_units = scaled_units(128, cfg.g_width)
        g = [_dense(cfg.latent_dim if i == 0 else g_units, g_units, cfg.g_batchnorm) for i in range(cfg.g_depth)]
        g.append(_dense(g_units, out, False, kept=2))

        def trunk(scale: float, bn: bool) -> tuple[list[NetSize], int]:
            units = scaled_units(128, scale)
            return [_dense(out if i == 0 else units, units, bn and i > 0) for i in range(cfg.d_depth)], units

    else:
        channels, height, width = shape
        g_ch = [scaled_units(64 * 2**i, cfg.g_width) for i in reversed(range(cfg.g_depth))]
        g_fc = scaled_units(1024, cfg.g_width)
        h, w = height // 2**cfg.g_depth, width // 2**cfg.g_depth
        g = [_dense(cfg.latent_dim, g_fc, cfg.g_batchnorm), _dense(g_fc, g_ch[0] * h * w, cfg.g_batchnorm)]
        for c_in, c_out in zip(g_ch, [*g_ch[1:], channels], strict=True):
            h, w = h * 2, w * 2
            g.append(_conv_layer(c_in, c_out, h * w, cfg.g_batchnorm and c_out != channels))

        def trunk(scale: float, bn: bool) -> tuple[list[NetSize], int]:
            layers, c_in, hh, ww = [], channels, height, width
            for i in range(cfg.d_depth):
                c, hh, ww = scaled_units(64 * 2**i, scale), hh // 2, ww // 2
                layers.append(_conv_layer(c_in, c, hh * ww, bn and i > 0))
                c_in = c
            features = scaled_units(1024, scale)
            return [*layers, _dense(c_in * hh * ww, features, bn)], features

    d_layers, d_features = trunk(cfg.d_width, bn_d)
    q_layers, q_features = trunk(cfg.q_scale, cfg.q_bn) if cfg.encoder == "isolated" else ([], d_features)
    q = [*q_layers, _dense(q_features, q_hidden, cfg.q_bn), _dense(q_hidden, q_outputs, False, kept=1)]
    return _total(g), _total([*d_layers, _dense(d_features, 1, False, kept=1)]), _total(q)


MEMORY_MARGIN = 1.5  # allocator rounding, workspaces and temporaries the layer sums do not see


def member_bytes(cfg: TrainConfig) -> int:
    """Device memory one member of a population takes while it trains, estimated from the configuration:
    float32 parameters with their gradients and two optimizer moments, the activations a step keeps for
    its backward pass (G, and D and Q over real and fake batches), and the step's counter words with the
    float64 temporaries of its normals, times MEMORY_MARGIN. Sizes `population: auto` on a GPU; an estimate
    that falls short is caught by the runner, which splits a population that runs out of memory."""
    g, d, q = net_sizes(cfg)
    params = g.params + d.params + q.params
    n = cfg.batch_size
    activations = n * (g.activations + 2 * d.activations + q.activations)
    latent = n * (cfg.noise_dim + cfg.cont_codes + (cfg.cat_dim if cfg.learn_cat_prior else len(cfg.cat_codes)))
    words = cfg.d_steps * (n + latent) + latent
    return int(MEMORY_MARGIN * (4 * (4 * params + activations) + 8 * 8 * words))


def step_macs(cfg: TrainConfig) -> int:
    """MACs of one training step of one member: the D step(s) and the G step, forward and backward (a
    backward pass costs about twice its forward, once for a frozen network's input gradients alone)."""
    g, d_trunk, d_head, q = net_macs(cfg)
    d = d_trunk + d_head
    n = cfg.batch_size
    q_in_d_step = cfg.q_update == "d_step"
    d_step = n * g + 3 * (2 * n * d) + (3 * n * q if q_in_d_step else 0)
    seen = 2 * n if cfg.d_batchnorm == "joint" else n  # the G step's D pass sees the real batch too, joint
    g_step = 3 * n * g + seen * d * (2 if cfg.freeze_d_in_g_step else 3) + n * q * (2 if q_in_d_step else 3)
    if cfg.g_step_trunk == "info":  # a second backward, of the information loss alone, through Q and the trunk
        g_step += 2 * (seen * d_trunk + n * q)
    return cfg.d_steps * d_step + g_step


def pair_cost(cfg: TrainConfig) -> float:
    """What one (configuration, seed) pair adds to its population's training, in MACs: steps x step_macs."""
    return float(cfg.steps) * step_macs(cfg)


def population_overhead(cfg: TrainConfig) -> float:
    """What a population of cfg's shape costs besides its members, in MACs: steps x STEP_OVERHEAD_MACS."""
    return float(cfg.steps) * STEP_OVERHEAD_MACS


__all__ = [
    "MEMORY_MARGIN",
    "STEP_OVERHEAD_MACS",
    "NetMacs",
    "NetSize",
    "member_bytes",
    "net_macs",
    "net_sizes",
    "pair_cost",
    "population_overhead",
    "step_macs",
]
