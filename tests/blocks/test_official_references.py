"""Each preset against a reference written from its official code's (or paper's) semantics.

The references below are plain functional torch, re-derived from: the CBAM authors' code
(``Jongchan/attention-module`` MODELS/cbam.py and the ResidualNet init in model_resnet.py), the
NL authors' Caffe2 code (``facebookresearch/video-nonlocal-net`` nonlocal_helper.py with its
default config: USE_MAXPOOL, USE_SCALE, USE_BN, BN_INIT_GAMMA 0, CONV_INIT_STD 0.01), mmcv's
``NonLocal2d`` (sub_sample, use_scale, zeros_init), timm's ``SEModule``, DANet's ``PAM_Module``,
the SAGAN and ParseNet papers. Weights are copied in and outputs compared to 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from gcsearch.blocks import build_block
from gcsearch.blocks.cbam import CBAM
from gcsearch.blocks.nonlocal_ import NonLocal2d

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _x(c: int, h: int = 6, w: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(seed))


def _randomize(m: nn.Module, seed: int = 3) -> nn.Module:
    """Every parameter and BN statistic random, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for b in m.buffers():
            if b.is_floating_point():
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return m


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


# ----------------------------------------------------------------------------- CBAM


def _cbam_reference(m: CBAM, x: torch.Tensor) -> torch.Tensor:
    """Jongchan/attention-module CBAM.forward with Linear MLP weights copied from ``m``."""
    cg = m.channel_gate.channel_mul_conv
    w1, b1 = cg[0].weight.flatten(1), cg[0].bias  # Linear(C, C/r)
    w2, b2 = cg[2].weight.flatten(1), cg[2].bias  # Linear(C/r, C)

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return F.linear(F.relu(F.linear(v, w1, b1)), w2, b2)

    avg = F.avg_pool2d(x, x.shape[2:]).flatten(1)
    top = F.max_pool2d(x, x.shape[2:]).flatten(1)
    x = x * torch.sigmoid(mlp(avg) + mlp(top))[:, :, None, None]
    compress = torch.cat([x.max(1)[0].unsqueeze(1), x.mean(1).unsqueeze(1)], 1)  # ChannelPool
    sg = m.spatial_gate
    return x * torch.sigmoid(_bn(F.conv2d(compress, sg.conv.weight, padding=3), sg.bn))


def test_cbam_equals_the_authors_code() -> None:
    m = _randomize(CBAM(64)).eval()
    x = _x(64)
    torch.testing.assert_close(m(x), _cbam_reference(m, x), **TOL)


def test_cbam_starts_with_the_authors_resnet_init() -> None:
    torch.manual_seed(0)
    m = build_block("cbam", 256)
    sg = m.spatial_gate
    x = _x(256)
    assert torch.equal(sg.map(x), torch.full((2, 1, 6, 8), 0.5))  # exactly 0.5 everywhere
    assert torch.equal(sg.map(x * 5 - 1), torch.full((2, 1, 6, 8), 0.5))  # in train mode too
    assert sg.bn.momentum == 0.01 and torch.equal(sg.bn.weight, torch.zeros(1))
    biases = [p for n, p in m.named_parameters() if n.endswith("bias")]
    assert len(biases) == 3 and all(torch.equal(b, torch.zeros_like(b)) for b in biases)
    # spatial conv: Kaiming normal fan_out (fan_out = 1 * 7 * 7), std sqrt(2 / 49) = 0.202
    assert 0.12 < float(sg.conv.weight.detach().std()) < 0.3
    # MLP weights: PyTorch's default (uniform within 1/sqrt(fan_in)), not Kaiming fan_out
    w1 = m.channel_gate.channel_mul_conv[0].weight
    assert float(w1.detach().abs().max()) <= 1 / 256**0.5


