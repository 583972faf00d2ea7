"""Populations: K members of one network shape trained as one stacked model, each still its own run.

Every parameter and buffer gets a leading member dimension; each member keeps its own seed, data
batches, latent samples, BatchNorm statistics, optimizer state, learning rates, betas, clip value and
lambdas. A population of one is how `train` trains a single run, so there is one training loop.

Why stacked layers and not torch.func: vmap over functional_call gave 10-50% fewer member-steps per
second than hand-stacked layers at every population size on a CPU (0.6x at K = 1), and torch.compile
made it slower still; stacked layers are plain torch ops (batched matmul, grouped convolution,
BatchNorm over K*C channels) that need no tracing.

Layouts: linear layers see (K, B, F), member first; convolutions see (B, K*C, H, W), the members'
channels side by side, so that one grouped convolution and one BatchNorm over K*C channels serve all
members. `Flatten` and `Unflatten` move between the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from infogan_core.config import TrainConfig
from infogan_core.errors import ConfigError
from infogan_core.models import InfoGAN, Posterior, QHead

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
)
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # nn.BatchNorm's defaults, which every single model uses


def population_key(cfg: TrainConfig) -> tuple:
    """What members of one population share: every field but MEMBER_FIELDS, and whether each lambda is
    0 (a zero lambda takes another path: Q reads detached samples)."""
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in MEMBER_FIELDS}
    return (*sorted(shared.items()), ("lambda_cat>0", cfg.lambda_cat > 0), ("lambda_cont>0", cfg.lambda_cont > 0))


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


# --- layouts ----------------------------------------------------------------------------------


def to_channels(x: torch.Tensor) -> torch.Tensor:
    """(K, B, C, H, W) member layout -> (B, K*C, H, W), channels-last in memory (fast convolutions), one copy."""
    k, b, c, h, w = x.shape
    return x.permute(1, 3, 4, 0, 2).reshape(b, h, w, k * c).permute(0, 3, 1, 2)


def to_members(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K*C, H, W) -> (K, B, C, H, W)."""
    b, kc, h, w = x.shape
    return x.reshape(b, k, kc // k, h, w).transpose(0, 1)


def cat_batch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two batches as one, in either layout: dim 1 of (K, B, ...), dim 0 of (B, K*C, H, W)."""
    return torch.cat([a, b], dim=0 if a.dim() == 4 else 1)


def split_batch(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return x.split([n, x.shape[0 if x.dim() == 4 else 1] - n], dim=0 if x.dim() == 4 else 1)


# --- stacked layers ---------------------------------------------------------------------------


class MemberLinear(nn.Module):
    """K linear layers: (K, B, in) -> (K, B, out), one batched matrix product."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (K, out, in)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]))  # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[1] == 1:  # one output (D's head): a batched matrix-vector product picks its kernel by K
            return (x * self.weight).sum(-1, keepdim=True) + self.bias.unsqueeze(1)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class MemberConv(nn.Module):
    """K convolutions (or transposed ones) as one grouped convolution on (B, K*C, H, W)."""

    def __init__(self, layers: Sequence[nn.Conv2d | nn.ConvTranspose2d]) -> None:
        super().__init__()
        first = layers[0]
        self.transposed = isinstance(first, nn.ConvTranspose2d)
        self.stride, self.padding = first.stride, first.padding
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (K, out|in, in|out, kh, kw)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]))  # (K, out)

        # one channel per member (a grayscale image in, or out): oneDNN runs a grouped convolution of those
        # with other kernels than a single model's, which would break exactness; such layers run per member
        self.per_member = self.weight.shape[2] == 1  # a conv's input channels, a transposed conv's output channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        conv = F.conv_transpose2d if self.transposed else F.conv2d
        if self.per_member:
            width = x.shape[1] // k
            outs = [
                conv(
                    x[:, i * width : (i + 1) * width].contiguous(memory_format=torch.channels_last),
                    self.weight[i],
                    self.bias[i],
                    self.stride,
                    self.padding,
                )
                for i in range(k)
            ]
            return torch.cat(outs, 1).contiguous(memory_format=torch.channels_last)
        weight = self.weight.reshape(k * self.weight.shape[1], *self.weight.shape[2:])
        out = conv(x, weight, None, self.stride, self.padding, groups=k).contiguous(memory_format=torch.channels_last)
        return _ChannelBias.apply(out, self.bias)


