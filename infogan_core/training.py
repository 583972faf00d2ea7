"""train(cfg, report=...) -> TrainResult: the InfoGAN training loop, top to bottom."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from infogan_core import losses
from infogan_core.config import TrainConfig
from infogan_core.data import Dataset, load_dataset
from infogan_core.errors import ConfigError, DivergedError
from infogan_core.evaluation import evaluate
from infogan_core.images import render
from infogan_core.latent import Latent, sample_latent
from infogan_core.models import InfoGAN

# report(step, metrics) is called every `report_every` steps and at the end; a truthy return stops.
ReportFn = Callable[[int, dict[str, float]], bool | None]


@dataclass
class TrainResult:
    config: TrainConfig
    steps_run: int  # generator steps completed
    stopped_early: bool  # the report callback asked to stop
    metrics: dict[str, float]  # the last report; each eval/* is the mean of the last eval_last evaluations
    history: list[dict[str, float]]  # every report, each with its "step"
    wall_s: float
    model: InfoGAN = field(repr=False)
    images: dict[str, str] = field(default_factory=dict)  # name -> PNG path, when image_dir was given


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("`device` must be auto or cpu on this machine (no CUDA device), but got 'cuda'")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def _discriminate(model: InfoGAN, real: torch.Tensor, fake: torch.Tensor, mode: str):
    """D's trunk features and logits for real and fake: one pass (none, joint) or separate BN batches."""
    if mode == "separate":
        h_real, h_fake = model.d_trunk(real), model.d_trunk(fake)
    else:
        h_real, h_fake = model.d_trunk(torch.cat([real, fake])).split([len(real), len(fake)])
    return h_real, h_fake, model.d_head(h_real).squeeze(1), model.d_head(h_fake).squeeze(1)


def _grad_norm(params: list[nn.Parameter], device: torch.device) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=device)


def _clip(cfg: TrainConfig, params: list[nn.Parameter]) -> None:
    if cfg.clip == "norm":
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_value)
    elif cfg.clip == "value":
        torch.nn.utils.clip_grad_value_(params, cfg.clip_value)


def _freeze(modules: list[nn.Module], frozen: bool) -> None:
    """Stop gradients to these modules' parameters and updates of their BN running statistics."""
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(not frozen)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                # a training-mode BN that does not track still normalizes with batch statistics, but
                # leaves every buffer alone: momentum 0 kept running_* but still counted the batch in
                # num_batches_tracked (and 0 * NaN statistics would have poisoned running_*)
                m.track_running_stats = not frozen