def test_cbam_channel_preset_is_the_authors_channel_gate() -> None:
    torch.manual_seed(0)
    gate = build_block("cbam-channel", 64)
    cbam = CBAM(64)
    cbam.channel_gate.load_state_dict(gate.state_dict())
    with torch.no_grad():
        cbam.spatial_gate.bn.weight.fill_(0)  # spatial gate = 0.5: ChannelGate * 0.5
    x = _x(64)
    torch.testing.assert_close(gate(x) * 0.5, cbam.eval()(x), **TOL)
    assert all(
        torch.equal(p, torch.zeros_like(p)) for n, p in gate.named_parameters() if "bias" in n
    )


# ----------------------------------------------------------------------------- non-local


def _nl_authors(m: NonLocal2d, x: torch.Tensor, softmax: bool) -> torch.Tensor:
    """nonlocal_helper.spacetime_nonlocal + add_nonlocal (2D, default config), functional."""
    b, _c, h, w = x.shape
    ci = m.inter_channels
    theta = F.conv2d(x, m.theta.weight, m.theta.bias).view(b, ci, -1)
    pooled = F.max_pool2d(x, 2, 2)  # USE_MAXPOOL: kernel 2, stride 2, no padding
    phi = F.conv2d(pooled, m.phi.weight, m.phi.bias).view(b, ci, -1)
    g = F.conv2d(pooled, m.g.weight, m.g.bias).view(b, ci, -1)
    theta_phi = torch.bmm(theta.transpose(1, 2), phi)  # BatchMatMul trans_a
    # USE_SCALE then Softmax over axis 2; without softmax: divided by ReduceBackSum of ones (M)
    p = (theta_phi * ci**-0.5).softmax(dim=2) if softmax else theta_phi / theta_phi.shape[2]
    t = torch.bmm(g, p.transpose(1, 2)).view(b, ci, h, w)  # BatchMatMul trans_b
    out = F.conv2d(t, m.conv_out.weight, m.conv_out.bias)
    return x + _bn(out, m.norm)  # SpatialBN, then Sum


@pytest.mark.parametrize(("preset", "softmax"), [("nl-embedded", True), ("nl-dot", False)])
@pytest.mark.parametrize(("h", "w"), [(6, 8), (7, 5)])
def test_nl_equals_the_authors_code(preset: str, softmax: bool, h: int, w: int) -> None:
    m = _randomize(build_block(preset, 32)).eval()
    x = _x(32, h, w)
    torch.testing.assert_close(m(x), _nl_authors(m, x, softmax), **TOL)


def test_nl_gaussian_uses_the_authors_layout_on_raw_features() -> None:
    m = _randomize(build_block("nl-gaussian", 32)).eval()
    x = _x(32)
    b, c, h, w = x.shape
    pooled = F.max_pool2d(x, 2, 2)
    p = torch.bmm(x.view(b, c, -1).transpose(1, 2), pooled.view(b, c, -1)).softmax(2)
    g = F.conv2d(pooled, m.g.weight, m.g.bias).view(b, m.inter_channels, -1)
    t = torch.bmm(g, p.transpose(1, 2)).view(b, m.inter_channels, h, w)
    expected = x + _bn(F.conv2d(t, m.conv_out.weight, m.conv_out.bias), m.norm)
    torch.testing.assert_close(m(x), expected, **TOL)


def test_nl_starts_with_the_authors_init() -> None:
    torch.manual_seed(0)
    m = build_block("nl-embedded", 512)
    for conv in (m.theta, m.phi, m.g, m.conv_out):
        assert abs(float(conv.weight.detach().std()) - 0.01) < 0.001  # CONV_INIT_STD
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    assert torch.equal(m.norm.weight, torch.zeros(512))  # BN_INIT_GAMMA


