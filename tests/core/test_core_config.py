"""TrainConfig: defaults, derived values, coercion, and validation errors that name the field and value."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from infogan_core import ConfigError, InfoGANError, TrainConfig, field_docs, field_names, field_schema, train
from infogan_core.config import knob
from infogan_core.data import DATASETS
from infogan_core.models import InfoGAN

pytestmark = pytest.mark.usefixtures("core_env")


def test_defaults_are_the_paper_values() -> None:
    cfg = TrainConfig()
    assert cfg.cat_codes == (10,) and cfg.cont_codes == 2 and cfg.noise_dim == 62
    assert (cfg.lr_g, cfg.lr_d, cfg.betas, cfg.batch_size) == (1e-3, 2e-4, (0.5, 0.999), 128)
    assert (cfg.lambda_cat, cfg.lambda_cont) == (1.0, 0.1)
    assert cfg.freeze_d_in_g_step is True


def test_derived_values() -> None:
    cfg = TrainConfig(noise_dim=5, cat_codes=[10, 3], cont_codes=2)
    assert cfg.cat_dim == 13
    assert cfg.latent_dim == 5 + 13 + 2
    assert cfg.cat_entropy == pytest.approx(math.log(10) + math.log(3))
    assert TrainConfig(cat_codes=[10]).cat_entropy == pytest.approx(2.302585, abs=1e-6)
    assert TrainConfig(cat_codes=[]).cat_entropy == 0.0


def test_lr_ratio_sets_the_effective_discriminator_rate() -> None:
    assert TrainConfig(lr_g=1e-3, lr_d=2e-4).lr_d_effective == 2e-4  # no ratio: lr_d
    cfg = TrainConfig(lr_g=1e-3, lr_d=2e-4, lr_ratio=0.5)
    assert cfg.lr_d_effective == pytest.approx(5e-4)  # lr_d is ignored
    assert TrainConfig(lr_g=2e-4, lr_ratio=4).lr_d_effective == pytest.approx(8e-4)


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().lr_g = 0.1  # type: ignore[misc]


def test_yaml_and_json_shapes_are_coerced() -> None:
    cfg = TrainConfig.from_dict({"cat_codes": [10, 4], "betas": [0, 0.9], "lr_g": 1, "lambda_cont": 0, "lr_ratio": 1})
    assert cfg.cat_codes == (10, 4) and cfg.betas == (0.0, 0.9)
    assert isinstance(cfg.lr_g, float) and isinstance(cfg.lambda_cont, float) and isinstance(cfg.lr_ratio, float)
    assert TrainConfig(cat_codes=7).cat_codes == (7,)  # one categorical code given as a number


def test_to_dict_round_trips_through_json() -> None:
    cfg = TrainConfig(cat_codes=[10, 4], cont_codes=3, betas=(0.4, 0.99), lr_ratio=0.5, dataset="ring8")
    d = json.loads(json.dumps(cfg.to_dict()))
    assert list(d) == list(field_names())
    assert TrainConfig.from_dict(d) == cfg


def test_replace_changes_validates_and_rejects_unknown_fields() -> None:
    cfg = TrainConfig()
    assert cfg.replace(lr_g=0.01).lr_g == 0.01 and cfg.lr_g == 1e-3
    with pytest.raises(ConfigError, match=r"`lr_g` must be in \(0.0, 1.0\], but got -0.5"):
        cfg.replace(lr_g=-0.5)
    with pytest.raises(ConfigError, match="unknown TrainConfig field `lr_gg`; did you mean `lr_g`"):
        cfg.replace(lr_gg=0.1)


def test_every_field_is_documented_in_its_own_words() -> None:
    docs = field_docs()
    assert list(docs) == list(field_names())
    for name, text in docs.items():
        own = knob(name).doc
        assert len(own.split()) >= 3, (name, own)  # a phrase, not a word
        assert not any(ref in own.lower() for ref in ("see below", "see above", "see lr_", "see the")), (name, own)
        default = TrainConfig().to_dict()[name]
        shown = "null" if default is None else str(default).lower().replace("(", "[").replace(")", "]")
        assert f"default: {shown}" in text, (name, text)


RANGED = [name for name in field_names() if knob(name).low is not None]


def _outside(value: float, towards: float, is_int: bool) -> float:
    """The nearest representable value past `value` in the direction of `towards`."""
    return value + (1 if towards > value else -1) if is_int else float(np.nextafter(value, towards))


@pytest.mark.parametrize("name", RANGED)
def test_documented_range_is_the_enforced_range(name: str) -> None:
    """The range a field's documentation and JSON Schema state is exactly the range validation enforces."""
    k, default = knob(name), TrainConfig().to_dict()[name]
    element = default[0] if isinstance(default, list) else default
    is_int = isinstance(element, int)  # None (lr_ratio) is a float field
    kind = int if is_int else float
    assert f"in {k.range_text(kind)}" in field_docs()[name]
    schema = field_schema(name)
    values = schema.get("items", schema.get("anyOf", [schema])[0])
    assert values.get("exclusiveMinimum" if k.low_open else "minimum") == k.low
    assert values.get("exclusiveMaximum" if k.high_open else "maximum") == k.high

    def build(v: float) -> TrainConfig:  # on vector data, where depths are not bounded by an image's size
        if isinstance(default, list):  # each element obeys the range
            return TrainConfig(dataset="ring8", **{name: [v] * (k.length or 1)})
        return TrainConfig(dataset="ring8", **{name: kind(v)})

    for bound, is_open, inward in ((k.low, k.low_open, math.inf), (k.high, k.high_open, -math.inf)):
        edge = _outside(bound, inward, is_int) if is_open else bound
        build(edge)  # the last allowed value is accepted
        with pytest.raises(ConfigError, match=f"`{name}` must be"):
            build(_outside(edge, -inward, is_int))  # one step further is refused


