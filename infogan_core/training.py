"""Training: train(cfg) -> TrainResult for one run, train_population(cfgs) for K runs trained as one.

One loop serves both: a single run is a population of one. The loop reads top to bottom: sample, D
step(s), G step, guard, log, evaluate, report. Every tensor carries the member dimension K first
(convolutions' (B, K*C, H, W) aside, see population.py); every loss, norm and metric is one value per
member, and a member that diverges, or that its report callback stops, stops alone.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from infogan_core import losses
from infogan_core.config import TrainConfig
from infogan_core.data import Dataset, load_dataset
from infogan_core.errors import CheckpointError, ConfigError, DivergedError
from infogan_core.evaluation import evaluate
from infogan_core.images import render
from infogan_core.latent import Latent, sample_members
from infogan_core.models import InfoGAN
from infogan_core.population import MemberGroup, StackedInfoGAN, cat_batch, check_members, to_channels

# report(step, metrics) is called every `report_every` steps and at the end; a truthy return stops.
ReportFn = Callable[[int, dict[str, float]], bool | None]
# a population's report(step, {member: metrics}) for the members still training; it returns the members
# to stop there (each alone; the others go on)
MemberReportFn = Callable[[int, dict[int, dict[str, float]]], Iterable[int] | None]
LOSS_NAMES = ("loss/d", "loss/info", "loss/g", "loss/info")  # in the order the step computes them


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
    ce = losses.cat_cross_entropy(q_cat.logits, lat.cat)
    nll = losses.gaussian_nll(q_cont.mean, q_cont.std, lat.cont)
    members = len(lat.z)
    if q_cont.std is not None and lat.cont.shape[-1]:
        std_min = q_cont.std.detach().reshape(members, -1).amin(1)
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
        """What G's optimizer holds: G, a learned prior, and Q when Q learns in the G step."""
        return [*self.g, *self.prior, *(self.q if cfg.q_update == "g_step" else [])]


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


def _final_metrics(cfg: TrainConfig, history: list[dict[str, float]]) -> dict[str, float]:
    """The last report, with each eval/* score the mean of the last `eval_last` evaluations."""
    if not history:
        return {}
    final = {k: v for k, v in history[-1].items() if k != "step"}
    evaluations = [row for row in history if any(k.startswith("eval/") for k in row)][-cfg.eval_last :]
    for key in {k for row in evaluations for k in row if k.startswith("eval/")}:
        values = [row[key] for row in evaluations if key in row]
        final[key] = sum(values) / len(values)
    return final | _derived_metrics(cfg, history)


def _derived_metrics(cfg: TrainConfig, history: list[dict[str, float]]) -> dict[str, float]:
    """loss/g_trend, loss/d_sd and mi/cat_steps_to_90 (see metrics.METRICS) from the reported rows."""
    rows = [row for row in history if "loss/g" in row]
    late = [row for row in rows if row["step"] > cfg.steps / 2] or rows[-1:]
    derived: dict[str, float] = {}
    if late:
        steps = np.array([row["step"] for row in late], dtype=float)
        loss_g, loss_d = np.array([row["loss/g"] for row in late]), np.array([row["loss/d"] for row in late])
        derived["loss/g_trend"] = float(np.polyfit(steps, loss_g, 1)[0] * 1000) if len(late) > 1 else 0.0
        derived["loss/d_sd"] = float(loss_d.std(ddof=1)) if len(late) > 1 else 0.0
    if cfg.cat_codes:
        reached = [row["step"] for row in rows if row.get("mi/cat_ratio", -math.inf) >= 0.9]
        # never reached: censored just past the budget (finite, so the run is not mistaken for a diverged one)
        derived["mi/cat_steps_to_90"] = float(reached[0] if reached else cfg.steps + cfg.report_every)
    return derived


def _real_batch(x_all: torch.Tensor, gens: list[torch.Generator], n: int, channels: bool) -> torch.Tensor:
    """Each member's own real batch from its own generator: (K, B, ...), or (B, K*C, H, W) for convolutions."""
    idx = torch.stack([torch.randint(len(x_all), (n,), generator=g, device=x_all.device) for g in gens])
    real = x_all[idx]  # (K, B, ...)
    return to_channels(real) if channels else real