def _nl_mmcv(m: NonLocal2d, x: torch.Tensor) -> torch.Tensor:
    """mmcv NonLocal2d(sub_sample=True, use_scale=True, mode='embedded_gaussian').forward."""
    n, ci = x.size(0), m.inter_channels
    g_x = F.max_pool2d(F.conv2d(x, m.g.weight, m.g.bias), (2, 2)).view(n, ci, -1).permute(0, 2, 1)
    theta_x = F.conv2d(x, m.theta.weight, m.theta.bias).view(n, ci, -1).permute(0, 2, 1)
    phi_x = F.max_pool2d(F.conv2d(x, m.phi.weight, m.phi.bias), (2, 2)).view(n, ci, -1)
    pairwise = torch.matmul(theta_x, phi_x)
    pairwise = (pairwise / theta_x.shape[-1] ** 0.5).softmax(dim=-1)
    y = torch.matmul(pairwise, g_x).permute(0, 2, 1).contiguous().reshape(n, ci, *x.size()[2:])
    return x + F.conv2d(y, m.conv_out.weight, m.conv_out.bias)


def test_nl_mmcv_variant_equals_mmcv() -> None:
    m = _randomize(build_block("nl-embedded-mmcv", 32)).eval()
    assert m.norm is None
    x = _x(32)
    torch.testing.assert_close(m(x), _nl_mmcv(m, x), **TOL)
    fresh = build_block("nl-embedded-mmcv", 32)  # zeros_init: conv_out weight and bias zero
    assert not fresh.conv_out.weight.any() and not fresh.conv_out.bias.any()


# ----------------------------------------------------------------------------- the rest


def test_se_equals_timm_semodule() -> None:
    m = _randomize(build_block("se", 64))
    x = _x(64)
    fc1, fc2 = m.channel_mul_conv[0], m.channel_mul_conv[2]
    s = x.mean((2, 3), keepdim=True)
    s = F.conv2d(F.relu(F.conv2d(s, fc1.weight, fc1.bias)), fc2.weight, fc2.bias)
    torch.testing.assert_close(m(x), x * torch.sigmoid(s), **TOL)


def test_danet_pam_equals_the_official_pam_module() -> None:
    m = _randomize(build_block("danet-pam", 64))
    x = _x(64)
    b, c, h, w = x.size()
    q = F.conv2d(x, m.query_conv.weight, m.query_conv.bias).view(b, -1, w * h).permute(0, 2, 1)
    k = F.conv2d(x, m.key_conv.weight, m.key_conv.bias).view(b, -1, w * h)
    attention = F.softmax(torch.bmm(q, k), dim=-1)
    v = F.conv2d(x, m.value_conv.weight, m.value_conv.bias).view(b, -1, w * h)
    out = torch.bmm(v, attention.permute(0, 2, 1)).view(b, c, h, w)
    torch.testing.assert_close(m(x), m.gamma * out + x, **TOL)


def test_sagan_equals_the_paper_equations() -> None:
    m = _randomize(build_block("sagan", 64))
    x = _x(64)
    b, _c, h, w = x.shape

    def conv(layer: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, layer.weight, layer.bias)

    f, g, hh = (conv(layer, x).flatten(2) for layer in (m.f, m.g, m.h))  # (B, C/8, N)
    s = torch.einsum("bci,bcj->bij", f, g)  # s_ij = f(x_i)^T g(x_j)
    beta = s.softmax(dim=1)  # beta_ji: normalised over i
    o = conv(m.v, torch.einsum("bij,bci->bcj", beta, hh).view(b, -1, h, w))  # Eq. 2
    torch.testing.assert_close(m(x), m.gamma * o + x, **TOL)


def test_parsenet_normalises_both_features_as_the_paper() -> None:
    m = _randomize(build_block("parsenet", 32))
    x = _x(32)
    c = 32
    local = x / x.pow(2).sum(1, keepdim=True).sqrt() * m.local_scale.view(1, c, 1, 1)
    g = x.mean((2, 3), keepdim=True)
    glob = g / g.pow(2).sum(1, keepdim=True).sqrt() * m.scale.view(1, c, 1, 1)
    expected = F.conv2d(torch.cat([local, glob.expand_as(x)], 1), m.fuse.weight, m.fuse.bias)
    torch.testing.assert_close(m(x), expected, **TOL)