# --- validation: each bad value names its field and the value ---------------------------------

BAD_VALUES = [
    ("lr_d", -1.0, "-1.0"),
    ("lr_d", 0.0, "0.0"),
    ("lr_d", float("nan"), "nan"),
    ("lr_d", 2.0, "2.0"),
    ("lr_g", "fast", "'fast'"),
    ("d_batchnorm", "both", "'both'"),
    ("g_loss", "wasserstein", "'wasserstein'"),
    ("clip", "max", "'max'"),
    ("cat_codes", [1], "(1,)"),
    ("cat_codes", [10, 0], "(10, 0)"),
    ("cat_codes", [10.0], "(10.0,)"),
    ("cat_codes", "10", "'10'"),
    ("betas", (0.5, 1.0), "(0.5, 1.0)"),
    ("betas", (0.5,), "(0.5,)"),
    ("betas", 0.5, "0.5"),
    ("betas", ("a", 0.9), "('a', 0.9)"),
    ("batch_size", 1, "1"),
    ("batch_size", 10_000, "10000"),
    ("batch_size", 32.0, "32.0"),
    ("batch_size", True, "True"),
    ("noise_dim", -1, "-1"),
    ("q_min_std", 1.5, "1.5"),
    ("steps", 0, "0"),
    ("d_steps", 11, "11"),
    ("eval_samples", 10, "10"),
    ("clip_value", 0.0, "0.0"),
    ("g_width", 0.0, "0.0"),
    ("freeze_d_in_g_step", "yes", "'yes'"),
    ("g_step_trunk", "adversarial", "'adversarial'"),
    ("q_batchnorm", "separate", "'separate'"),
    ("info_entropy", 1, "1"),
]


@pytest.mark.parametrize(("name", "value", "shown"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v, _ in BAD_VALUES])
def test_bad_value_names_field_and_value(name: str, value: object, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: value})
    message = str(info.value)
    assert f"`{name}`" in message and shown in message, message
    assert "must be" in message
    assert isinstance(info.value, InfoGANError) and isinstance(info.value, ValueError)


def test_choice_errors_list_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"`d_batchnorm` must be one of none \| joint \| separate, but got 'both'"):
        TrainConfig(d_batchnorm="both")


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match="`noise_dim` must be > 0 when there are no codes"):
        TrainConfig(noise_dim=0, cat_codes=[], cont_codes=0)
    with pytest.raises(ConfigError, match="`learn_cat_prior`"):
        TrainConfig(cat_codes=[], learn_cat_prior=True)
    with pytest.raises(ConfigError, match=r"`lr_ratio` must be such that lr_g \* lr_ratio <= 1.*but got 200.0"):
        TrainConfig(lr_g=0.01, lr_ratio=200)
    with pytest.raises(ConfigError, match="`g_depth/d_depth` must be 2 with arch: paper"):
        TrainConfig(arch="paper", dataset="mnist-5k", d_depth=3)
    TrainConfig(noise_dim=0, cat_codes=[8], cont_codes=0)  # codes alone are a valid input for G
    info = "`g_step_trunk` must be all unless freeze_d_in_g_step is false and encoder is shared, but got 'info'"
    for other in ({}, {"freeze_d_in_g_step": False, "encoder": "isolated"}):
        with pytest.raises(ConfigError, match=info):
            TrainConfig(g_step_trunk="info", **other)
    TrainConfig(g_step_trunk="info", freeze_d_in_g_step=False)


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(dataset="cifar10")
    message = str(info.value)
    assert "`dataset`" in message and "'cifar10'" in message
    assert all(name in message for name in DATASETS)


