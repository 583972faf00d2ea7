"""TrainConfig: every knob of an InfoGAN run, each declared once, validated on construction.

Field names are the vocabulary of study files (`base:` and `factors:`). Each field is declared with
a `Knob`: its meaning, unit, allowed range or choices, and the paper's value where it has one. The
validation, the documentation (`field_docs`) and the JSON Schema (`field_schema`, `sweep schema`)
are all derived from that one declaration. Defaults are the InfoGAN paper's MNIST values where they
apply (Chen et al. 2016, Table 1 and the public code), scaled to the offline `digits` dataset
otherwise. This module imports no torch: validating a study never loads it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infogan_core.data import DATASETS, dataset_entry, is_data_path
from infogan_core.errors import ConfigError, DataError
from infogan_core.knobs import Knob
from infogan_core.knobs import declare as _knob  # every field below is declared with it

# A CPU's kernels run a vector loop (8 floats a step with AVX2, 16 with AVX-512), then a scalar loop over the
# rest, and the two round some operations differently (a fused multiply-add, a library's tanh). When each
# member's slice of a stacked tensor starts on a whole vector, as a single run's tensor does, every value takes
# the path it takes alone: batches that are multiples of 32 and convolution channel counts that are multiples
# of SIMD_LANES do that (inexact_population). Here, not in population.py: this module imports no torch
SIMD_LANES = 16

# What a configuration computes, as a version: it goes up whenever the same configuration and seed would give
# other numbers (a stored study's runs are comparable only within one). 1: the first engines (torch.Generator
# streams, torch's fused Adam); 2: counter-based random streams and the (K, P) buffer optimizer (2026-12); 3: arch
# paper follows the paper's code (leaky ReLU slope 0.01, a sigmoid output on [0, 1] data), where it had the conv
# family's 0.1 and tanh on [-1, 1] (2026-12); 4: an unfrozen G step (freeze_d_in_g_step: false) moves D's trunk
# with an optimizer state of its own, where D's optimizer (and its Adam moments) did (2027-01)
NUMERICS = 4


@dataclass(frozen=True)
class TrainConfig:
    # --- data and codes ---------------------------------------------------------------------
    dataset: str = _knob(
        "digits", "registry key of the training data, or the path of an .npz file or PNG folder", allowed=DATASETS
    )
    data_dir: str | None = _knob(None, "folder of MNIST-style IDX files; null reads $INFOGAN_DATA_DIR")
    batch_size: int = _knob(128, "samples per step", "samples", "[2, 4096]", paper="128")
    noise_dim: int = _knob(62, "non-salient noise dimensions z", "dimensions", "[0, 1024]", paper="62")
    noise_prior: str = _knob(
        "uniform", "noise distribution, N(0,1) or U(-1,1)", "", "gaussian | uniform", paper="uniform"
    )
    cat_codes: tuple[int, ...] = _knob((10,), "categories of each categorical code", "", "[2, 1000]", paper="[10]")
    cont_codes: int = _knob(2, "number of continuous codes", "codes", "[0, 16]", paper="2")
    cont_prior: str = _knob(
        "uniform",
        "continuous codes drawn from U(-1,1), N(0,1), or gaussian_matched: N(0,1/3), the variance of U(-1,1)",
        "",
        "uniform | gaussian | gaussian_matched",
    )
    learn_cat_prior: bool = _knob(False, "learn the categorical prior's logits from the adversarial loss")
    prior_grad: str = _knob(
        "score",
        "how a learned prior gets its gradient from the adversarial loss: score (the score-function "
        "estimator with a mean baseline) or straight_through (Elastic-InfoGAN's Gumbel-softmax path through G)",
        "",
        "score | straight_through",
    )
    lr_prior: float | None = _knob(
        None,
        "learning rate of a learned categorical prior's logits, in an optimizer of their own (G's kind, betas and "
        "clipping, applied to the logits alone); null: they learn in G's optimizer at lr_g. Unused without "
        "learn_cat_prior",
        "per step",
        "(0, 1]",
    )
    # --- architecture -------------------------------------------------------------------------
    arch: str = _knob(
        "auto",
        "network family: auto (mlp for vectors, conv for images), mlp, conv, or paper (Table 1, 28x28, widths 1)",
        "",
        "auto | mlp | conv | paper",
    )
    g_width: float = _knob(1.0, "generator capacity: multiplier on the layer widths", "x", "(0, 8]", paper="1")
    d_width: float = _knob(1.0, "discriminator and encoder capacity: multiplier on the layer widths", "x", "(0, 8]")
    g_depth: int = _knob(2, "generator depth: hidden layers (mlp) or upsampling stages (conv)", "layers", "[1, 6]")
    d_depth: int = _knob(2, "discriminator depth: hidden layers (mlp) or stride-2 stages (conv)", "layers", "[1, 6]")
    g_batchnorm: bool = _knob(True, "batch norm in the generator's hidden layers", paper="true")
    d_batchnorm: str = _knob(
        "separate",
        "BN in D: none, joint (real and fake in one pass) or separate batches",
        "",
        "none | joint | separate",
    )
    leaky_slope: float | None = _knob(
        None,
        "slope for negative inputs of the leaky ReLUs in D's trunk and Q's head; null: the family's own (mlp: 0.2 "
        "in the trunk, 0.1 in Q's head; conv: 0.1, the paper's text; paper: 0.01, the paper's code)",
        "",
        "[0, 1]",
        paper="0.1 in the text; 0.01 in the code (custom_ops.py: `def leaky_rectify(x, leakiness=0.01):`, "
        "applied without an argument by regularized_gan.py's mnist network: `apply(leaky_rectify).`)",
    )
    g_output: str = _knob(
        "auto",
        "G's last activation on images, and the range D sees images in: tanh on [-1, 1], or sigmoid on [0, 1] "
        "(the paper code's Bernoulli mean on MNIST's [0, 1] pixels); auto: sigmoid for arch paper, tanh otherwise. "
        "Evaluation and images read samples in [-1, 1] either way",
        "",
        "auto | tanh | sigmoid",
        paper="sigmoid (run_mnist_exp.py: `output_dist=MeanBernoulli(dataset.image_dim),`; distributions.py: "
        "`return dict(p=tf.nn.sigmoid(flat_dist))`)",
    )
    q_batchnorm: bool | None = _knob(
        None,
        "BN in Q's head (its hidden layer) and in an isolated encoder's trunk (Q's own, so it follows Q); null: as "
        "D, on unless d_batchnorm is none. Set it to keep Q the same network in every arm of a study of BN in D",
    )
    encoder: str = _knob("shared", "Q reads D's trunk (shared) or has a trunk of its own", "", "shared | isolated")
    q_width: float | None = _knob(
        None, "Q's capacity (its hidden layer, and an isolated trunk); null: d_width", "x", "(0, 8]"
    )
    init: str = _knob(
        "auto",
        "weight init: auto (normal for paper, else pytorch), pytorch's defaults, or the "
        "paper code's normal (N(0, 0.02) weights, N(1, 0.02) BN scales)",
        "",
        "auto | pytorch | normal",
    )
    # --- objective ----------------------------------------------------------------------------
    g_loss: str = _knob(
        "nonsaturating",
        "G's loss: -log D(G(z)) or log(1 - D(G(z)))",
        "",
        "nonsaturating | saturating",
        paper="nonsaturating",
    )
    lambda_cat: float = _knob(
        1.0,
        "weight of the categorical information term (0: a plain GAN; Q only measures)",
        "weight",
        "[0, 100]",
        paper="1",
    )
    lambda_cont: float = _knob(
        0.1,
        "weight of the continuous information term",
        "weight",
        "[0, 100]",
        paper="0.1 in the text (Sec. 7: smaller for continuous codes); 1 in the code, whose one coefficient weights "
        "both terms (run_mnist_exp.py: `info_reg_coeff=1.0,`)",
    )
    q_std: str = _knob("fixed", "posterior std of the continuous codes: fixed at 1, or learned", "", "fixed | learned")
    q_min_std: float = _knob(0.0, "floor added to a learned posterior std (0 allows collapse)", "std", "[0, 1]")
    info_entropy: bool = _knob(
        False,
        "subtract the codes' prior entropies from the information loss the optimizers see: lambda_cat * (CE - H(c)) "
        "+ lambda_cont * (NLL - h(c_cont)), the negative lower bound -L_I of the paper's code, in the D step (with "
        "q_update: d_step) and the G step. H(c) is the uniform prior's, or a learned prior's entropy detached; both "
        "are constants for the parameters, so training is bit for bit the same either way. The logged loss/info and "
        "mi/* read CE and NLL, so they are unaffected too",
    )
    q_update: str = _knob(
        "d_step",
        "where Q learns the information loss. d_step (the paper's code): the D step's loss includes "
        "lambda * the information loss, so D's shared trunk, Q's head and an isolated encoder learn to recover the "
        "codes at D's learning rate, while G gets the same term in the G step. g_step: Q's head (and an isolated "
        "encoder) learn in the G step at G's learning rate, and a shared trunk never sees the information loss",
        "",
        "d_step | g_step",
    )
    loss_space: str = _knob(
        "logits",
        "where the adversarial losses are computed: logits (softplus, stable) or probs (the paper code's "
        "-log(D + 1e-8) on sigmoid probabilities)",
        "",
        "logits | probs",
    )
    # --- optimization -------------------------------------------------------------------------
    optimizer: str = _knob(
        "adam", "optimizer of every network: adam (betas) or sgd (with momentum)", "", "adam | sgd", paper="adam"
    )
    lr_g: float = _knob(1e-3, "learning rate of G (and of Q with q_update: g_step)", "per step", "(0, 1]", paper="1e-3")
    lr_d: float = _knob(
        2e-4,
        "learning rate of D (and of Q with q_update: d_step); unused when lr_ratio is set",
        "per step",
        "(0, 1]",
        paper="2e-4",
    )
    lr_ratio: float | None = _knob(None, "when set, D's learning rate is lr_g * lr_ratio", "x", "(0, 1000]")
    betas: tuple[float, float] = _knob(
        (0.5, 0.999), "Adam's beta1 and beta2", "", "[0, 1)", length=2, paper="[0.5, 0.999] (public code)"
    )
    momentum: float = _knob(0.9, "SGD's momentum (optimizer: sgd)", "", "[0, 1)")
    clip: str = _knob(
        "none", "gradient clipping: by global L2 norm per optimizer, or by value", "", "none | norm | value"
    )
    clip_value: float = _knob(1.0, "the largest gradient norm (norm) or |gradient| (value)", "", "(0, 1000000]")
    d_steps: int = _knob(1, "discriminator steps per generator step", "steps", "[1, 10]", paper="1")
    freeze_d_in_g_step: bool = _knob(
        True,
        "true: every parameter of D (trunk and head) is frozen while the G step runs, so that step updates G "
        "alone (and Q, with q_update: g_step). false changes one thing: the G step's losses (those g_step_trunk "
        "names) also flow into D's trunk, and an optimizer of the trunk's own applies that gradient (D's kind, "
        "learning rate, betas and clipping, its own moments: D's Adam state sees only the D step; NUMERICS 4, where "
        "D's optimizer moved the trunk); D's head is never updated by the G step",
    )
    g_step_trunk: str = _knob(
        "all",
        "which of the G step's losses reach an unfrozen shared trunk (freeze_d_in_g_step: false): all (adversarial "
        "and information) or info (the information loss alone; the adversarial loss still reaches G through the "
        "trunk, but not the trunk's parameters)",
        "",
        "all | info",
    )
    # --- run ----------------------------------------------------------------------------------
    steps: int = _knob(2000, "generator steps to train", "steps", "[1, 10000000]")
    report_every: int = _knob(50, "steps between reports of the training metrics", "steps", "[1, 10000000]")
    eval_every: int = _knob(500, "steps between evaluations (and one at the end)", "steps", "[1, 10000000]")
    eval_samples: int = _knob(2000, "generated samples per evaluation", "samples", "[100, 100000]")
    eval_last: int = _knob(
        3, "a run's eval/* scores are the mean of its last eval_last evaluations", "evaluations", "[1, 1000]"
    )
    seed: int = _knob(0, "seeds torch, numpy and the data order (CPU runs repeat exactly)", "", "[0, 4294967295]")
    device: str = _knob("auto", "where to train: auto (cuda when available), cpu or cuda", "", "auto | cpu | cuda")
    precision: str = _knob(
        "fp32",
        "arithmetic of the training step: fp32; tf32 (TF32 matrix products and convolutions on a CUDA device, "
        "float32 elsewhere: a CPU computes fp32); bf16 (bfloat16 autocast, with float32 weights, optimizer state "
        "and losses)",
        "",
        "fp32 | tf32 | bf16",
    )
    cuda_graph: bool = _knob(
        True,
        "on a CUDA device, capture the training step in a CUDA graph and replay it (one launch a step instead of "
        "hundreds); false runs it op by op. No effect on a CPU",
    )

    def __post_init__(self) -> None:
        _coerce(self)
        _validate(self)

    # --- derived values ---------------------------------------------------------------------
    @property
    def lr_d_effective(self) -> float:
        """D's learning rate: lr_g * lr_ratio when lr_ratio is set, else lr_d."""
        return self.lr_g * self.lr_ratio if self.lr_ratio is not None else self.lr_d

    @property
    def family(self) -> str:
        """The network family `arch` resolves to: auto is mlp for vector data, conv for images."""
        if self.arch != "auto":
            return self.arch
        return "conv" if dataset_entry(self.dataset).is_image else "mlp"

    @property
    def q_scale(self) -> float:
        """Q's width multiplier: q_width, or d_width when q_width is null."""
        return self.q_width if self.q_width is not None else self.d_width

    @property
    def q_bn(self) -> bool:
        """Whether Q's head (and an isolated encoder's trunk) has BN: q_batchnorm, or D's when it is null."""
        return self.q_batchnorm if self.q_batchnorm is not None else self.d_batchnorm != "none"

    @property
    def init_scheme(self) -> str:
        """The weight init `init` resolves to: auto is the paper code's normal for arch paper, else pytorch."""
        if self.init != "auto":
            return self.init
        return "normal" if self.family == "paper" else "pytorch"

    @property
    def output_activation(self) -> str:
        """G's last activation on images, as `g_output` resolves it: auto is sigmoid for arch paper, else tanh."""
        if self.g_output != "auto":
            return self.g_output
        return "sigmoid" if self.family == "paper" else "tanh"

    @property
    def cat_dim(self) -> int:
        """Width of the concatenated one-hot categorical codes."""
        return sum(self.cat_codes)

    @property
    def latent_dim(self) -> int:
        """Width of G's input: noise, one-hot categorical codes, continuous codes."""
        return self.noise_dim + self.cat_dim + self.cont_codes

    @property
    def cat_entropy(self) -> float:
        """H(c) of the uniform categorical prior in nats (ln 10 = 2.303 for the paper)."""
        return float(sum(math.log(k) for k in self.cat_codes))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["cat_codes"] = list(self.cat_codes)
        d["betas"] = list(self.betas)
        return d

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - set(field_names())
        if unknown:
            raise ConfigError(_unknown_message(sorted(unknown)[0]))
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict; unknown keys are an error with a close-match suggestion."""
        for key in values:
            if key not in field_names():
                raise ConfigError(_unknown_message(key))
        return cls(**values)


# --- the declarations, read back ----------------------------------------------------------------

_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_KINDS = {"str": str, "bool": bool, "int": int, "float": float}


def field_names() -> tuple[str, ...]:
    """Every TrainConfig field name, in declaration order."""
    return tuple(_FIELDS)


def knob(name: str) -> Knob:
    """The declaration of field `name`."""
    return _FIELDS[name].metadata["knob"]


def _kind(name: str) -> tuple[type, bool, bool]:
    """(element type, whether None is allowed, whether the field is a list) from the annotation."""
    annotation = str(_FIELDS[name].type)
    is_list = annotation.startswith("tuple[")
    base = annotation.removeprefix("tuple[").split(",")[0].split("]")[0].replace(" | None", "").strip()
    return _KINDS[base], "None" in annotation, is_list


def field_docs() -> dict[str, str]:
    """Field name -> one paragraph: meaning, unit, allowed values, default and the paper's value."""
    return {name: _describe(name) for name in _FIELDS}


