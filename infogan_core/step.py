"""One training step of a population, and what it reads and writes.

A `Run` holds everything built once per population (the stacked networks, the two optimizers, the data on
the device, the counter streams, the per-member constants) and `Buffers` what steps leave for the loop to
read at its next report. `train_step(run)` reads top to bottom: the step's counter words, the D step(s),
the G step, the guard, the log. It reads and writes only the run's tensors and never waits for the device,
so that a CUDA graph can replay it (device.py); its operations do not depend on K.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from infogan_core import losses, rng
from infogan_core.config import TrainConfig
from infogan_core.data import Dataset, load_dataset
from infogan_core.errors import ConfigError
from infogan_core.latent import Latent, from_words, words_per_latent
from infogan_core.models import InfoGAN, to_model_range
from infogan_core.population import MemberGroup, StackedInfoGAN, cat_batch, to_channels

LOSS_NAMES = ("loss/d", "loss/info", "loss/g", "loss/info")  # in the order the step computes them


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device` must be auto or cpu on this machine (no CUDA device), but got 'cuda'")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _discriminate(model: StackedInfoGAN, real: torch.Tensor, fake: torch.Tensor, mode: str, n: int):
    """D's trunk features (K, B, F) and logits (K, B) for real and fake: one pass (none, joint) or separate
    BN batches."""
    if mode == "separate":
        h_real, h_fake = model.d_trunk(real), model.d_trunk(fake)
    else:
        h = model.d_trunk(cat_batch(real, fake))  # (K, 2B, F)
        h_real, h_fake = h[:, :n], h[:, n:]
    return h_real, h_fake, model.d_head(h_real).squeeze(-1), model.d_head(h_fake).squeeze(-1)


class _Freezer:
    """Stops gradients to some modules' parameters and updates of their BN running statistics, and lets
    them go again; the parameters and BN layers are listed once, not walked every step."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.params = [p for module in modules for p in module.parameters()]
        self.norms = [m for module in modules for m in module.modules() if hasattr(m, "track_running_stats")]

    def __call__(self, frozen: bool) -> None:
        for p in self.params:
            p.requires_grad_(not frozen)
        for m in self.norms:
            # a training-mode BN that does not track still normalizes with batch statistics, but leaves
            # every buffer alone: momentum 0 kept running_* but still counted the batch in
            # num_batches_tracked (and 0 * NaN statistics would have poisoned running_*)
            m.track_running_stats = not frozen