def _latents(cfgs: Sequence[TrainConfig], prior: nn.ParameterList, n: int, gens: list[torch.Generator]) -> Latent:
    """Each member's own noise and codes from its own generator and priors: z (K, B, latent_dim)."""
    return sample_members(cfgs, list(prior), n, gens, gens[0].device)


def _per_member(values: Sequence[float], device: torch.device) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.float32, device=device)


@dataclass
class Checkpoints:
    """Where and how often a run saves its whole training state, so that it can resume exactly."""

    directory: str | Path  # holds `state.pt`; a run that finds one there resumes from it
    every: int | None = None  # steps between saves; None: every `every_s` seconds of training instead
    on_save: Callable[[int], None] | None = None  # called with the step after each save (e.g. to hand it to Ray Tune)
    every_s: float = 300.0  # seconds of training between saves, when `every` is None
    _last: float = field(default_factory=time.perf_counter, init=False, repr=False)

    @property
    def path(self) -> Path:
        return Path(self.directory) / CHECKPOINT_FILE

    def due(self, step: int) -> bool:
        """Whether to save after `step`: every `every` steps, or once `every_s` seconds passed since the last
        save (or the start). When a state is saved never changes the numbers: a resumed run is exact."""
        if self.every is not None:
            return step % self.every == 0
        return time.perf_counter() - self._last >= self.every_s

    def saved(self) -> None:
        self._last = time.perf_counter()


CHECKPOINT_FILE = "state.pt"


def train(
    cfg: TrainConfig,
    *,
    report: ReportFn | None = None,
    image_dir: str | Path | None = None,
    checkpoints: Checkpoints | None = None,
) -> TrainResult:
    """Train one InfoGAN run as `cfg` says; returns its metrics, history and networks.

    Raises DivergedError (with the step, the loss and the largest gradient norm seen) when a loss
    becomes non-finite. With `checkpoints`, it saves its state every `checkpoints.every` steps and, if
    the directory already holds a state of this run, resumes from it: the numbers are those of an
    uninterrupted run.
    """
    member_report = None if report is None else (lambda step, rows: [0] if report(step, rows[0]) else [])
    (result,) = train_population(
        [cfg], report=member_report, image_dirs=None if image_dir is None else [image_dir], checkpoints=checkpoints
    )
    if isinstance(result, DivergedError):
        raise result
    return result


