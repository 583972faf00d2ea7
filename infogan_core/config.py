"""TrainConfig: every knob of an InfoGAN run, validated on construction.

Field names are the vocabulary of study files (`base:` and `factors:`), so each field documents its
meaning, unit and sensible range. Defaults are the InfoGAN paper's MNIST values where they apply
(Chen et al. 2016, Table 1 and the public code), scaled to the offline `digits` dataset otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from infogan_core.errors import ConfigError

CHOICES: dict[str, tuple[str, ...]] = {
    "noise_prior": ("gaussian", "uniform"),
    "cont_prior": ("uniform", "gaussian"),
    "arch": ("mlp", "conv", "paper"),
    "d_batchnorm": ("none", "joint", "separate"),
    "encoder": ("shared", "isolated"),
    "g_loss": ("nonsaturating", "saturating"),
    "q_std": ("fixed", "learned"),
    "clip": ("none", "norm", "value"),
    "device": ("auto", "cpu", "cuda"),
}


@dataclass(frozen=True)
class TrainConfig:
    # --- data and codes ---------------------------------------------------------------------
    dataset: str = "digits"  # registry key (data.DATASETS): digits, ring8, grid25, shapes, mnist, ...
    data_dir: str | None = None  # folder with MNIST-style IDX files; default $INFOGAN_DATA_DIR
    batch_size: int = 128  # samples per step, 8..4096 (paper: 128)
    noise_dim: int = 62  # non-salient noise dimensions z, 0..1024 (paper: 62)
    noise_prior: str = "uniform"  # gaussian N(0,1) | uniform U(-1,1) (paper's public code: uniform)
    cat_codes: tuple[int, ...] = (10,)  # category count of each categorical code, each >= 2 (paper: [10])
    cont_codes: int = 2  # number of continuous codes, 0..16 (paper: 2)
    cont_prior: str = "uniform"  # uniform U(-1,1) | gaussian N(0,1) sampling of continuous codes
    learn_cat_prior: bool = False  # learn the categorical prior's logits (H(c) made differentiable)
    # --- architecture -------------------------------------------------------------------------
    arch: str = "conv"  # mlp (vector data) | conv (images) | paper (Table 1 network, 28x28 only)
    g_width: float = 1.0  # generator capacity multiplier on the family's widths, 0.05..8
    d_width: float = 1.0  # discriminator (and encoder) capacity multiplier, 0.05..8
    g_depth: int = 2  # mlp: hidden layers; conv: upsampling stages, 1..6 (paper: fixed 2)
    d_depth: int = 2  # mlp: hidden layers; conv: stride-2 conv stages, 1..6 (paper: fixed 2)
    g_batchnorm: bool = True  # batch norm in G's hidden layers (paper: yes)
    d_batchnorm: str = "separate"  # BN in D: none | joint (real+fake in one pass) | separate batches
    encoder: str = "shared"  # Q reads D's trunk (shared) or has its own trunk (isolated)
    # --- objective ----------------------------------------------------------------------------
    g_loss: str = "nonsaturating"  # -log D(G(z)) (nonsaturating) | log(1 - D(G(z))) (saturating)
    lambda_cat: float = 1.0  # weight of the categorical information term, 0..100 (paper: 1; 0 = plain GAN)
    lambda_cont: float = 0.1  # weight of the continuous information term, 0..100 (paper: 0.1)
    q_std: str = "fixed"  # Gaussian posterior std of continuous codes: fixed at 1 | learned
    q_min_std: float = 0.0  # floor added to the learned std, 0..1 (0 allows collapse to 0)
    # --- optimization -------------------------------------------------------------------------
    lr_g: float = 1e-3  # Adam learning rate of G and Q, 1e-6..1e-1 (paper: 1e-3)
    lr_d: float = 2e-4  # Adam learning rate of D, 1e-6..1e-1 (paper: 2e-4); see lr_ratio
    lr_ratio: float | None = None  # if set, D's rate is lr_g * lr_ratio and lr_d is ignored
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas, each in [0, 1) (paper code: beta1 0.5)
    clip: str = "none"  # gradient clipping: none | norm (global L2 norm) | value (elementwise)
    clip_value: float = 1.0  # max norm or max |gradient| when clipping, > 0
    d_steps: int = 1  # discriminator steps per generator step, 1..10
    freeze_d_in_g_step: bool = True  # see below
    # freeze_d_in_g_step: when true, every parameter of D (trunk, head, and the trunk Q shares) is
    # frozen while the G/Q step runs, so that step updates only G, Q's head and an isolated encoder.
    # When false, the G/Q step's optimizer also holds D's trunk: the generator's adversarial loss
    # (and the information loss) move the shared trunk towards calling fakes real - the failure
    # mode of forgetting to freeze. D's head is never touched by the G/Q step.
    # --- run ----------------------------------------------------------------------------------
    steps: int = 2000  # generator steps, 1..10^7
    report_every: int = 50  # steps between reports to the callback, >= 1
    eval_every: int = 500  # steps between evaluations (and always at the end), >= 1
    eval_samples: int = 2000  # generated samples per evaluation, 100..100000
    seed: int = 0  # seeds torch, numpy and the data order; same seed on CPU gives identical metrics
    device: str = "auto"  # auto (cuda if available) | cpu | cuda

    def __post_init__(self) -> None:
        _coerce(self)
        _validate(self)

    # --- derived values ---------------------------------------------------------------------
    @property
    def lr_d_effective(self) -> float:
        """D's learning rate: lr_g * lr_ratio when lr_ratio is set, else lr_d."""
        return self.lr_g * self.lr_ratio if self.lr_ratio is not None else self.lr_d

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


