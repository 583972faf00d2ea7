"""The planner's cost model: the layer sizes it assumes are the built networks', and a step's MACs are
what torch counts in a real training step."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from infogan_core import TrainConfig, train
from infogan_core.cost import net_macs, pair_cost, step_macs
from infogan_core.data import DATASETS
from infogan_core.models import InfoGAN

from helpers import TINY_DIGITS, TINY_RING

pytestmark = pytest.mark.usefixtures("core_env")

CASES = {
    "mlp": TrainConfig(**TINY_RING),
    "mlp wide D, deep": TrainConfig(**TINY_RING).replace(d_width=4.0, g_width=0.25, q_width=0.25, g_depth=3, d_depth=3),
    "mlp isolated, learned std": TrainConfig(
        dataset="ring8", arch="mlp", cont_codes=2, q_std="learned", encoder="isolated"
    ),
    "conv": TrainConfig(**TINY_DIGITS),
    "conv quarter, joint BN": TrainConfig(**TINY_DIGITS).replace(g_width=0.25, d_width=0.25, d_batchnorm="joint"),
    "conv isolated, mlp on images": TrainConfig(dataset="digits", arch="mlp", encoder="isolated", q_width=0.5),
    "paper": TrainConfig(dataset="mnist-5k", arch="paper"),
}


def _counted(module: nn.Module, x: torch.Tensor) -> int:
    """MACs of one forward pass of `module` on one sample, counted layer by layer with hooks."""
    total = 0

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Linear):
            total += layer.in_features * layer.out_features
        elif isinstance(layer, nn.Conv2d):
            total += out[0].numel() * layer.in_channels * layer.weight[0, 0].numel()
        elif isinstance(layer, nn.ConvTranspose2d):
            total += inputs[0][0].numel() * layer.out_channels * layer.weight[0, 0].numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if not isinstance(m, nn.Sequential)]
    module.eval()
    with torch.no_grad():
        module(x)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("name", list(CASES))
def test_the_cost_model_counts_the_layers_the_networks_have(name):
    cfg = CASES[name]
    shape = DATASETS[cfg.dataset].sample_shape
    model = InfoGAN(cfg, shape).eval()
    sample = torch.zeros(1, *shape)
    counted = (
        _counted(model.generator, torch.zeros(1, cfg.latent_dim)),
        _counted(model.d_trunk, sample),
        _counted(model.d_head, torch.zeros(1, model.d_head.in_features)),
        _counted(model.q_head, torch.zeros(1, model.q_head.net[0].in_features))
        + (_counted(model.q_trunk, sample) if model.q_trunk is not None else 0),
    )
    assert tuple(net_macs(cfg)) == counted


OTHER_ARRANGEMENT = {"q_update": "g_step", "freeze_d_in_g_step": False, "d_steps": 2}


@pytest.mark.parametrize(
    ("name", "arrangement"),
    [("mlp", {}), ("mlp wide D, deep", OTHER_ARRANGEMENT), ("conv quarter, joint BN", {}), ("conv", OTHER_ARRANGEMENT)],
)
def test_a_steps_macs_are_what_torch_counts_in_a_training_step(name, arrangement):
    # two steps minus one step: one step's matrix products and convolutions, forward and backward, as
    # torch's own FLOP counter sees them (evaluation, the same in both, cancels)
    cfg = CASES[name].replace(eval_samples=100, report_every=1, eval_every=100, **arrangement)
    train(cfg.replace(steps=1))  # evaluation's one-off work (a fitted scorer, cached) is done before counting
    flops = []
    for steps in (1, 2):
        counter = FlopCounterMode(display=False)
        with counter:
            train(cfg.replace(steps=steps))
        flops.append(counter.get_total_flops())
    measured = (flops[1] - flops[0]) / 2  # FLOPs -> MACs
    assert measured == pytest.approx(step_macs(cfg), rel=0.05)  # 1-4% apart: a first layer's input gradient


def test_a_pairs_cost_grows_with_its_steps_and_its_networks():
    small, wide = CASES["mlp"], CASES["mlp"].replace(d_width=4.0)
    assert pair_cost(small.replace(steps=200)) == pytest.approx(2 * pair_cost(small.replace(steps=100)))
    assert pair_cost(wide) > 5 * pair_cost(small)