class _ChannelBias(torch.autograd.Function):
    """x (B, K*O, H, W) + bias (K, O). Its gradient sums each member-channel's row alone: the reductions
    of torch's own backward (and oneDNN's for grouped convolutions) depend on how many channels there
    are, so a member's bias gradient would depend on K."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd's signature
        ctx.members, ctx.channels = bias.shape
        return x + bias.reshape(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        rows = grad.transpose(0, 1).reshape(ctx.members, ctx.channels, -1).contiguous()  # (K, O, B*H*W), rows
        return grad, rows.sum(-1)


class MemberBatchNorm(nn.Module):
    """K batch norms, each over its own member's batch, with its own running statistics.

    (K, B, F) inputs are normalized here; (B, K*C, H, W) inputs by torch's batch norm over K*C channels,
    whose running statistics are views of the stacked (K, C) buffers, updated in place.
    """

    def __init__(self, layers: Sequence[nn.modules.batchnorm._BatchNorm]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (K, C)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]))
        self.register_buffer("running_mean", torch.stack([m.running_mean for m in layers]))  # (K, C)
        self.register_buffer("running_var", torch.stack([m.running_var for m in layers]))
        self.register_buffer("num_batches_tracked", torch.stack([m.num_batches_tracked for m in layers]))  # (K,)
        self.track_running_stats = True  # _freeze turns it off for a step that must not move D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            raise RuntimeError("a population trains; evaluate a member's own InfoGAN (population.member)")
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        if x.dim() == 4:  # (B, K*C, H, W): torch's kernel, statistics per member-channel
            x = x.contiguous(memory_format=torch.channels_last)  # one memory format, whatever K: one kernel
            running = (
                (self.running_mean.view(-1), self.running_var.view(-1)) if self.track_running_stats else (None, None)
            )
            return F.batch_norm(x, *running, self.weight.reshape(-1), self.bias.reshape(-1), True, BN_MOMENTUM, BN_EPS)
        var, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)  # (K, 1, F) over each member's batch
        if self.track_running_stats:
            with torch.no_grad():
                n = x.shape[1]
                self.running_mean.lerp_(mean.squeeze(1), BN_MOMENTUM)
                self.running_var.lerp_(var.squeeze(1) * (n / (n - 1)), BN_MOMENTUM)  # the unbiased variance
        return (x - mean) * torch.rsqrt(var + BN_EPS) * self.weight.unsqueeze(1) + self.bias.unsqueeze(1)


class MemberFlatten(nn.Module):
    """Features per member: (B, K*C, H, W) after convolutions -> (K, B, C*H*W); (K, B, ...) -> (K, B, F)."""

    def __init__(self, members: int, channels: bool) -> None:
        super().__init__()
        self.members, self.channels = members, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels:
            return to_members(x, self.members).reshape(self.members, x.shape[0], -1)
        return x.reshape(x.shape[0], x.shape[1], -1)


class MemberUnflatten(nn.Module):
    """(K, B, C*H*W) -> images: (B, K*C, H, W) when convolutions follow, else (K, B, C, H, W)."""

    def __init__(self, shape: tuple[int, ...], channels: bool) -> None:
        super().__init__()
        self.shape, self.channels = tuple(shape), channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(x.shape[0], x.shape[1], *self.shape)
        return to_channels(images) if self.channels else images


class MemberQHead(nn.Module):
    """K posteriors Q(c|x): logits (K, B, k), means and stds (K, B, cont), each member's std floor its own."""

    def __init__(self, heads: Sequence[QHead], min_stds: Sequence[float]) -> None:
        super().__init__()
        first = heads[0]
        self.cat_codes, self.cont, self.learned_std = first.cat_codes, first.cont, first.learned_std
        self.net = _stack_sequential([h.net for h in heads], len(heads))
        self.register_buffer("min_std", torch.tensor(list(min_stds)).view(-1, 1, 1))  # (K, 1, 1)

    def forward(self, h: torch.Tensor) -> Posterior:
        out = self.net(h)  # (K, B, cat_dim + cont * (1 or 2))
        split = sum(self.cat_codes)
        logits = list(out[..., :split].split(list(self.cat_codes), dim=-1))
        mean = out[..., split : split + self.cont]
        std = self.min_std + F.softplus(out[..., split + self.cont :]) if self.learned_std else None
        return Posterior(logits, mean, std)