def train_population(  # noqa: C901 - the training loop reads top to bottom by its named stages
    cfgs: Sequence[TrainConfig],
    *,
    report: MemberReportFn | None = None,
    image_dirs: Sequence[str | Path] | None = None,
    checkpoints: Checkpoints | None = None,
) -> list[TrainResult | DivergedError]:
    """Train K runs as one stacked model (their shapes must match; see population.MEMBER_FIELDS for what
    may differ). Member k gives the numbers a single run of cfgs[k] gives; its result is a TrainResult,
    or the DivergedError that stopped it. `checkpoints`: save every so many steps, and resume (as `train`)."""
    check_members(cfgs)
    cfg, members = cfgs[0], len(cfgs)  # cfg: the knobs every member shares
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    gens = [torch.Generator(device=device).manual_seed(c.seed) for c in cfgs]
    data: Dataset = load_dataset(cfg.dataset, cfg.data_dir)
    x_all = torch.from_numpy(data.x).to(device)
    singles = []
    for c in cfgs:  # each member initialised exactly as a single run of its seed would be
        torch.manual_seed(c.seed)
        singles.append(InfoGAN(c, data.sample_shape))
    model = StackedInfoGAN(singles, cfgs).to(device)
    channels = cfg.family in ("conv", "paper")  # convolutions read (B, K*C, H, W)
    params = _parameters(model, cfg)
    group_d, group_g = MemberGroup(params.of_d(cfg), cfgs), MemberGroup(params.of_g(cfg), cfgs)
    trunk = list(model.d_trunk.parameters())  # what D's optimizer moves in the G step when D is not frozen
    freeze = _Freezer(_frozen_in_g_step(model, cfg))
    lr_d, lr_g = [c.lr_d_effective for c in cfgs], [c.lr_g for c in cfgs]
    clip_values = _per_member([c.clip_value for c in cfgs], device)
    w_cat = _per_member([c.lambda_cat if c.lambda_cat > 0 else 1.0 for c in cfgs], device)  # Q's weight
    w_cont = _per_member([c.lambda_cont if c.lambda_cont > 0 else 1.0 for c in cfgs], device)
    lam_cat = _per_member([c.lambda_cat for c in cfgs], device)
    lam_cont = _per_member([c.lambda_cont for c in cfgs], device)
    h_cat = torch.full((members,), cfg.cat_entropy, device=device)
    h_cont = _per_member([losses.cont_prior_entropy(c.cont_codes, c.cont_prior) for c in cfgs], device)
    q_in_d_step = cfg.q_update == "d_step"
    zero = torch.zeros(members, device=device)
    n = cfg.batch_size

    progress = _Progress.start(members, device)  # what the loop has done so far: resumable
    if checkpoints is not None and checkpoints.path.is_file():
        progress = _resume(checkpoints.path, cfgs, model, (group_d, group_g), gens, device)
    running, steps_run, histories = (
        progress.running,
        progress.steps_run,
        progress.histories,
    )  # the loop's names for them
    window_start = time.perf_counter()
    model.train()
    for step in range(progress.step + 1, cfg.steps + 1):
        active = [k in running for k in range(members)]  # who trains this step
        # D step(s): tell real from fake (and, in the paper's arrangement, recover the codes of the
        # fakes); G is not updated, so its forward needs no graph
        for _ in range(cfg.d_steps):
            real = _real_batch(x_all, gens, n, channels)
            lat_d = _latents(cfgs, model.cat_prior, n, gens)
            with torch.no_grad():
                fake = model.generator(lat_d.z)
            _, h_fake, real_logits, fake_logits = _discriminate(model, real, fake, cfg.d_batchnorm, n)
            loss_d = losses.d_loss(real_logits, fake_logits, cfg.loss_space)  # (K,)
            info_d = zero
            if q_in_d_step:
                ce_d, nll_d, _ = info_terms(cfg, model, fake, h_fake, lat_d)
                info_d = w_cat * ce_d + w_cont * nll_d
            group_d.zero_grad()
            (loss_d + info_d).sum().backward()  # members share no parameter: each gets its own gradient
            grad_d = group_d.squared_norms(params.d).sqrt()
            grad_q = group_d.squared_norms(params.q).sqrt() if q_in_d_step else None
            group_d.clip(cfg.clip, clip_values)
            group_d.step(lr_d, active)

        # G step: fool D and make the codes recoverable; D (and a Q that learns in the D step) frozen
        freeze(True)
        lat = _latents(cfgs, model.cat_prior, n, gens)
        fake = model.generator(lat.z)
        if cfg.d_batchnorm == "joint":  # D always sees real and fake in one batch
            h_fake = model.d_trunk(cat_batch(real, fake))[:, n:]
        else:
            h_fake = model.d_trunk(fake)
        fake_logits_g = model.d_head(h_fake).squeeze(-1)
        adv_per_sample = losses.g_loss_per_sample(fake_logits_g, cfg.g_loss, cfg.loss_space)  # (K, B)
        loss_adv = adv_per_sample.mean(-1)
        ce, nll, std_min = info_terms(cfg, model, fake, h_fake, lat)
        loss_info = w_cat * ce + w_cont * nll
        # a learned prior moves with the adversarial loss alone: the information loss would favour
        # whichever codes Q finds easiest, and -H(prior) (an earlier version's term) pins it to uniform
        prior_grads = _prior_gradient(cfg, params.prior, lat, adv_per_sample, loss_adv) if params.prior else ()
        group_g.zero_grad()
        if not cfg.freeze_d_in_g_step:
            group_d.zero_grad()
        (loss_adv + loss_info).sum().backward()
        for param, grad in zip(params.prior, prior_grads, strict=True):
            param.grad = grad
        grad_g = group_g.squared_norms(params.g).sqrt()
        if not q_in_d_step:
            grad_q = group_g.squared_norms(params.q).sqrt()
        group_g.clip(cfg.clip, clip_values)
        group_g.step(lr_g, active)
        if not cfg.freeze_d_in_g_step:  # the G step's gradient moves D's trunk, at D's learning rate
            group_d.clip(cfg.clip, clip_values, trunk)
            group_d.step(lr_d, active, trunk)
        freeze(False)
        norms = torch.stack([grad_d, grad_g, grad_q]).nan_to_num(0.0, math.inf)  # (3, K)
        progress.grad_peak = torch.fmax(progress.grad_peak, norms.amax(0))

        # guard: a member whose loss turns non-finite stops there, with the step and the loss that broke
        losses_now = torch.stack([loss_d, info_d, loss_adv, loss_info], 1).detach()  # (K, 4)
        finite = torch.isfinite(losses_now)
        if not bool(finite[running].all()):
            for k in [k for k in running if not bool(finite[k].all())]:
                bad = int((~finite[k]).nonzero()[0])
                progress.diverged[k] = (
                    step,
                    LOSS_NAMES[bad],
                    float(losses_now[k, bad]),
                    float(progress.grad_peak[k]),
                )
                steps_run[k] = step
                running.remove(k)
            if not running:
                break

        # log: accumulate detached values; one host sync per report, not per step
        h_prior = losses.categorical_entropy(list(model.cat_prior)).detach() if cfg.learn_cat_prior else h_cat
        now = {
            "loss/d": loss_d.detach(),
            "loss/g": loss_adv.detach(),
            "loss/info": (lam_cat * ce + lam_cont * nll).detach(),
            "d/real": torch.sigmoid(real_logits.detach()).mean(-1),
            "d/fake": torch.sigmoid(fake_logits_g.detach()).mean(-1),
            "grad/d": grad_d,
            "grad/g": grad_g,
            "grad/q": grad_q,
            "q/std_min": std_min,
            "mi/cat": h_prior - ce.detach(),
            "mi/cont": h_cont - nll.detach(),
        }
        for key, value in now.items():
            progress.sums[key] = progress.sums[key] + value if key in progress.sums else value.clone()
        progress.window_steps += 1

        # evaluate and report: every report_every steps, evaluation every eval_every and at the end
        last = step == cfg.steps
        if step % cfg.report_every == 0 or last:
            keys = list(progress.sums)
            rows = (torch.stack([progress.sums[key] for key in keys]) / progress.window_steps).tolist()  # one host sync
            table = dict(zip(keys, rows, strict=True))
            peaks = progress.grad_peak.tolist()
            elapsed = time.perf_counter() - window_start
            rows: dict[int, dict[str, float]] = {}
            for k in running:
                metrics = {key: values[k] for key, values in table.items()}
                if cfg.cat_codes:
                    metrics["mi/cat_ratio"] = metrics["mi/cat"] / cfg.cat_entropy
                else:
                    del metrics["mi/cat"]
                if not cfg.cont_codes:
                    del metrics["mi/cont"], metrics["q/std_min"]
                metrics["grad/peak"] = peaks[k]
                metrics["time/steps_per_s"] = progress.window_steps / elapsed if elapsed > 0 else 0.0
                if step % cfg.eval_every == 0 or last:
                    member = model.member(k, cfgs[k], data.sample_shape)
                    metrics.update(evaluate(member, cfgs[k], data, seed=cfgs[k].seed + step))
                rows[k] = dict(metrics)
                metrics["step"] = step
                histories[k].append(metrics)
                steps_run[k] = step
            for k in sorted(set(report(step, rows) or ()) & set(running)) if report is not None else ():
                progress.stopped_early[k] = True
                progress.final_states[k] = model.member_state(k)  # the others' forwards still move its BN
                running.remove(k)
            progress.sums, progress.window_steps = {}, 0
            window_start = time.perf_counter()
            if not running:
                break

        # checkpoint: everything the next step needs, written whole or not at all
        if checkpoints is not None and step < cfg.steps and checkpoints.due(step):
            progress.step = step
            _save(checkpoints, step, cfgs, model, (group_d, group_g), gens, progress)
            checkpoints.saved()

    wall_s = time.perf_counter() - started
    results: list[TrainResult | DivergedError] = []
    for k, c in enumerate(cfgs):
        if progress.diverged[k] is not None:
            step_k, loss, value, peak = progress.diverged[k]
            results.append(DivergedError(step_k, loss, value, histories[k], peak))
            continue
        member = model.member(k, c, data.sample_shape, progress.final_states.get(k))
        result = TrainResult(
            c, steps_run[k], progress.stopped_early[k], _final_metrics(c, histories[k]), histories[k], wall_s, member
        )
        if image_dirs is not None:
            result.images = render(member, c, histories[k], image_dirs[k])
        results.append(result)
    return results


