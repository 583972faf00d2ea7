"""train(cfg, report=...) -> TrainResult: the InfoGAN training loop, top to bottom."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    metrics: dict[str, float]  # the last report, including the final evaluation
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


def _grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


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


def train(cfg: TrainConfig, *, report: ReportFn | None = None, image_dir: str | Path | None = None) -> TrainResult:
    """Train one InfoGAN run as `cfg` says; returns its metrics, history and networks.

    Raises DivergedError (with the step and the loss) when a loss becomes non-finite.
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
    d_params = [*model.d_trunk.parameters(), *model.d_head.parameters()]
    q_params = [*model.q_head.parameters(), *(model.q_trunk.parameters() if model.q_trunk else [])]
    g_params = [*model.generator.parameters(), *(model.cat_prior if cfg.learn_cat_prior else [])]
    # not freezing D puts its trunk into the G/Q step's optimizer: the failure mode under study
    leaked = [] if cfg.freeze_d_in_g_step else list(model.d_trunk.parameters())
    frozen_in_g_step = [model.d_head, *([model.d_trunk] if cfg.freeze_d_in_g_step else [])]
    opt_d = torch.optim.Adam(d_params, lr=cfg.lr_d_effective, betas=cfg.betas, fused=True)
    opt_g = torch.optim.Adam([*g_params, *q_params, *leaked], lr=cfg.lr_g, betas=cfg.betas, fused=True)
    h_cat = torch.tensor(cfg.cat_entropy, device=device)
    h_cont = losses.cont_prior_entropy(cfg.cont_codes, cfg.cont_prior)
    w_cat = cfg.lambda_cat if cfg.lambda_cat > 0 else 1.0  # Q's weight; G's is lambda itself
    w_cont = cfg.lambda_cont if cfg.lambda_cont > 0 else 1.0
    n = cfg.batch_size

    history: list[dict[str, float]] = []
    sums: dict[str, torch.Tensor] = {}
    window_start, window_steps = time.perf_counter(), 0
    stopped, step = False, 0
    model.train()
    for step in range(1, cfg.steps + 1):
        # D step(s): tell real from fake; G is not updated, so its forward needs no graph
        for _ in range(cfg.d_steps):
            real = x_all[torch.randint(len(x_all), (n,), generator=gen, device=device)]
            with torch.no_grad():
                fake = model.generator(sample_latent(cfg, model.cat_prior, n, gen, device).z)
            _, _, real_logits, fake_logits = _discriminate(model, real, fake, cfg.d_batchnorm)
            loss_d = losses.d_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            grad_d = _grad_norm(d_params)
            _clip(cfg, d_params)
            opt_d.step()

        # G/Q step: fool D and make the codes recoverable; D frozen so G's loss cannot move it
        _freeze(frozen_in_g_step, True)
        lat = sample_latent(cfg, model.cat_prior, n, gen, device)
        fake = model.generator(lat.z)
        if cfg.d_batchnorm == "joint":  # D always sees real and fake in one batch
            h_fake = model.d_trunk(torch.cat([real, fake]))[n:]
        else:
            h_fake = model.d_trunk(fake)
        fake_logits_g = model.d_head(h_fake).squeeze(1)
        loss_adv = losses.g_loss(fake_logits_g, cfg.g_loss)
        ce, nll, std_min = info_terms(cfg, model, fake, h_fake, lat)
        h_prior = losses.categorical_entropy(list(model.cat_prior)) if cfg.learn_cat_prior else h_cat
        loss_info = w_cat * ce + w_cont * nll - (cfg.lambda_cat * h_prior if cfg.learn_cat_prior else 0.0)
        opt_g.zero_grad(set_to_none=True)
        (loss_adv + loss_info).backward()
        grad_g, grad_q = _grad_norm(g_params), _grad_norm(q_params)
        _clip(cfg, [*g_params, *q_params, *leaked])
        opt_g.step()
        _freeze(frozen_in_g_step, False)

        # guard: a non-finite loss ends the run with the step and the loss that broke
        losses_now = torch.stack([loss_d.detach(), loss_adv.detach(), loss_info.detach()])
        finite = torch.isfinite(losses_now)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise DivergedError(step, ("loss/d", "loss/g", "loss/info")[bad], float(losses_now[bad]), history)

        # log: accumulate detached values; one host sync per report, not per step
        mi_cat = h_prior.detach() - ce.detach()
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
            "mi/cat": mi_cat,
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
        metrics={k: v for k, v in history[-1].items() if k != "step"} if history else {},
        history=history,
        wall_s=time.perf_counter() - started,
        model=model,
    )
    if image_dir is not None:
        result.images = render(model, cfg, history, image_dir)
    return result


__all__ = ["ReportFn", "TrainResult", "resolve_device", "train"]