def info_terms(
    cfg: TrainConfig, model: InfoGAN, fake: torch.Tensor, h_fake: torch.Tensor, lat: Latent
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Categorical CE and continuous NLL of Q on generated samples, and the smallest std.

    With lambda = 0 for a code type, Q still learns to measure that code (weight 1) but G gets no
    gradient from it: Q reads detached inputs, as for the paper's plain-GAN baseline.
    """

    def posterior(detach: bool):
        x, h = (fake.detach(), h_fake.detach()) if detach else (fake, h_fake)
        return model.encode(x, h)  # an isolated encoder reads x and ignores D's features

    cat_detached, cont_detached = cfg.lambda_cat == 0, cfg.lambda_cont == 0
    q_cat = posterior(cat_detached)
    q_cont = q_cat if cont_detached == cat_detached else posterior(cont_detached)
    ce = losses.cat_cross_entropy(q_cat.logits, lat.cat)
    nll = losses.gaussian_nll(q_cont.mean, q_cont.std, lat.cont)
    std_min = q_cont.std.min().detach() if q_cont.std is not None and lat.cont.shape[1] else torch.ones(())
    return ce, nll, std_min


class Parameters(NamedTuple):
    """The run's parameters by role, and which optimizer updates each."""

    d: list[nn.Parameter]  # D's trunk and head
    q: list[nn.Parameter]  # Q's head, and an isolated encoder's trunk
    g: list[nn.Parameter]  # the generator
    prior: list[nn.Parameter]  # the categorical prior's logits, when learned

    def of_d(self, cfg: TrainConfig) -> list[nn.Parameter]:
        """What D's optimizer holds: D, and Q when Q learns in the D step."""
        return [*self.d, *(self.q if cfg.q_update == "d_step" else [])]

    def of_g(self, cfg: TrainConfig) -> list[nn.Parameter]:
        """What G's optimizer holds: G, a learned prior, and Q when Q learns in the G step."""
        return [*self.g, *self.prior, *(self.q if cfg.q_update == "g_step" else [])]


def _parameters(model: InfoGAN, cfg: TrainConfig) -> Parameters:
    q_trunk = list(model.q_trunk.parameters()) if model.q_trunk is not None else []
    return Parameters(
        d=[*model.d_trunk.parameters(), *model.d_head.parameters()],
        q=[*model.q_head.parameters(), *q_trunk],
        g=list(model.generator.parameters()),
        prior=list(model.cat_prior) if cfg.learn_cat_prior else [],
    )


def _optimizer(cfg: TrainConfig, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=lr, betas=cfg.betas, fused=True)


def _frozen_in_g_step(model: InfoGAN, cfg: TrainConfig) -> list[nn.Module]:
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
        return torch.autograd.grad(losses.prior_score_surrogate(list(prior), lat.cat, adv_per_sample), prior)
    return torch.autograd.grad(loss_adv, prior, retain_graph=True)  # through the straight-through samples


def _final_metrics(cfg: TrainConfig, history: list[dict[str, float]]) -> dict[str, float]:
    """The last report, with each eval/* score the mean of the last `eval_last` evaluations."""
    if not history:
        return {}
    final = {k: v for k, v in history[-1].items() if k != "step"}
    evaluations = [row for row in history if any(k.startswith("eval/") for k in row)][-cfg.eval_last :]
    for key in {k for row in evaluations for k in row if k.startswith("eval/")}:
        values = [row[key] for row in evaluations if key in row]
        final[key] = sum(values) / len(values)
    return final


def train(cfg: TrainConfig, *, report: ReportFn | None = None, image_dir: str | Path | None = None) -> TrainResult:
    """Train one InfoGAN run as `cfg` says; returns its metrics, history and networks.

    Raises DivergedError (with the step, the loss and the largest gradient norm seen) when a loss
    becomes non-finite.
    """
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    data: Dataset = load_dataset(cfg.dataset, cfg.data_dir)
    x_all = torch.from_numpy(data.x).to(device)
    model = InfoGAN(cfg, data.sample_shape).to(device)
    if data.is_image:  # channels-last convolutions are several times faster on CPU (oneDNN), same arithmetic
        model = model.to(memory_format=torch.channels_last)
        x_all = x_all.contiguous(memory_format=torch.channels_last)
    params = _parameters(model, cfg)
    opt_d = _optimizer(cfg, params.of_d(cfg), cfg.lr_d_effective)
    opt_g = _optimizer(cfg, params.of_g(cfg), cfg.lr_g)
    frozen_in_g_step = _frozen_in_g_step(model, cfg)
    trunk_in_g_step = [] if cfg.freeze_d_in_g_step else list(model.d_trunk.parameters())
    h_cat = torch.tensor(cfg.cat_entropy, device=device)
    h_cont = losses.cont_prior_entropy(cfg.cont_codes, cfg.cont_prior)
    w_cat = cfg.lambda_cat if cfg.lambda_cat > 0 else 1.0  # Q's weight; G's is lambda itself
    w_cont = cfg.lambda_cont if cfg.lambda_cont > 0 else 1.0
    q_in_d_step = cfg.q_update == "d_step"
    zero = torch.zeros((), device=device)
    n = cfg.batch_size

    history: list[dict[str, float]] = []
    sums: dict[str, torch.Tensor] = {}
    grad_peak = torch.zeros((), device=device)  # the largest gradient norm of any network so far
    window_start, window_steps = time.perf_counter(), 0
    stopped, step = False, 0
    model.train()
    for step in range(1, cfg.steps + 1):
        # D step(s): tell real from fake (and, in the paper's arrangement, recover the codes of the fakes);
        # G is not updated, so its forward needs no graph
        for _ in range(cfg.d_steps):
            real = x_all[torch.randint(len(x_all), (n,), generator=gen, device=device)]
            lat_d = sample_latent(cfg, model.cat_prior, n, gen, device)
            with torch.no_grad():
                fake = model.generator(lat_d.z)
            _, h_fake, real_logits, fake_logits = _discriminate(model, real, fake, cfg.d_batchnorm)
            loss_d = losses.d_loss(real_logits, fake_logits, cfg.loss_space)
            info_d = zero
            if q_in_d_step:
                ce_d, nll_d, _ = info_terms(cfg, model, fake, h_fake, lat_d)
                info_d = w_cat * ce_d + w_cont * nll_d
            opt_d.zero_grad(set_to_none=True)
            (loss_d + info_d).backward()
            grad_d = _grad_norm(params.d, device)
            grad_q = _grad_norm(params.q, device) if q_in_d_step else None
            _clip(cfg, params.of_d(cfg))
            opt_d.step()

        # G step: fool D and make the codes recoverable; D (and a Q that learns in the D step) frozen
        _freeze(frozen_in_g_step, True)
        lat = sample_latent(cfg, model.cat_prior, n, gen, device)
        fake = model.generator(lat.z)
        if cfg.d_batchnorm == "joint":  # D always sees real and fake in one batch
            h_fake = model.d_trunk(torch.cat([real, fake]))[n:]
        else:
            h_fake = model.d_trunk(fake)
        fake_logits_g = model.d_head(h_fake).squeeze(1)
        adv_per_sample = losses.g_loss_per_sample(fake_logits_g, cfg.g_loss, cfg.loss_space)  # (B,)
        loss_adv = adv_per_sample.mean()
        ce, nll, std_min = info_terms(cfg, model, fake, h_fake, lat)
        loss_info = w_cat * ce + w_cont * nll
        # a learned prior moves with the adversarial loss alone: the information loss would favour
        # whichever codes Q finds easiest, and -H(prior) (an earlier version's term) pins it to uniform
        prior_grads = _prior_gradient(cfg, params.prior, lat, adv_per_sample, loss_adv) if params.prior else ()
        opt_g.zero_grad(set_to_none=True)
        if trunk_in_g_step:
            opt_d.zero_grad(set_to_none=True)
        (loss_adv + loss_info).backward()
        for p, g in zip(params.prior, prior_grads, strict=True):
            p.grad = g
        grad_g = _grad_norm(params.g, device)
        if not q_in_d_step:
            grad_q = _grad_norm(params.q, device)
        _clip(cfg, params.of_g(cfg))
        opt_g.step()
        if trunk_in_g_step:  # not frozen: the G step's gradient moves D's trunk, at D's learning rate
            _clip(cfg, trunk_in_g_step)
            opt_d.step()
        _freeze(frozen_in_g_step, False)
        grad_peak = torch.fmax(grad_peak, torch.stack([grad_d, grad_g, grad_q]).nan_to_num(0.0, math.inf).max())

        # guard: a non-finite loss ends the run with the step and the loss that broke
        losses_now = torch.stack([loss_d.detach(), info_d.detach(), loss_adv.detach(), loss_info.detach()])
        finite = torch.isfinite(losses_now)
        if not bool(finite.all()):  # the first to break, in the order they were computed
            bad = int((~finite).nonzero()[0])
            name = ("loss/d", "loss/info", "loss/g", "loss/info")[bad]
            raise DivergedError(step, name, float(losses_now[bad]), history, float(grad_peak))

        # log: accumulate detached values; one host sync per report, not per step
        h_prior = losses.categorical_entropy(list(model.cat_prior)).detach() if cfg.learn_cat_prior else h_cat
        now = {
            "loss/d": loss_d.detach(),
            "loss/g": loss_adv.detach(),
            "loss/info": (cfg.lambda_cat * ce + cfg.lambda_cont * nll).detach(),
            "d/real": torch.sigmoid(real_logits.detach()).mean(),
            "d/fake": torch.sigmoid(fake_logits_g.detach()).mean(),
            "grad/d": grad_d,
            "grad/g": grad_g,
            "grad/q": grad_q,
            "q/std_min": std_min,
            "mi/cat": h_prior - ce.detach(),
            "mi/cont": h_cont - nll.detach(),
        }
        for key, value in now.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        window_steps += 1

        # evaluate and report: every report_every steps, evaluation every eval_every and at the end
        last = step == cfg.steps
        if step % cfg.report_every == 0 or last:
            metrics = {k: float(v) / window_steps for k, v in sums.items()}
            if cfg.cat_codes:
                metrics["mi/cat_ratio"] = metrics["mi/cat"] / cfg.cat_entropy
            else:
                del metrics["mi/cat"]
            if not cfg.cont_codes:
                del metrics["mi/cont"], metrics["q/std_min"]
            metrics["grad/peak"] = float(grad_peak)
            elapsed = time.perf_counter() - window_start
            metrics["time/steps_per_s"] = window_steps / elapsed if elapsed > 0 else 0.0
            if step % cfg.eval_every == 0 or last:
                metrics.update(evaluate(model, cfg, data, seed=cfg.seed + step))
            metrics["step"] = step
            history.append(metrics)
            sums, window_steps = {}, 0
            if report is not None and report(step, {k: v for k, v in metrics.items() if k != "step"}):
                stopped = True
            window_start = time.perf_counter()
            if stopped:
                break

    result = TrainResult(
        config=cfg,
        steps_run=step,
        stopped_early=stopped,
        metrics=_final_metrics(cfg, history),
        history=history,
        wall_s=time.perf_counter() - started,
        model=model,
    )
    if image_dir is not None:
        result.images = render(model, cfg, history, image_dir)
    return result


__all__ = ["ReportFn", "TrainResult", "resolve_device", "train"]