@dataclass
class _Progress:
    """What the loop has done so far, per member: all a checkpoint needs besides networks and optimizers."""

    step: int  # the last step completed
    running: list[int]  # the members still training
    diverged: list[tuple[int, str, float, float] | None]  # (step, loss, value, largest gradient norm)
    stopped_early: list[bool]
    steps_run: list[int]
    histories: list[list[dict[str, float]]]
    sums: dict[str, torch.Tensor]  # metrics accumulated since the last report
    window_steps: int
    grad_peak: torch.Tensor  # (K,) each member's largest gradient norm so far
    final_states: dict[int, dict[str, torch.Tensor]]  # members stopped early: their state when they stopped

    @classmethod
    def start(cls, members: int, device: torch.device) -> _Progress:
        return cls(
            0,
            list(range(members)),
            [None] * members,
            [False] * members,
            [0] * members,
            [[] for _ in range(members)],
            {},
            0,
            torch.zeros(members, device=device),
            {},
        )


def _save(
    checkpoints: Checkpoints,
    step: int,
    cfgs: Sequence[TrainConfig],
    model: StackedInfoGAN,
    groups: tuple[MemberGroup, ...],
    gens: list[torch.Generator],
    progress: _Progress,
) -> None:
    state = {
        "configs": [c.to_dict() for c in cfgs],  # a state resumes only the run it was saved from
        "model": model.state_dict(),
        "optimizers": [g.state_dict() for g in groups],
        "generators": [g.get_state() for g in gens],
        "progress": {f: getattr(progress, f) for f in progress.__dataclass_fields__},
    }
    checkpoints.path.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoints.path.with_suffix(f".{os.getpid()}.part")
    torch.save(state, partial)
    os.replace(partial, checkpoints.path)  # a kill mid-write leaves the previous state whole
    if checkpoints.on_save is not None:
        checkpoints.on_save(step)


def _resume(
    path: Path,
    cfgs: Sequence[TrainConfig],
    model: StackedInfoGAN,
    groups: tuple[MemberGroup, ...],
    gens: list[torch.Generator],
    device: torch.device,
) -> _Progress:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        configs = state["configs"]
    except Exception as exc:  # truncated (a full disk), corrupted, or no training state at all
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(f"the checkpoint {path} cannot be read ({why})") from exc
    if configs != [c.to_dict() for c in cfgs]:
        raise ConfigError(f"the checkpoint {path} was saved by another run (other configurations); remove it")
    try:
        model.load_state_dict(state["model"])
        for group, saved in zip(groups, state["optimizers"], strict=True):
            group.load_state_dict(saved)
        for gen, saved in zip(gens, state["generators"], strict=True):
            gen.set_state(saved.cpu())  # generator states are byte tensors on the host, whatever the device
        return _Progress(**state["progress"])
    except Exception as exc:  # the right run, but parts of its state are missing or damaged
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise CheckpointError(f"the checkpoint {path} is incomplete ({why})") from exc


__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoints",
    "MemberReportFn",
    "ReportFn",
    "TrainResult",
    "resolve_device",
    "train",
    "train_population",
]