def _stack_layer(layers: Sequence[nn.Module], members: int, channels_next: bool, after_conv: bool) -> nn.Module:
    first = layers[0]
    if isinstance(first, nn.Linear):
        return MemberLinear(layers)
    if isinstance(first, nn.Conv2d | nn.ConvTranspose2d):
        return MemberConv(layers)
    if isinstance(first, nn.modules.batchnorm._BatchNorm):
        return MemberBatchNorm(layers)
    if isinstance(first, nn.Flatten):
        return MemberFlatten(members, channels=after_conv)
    if isinstance(first, nn.Unflatten):
        return MemberUnflatten(first.unflattened_size, channels_next)
    if isinstance(first, nn.Sequential):
        return _stack_sequential(layers, members)
    if isinstance(first, nn.ReLU | nn.LeakyReLU | nn.Tanh):
        return first  # elementwise: one for all members
    raise TypeError(f"no stacked form for {type(first).__name__}")


def _stack_sequential(seqs: Sequence[nn.Sequential], members: int) -> nn.Sequential:
    children = [list(s.children()) for s in seqs]
    out = []
    after_conv = False
    for i, layers in enumerate(zip(*children, strict=True)):
        later = [type(m) for m in children[0][i + 1 :]]
        channels_next = any(t in (nn.Conv2d, nn.ConvTranspose2d) for t in later)
        layer = _stack_layer(layers, members, channels_next, after_conv)
        after_conv = after_conv or isinstance(layers[0], nn.Conv2d | nn.ConvTranspose2d)
        out.append(layer)
    return nn.Sequential(*out)


class StackedInfoGAN(nn.Module):
    """The networks of K runs, stacked: the same attributes as InfoGAN, each with a member dimension."""

    def __init__(self, models: Sequence[InfoGAN], cfgs: Sequence[TrainConfig]) -> None:
        super().__init__()
        k = len(models)
        self.members = k
        self.generator = _stack_sequential([m.generator for m in models], k)
        self.d_trunk = _stack_sequential([m.d_trunk for m in models], k)
        self.d_head = MemberLinear([m.d_head for m in models])
        isolated = models[0].q_trunk is not None
        self.q_trunk = _stack_sequential([m.q_trunk for m in models], k) if isolated else None
        self.q_head = MemberQHead([m.q_head for m in models], [c.q_min_std for c in cfgs])
        self.cat_prior = nn.ParameterList(
            [
                nn.Parameter(torch.stack([m.cat_prior[j].detach() for m in models]), requires_grad=p.requires_grad)
                for j, p in enumerate(models[0].cat_prior)
            ]
        )  # each (K, k)

    def encode(self, x: torch.Tensor, features: torch.Tensor | None = None) -> Posterior:
        """Q's posterior for samples x; `features` are D's trunk output for x when already computed."""
        if self.q_trunk is not None:
            return self.q_head(self.q_trunk(x))
        return self.q_head(self.d_trunk(x) if features is None else features)

    def member(self, k: int, cfg: TrainConfig, sample_shape: tuple[int, ...]) -> InfoGAN:
        """Member k as a single InfoGAN with its own copy of the parameters and statistics."""
        with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG alone
            single = InfoGAN(cfg, sample_shape)
        state = {name: tensor[k] for name, tensor in self.state_dict().items() if not name.endswith("min_std")}
        single.load_state_dict(_single_shapes(single, state))
        return single.to(next(self.parameters()).device)