def _describe(name: str) -> str:
    k, (kind, _, is_list) = knob(name), _kind(name)
    parts = [k.doc]
    if k.unit:
        parts.append(f"unit: {k.unit}")
    if k.choices:
        parts.append("one of " + " | ".join(k.choices))
    if k.low is not None:
        each = "each in " if is_list else "in "
        count = f"{k.length} numbers, " if k.length else ""
        parts.append(f"{count}{each}{k.range_text(kind)}")
    default = _FIELDS[name].default
    parts.append(f"default: {_json_value(default)}")
    if k.paper:
        parts.append(f"paper: {k.paper}")
    return "; ".join(parts)


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_json_value(v) for v in value) + "]"
    return str(value)


def field_schema(name: str) -> dict[str, Any]:
    """JSON Schema of one field's values (type, range, choices, description), for editors and `sweep schema`."""
    k, (kind, nullable, is_list) = knob(name), _kind(name)
    value: dict[str, Any] = {"type": {str: "string", bool: "boolean", int: "integer", float: "number"}[kind]}
    if k.choices:
        value["enum"] = list(k.choices)
    if name == "dataset":  # a registry key, or the path of the user's .npz file or folder of PNGs
        value = {"anyOf": [value, {"type": "string", "pattern": r"(/|\.npz$)"}]}
    if k.low is not None:
        value["exclusiveMinimum" if k.low_open else "minimum"] = k.low
    if k.high is not None:
        value["exclusiveMaximum" if k.high_open else "maximum"] = k.high
    if is_list:
        value = {"type": "array", "items": value}
        if k.length:
            value["minItems"] = value["maxItems"] = k.length
    if nullable:
        value = {"anyOf": [value, {"type": "null"}]}
    default = _FIELDS[name].default
    return {**value, "description": _describe(name), "default": list(default) if is_list else default}


