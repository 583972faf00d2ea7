"""The paper's network (arch: paper) against the paper code's MNIST network, layer by layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from infogan_core import TrainConfig
from infogan_core.cost import net_sizes
from infogan_core.models import InfoGAN

pytestmark = pytest.mark.usefixtures("core_env")

PAPER = TrainConfig(dataset="mnist-5k", arch="paper")

# openai/InfoGAN, infogan/models/regularized_gan.py, network_type == "mnist", counted by hand (weights + biases,
# and gamma + beta of each batch norm). The latent is Uniform(62) + Categorical(10) + 2 x Uniform(1): 74 inputs.
# D's shared trunk: custom_conv2d(64, k_h=4, k_w=4): 4*4*1*64 + 64 = 1,088
#   custom_conv2d(128, k_h=4, k_w=4): 4*4*64*128 + 128 = 131,200, conv_batch_norm: 2*128 = 256
#   custom_fully_connected(1024) on 7*7*128 = 6,272 inputs: 6,272*1,024 + 1,024 = 6,423,552, fc_batch_norm: 2,048
#   = 6,558,144; discriminator_template: custom_fully_connected(1): 1,024 + 1 = 1,025
CODE_D = 6_558_144 + 1_025
# encoder_template: custom_fully_connected(128): 1,024*128 + 128 = 131,200, fc_batch_norm: 256, then
#   custom_fully_connected(reg_latent_dist.dist_flat_dim) with dist_flat_dim = 10 + 2 * (1 * 2) = 14 (a Gaussian's
#   flat dim is dim * 2 even with fix_std=True, distributions.py): 128*14 + 14 = 1,806; = 133,262
CODE_Q = 131_200 + 256 + 1_806
# of those 14 outputs the code reads 12 (activate_dist takes the mean columns and sets stddev = tf.ones_like(mean)):
# the 2 std columns' 128*2 + 2 = 258 parameters never change a value, and this network does not build them
CODE_Q_UNREAD = 128 * 2 + 2
# generator_template: custom_fully_connected(1024): 74*1,024 + 1,024 = 76,800, fc_batch_norm: 2,048
#   custom_fully_connected(7*7*128): 1,024*6,272 + 6,272 = 6,428,800, fc_batch_norm: 12,544
#   custom_deconv2d([0, 14, 14, 64], k_h=4, k_w=4): 4*4*64*128 + 64 = 131,136, conv_batch_norm: 128
#   custom_deconv2d([0, 28, 28, 1], k_h=4, k_w=4): 4*4*1*64 + 1 = 1,025; = 6,652,481
CODE_G = 76_800 + 2_048 + 6_428_800 + 12_544 + 131_136 + 128 + 1_025


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _shapes(module: nn.Module, x: torch.Tensor, kinds: tuple[type, ...]) -> list[tuple[int, ...]]:
    """Output shapes (batch dimension left out) of each layer of `kinds`, in order."""
    seen: list[tuple[int, ...]] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
        for m in module.modules()
        if isinstance(m, kinds)
    ]
    module.eval()
    with torch.no_grad():
        module(x)
    for handle in handles:
        handle.remove()
    return seen


def test_the_paper_network_has_the_codes_parameter_count():
    model = InfoGAN(PAPER, (1, 28, 28))
    assert _count(model.generator) == CODE_G == 6_652_481
    assert _count(model.d_trunk) + _count(model.d_head) == CODE_D == 6_559_169
    assert _count(model.q_head) == CODE_Q - CODE_Q_UNREAD == 133_004
    assert model.q_trunk is None  # the code's encoder_template continues D's shared_template
    g, d, q = net_sizes(PAPER)  # the cost model counts the same network
    assert (g.params, d.params, q.params) == (CODE_G, CODE_D, CODE_Q - CODE_Q_UNREAD)


def test_the_paper_networks_layers_have_the_codes_shapes():
    model = InfoGAN(PAPER, (1, 28, 28))
    layers = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
    assert _shapes(model.generator, torch.zeros(2, 74), layers) == [(1024,), (6272,), (64, 14, 14), (1, 28, 28)]
    assert _shapes(model.d_trunk, torch.zeros(2, 1, 28, 28), layers) == [(64, 14, 14), (128, 7, 7), (1024,)]
    assert model.q_head.net[0].out_features == 128 and model.q_head.net[-1].out_features == 10 + 2
    norms = [m.num_features for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms == [1024, 6272, 64, 128, 1024, 128]  # G: fc, fc, deconv; D: conv2, fc; Q: fc (not D's conv1)


def test_the_paper_network_has_the_codes_activations():
    model = InfoGAN(PAPER, (1, 28, 28))
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.01}  # custom_ops.py: def leaky_rectify(x, leakiness=0.01)
    assert isinstance(model.generator[-1], nn.Sigmoid)  # MeanBernoulli: p = sigmoid(flat_dist)
    text = InfoGAN(PAPER.replace(leaky_slope=0.1, g_output="tanh"), (1, 28, 28))
    assert {m.negative_slope for m in text.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert isinstance(text.generator[-1], nn.Tanh)
    # the same knobs on the conv family leave it as it was unless set
    conv = InfoGAN(TrainConfig(dataset="mnist-5k", arch="conv"), (1, 28, 28))
    assert {m.negative_slope for m in conv.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    assert isinstance(conv.generator[-1], nn.Tanh)