def info_terms(
    cfg: TrainConfig, model: StackedInfoGAN, fake: torch.Tensor, h_fake: torch.Tensor, lat: Latent
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Categorical CE and continuous NLL of Q on generated samples, and the smallest std: (K,) each.

    With lambda = 0 for a code type, Q still learns to measure that code (weight 1) but G gets no
    gradient from it: Q reads detached inputs, as for the paper's plain-GAN baseline.
    """

    def posterior(detach: bool):
        x, h = (fake.detach(), h_fake.detach()) if detach else (fake, h_fake)
        return model.encode(x, h)  # an isolated encoder reads x and ignores D's features

    cat_detached, cont_detached = cfg.lambda_cat == 0, cfg.lambda_cont == 0
    q_cat = posterior(cat_detached)
    q_cont = q_cat if cont_detached == cat_detached else posterior(cont_detached)
    ce = losses.cat_cross_entropy([logits.float() for logits in q_cat.logits], lat.cat)  # float32 under bf16 too
    std = None if q_cont.std is None else q_cont.std.float()
    nll = losses.gaussian_nll(q_cont.mean.float(), std, lat.cont)
    members = len(lat.z)
    if std is not None and lat.cont.shape[-1]:
        std_min = std.detach().reshape(members, -1).amin(1)
    else:
        std_min = torch.ones(members, device=lat.z.device)
    return ce, nll, std_min


class Parameters(NamedTuple):
    """The run's parameters by role, and which optimizer updates each."""

    d: list[nn.Parameter]  # D's trunk and head
    q: list[nn.Parameter]  # Q's head, and an isolated encoder's trunk
    g: list[nn.Parameter]  # the generator
    prior: list[nn.Parameter]  # the categorical prior's logits, when learned

    def of_d(self, cfg: TrainConfig) -> list[nn.Parameter]:
        """What D's optimizer holds: D (its trunk first), and Q when Q learns in the D step."""
        return [*self.d, *(self.q if cfg.q_update == "d_step" else [])]

    def of_g(self, cfg: TrainConfig) -> list[nn.Parameter]:
        """What G's optimizer holds: G, a learned prior (unless it has a rate of its own), and Q when Q learns in
        the G step."""
        prior = self.prior if cfg.lr_prior is None else []
        return [*self.g, *prior, *(self.q if cfg.q_update == "g_step" else [])]


def _parameters(model: StackedInfoGAN, cfg: TrainConfig) -> Parameters:
    q_trunk = list(model.q_trunk.parameters()) if model.q_trunk is not None else []
    return Parameters(
        d=[*model.d_trunk.parameters(), *model.d_head.parameters()],
        q=[*model.q_head.parameters(), *q_trunk],
        g=list(model.generator.parameters()),
        prior=list(model.cat_prior) if cfg.learn_cat_prior else [],
    )


def _frozen_in_g_step(model: StackedInfoGAN, cfg: TrainConfig) -> list[nn.Module]:
    """D's head always; D's trunk unless the G step may move it; Q when Q learns in the D step."""
    frozen: list[nn.Module] = [model.d_head]
    if cfg.freeze_d_in_g_step:
        frozen.append(model.d_trunk)
    if cfg.q_update == "d_step":
        frozen += [model.q_head, *([model.q_trunk] if model.q_trunk is not None else [])]
    return frozen


def _prior_gradient(
    cfg: TrainConfig, prior: list[nn.Parameter], lat: Latent, adv_per_sample: torch.Tensor, loss_adv: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The learned prior's gradient from the adversarial loss, by the estimator `prior_grad` names."""
    if cfg.prior_grad == "score":
        surrogate = losses.prior_score_surrogate(list(prior), lat.cat, adv_per_sample).sum()
        return torch.autograd.grad(surrogate, prior)
    return torch.autograd.grad(loss_adv.sum(), prior, retain_graph=True)  # through the straight-through samples


METRIC_ORDER = (  # the per-step metrics a step accumulates, in the rows of Buffers.sums
    "loss/d",
    "loss/g",
    "loss/info",
    "d/real",
    "d/fake",
    "grad/d",
    "grad/g",
    "grad/q",
    "q/std_min",
    "mi/cat",
    "mi/cont",
)


@dataclass
class Buffers:
    """What steps leave for the loop to read at its next report, per member, on the device. The step writes
    them in place (a CUDA graph replays writes to the same memory), and a checkpoint saves them."""

    sums: torch.Tensor  # (len(METRIC_ORDER), K): each metric summed over the steps since the last report
    grad_peak: torch.Tensor  # (K,) each member's largest gradient norm so far
    active: torch.Tensor  # (K,) bool: trains this step; cleared by the step when it diverges, by the loop on a stop
    diverged_at: torch.Tensor  # (K,) int64: the step whose loss turned non-finite, 0 while none did
    diverged_loss: torch.Tensor  # (K,) int64: which loss of LOSS_NAMES it was
    diverged_value: torch.Tensor  # (K,) its value
    diverged_peak: torch.Tensor  # (K,) the largest gradient norm up to that step

    @classmethod
    def start(cls, members: int, device: torch.device) -> Buffers:
        def zeros(dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(members, dtype=dtype, device=device)

        return cls(
            torch.zeros(len(METRIC_ORDER), members, device=device),
            zeros(),
            torch.ones(members, dtype=torch.bool, device=device),
            zeros(torch.int64),
            zeros(torch.int64),
            zeros(),
            zeros(),
        )

    def state(self) -> dict[str, torch.Tensor]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for name, saved in state.items():
            getattr(self, name).copy_(saved)


@dataclass
class Run:
    """Everything a training step reads and writes, built once per population: the networks, optimizers,
    data and counter streams, the per-member constants, and the step number as a device tensor (the input a
    CUDA graph's replay reads)."""

    cfg: TrainConfig  # the knobs every member shares
    cfgs: Sequence[TrainConfig]
    device: torch.device
    data: Dataset
    x_all: torch.Tensor  # (N, ...) every training sample, on the device
    model: StackedInfoGAN
    params: Parameters
    group_d: MemberGroup
    group_g: MemberGroup
    group_trunk: MemberGroup | None  # D's trunk in an unfrozen G step: its columns of group_d, its own moments
    group_prior: MemberGroup | None  # a learned prior's logits when lr_prior gives them a rate of their own
    freeze: _Freezer
    streams: rng.Streams
    buffers: Buffers
    step_t: torch.Tensor  # () int64: the step being trained
    clip_values: torch.Tensor  # (K,) each member's clip value
    w_cat: torch.Tensor  # (K,) Q's weights on the information terms (lambda, or 1 where lambda is 0)
    w_cont: torch.Tensor
    lam_cat: torch.Tensor  # (K,) the lambdas themselves (the reported information loss)
    lam_cont: torch.Tensor
    h_cat: torch.Tensor  # (K,) H(c) of the uniform categorical prior
    h_cont: torch.Tensor  # (K,) differential entropy of each member's continuous prior
    zero: torch.Tensor  # (K,) zeros: the D step's information loss when Q learns in the G step
    info_entropy: torch.Tensor | None  # (K,) 1 where a member subtracts the prior entropies; None when none does

    @property
    def members(self) -> int:
        return len(self.cfgs)

    @property
    def groups(self) -> tuple[MemberGroup, ...]:
        """Every optimizer of the run, in the order a checkpoint saves them."""
        extra = [g for g in (self.group_trunk, self.group_prior) if g is not None]
        return (self.group_d, self.group_g, *extra)

    @property
    def batch_words(self) -> int:
        """Counter words of one D step: a real batch's indices and a latent batch."""
        return self.cfg.batch_size + words_per_latent(self.cfg, self.cfg.batch_size)


def build_run(cfgs: Sequence[TrainConfig]) -> Run:
    """The networks (each member initialised exactly as a single run of its seed), optimizers and buffers."""
    cfg, members = cfgs[0], len(cfgs)
    device = resolve_device(cfg.device)
    # parameters are views of their optimizer's (K, P) buffer, their gradients views of another, alike: torch
    # warns once that such strides break its layout contract, which matters only to its own optimizers
    warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
    data = load_dataset(cfg.dataset, cfg.data_dir)
    singles = []
    for c in cfgs:
        torch.manual_seed(c.seed)
        singles.append(InfoGAN(c, data.sample_shape))
    model = StackedInfoGAN(singles, cfgs).to(device)
    params = _parameters(model, cfg)
    buffers = Buffers.start(members, device)
    lr_d, lr_g = [c.lr_d_effective for c in cfgs], [c.lr_g for c in cfgs]
    n = cfg.batch_size
    words = cfg.d_steps * (n + words_per_latent(cfg, n)) + words_per_latent(cfg, n)

    def column(values: Iterable[float]) -> torch.Tensor:
        return torch.tensor(list(values), dtype=torch.float32, device=device)

    group_d = MemberGroup(params.of_d(cfg), cfgs, lr_d, buffers.active)
    trunk = list(model.d_trunk.parameters())  # the first run of group_d's parameters
    unfrozen = not cfg.freeze_d_in_g_step
    return Run(
        cfg=cfg,
        cfgs=cfgs,
        device=device,
        data=data,
        x_all=to_model_range(torch.from_numpy(data.x).to(device), cfg),  # in the range G's samples are in
        model=model,
        params=params,
        group_d=group_d,
        group_g=MemberGroup(params.of_g(cfg), cfgs, lr_g, buffers.active),
        group_trunk=MemberGroup(trunk, cfgs, lr_d, buffers.active, shares=group_d) if unfrozen else None,
        group_prior=(
            MemberGroup(params.prior, cfgs, [c.lr_prior for c in cfgs], buffers.active)
            if params.prior and cfg.lr_prior is not None
            else None
        ),
        freeze=_Freezer(_frozen_in_g_step(model, cfg)),
        streams=rng.Streams([c.seed for c in cfgs], words, device),
        buffers=buffers,
        step_t=torch.zeros((), dtype=torch.int64, device=device),
        clip_values=column(c.clip_value for c in cfgs),
        w_cat=column(c.lambda_cat if c.lambda_cat > 0 else 1.0 for c in cfgs),
        w_cont=column(c.lambda_cont if c.lambda_cont > 0 else 1.0 for c in cfgs),
        lam_cat=column(c.lambda_cat for c in cfgs),
        lam_cont=column(c.lambda_cont for c in cfgs),
        h_cat=torch.full((members,), cfg.cat_entropy, device=device),
        h_cont=column(losses.cont_prior_entropy(c.cont_codes, c.cont_prior) for c in cfgs),
        zero=torch.zeros(members, device=device),
        info_entropy=column(float(c.info_entropy) for c in cfgs) if any(c.info_entropy for c in cfgs) else None,
    )


def _cat_prior_entropy(run: Run) -> torch.Tensor:
    """(K,) H(c) of the categorical prior as it is now: a learned prior's (detached), else the uniform one's."""
    if run.cfg.learn_cat_prior:
        return losses.categorical_entropy(list(run.model.cat_prior)).detach()
    return run.h_cat


def _prior_entropies(run: Run) -> torch.Tensor:
    """(K,) what info_entropy subtracts from the information loss: Q's weights times H(c) and h(c_cont),
    constants for the parameters; 0 for members without info_entropy."""
    return run.info_entropy * (run.w_cat * _cat_prior_entropy(run) + run.w_cont * run.h_cont)


class _DStep(NamedTuple):
    real: torch.Tensor  # the real batch: (K, B, ...), or (B, K*C, H, W) for convolutions
    real_logits: torch.Tensor  # (K, B)
    loss_d: torch.Tensor  # (K,)
    info_d: torch.Tensor  # (K,) the information loss D's optimizer saw (0 when Q learns in the G step)
    grad_d: torch.Tensor  # (K,) D's gradient norm before clipping
    grad_q: torch.Tensor | None  # (K,) Q's, when Q learns in the D step


def _d_step(run: Run, draws: rng.Draws) -> _DStep:
    """Tell real from fake (and, in the paper's arrangement, recover the fakes' codes); G is not updated,
    so its forward needs no graph. `draws`: this D step's counter words (K, batch_words)."""
    cfg, model, n = run.cfg, run.model, run.cfg.batch_size
    index = rng.below(draws.words[:, :n], len(run.x_all))  # (K, B): each member's own real batch
    real = run.x_all[index]
    real = to_channels(real) if cfg.family in ("conv", "paper") else real
    lat_d = from_words(run.cfgs, list(model.cat_prior), n, draws.part(n, run.batch_words))
    with torch.no_grad():
        fake = model.generator(lat_d.z)
    _, h_fake, real_logits, fake_logits = _discriminate(model, real, fake, cfg.d_batchnorm, n)
    loss_d = losses.d_loss(real_logits.float(), fake_logits.float(), cfg.loss_space)  # (K,)
    info_d = run.zero
    q_in_d_step = cfg.q_update == "d_step"
    if q_in_d_step:
        ce_d, nll_d, _ = info_terms(cfg, model, fake, h_fake, lat_d)
        info_d = run.w_cat * ce_d + run.w_cont * nll_d
        if run.info_entropy is not None:  # the negative lower bound: the same gradients, other values
            info_d = info_d - _prior_entropies(run)
    run.group_d.zero_grad()
    (loss_d + info_d).sum().backward()  # members share no parameter: each gets its own gradient
    grad_d = run.group_d.squared_norms(run.params.d).sqrt()
    grad_q = run.group_d.squared_norms(run.params.q).sqrt() if q_in_d_step else None
    run.group_d.clip(cfg.clip, run.clip_values)
    run.group_d.step()
    return _DStep(real, real_logits.float(), loss_d, info_d, grad_d, grad_q)


class _GStep(NamedTuple):
    fake_logits: torch.Tensor  # (K, B)
    loss_adv: torch.Tensor  # (K,)
    loss_info: torch.Tensor  # (K,) weighted, as G's optimizer saw it
    ce: torch.Tensor  # (K,) categorical cross-entropy
    nll: torch.Tensor  # (K,) continuous negative log-likelihood
    std_min: torch.Tensor  # (K,) the smallest posterior std
    grad_g: torch.Tensor  # (K,)
    grad_q: torch.Tensor | None  # (K,) Q's, when Q learns in the G step


def _g_step(run: Run, draws: rng.Draws, real: torch.Tensor) -> _GStep:
    """Fool D and make the codes recoverable, D (and a Q that learns in the D step) frozen."""
    cfg, model, n, params = run.cfg, run.model, run.cfg.batch_size, run.params
    run.freeze(True)
    lat = from_words(run.cfgs, list(model.cat_prior), n, draws)
    fake = model.generator(lat.z)
    if cfg.d_batchnorm == "joint":  # D always sees real and fake in one batch
        h_fake = model.d_trunk(cat_batch(real, fake))[:, n:]
    else:
        h_fake = model.d_trunk(fake)
    fake_logits = model.d_head(h_fake).squeeze(-1).float()
    adv_per_sample = losses.g_loss_per_sample(fake_logits, cfg.g_loss, cfg.loss_space)  # (K, B)
    loss_adv = adv_per_sample.mean(-1)
    ce, nll, std_min = info_terms(cfg, model, fake, h_fake, lat)
    loss_info = run.w_cat * ce + run.w_cont * nll
    if run.info_entropy is not None:
        loss_info = loss_info - _prior_entropies(run)
    # a learned prior moves with the adversarial loss alone: the information loss would favour
    # whichever codes Q finds easiest, and -H(prior) (an earlier version's term) pins it to uniform
    prior_grads = _prior_gradient(cfg, params.prior, lat, adv_per_sample, loss_adv) if params.prior else ()
    run.group_g.zero_grad()
    if run.group_trunk is not None:
        run.group_trunk.zero_grad()
    if cfg.g_step_trunk == "info":  # the trunk's parameters learn from the information loss alone, G from both
        if loss_info.requires_grad:  # not when both lambdas are 0 and Q learns in the D step
            loss_info.sum().backward(inputs=run.group_trunk.params, retain_graph=True)
        (loss_adv + loss_info).sum().backward(inputs=run.group_g.params)
    else:
        (loss_adv + loss_info).sum().backward()
    if run.group_prior is not None:
        run.group_prior.zero_grad()  # resets its norms; the copy below overwrites the gradient
    for param, grad in zip(params.prior, prior_grads, strict=True):
        param.grad.copy_(grad)
    grad_g = run.group_g.squared_norms(params.g).sqrt()
    grad_q = run.group_g.squared_norms(params.q).sqrt() if cfg.q_update == "g_step" else None
    run.group_g.clip(cfg.clip, run.clip_values)
    run.group_g.step()
    if run.group_trunk is not None:  # the G step's gradient moves D's trunk, with moments apart from D's
        run.group_trunk.clip(cfg.clip, run.clip_values)
        run.group_trunk.step()
    if run.group_prior is not None:  # the prior's logits, at their own rate
        run.group_prior.clip(cfg.clip, run.clip_values)
        run.group_prior.step()
    run.freeze(False)
    return _GStep(fake_logits, loss_adv, loss_info, ce, nll, std_min, grad_g, grad_q)


def train_step(run: Run) -> None:
    """One step of every member: its counter words, the D step(s), the G step, the guard, the log. It reads
    and writes only `run`'s tensors and never waits for the device, so a CUDA graph can replay it."""
    cfg, buf = run.cfg, run.buffers
    draws = rng.Draws(run.streams.words(run.step_t))  # (K, W): every draw of this step, for every member
    per_d = run.batch_words
    with autocast(cfg, run.device):
        for j in range(cfg.d_steps):
            d = _d_step(run, draws.part(j * per_d, (j + 1) * per_d))
        g = _g_step(run, draws.part(cfg.d_steps * per_d, draws.words.shape[1]), d.real)
    grad_q = d.grad_q if d.grad_q is not None else g.grad_q
    norms = torch.stack([d.grad_d, g.grad_g, grad_q]).nan_to_num(0.0, math.inf)  # (3, K)
    torch.fmax(buf.grad_peak, norms.amax(0), out=buf.grad_peak)

    # guard: a member whose loss turns non-finite stops there; its step, loss and peak are kept for the loop
    losses_now = torch.stack([d.loss_d, d.info_d, g.loss_adv, g.loss_info], 1).detach()  # (K, 4)
    finite = torch.isfinite(losses_now)
    broke = buf.active & ~finite.all(1)
    first_bad = (~finite).to(torch.int64).argmax(1)  # the first non-finite loss, in LOSS_NAMES' order
    buf.diverged_at.copy_(torch.where(broke, run.step_t, buf.diverged_at))
    buf.diverged_loss.copy_(torch.where(broke, first_bad, buf.diverged_loss))
    buf.diverged_value.copy_(
        torch.where(broke, losses_now.gather(1, first_bad.view(-1, 1)).view(-1), buf.diverged_value)
    )
    buf.diverged_peak.copy_(torch.where(broke, buf.grad_peak, buf.diverged_peak))
    buf.active.logical_and_(~broke)

    # log: accumulate detached values; the loop reads them once per report
    h_prior = _cat_prior_entropy(run)
    now = [
        d.loss_d.detach(),
        g.loss_adv.detach(),
        (run.lam_cat * g.ce + run.lam_cont * g.nll).detach(),
        torch.sigmoid(d.real_logits.detach()).mean(-1),
        torch.sigmoid(g.fake_logits.detach()).mean(-1),
        d.grad_d,
        g.grad_g,
        grad_q,
        g.std_min,
        h_prior - g.ce.detach(),
        run.h_cont - g.nll.detach(),
    ]  # in METRIC_ORDER
    buf.sums.add_(torch.stack(now))


def autocast(cfg: TrainConfig, device: torch.device):  # noqa: ANN202 - a context manager
    """bf16 autocast for precision bf16 (float32 master weights, optimizer and losses); nothing otherwise. Its
    weight cache is off: a CUDA graph cannot capture it."""
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


__all__ = [
    "LOSS_NAMES",
    "METRIC_ORDER",
    "Buffers",
    "Parameters",
    "Run",
    "autocast",
    "build_run",
    "info_terms",
    "resolve_device",
    "train_step",
]