# --- validation ---------------------------------------------------------------------------------


def _unknown_message(key: str) -> str:
    close = difflib.get_close_matches(key, field_names(), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else f"; valid fields: {', '.join(field_names())}"
    return f"unknown TrainConfig field `{key}`{hint}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(cfg: TrainConfig) -> None:
    """Accept lists for tuple fields, one number for one categorical code, and ints for float fields
    (as YAML and JSON give them); anything else is left for _validate to name."""
    setter = object.__setattr__
    if isinstance(cfg.cat_codes, int) and not isinstance(cfg.cat_codes, bool):
        setter(cfg, "cat_codes", (cfg.cat_codes,))
    for name in _FIELDS:
        kind, _, is_list = _kind(name)
        value = getattr(cfg, name)
        if is_list and isinstance(value, list | tuple):
            setter(cfg, name, tuple(float(v) if kind is float and _is_number(v) else v for v in value))
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            setter(cfg, name, float(value))


def _fail(name: str, expected: str, value: Any) -> None:
    raise ConfigError(f"`{name}` must be {expected}, but got {value!r}")


def _is_kind(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _validate_field(name: str, value: Any) -> None:
    """Type, choices and range of one field, as its Knob declares them."""
    k, (kind, nullable, is_list) = knob(name), _kind(name)
    if value is None and nullable:
        return
    if is_list:
        count = f"{k.length} numbers" if k.length else "a list of integers"
        expected = f"{count}, each in {k.range_text(kind)}"
        ok = isinstance(value, tuple) and (k.length is None or len(value) == k.length)
        if not ok or not all(_is_kind(v, kind) or (kind is float and _is_number(v)) for v in value):
            _fail(name, expected, value)
        if not all(k.allows(v) for v in value):
            _fail(name, expected, value)
        return
    if not _is_kind(value, kind):
        _fail(name, f"of type {kind.__name__}", value)
    if k.choices and value not in k.choices and not (name == "dataset" and is_data_path(value)):
        _fail(name, "one of " + " | ".join(k.choices), value)
    if k.low is not None and not k.allows(value):
        _fail(name, f"in {k.range_text(kind)}", value)


def _validate(cfg: TrainConfig) -> None:
    for name in _FIELDS:
        _validate_field(name, getattr(cfg, name))
    # rules between fields
    if cfg.lr_ratio is not None and cfg.lr_d_effective > 1.0:
        _fail("lr_ratio", f"such that lr_g * lr_ratio <= 1 (lr_g={cfg.lr_g})", cfg.lr_ratio)
    if cfg.latent_dim == 0:
        _fail("noise_dim", "> 0 when there are no codes (G needs an input)", cfg.noise_dim)
    if cfg.learn_cat_prior and not cfg.cat_codes:
        _fail("learn_cat_prior", "false when there are no categorical codes", cfg.learn_cat_prior)
    if cfg.g_step_trunk == "info" and (cfg.freeze_d_in_g_step or cfg.encoder != "shared"):
        _fail("g_step_trunk", "all unless freeze_d_in_g_step is false and encoder is shared", cfg.g_step_trunk)
    _validate_network(cfg)


def _validate_network(cfg: TrainConfig) -> None:
    """The network family against the data's sample shape, known from the registry without loading it."""
    try:
        shape = dataset_entry(cfg.dataset).sample_shape
    except DataError as e:  # a user's file that is missing or malformed: said in the config's terms
        raise ConfigError(str(e)) from None
    family = cfg.family
    if cfg.g_output != "auto" and len(shape) != 3:
        _fail(
            "g_output",
            f"auto for dataset `{cfg.dataset}`, whose samples are vectors (G's output is linear)",
            cfg.g_output,
        )
    if family in ("conv", "paper") and len(shape) != 3:
        _fail("arch", f"mlp (or auto) for dataset `{cfg.dataset}`, whose samples are vectors of shape {shape}", family)
    if family == "paper":
        if shape != (1, 28, 28):
            _fail("arch", f"conv for dataset `{cfg.dataset}` of shape {shape}: paper is the 28x28 network", family)
        widths = {"g_width": cfg.g_width, "d_width": cfg.d_width, "q_width": cfg.q_scale}
        for name, value in widths.items():
            if value != 1.0:
                _fail(name, "1 with arch: paper (Table 1's network exactly); for other widths use arch: conv", value)
        if cfg.g_depth != 2 or cfg.d_depth != 2:
            _fail("g_depth/d_depth", "2 with arch: paper (Table 1 fixes the depth)", (cfg.g_depth, cfg.d_depth))
    if family in ("conv", "paper"):
        _, height, width = shape
        for name in ("d_depth", "g_depth"):
            depth = getattr(cfg, name)
            if height % 2**depth or width % 2**depth:
                _fail(name, f"small enough that {height}x{width} images divide by 2**{name}", depth)


# --- populations: which runs can train as one stacked model ---------------------------------------

# knobs that may differ between the members of a population: none of them changes a tensor's shape
MEMBER_FIELDS = (
    "seed",
    "lr_g",
    "lr_d",
    "lr_ratio",
    "betas",
    "momentum",
    "lambda_cat",
    "lambda_cont",
    "clip_value",
    "q_min_std",
    "cont_prior",
    "noise_prior",
    "info_entropy",
)


def population_key(cfg: TrainConfig) -> tuple:
    """What members of one population share: every field but MEMBER_FIELDS, and whether each lambda is
    0 (a zero lambda takes another path: Q reads detached samples)."""
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in MEMBER_FIELDS}
    return (*sorted(shared.items()), ("lambda_cat>0", cfg.lambda_cat > 0), ("lambda_cont>0", cfg.lambda_cont > 0))


def scaled_units(units: int, width: float) -> int:
    """A layer's units (or channels) at a width multiplier: at least 4."""
    return max(4, int(round(units * width)))


def inexact_population(cfg: TrainConfig) -> str | None:
    """Why members of a population of `cfg`'s shape would not give their single runs' numbers bit for bit
    on a CPU, or None when they do: batches that are multiples of 32 and convolution channel counts that
    are multiples of SIMD_LANES (16) let every member's slice of a stacked tensor start on a whole SIMD vector. Off
    that, rounding differs from the first step and GAN training amplifies it (losses ~1e-3 apart after
    100 steps, evaluation metrics as far apart as two seeds). The random draws and the optimizer are exact at any
    shape (correctly rounded elementwise arithmetic); the networks' kernels are what these conditions are for."""
    if cfg.batch_size % 32:
        return f"batch_size {cfg.batch_size} is not a multiple of 32"
    if cfg.family in ("conv", "paper"):
        nets = [(cfg.d_width, cfg.d_depth), (cfg.g_width, cfg.g_depth)]
        nets += [(cfg.q_scale, cfg.d_depth)] if cfg.encoder == "isolated" else []
        channels = {scaled_units(64 * 2**i, width) for width, depth in nets for i in range(depth)}
        odd = sorted(c for c in channels if c % SIMD_LANES)
        if odd:
            return (
                f"convolution channels {odd} are not multiples of {SIMD_LANES} (conv widths 0.25, 0.5 and 1 give such)"
            )
    return None


def check_members(cfgs: Sequence[TrainConfig]) -> None:
    """Refuse configurations that cannot train as one population, naming the first field that differs."""
    if not cfgs:
        raise ConfigError("a population needs at least one member")
    first = dict(population_key(cfgs[0]))
    for i, cfg in enumerate(cfgs[1:], start=1):
        for name, value in population_key(cfg):
            if first[name] != value:
                raise ConfigError(
                    f"`{name}` must be the same for every member of a population (only {', '.join(MEMBER_FIELDS)} "
                    f"may differ), but member 0 has {first[name]!r} and member {i} has {value!r}"
                )


__all__ = [
    "NUMERICS",
    "SIMD_LANES",
    "MEMBER_FIELDS",
    "Knob",
    "TrainConfig",
    "check_members",
    "field_docs",
    "field_names",
    "field_schema",
    "inexact_population",
    "knob",
    "population_key",
    "scaled_units",
]
