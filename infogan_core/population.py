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

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.adam import adam

from infogan_core.config import ADAM_LANES, MEMBER_FIELDS, TrainConfig, check_members, population_key
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


class MemberGroup:
    """One optimizer for the stacked parameters (each (K, ...)) of K independent runs: each member with
    its own learning rate, betas or momentum, and clip value.

    Adam is elementwise, so one update of the stacked tensors is K independent Adams: torch's fused
    kernel updates every member in one call when all train and share a learning rate and betas, else
    it runs once per (rate, betas) on those members' slices; either way each value is computed as a
    single run computes it. Members all start together and a stopped one never resumes, so one step
    count per parameter serves every member that still trains. Gradient norms and clipping go
    parameter by parameter over each member's own slice.
    """

    def __init__(self, params: Sequence[nn.Parameter], cfgs: Sequence[TrainConfig]) -> None:
        self.params = list(params)
        self.cfgs = list(cfgs)
        self.members = len(cfgs)
        device = self.params[0].device if self.params else torch.device("cpu")
        self.state: dict[str, list[torch.Tensor] | torch.Tensor] = {
            "exp_avg": [torch.zeros_like(p) for p in self.params],  # Adam's moments, or SGD's momentum buffer
            "exp_avg_sq": [torch.zeros_like(p) for p in self.params],
            "steps": torch.zeros(len(self.params), device=device),  # updates so far, per parameter
        }
        self.momentum = torch.tensor([c.momentum for c in cfgs], device=device)
        self._scales: dict[tuple, torch.Tensor] = {}
        self.zero_grad()

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
        self._norms: dict[int, torch.Tensor] = {}  # per parameter: each member's squared gradient norm (K,)

    def _chosen(self, params: Sequence[nn.Parameter] | None) -> list[int]:
        if params is None:
            return list(range(len(self.params)))
        ids = {id(p) for p in params}
        return [i for i, p in enumerate(self.params) if id(p) in ids]

    def squared_norms(self, params: Sequence[nn.Parameter] | None = None) -> torch.Tensor:
        """(K,) squared L2 norm of each member's gradient over `params` (default: all of the group's);
        each parameter's is computed once per backward, and clipping reuses it."""
        total = torch.zeros(self.members, device=self.state["steps"].device)
        for i in self._chosen(params):
            grad = self.params[i].grad
            if grad is None:
                continue
            if i not in self._norms:
                self._norms[i] = grad.reshape(self.members, -1).square().sum(1)
            total = total + self._norms[i]
        return total

    def clip(self, kind: str, values: torch.Tensor, params: Sequence[nn.Parameter] | None = None) -> None:
        """Each member's gradient clipped by its own value (K,): by the L2 norm over `params`, or elementwise."""
        chosen = [i for i in self._chosen(params) if self.params[i].grad is not None]
        if kind == "norm":
            scale = (values / (self.squared_norms([self.params[i] for i in chosen]).sqrt() + 1e-6)).clamp(max=1.0)
            for i in chosen:  # as torch.nn.utils.clip_grad_norm_, member by member
                grad = self.params[i].grad
                grad.mul_(scale.view(-1, *([1] * (grad.dim() - 1))))
            self._norms = {}  # the gradients have changed
        elif kind == "value":
            for i in chosen:
                grad = self.params[i].grad
                bound = values.view(-1, *([1] * (grad.dim() - 1)))
                torch.minimum(torch.maximum(grad, -bound), bound, out=grad)
            self._norms = {}

    def _scale(self, lrs: Sequence[float], active: Sequence[bool]) -> torch.Tensor:
        """(K,) each member's learning rate, 0 for a member that no longer trains."""
        key = (tuple(lrs), tuple(active))
        if key not in self._scales:
            device = self.state["steps"].device
            self._scales[key] = torch.tensor(
                [lr if on else 0.0 for lr, on in zip(lrs, active, strict=True)], device=device
            )
        return self._scales[key]

    def step(self, lrs: Sequence[float], active: Sequence[bool], params: Sequence[nn.Parameter] | None = None) -> None:
        """One update of every active member, at its own learning rate; `params` limits it to some of them."""
        chosen = [i for i in self._chosen(params) if self.params[i].grad is not None]
        if not chosen:
            return
        # the fused kernel walks a gradient's memory in its parameter's order: one in another layout (a
        # convolution's gradient can come back channels-last) would pair each value with the wrong weight
        grads = [self.params[i].grad.contiguous() for i in chosen]
        if self.cfgs[0].optimizer == "sgd":
            self._sgd(chosen, grads, lrs, active)
            return
        together: dict[tuple, list[int]] = {}  # active members that one call updates: same rate, same betas
        for k in range(self.members):
            if active[k]:
                together.setdefault((lrs[k], *self.cfgs[k].betas), []).append(k)
        params = [self.params[i].detach() for i in chosen]
        moments = [self.state["exp_avg"][i] for i in chosen]
        squares = [self.state["exp_avg_sq"][i] for i in chosen]
        steps = self.state["steps"]
        counted_here: set[int] = set()  # parameters updated through slices: their count goes up once, below
        # a member's values fall on the kernel's vector lanes as in its single run: it is the tensor's only
        # member, or each member's slice starts on a whole vector
        lanes_as_single = [self.members == 1 or p[0].numel() % ADAM_LANES == 0 for p in params]
        for (lr, beta1, beta2), members in together.items():
            tensors: tuple[list[torch.Tensor], ...] = ([], [], [], [])
            counts = []
            for j, i in enumerate(chosen):
                stacked = (params[j], grads[j], moments[j], squares[j])
                if len(members) == self.members and lanes_as_single[j]:  # every member in one tensor
                    for into, t in zip(tensors, stacked, strict=True):
                        into.append(t)
                    counts.append(steps[i])  # the kernel increments it
                else:  # each member's slice as its own tensor: it starts at lane 0, as a single run's does
                    for k in members:
                        for into, t in zip(tensors, stacked, strict=True):
                            into.append(t[k])
                        counts.append(steps[i].clone())
                    counted_here.add(i)
            adam(
                *tensors,
                [],
                counts,
                fused=True,
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=lr,
                weight_decay=0.0,
                eps=1e-8,
                maximize=False,
            )
        if counted_here:
            steps[sorted(counted_here)] += 1

    def _sgd(self, chosen: list[int], grads: list[torch.Tensor], lrs: Sequence[float], active: Sequence[bool]) -> None:
        """torch's SGD with momentum (no dampening), each member with its own rate and momentum; the first
        momentum buffer is the gradient."""
        steps = self.state["steps"]
        scale = self._scale(lrs, active)
        for i, grad in zip(chosen, grads, strict=True):
            buf, shape = self.state["exp_avg"][i], (-1, *([1] * (grad.dim() - 1)))
            if steps[i] == 0:
                buf.copy_(grad)
            else:
                buf.mul_(self.momentum.view(shape)).add_(grad)
            with torch.no_grad():
                self.params[i].sub_(buf * scale.view(shape))
        steps[chosen] += 1

    def state_dict(self) -> dict[str, object]:
        """The optimizer's state (moments, step counts); the parameters are the model's."""
        return {
            "exp_avg": [t.clone() for t in self.state["exp_avg"]],
            "exp_avg_sq": [t.clone() for t in self.state["exp_avg_sq"]],
            "steps": self.state["steps"].clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("exp_avg", "exp_avg_sq"):
            for mine, saved in zip(self.state[name], state[name], strict=True):
                mine.copy_(saved)
        self.state["steps"].copy_(state["steps"])


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
