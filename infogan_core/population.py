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

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from infogan_core.config import MEMBER_FIELDS, TrainConfig, check_members, population_key
from infogan_core.models import InfoGAN, Posterior, QHead

BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # nn.BatchNorm's defaults, which every single model uses


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
        return _MemberLinearFn.apply(x, self.weight, self.bias)


class _MemberLinearFn(torch.autograd.Function):
    """x (K, B, in) @ weight (K, out, in)^T + bias (K, out). Its backward computes the weight's gradient
    as (K, out, in) directly: autograd's own comes back transposed, and accumulating it into a
    contiguous parameter costs a strided copy of every weight, every step."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


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
        # with other kernels than a single model's, which would break exactness; such layers are a batched
        # matrix product over unfolded patches instead, for every K (a single run too), so each member's
        # numbers are its own whatever K (and 2-3x faster at K = 16 than a convolution per member)
        self.per_member = self.weight.shape[2] == 1  # a conv's input channels, a transposed conv's output channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[0]
        conv = F.conv_transpose2d if self.transposed else F.conv2d
        if self.per_member:
            out = self._transposed_one_channel(x) if self.transposed else self._one_channel(x)
            return _ChannelBias.apply(out.contiguous(memory_format=torch.channels_last), self.bias)
        weight = self.weight.reshape(k * self.weight.shape[1], *self.weight.shape[2:])
        out = conv(x, weight, None, self.stride, self.padding, groups=k).contiguous(memory_format=torch.channels_last)
        return _ChannelBias.apply(out, self.bias)

    def _one_channel(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's 1-channel input (B, K, H, W) convolved as weight (O, kh*kw) @ its patches."""
        k, o, _, kh, kw = self.weight.shape
        b, _, h, w = x.shape
        patches = F.unfold(x, (kh, kw), padding=self.padding, stride=self.stride)  # (B, K*kh*kw, L)
        length = patches.shape[-1]
        patches = patches.view(b, k, kh * kw, length).permute(1, 2, 0, 3).reshape(k, kh * kw, b * length)
        out = torch.bmm(self.weight.reshape(k, o, kh * kw), patches)  # (K, O, B*L)
        ho = _unfolded_size(h, kh, self.stride[0], self.padding[0], False)
        wo = _unfolded_size(w, kw, self.stride[1], self.padding[1], False)
        return out.view(k, o, b, ho, wo).permute(2, 0, 1, 3, 4).reshape(b, k * o, ho, wo)

    def _transposed_one_channel(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's transposed convolution to 1 channel: weight^T @ input, folded back into an image."""
        k, c, _, kh, kw = self.weight.shape
        b, _, h, w = x.shape
        columns = x.reshape(b, k, c, h * w).permute(1, 2, 0, 3).reshape(k, c, b * h * w)
        patches = torch.bmm(self.weight.reshape(k, c, kh * kw).transpose(1, 2), columns)  # (K, kh*kw, B*L)
        patches = patches.view(k, kh * kw, b, h * w).permute(2, 0, 1, 3).reshape(b, k * kh * kw, h * w)
        size = (
            _unfolded_size(h, kh, self.stride[0], self.padding[0], True),
            _unfolded_size(w, kw, self.stride[1], self.padding[1], True),
        )
        return F.fold(patches, size, (kh, kw), padding=self.padding, stride=self.stride)  # (B, K, Ho, Wo)


def _unfolded_size(size: int, kernel: int, stride: int, padding: int, transposed: bool) -> int:
    return (size - 1) * stride - 2 * padding + kernel if transposed else (size + 2 * padding - kernel) // stride + 1


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

    Both layouts go through torch's batch norm over K*C channels ((K, B, F) as (B, K*F) rows), whose
    running statistics are views of the stacked (K, C) buffers, updated in place.
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
        running = (self.running_mean.view(-1), self.running_var.view(-1)) if self.track_running_stats else (None, None)
        weight, bias = self.weight.reshape(-1), self.bias.reshape(-1)
        if x.dim() == 4:  # (B, K*C, H, W): statistics per member-channel
            x = x.contiguous(memory_format=torch.channels_last)  # one memory format, whatever K: one kernel
            return F.batch_norm(x, *running, weight, bias, True, BN_MOMENTUM, BN_EPS)
        members, batch, features = x.shape  # (K, B, F) -> (B, K*F): one channel per member-feature
        rows = x.transpose(0, 1).reshape(batch, members * features)
        out = F.batch_norm(rows, *running, weight, bias, True, BN_MOMENTUM, BN_EPS)
        return out.view(batch, members, features).transpose(0, 1)


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
    if isinstance(first, nn.ReLU | nn.LeakyReLU | nn.Tanh | nn.Sigmoid):
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

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """A copy of member k's parameters and statistics (stacked names, the member dimension dropped)."""
        return {name: t[k].clone() for name, t in self.state_dict().items() if not name.endswith("min_std")}

    def member(
        self, k: int, cfg: TrainConfig, sample_shape: tuple[int, ...], state: dict[str, torch.Tensor] | None = None
    ) -> InfoGAN:
        """Member k as a single InfoGAN with its own copy of the parameters and statistics (now, or as
        `state`, a `member_state` taken earlier, says)."""
        with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the global RNG alone
            single = InfoGAN(cfg, sample_shape)
        single.load_state_dict(_single_shapes(single, self.member_state(k) if state is None else state))
        return single.to(next(self.parameters()).device)


def _single_shapes(single: InfoGAN, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Member slices shaped as the single model's tensors (a stacked Q head holds its net under `net`)."""
    target = single.state_dict()
    return {name: state[name].reshape(target[name].shape).clone() for name in target}


# --- a per-member optimizer -------------------------------------------------------------------------

ROW_CHUNK = 64  # row_sums adds a row 64 values at a time, then the partial sums again


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """(K, L) -> (K,): each row's sum, in an order that depends on L alone: chunks of ROW_CHUNK summed, then
    their sums, and so on. No reduction is ever over one output of more than torch's parallel grain, so a
    row adds up the same on any thread count and in a population of any size (a single run's one row of
    millions would otherwise be split over threads, a population's rows not). A row whose length is not a
    multiple of ROW_CHUNK is summed as if padded with zeros (which add nothing)."""
    members = x.shape[0]
    while x.shape[1] > ROW_CHUNK:
        pad = -x.shape[1] % ROW_CHUNK
        if pad:
            x = F.pad(x, (0, pad))
        x = x.reshape(members, -1, ROW_CHUNK).sum(-1)
    return x.sum(1)


def _padded(width: int) -> int:
    return width + -width % ROW_CHUNK


@dataclass
class _Segment:
    """Columns [start, end) of a group's buffer that are updated together, whether they were updated yet (SGD's
    first step), and Adam's running powers of beta1 and beta2 (float64, one per member: the bias corrections)."""

    start: int
    end: int
    updated: bool
    beta1_power: torch.Tensor  # (K, 1)
    beta2_power: torch.Tensor  # (K, 1)


class MemberGroup:
    """One optimizer for the stacked parameters (each (K, ...)) of K independent runs, each member with its
    own learning rate, betas or momentum and clip value.

    The group's parameters are views of one (K, P) buffer, member by row, and their gradients views of
    another, which backward accumulates into. An update, a norm or a clip is then a few operations on
    (K, P) tensors with one (K, 1) column per hyperparameter: the number of kernels depends neither on K
    nor on how many parameters there are, and every operation is an elementwise one of correctly rounded
    arithmetic (no fused multiply-add), so each member's values are those its single run computes.
    Norms add up by row_sums. A member that no longer trains (`active`, shared with the training loop) is
    updated with a learning rate of 0.

    With `shares`, a group whose parameters (a run of them, in order) these are, the new group's buffers are
    views of that group's columns: the same parameters and gradients, with optimizer state of its own (the
    trunk's updates in an unfrozen G step, which leave D's moments alone).
    """

    def __init__(
        self,
        params: Sequence[nn.Parameter],
        cfgs: Sequence[TrainConfig],
        lrs: Sequence[float],
        active: torch.Tensor,
        *,
        shares: MemberGroup | None = None,
    ) -> None:
        self.params = list(params)
        self.cfgs = list(cfgs)
        self.lrs = list(lrs)
        self.members = members = len(cfgs)
        self.active = active  # (K,) bool
        device = active.device
        sizes = [p[0].numel() for p in self.params]
        self.bounds = [(sum(sizes[:i]), sum(sizes[: i + 1])) for i in range(len(sizes))]
        width = sum(sizes)
        if shares is not None:
            a, b = shares._range(self.params)
            self.values, self.grad = shares.values[:, a:b], shares.grad[:, a:b]  # (K, P) views, rows strided
        else:
            self.values = torch.empty(members, width, device=device)
            self.grad = torch.zeros(members, width, device=device)
            with torch.no_grad():
                for p, (a, b) in zip(self.params, self.bounds, strict=True):
                    self.values[:, a:b].copy_(p.reshape(members, -1))
                    p.data = self.values[:, a:b].view(p.shape)  # the module's parameter is a view of the buffer
                    p.grad = self.grad[:, a:b].view(p.shape)  # backward adds into it in place
        self.sgd = cfgs[0].optimizer == "sgd"
        self.exp_avg = torch.zeros(members, width, device=device)  # Adam's first moment, or SGD's momentum buffer
        self.exp_avg_sq = None if self.sgd else torch.zeros(members, width, device=device)

        def column(values: Sequence[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.tensor(list(values), dtype=dtype, device=device).view(-1, 1)  # (K, 1)

        self.lr64 = column(self.lrs, torch.float64)
        self.momentum = column([c.momentum for c in cfgs])
        self.beta1, self.beta2 = column([c.betas[0] for c in cfgs]), column([c.betas[1] for c in cfgs])
        self.beta1_64 = column([c.betas[0] for c in cfgs], torch.float64)
        self.beta2_64 = column([c.betas[1] for c in cfgs], torch.float64)
        self.one_minus_beta1, self.one_minus_beta2 = 1 - self.beta1, 1 - self.beta2
        self.segments = [self._segment(0, width)]
        self._ranges: dict[tuple[int, ...], tuple[int, int]] = {}
        self._norms: dict[tuple[int, int], torch.Tensor] = {}
        # a (K, P) scratch buffer for the update's intermediate values, and per norm's range one of squares
        # padded with zeros to whole chunks of row_sums: a step allocates no buffer of the parameters' size
        # (freed and allocated again every step, they cost a CPU page faults: 8x the minor faults at K = 16)
        self._scratch = torch.empty(members, width, device=device)
        self._squares: dict[tuple[int, int], torch.Tensor] = {}

    def _segment(self, start: int, end: int, like: _Segment | None = None) -> _Segment:
        if like is not None:
            return _Segment(start, end, like.updated, like.beta1_power.clone(), like.beta2_power.clone())
        ones = torch.ones(self.members, 1, dtype=torch.float64, device=self.values.device)
        return _Segment(start, end, False, ones, ones.clone())

    def _range(self, params: Sequence[nn.Parameter] | None) -> tuple[int, int]:
        """The buffer's columns that hold `params` (default: all): a contiguous run of the group's order."""
        if params is None:
            return 0, self.values.shape[1]
        ids = tuple(id(p) for p in params)
        if ids not in self._ranges:
            index = [i for i, p in enumerate(self.params) if id(p) in set(ids)]
            if not index or index != list(range(index[0], index[-1] + 1)):
                raise ValueError("a part of a group must be a run of its parameters, in order")
            self._ranges[ids] = (self.bounds[index[0]][0], self.bounds[index[-1]][1])
        return self._ranges[ids]

    def zero_grad(self) -> None:
        self.grad.zero_()
        self._norms = {}  # per range: each member's squared gradient norm (K,)

    def squared_norms(self, params: Sequence[nn.Parameter] | None = None) -> torch.Tensor:
        """(K,) squared L2 norm of each member's gradient over `params` (default: all of the group's),
        computed once per backward; clipping reuses it."""
        a, b = self._range(params)
        if (a, b) not in self._norms:
            if (a, b) not in self._squares:
                self._squares[(a, b)] = torch.zeros(self.members, _padded(b - a), device=self.values.device)
            squares = self._squares[(a, b)]
            grad = self.grad[:, a:b]
            torch.mul(grad, grad, out=squares[:, : b - a])  # the padding stays 0
            self._norms[(a, b)] = row_sums(squares)
        return self._norms[(a, b)]

    def clip(self, kind: str, values: torch.Tensor, params: Sequence[nn.Parameter] | None = None) -> None:
        """Each member's gradient clipped by its own value (K,): by the L2 norm over `params`, or elementwise."""
        a, b = self._range(params)
        grad = self.grad[:, a:b]
        if kind == "norm":  # as torch.nn.utils.clip_grad_norm_, each member over its own gradient
            scale = (values / (self.squared_norms(params).sqrt() + 1e-6)).clamp(max=1.0)
            grad.mul_(scale.view(-1, 1))
        elif kind == "value":
            bound = values.view(-1, 1)
            grad.clamp_(min=-bound, max=bound)
        if kind != "none":
            self._norms = {}  # the gradients have changed

    def _segments_of(self, a: int, b: int) -> list[_Segment]:
        """The segments that make up columns [a, b), split where a part updated alone begins or ends."""
        for cut in (a, b):
            for i, seg in enumerate(self.segments):
                if seg.start < cut < seg.end:
                    self.segments[i : i + 1] = [self._segment(seg.start, cut, seg), self._segment(cut, seg.end, seg)]
                    break
        return [seg for seg in self.segments if a <= seg.start and seg.end <= b]

    def step(self, params: Sequence[nn.Parameter] | None = None) -> None:
        """One update of every active member at its own learning rate; `params` limits it to some of them."""
        a, b = self._range(params)
        active = self.active.view(-1, 1)
        for seg in self._segments_of(a, b):
            cols = slice(seg.start, seg.end)
            p, g, m = self.values[:, cols], self.grad[:, cols], self.exp_avg[:, cols]
            tmp = self._scratch[:, cols]
            if self.sgd:  # torch's SGD with momentum, no dampening: the first buffer is the gradient
                if not seg.updated:
                    m.copy_(g)
                else:
                    m.mul_(self.momentum).add_(g)
                torch.mul(m, (self.lr64 * active).to(torch.float32), out=tmp)
                p.sub_(tmp)
            else:  # Adam with bias corrections, as torch.optim.Adam (eps 1e-8, no weight decay)
                seg.beta1_power.mul_(self.beta1_64)
                seg.beta2_power.mul_(self.beta2_64)
                step_size = (self.lr64 / (1 - seg.beta1_power) * active).to(torch.float32)  # (K, 1)
                correction2 = (1 - seg.beta2_power).sqrt().to(torch.float32)
                v = self.exp_avg_sq[:, cols]
                torch.mul(g, self.one_minus_beta1, out=tmp)
                m.mul_(self.beta1).add_(tmp)
                torch.mul(g, g, out=tmp)
                v.mul_(self.beta2).add_(tmp.mul_(self.one_minus_beta2))
                torch.sqrt(v, out=tmp)
                tmp.div_(correction2).add_(1e-8)  # the denominator
                torch.div(m, tmp, out=tmp)
                p.sub_(tmp.mul_(step_size))
            seg.updated = True

    def state_dict(self) -> dict[str, object]:
        """The optimizer's state (moments, update counts, bias corrections); the parameters are the model's."""
        return {
            "exp_avg": self.exp_avg.clone(),
            "exp_avg_sq": None if self.exp_avg_sq is None else self.exp_avg_sq.clone(),
            "segments": [
                (s.start, s.end, s.updated, s.beta1_power.clone(), s.beta2_power.clone()) for s in self.segments
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        self.exp_avg.copy_(state["exp_avg"])
        if self.exp_avg_sq is not None:
            self.exp_avg_sq.copy_(state["exp_avg_sq"])
        device = self.values.device
        self.segments = [
            _Segment(a, b, bool(updated), p1.to(device), p2.to(device)) for a, b, updated, p1, p2 in state["segments"]
        ]


__all__ = [
    "MEMBER_FIELDS",
    "MemberGroup",
    "StackedInfoGAN",
    "cat_batch",
    "check_members",
    "population_key",
    "to_channels",
    "to_members",
]
