"""The GC lineage presets (issue 6): one defining property each and closed-form parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gcsearch.blocks import build_block
from gcsearch.blocks.cbam import CBAM, SpatialGate
from gcsearch.blocks.context import ContextBlock
from gcsearch.blocks.danet import ChannelAttention, DualAttention, PositionAttention
from gcsearch.blocks.parsenet import ParseNetContext
from gcsearch.blocks.sagan import SelfAttention2d
from gcsearch.spec import BlockSpec

C = 32


def _x(c: int = C, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, c, 5, 6, generator=torch.Generator().manual_seed(seed))


def _build(name: str, c: int = C) -> nn.Module:
    torch.manual_seed(0)
    return build_block(name, c)


def _switch_on(m: nn.Module) -> nn.Module:
    """Set every zero-started gamma to one, as after some training."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
    return m


def test_published_presets_are_their_specs() -> None:
    expected = {
        "se": ("avg-r16-mul", False), "snl": ("att-1x1-add", True),
        "gc": ("att-r16ln-add", True), "cbam-channel": ("avgmax-r16-mul", False),
    }  # fmt: skip
    for name, (block_id, zero_init) in expected.items():
        m = _build(name, 64)
        assert isinstance(m, ContextBlock) and m.spec == BlockSpec.parse(block_id)
        last = [b[-1] for b in m.children() if isinstance(b, nn.Sequential)]
        assert all(bool((conv.weight == 0).all()) is zero_init for conv in last), name


def test_pam_rows_sum_to_one() -> None:
    pam = _build("danet-pam")
    assert isinstance(pam, PositionAttention)
    attn = pam.attention(_x())
    assert attn.shape == (2, 30, 30)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 30))


def test_cam_has_no_learned_projection() -> None:
    cam = _build("danet-cam")
    assert isinstance(cam, ChannelAttention)
    assert [n for n, _ in cam.named_parameters()] == ["gamma"]
    x = _x()
    feats = x.flatten(2)
    expected = torch.matmul(feats, feats.transpose(1, 2)).softmax(-1)  # (B, C, C)
    torch.testing.assert_close(cam.attention(x), expected)


def test_danet_sums_both_terms_around_one_residual() -> None:
    dual = _switch_on(_build("danet"))
    assert isinstance(dual, DualAttention)
    x = _x()
    y = dual(x)
    torch.testing.assert_close(y, dual.pam(x) + dual.cam(x) - x)
    assert not torch.allclose(y, dual.pam(x), atol=1e-4)
    assert not torch.allclose(y, dual.cam(x), atol=1e-4)


def test_parsenet_pooled_vector_has_unit_norm_before_its_scale() -> None:
    m = _build("parsenet")
    assert isinstance(m, ParseNetContext)
    pooled = m.pooled(_x() * 7.0 + 3.0)
    assert pooled.shape == (2, C, 1, 1)
    torch.testing.assert_close(pooled.flatten(1).norm(dim=1), torch.ones(2))


def test_parsenet_equals_concat_then_conv() -> None:
    m = _build("parsenet")
    assert isinstance(m, ParseNetContext)
    with torch.no_grad():
        m.fuse.weight.normal_(0, 0.1)
        m.fuse.bias.normal_(0, 0.1)
        m.scale.uniform_(0.5, 2.0)
        m.local_scale.uniform_(0.5, 2.0)
    x = _x()
    local = x / x.norm(dim=1, keepdim=True) * m.local_scale.view(1, C, 1, 1)
    ctx = (m.pooled(x) * m.scale.view(1, C, 1, 1)).expand_as(x)  # unpooled
    expected = m.fuse(torch.cat([local, ctx], dim=1))  # (B, 2C, H, W) -> (B, C, H, W)
    torch.testing.assert_close(m(x), expected)


def test_cbam_spatial_map_has_one_channel() -> None:
    gate = _build("cbam-spatial")
    assert isinstance(gate, SpatialGate)
    x = _x()
    attn = gate.map(x)
    assert attn.shape == (2, 1, 5, 6) and bool(((attn > 0) & (attn < 1)).all())
    torch.testing.assert_close(gate(x), x * attn)


def test_cbam_applies_channel_then_spatial() -> None:
    cbam = _build("cbam").eval()
    assert isinstance(cbam, CBAM)
    x = _x()
    torch.testing.assert_close(cbam(x), cbam.spatial_gate(cbam.channel_gate(x)))
    assert not torch.allclose(cbam(x), cbam.channel_gate(cbam.spatial_gate(x)), atol=1e-4)


def test_sagan_rows_sum_to_one_and_differs_from_pam() -> None:
    sagan = _switch_on(_build("sagan"))
    assert isinstance(sagan, SelfAttention2d)
    x = _x()
    torch.testing.assert_close(sagan.attention(x).sum(-1), torch.ones(2, 30))
    assert not torch.allclose(sagan(x), x, atol=1e-4)
    pam = sum(p.numel() for p in _build("danet-pam").parameters())
    assert sum(p.numel() for p in sagan.parameters()) != pam


@pytest.mark.parametrize("name", ["danet-pam", "danet-cam", "danet", "sagan"])
def test_gamma_blocks_act_once_gamma_is_nonzero(name: str) -> None:
    x = _x()
    m = _build(name)
    torch.testing.assert_close(m(x), x)
    assert not torch.allclose(_switch_on(m)(x), x, atol=1e-4)


def _closed_form(name: str, c: int) -> int:
    h, c8 = max(c // 16, 8), max(c // 8, 1)
    channel_gate = 2 * c * h + h + c  # shared MLP conv C->h, conv h->C, with biases
    spatial_gate = 2 * 7 * 7 + 2  # 7x7 conv 2->1 without bias, BatchNorm(1)
    pam = 2 * (c * c8 + c8) + c * c + c + 1
    return {
        "cbam": channel_gate + spatial_gate,
        "cbam-spatial": spatial_gate,
        "danet-pam": pam,
        "danet-cam": 1,
        "danet": pam + 1,
        "parsenet": 2 * c + 2 * c * c + c,  # two per-channel scales, 1x1 conv 2C->C with bias
        "sagan": 3 * (c * c8 + c8) + c8 * c + c + 1,
    }[name]


@pytest.mark.parametrize("name", ["cbam", "cbam-spatial", "danet-pam", "danet-cam", "danet",
                                  "parsenet", "sagan"])  # fmt: skip
@pytest.mark.parametrize("c", [64, 256])
def test_param_counts_match_closed_form(name: str, c: int) -> None:
    assert sum(p.numel() for p in _build(name, c).parameters()) == _closed_form(name, c)