def field_names() -> tuple[str, ...]:
    """Every TrainConfig field name, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def field_docs() -> dict[str, str]:
    """Field name -> its one-line comment in this file (meaning, unit, range)."""
    import inspect

    docs: dict[str, str] = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        stripped = line.strip()
        if ":" in stripped and "#" in stripped and not stripped.startswith("#"):
            name = stripped.split(":", 1)[0].strip()
            if name in field_names():
                docs[name] = stripped.split("#", 1)[1].strip()
    return docs


def _unknown_message(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, field_names(), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else f"; valid fields: {', '.join(field_names())}"
    return f"unknown TrainConfig field `{key}`{hint}"


def _coerce(cfg: TrainConfig) -> None:
    """Accept lists for tuple fields and ints for float fields (as YAML and JSON give them)."""
    setter = object.__setattr__
    if isinstance(cfg.cat_codes, int) and not isinstance(cfg.cat_codes, bool):
        setter(cfg, "cat_codes", (cfg.cat_codes,))
    if isinstance(cfg.cat_codes, list | tuple):
        setter(cfg, "cat_codes", tuple(cfg.cat_codes))
    if isinstance(cfg.betas, list | tuple):  # numbers only: anything else is left for _validate to name
        setter(cfg, "betas", tuple(float(b) if _is_number(b) else b for b in cfg.betas))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.type in ("float", "float | None") and isinstance(value, int) and not isinstance(value, bool):
            setter(cfg, f.name, float(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fail(name: str, expected: str, value: Any) -> None:
    raise ConfigError(f"`{name}` must be {expected}, but got {value!r}")


def _validate(cfg: TrainConfig) -> None:
    types = {"str": str, "bool": bool, "int": int, "float": float}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        base = str(f.type).replace(" | None", "")
        if value is None and "None" in str(f.type):
            continue
        if base in types:
            want = types[base]
            ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
            if not ok:
                _fail(f.name, f"of type {base}", value)
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            _fail(name, "one of " + " | ".join(allowed), getattr(cfg, name))

    def in_range(name: str, lo: float, hi: float, lo_open: bool = False) -> None:
        v = getattr(cfg, name)
        if not math.isfinite(v) or (v <= lo if lo_open else v < lo) or v > hi:
            _fail(name, f"in {'(' if lo_open else '['}{lo}, {hi}]", v)

    in_range("batch_size", 2, 4096)
    in_range("noise_dim", 0, 1024)
    in_range("cont_codes", 0, 16)
    in_range("g_width", 0.0, 8.0, lo_open=True)
    in_range("d_width", 0.0, 8.0, lo_open=True)
    in_range("g_depth", 1, 6)
    in_range("d_depth", 1, 6)
    in_range("lambda_cat", 0.0, 100.0)
    in_range("lambda_cont", 0.0, 100.0)
    in_range("q_min_std", 0.0, 1.0)
    in_range("lr_g", 0.0, 1.0, lo_open=True)
    in_range("lr_d", 0.0, 1.0, lo_open=True)
    if cfg.lr_ratio is not None:
        in_range("lr_ratio", 0.0, 1000.0, lo_open=True)
        if cfg.lr_d_effective > 1.0:
            _fail("lr_ratio", f"such that lr_g * lr_ratio <= 1 (lr_g={cfg.lr_g})", cfg.lr_ratio)
    in_range("clip_value", 0.0, 1e6, lo_open=True)
    in_range("d_steps", 1, 10)
    in_range("steps", 1, 10_000_000)
    in_range("report_every", 1, 10_000_000)
    in_range("eval_every", 1, 10_000_000)
    in_range("eval_samples", 100, 100_000)
    if not isinstance(cfg.cat_codes, tuple) or not all(
        isinstance(k, int) and not isinstance(k, bool) and 2 <= k <= 1000 for k in cfg.cat_codes
    ):
        _fail("cat_codes", "a list of category counts, each an integer in [2, 1000]", cfg.cat_codes)
    # a scalar or a string would have raised TypeError here, not a ConfigError naming the field
    betas_ok = isinstance(cfg.betas, tuple) and len(cfg.betas) == 2
    if not betas_ok or not all(_is_number(b) and 0 <= b < 1 for b in cfg.betas):
        _fail("betas", "two numbers, each in [0, 1)", cfg.betas)
    if cfg.latent_dim == 0:
        _fail("noise_dim", "> 0 when there are no codes (G needs an input)", cfg.noise_dim)
    if cfg.learn_cat_prior and not cfg.cat_codes:
        _fail("learn_cat_prior", "false when there are no categorical codes", cfg.learn_cat_prior)
    if cfg.arch == "paper" and (cfg.g_depth != 2 or cfg.d_depth != 2):
        _fail("g_depth/d_depth", "2 with arch=paper (Table 1 fixes the depth)", (cfg.g_depth, cfg.d_depth))
    if not isinstance(cfg.dataset, str) or not cfg.dataset:
        _fail("dataset", "a dataset name", cfg.dataset)
    from infogan_core.data import DATASETS

    if cfg.dataset not in DATASETS:
        _fail("dataset", "one of " + " | ".join(DATASETS), cfg.dataset)


__all__ = ["CHOICES", "TrainConfig", "field_docs", "field_names"]