def test_from_dict_unknown_field_suggests_a_close_match() -> None:
    with pytest.raises(ConfigError, match="unknown TrainConfig field `lr_dd`; did you mean `lr_d`"):
        TrainConfig.from_dict({"lr_dd": 1e-3})
    with pytest.raises(ConfigError, match="unknown TrainConfig field `d_batchnrom`; did you mean `d_batchnorm`"):
        TrainConfig.from_dict({"d_batchnrom": "none"})
    # nothing close: the valid fields are listed instead
    with pytest.raises(ConfigError, match="unknown TrainConfig field `zzz`; valid fields: dataset, data_dir"):
        TrainConfig.from_dict({"zzz": 1})


# --- the network against the data's shape, checked before anything is built -------------------


def test_paper_arch_is_table_1_exactly() -> None:
    with pytest.raises(ConfigError, match=r"`arch` must be conv for dataset `digits` of shape \(1, 8, 8\): paper is"):
        TrainConfig(arch="paper", dataset="digits")  # the data's shape is known from the registry, unloaded
    for name in ("g_width", "d_width", "q_width"):
        with pytest.raises(ConfigError, match=rf"`{name}` must be 1 with arch: paper .*use arch: conv, but got 0.5"):
            TrainConfig(arch="paper", dataset="mnist-5k", **{name: 0.5})
    paper = TrainConfig(arch="paper", dataset="mnist-5k")
    assert (paper.family, paper.init_scheme, paper.q_scale) == ("paper", "normal", 1.0)
    assert TrainConfig(arch="conv", dataset="mnist-5k", g_width=0.5).init_scheme == "pytorch"


def test_conv_arch_needs_images_and_divisible_sizes() -> None:
    with pytest.raises(ConfigError, match=r"`arch` must be mlp \(or auto\) for dataset `ring8`.*but got 'conv'"):
        TrainConfig(arch="conv", dataset="ring8")
    with pytest.raises(ConfigError, match=r"`d_depth` must be small enough that 8x8 images divide by 2\*\*d_depth.*4"):
        TrainConfig(arch="conv", dataset="digits", d_depth=4)


@pytest.mark.parametrize(
    ("dataset", "family"),
    [("ring8", "mlp"), ("grid25", "mlp"), ("digits", "conv"), ("mnist-5k", "conv"), ("shapes", "conv")],
)
def test_auto_arch_fits_the_data(dataset: str, family: str) -> None:
    cfg = TrainConfig(dataset=dataset)
    assert cfg.arch == "auto" and cfg.family == family
    shape = DATASETS[dataset].sample_shape
    model = InfoGAN(cfg.replace(g_width=0.1, d_width=0.1), shape)
    assert model.generator(torch.zeros(2, cfg.latent_dim)).shape == (2, *shape)


def test_q_width_sizes_q_alone() -> None:
    shape = DATASETS["digits"].sample_shape
    base = TrainConfig(dataset="digits", d_width=0.5, g_width=0.5)
    default, wide = InfoGAN(base, shape), InfoGAN(base.replace(q_width=2.0), shape)
    assert default.q_head.net[0].out_features == 64  # q_width unset: Q follows d_width, as before it existed
    assert wide.q_head.net[0].out_features == 256
    assert [p.shape for p in wide.d_trunk.parameters()] == [p.shape for p in default.d_trunk.parameters()]
    isolated = InfoGAN(base.replace(encoder="isolated", q_width=0.25), shape)
    assert isolated.q_trunk[0].out_channels == 16 and isolated.d_trunk[0].out_channels == 32


def test_paper_init_is_the_paper_codes_normal() -> None:
    torch.manual_seed(0)
    paper = InfoGAN(TrainConfig(arch="paper", dataset="mnist-5k"), (1, 28, 28)).requires_grad_(False)
    weights = torch.cat([m.weight.flatten() for m in paper.modules() if isinstance(m, nn.Linear | nn.Conv2d)])
    assert float(weights.std()) == pytest.approx(0.02, rel=0.05) and abs(float(weights.mean())) < 1e-3
    biases = [m.bias for m in paper.modules() if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d)]
    assert all(float(b.abs().max()) == 0 for b in biases)
    scales = torch.cat([m.weight for m in paper.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)])
    assert float(scales.mean()) == pytest.approx(1.0, abs=0.01) and 0.01 < float(scales.std()) < 0.03
    conv = InfoGAN(TrainConfig(arch="conv", dataset="mnist-5k"), (1, 28, 28)).requires_grad_(False)  # pytorch init
    first = conv.d_trunk[0].weight
    assert float(first.std()) > 0.05 and float(first.abs().max()) <= 1 / 4  # kaiming-uniform bound 1/sqrt(16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="`device`.*'cuda'"):
        train(TrainConfig(dataset="ring8", arch="mlp", device="cuda", steps=1))