def _single_shapes(single: InfoGAN, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Member slices shaped as the single model's tensors (a stacked Q head holds its net under `net`)."""
    target = single.state_dict()
    return {name: state[name].reshape(target[name].shape).clone() for name in target}


# --- parameters of one role in one buffer, and a per-member optimizer --------------------------------


class MemberGroup:
    """Stacked parameters (each (K, ...)) held in one flat buffer, their gradients in another, with each
    member's learning rate, betas or momentum, and clip value: one optimizer for K independent runs.

    Elementwise updates on the flat buffers treat each member alone; the per-member reductions (gradient
    norms) go parameter by parameter over each member's own slice.
    """

    def __init__(self, params: Sequence[nn.Parameter], members: int) -> None:
        self.params = list(params)
        self.members = members
        sizes = [p.numel() for p in self.params]
        device = self.params[0].device if self.params else torch.device("cpu")
        self.data = torch.zeros(sum(sizes), device=device)
        self.grad = torch.zeros(sum(sizes), device=device)
        self.member_of = (
            torch.cat([torch.arange(members, device=device).repeat_interleave(n // members) for n in sizes])
            if sizes
            else torch.zeros(0, dtype=torch.long, device=device)
        )
        offset = 0
        self.slices: list[slice] = []
        for p, n in zip(self.params, sizes, strict=True):
            view = self.data[offset : offset + n].view_as(p)
            view.copy_(p.detach())
            p.data = view  # the parameter now lives in the buffer: updates of the buffer are updates of p
            p.grad = self.grad[offset : offset + n].view_as(p)
            self.slices.append(slice(offset, offset + n))
            offset += n
        self.state: dict[str, torch.Tensor] = {}

    def zero_grad(self) -> None:
        self.grad.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The optimizer's state (moments, running powers); the parameters are the model's."""
        return {name: t.clone() for name, t in self.state.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.state = {name: t.to(self.data.device).clone() for name, t in state.items()}

    def squared_norms(self, params: Sequence[nn.Parameter] | None = None) -> torch.Tensor:
        """(K,) squared L2 norm of each member's gradient over `params` (default: all of the group's)."""
        chosen = self.params if params is None else params
        total = torch.zeros(self.members, device=self.grad.device)
        for p in chosen:
            total += p.grad.reshape(self.members, -1).square().sum(1)
        return total

    def clip(self, kind: str, values: torch.Tensor, columns: slice | None = None) -> None:
        """Each member's gradient clipped by its own value (K,): by their L2 norm, or elementwise."""
        grad = self.grad if columns is None else self.grad[columns]
        members = self.member_of if columns is None else self.member_of[columns]
        if kind == "value":
            bound = values[members]
            torch.minimum(torch.maximum(grad, -bound), bound, out=grad)
        elif kind == "norm":
            params = self.params
            if columns is not None:
                inside = [s.start >= columns.start and s.stop <= columns.stop for s in self.slices]
                params = [p for p, keep in zip(self.params, inside, strict=True) if keep]
            norms = self.squared_norms(params).sqrt()
            scale = (values / (norms + 1e-6)).clamp(max=1.0)  # as torch.nn.utils.clip_grad_norm_
            grad.mul_(scale[members])

    def step(
        self, cfgs: Sequence[TrainConfig], lrs: torch.Tensor, active: torch.Tensor, columns: slice | None = None
    ) -> None:
        """One update of every active member (lrs: (K,) learning rates), Adam or SGD as cfgs[0] says."""
        cols = columns or slice(0, self.data.numel())
        p, g, members = self.data[cols], self.grad[cols], self.member_of[cols]
        if not p.numel():
            return
        on = active[members].to(g.dtype)
        g.mul_(on)  # a stopped member's gradient (possibly NaN) never reaches its state
        lr = lrs[members] * on
        if cfgs[0].optimizer == "sgd":
            momentum = torch.tensor([c.momentum for c in cfgs], device=p.device)[members]
            started = self.state.setdefault("momentum_started", torch.zeros_like(self.data))[cols]
            buf = self.state.setdefault("momentum", torch.zeros_like(self.data))[cols]
            fresh = torch.where(started > 0, buf * momentum + g, g)  # torch's SGD: the first buffer is the gradient
            buf.copy_(torch.where(on > 0, fresh, buf))
            p.sub_(buf * lr)
            started.copy_(torch.maximum(started, on))
            return
        beta1 = torch.tensor([c.betas[0] for c in cfgs], device=p.device)[members]
        beta2 = torch.tensor([c.betas[1] for c in cfgs], device=p.device)[members]
        m = self.state.setdefault("exp_avg", torch.zeros_like(self.data))[cols]
        v = self.state.setdefault("exp_avg_sq", torch.zeros_like(self.data))[cols]
        m.mul_(1 - on * (1 - beta1)).add_(g * (1 - beta1))  # lerp without a fused multiply-add: one rounding
        v.mul_(1 - on * (1 - beta2)).add_(g * g * (1 - beta2))
        # beta ** t kept as running products: multiplications round alike in vector and scalar code, whatever
        # the buffer's length (a vectorized pow would not), so a member's numbers do not depend on K
        bias1 = 1 - self._power("beta1_power", cols, beta1, on)
        bias2 = 1 - self._power("beta2_power", cols, beta2, on)
        denom = (v.sqrt() / bias2.sqrt()).add_(1e-8)
        # torch's Adam: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps); a stopped member's lr is 0
        p.sub_(m / denom * (lr / bias1.clamp(min=1e-30)))

    def _power(self, name: str, cols: slice, base: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
        """A running product per element, multiplied by `base` where `on` (each update of a member)."""
        power = self.state.setdefault(name, torch.ones_like(self.data))[cols]
        power.mul_(torch.where(on > 0, base, torch.ones_like(base)))
        return power


__all__ = [
    "MEMBER_FIELDS",
    "MemberGroup",
    "StackedInfoGAN",
    "cat_batch",
    "check_members",
    "population_key",
    "split_batch",
    "to_channels",
    "to_members",
]
