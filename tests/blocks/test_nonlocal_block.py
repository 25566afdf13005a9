"""Non-local block: the four pairwise functions differ and each matches its definition (on the
un-pooled layout, where every position is a key); the layouts are checked against the official
code in ``test_official_references.py``."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from gcsearch.blocks import NonLocal2d, build_block
from gcsearch.blocks.nonlocal_ import VARIANTS

C = 16


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, C, 5, 4, generator=torch.Generator().manual_seed(seed))


def _active(mode: str) -> NonLocal2d:
    torch.manual_seed(0)
    m = NonLocal2d(C, mode, pool="none", init="default").eval()
    nn.init.ones_(m.norm.weight)  # as if trained: the block now contributes
    return m


def test_variants_give_different_outputs() -> None:
    x = _x()
    outs = {mode: _active(mode)(x) for mode in VARIANTS}
    for a, b in itertools.combinations(outs, 2):
        assert not torch.allclose(outs[a], outs[b], atol=1e-4), (a, b)
    assert all(not torch.allclose(y, x, atol=1e-4) for y in outs.values())


@pytest.mark.parametrize("mode", ["gaussian", "embedded"])
def test_softmax_variants_have_rows_summing_to_one(mode: str) -> None:
    attn = _active(mode).attention(_x())
    assert attn.shape == (2, 20, 20) and (attn >= 0).all()
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 20))


def test_gaussian_uses_the_raw_features() -> None:
    m = _active("gaussian")
    x = _x()
    feats = x.flatten(2)
    expected = torch.matmul(feats.transpose(1, 2), feats).softmax(-1)
    torch.testing.assert_close(m.attention(x), expected)
    assert not hasattr(m, "theta") and not hasattr(m, "phi")


def test_dot_product_is_normalized_by_the_number_of_positions() -> None:
    m = _active("dot")
    x = _x()
    theta, phi = m.theta(x).flatten(2), m.phi(x).flatten(2)
    torch.testing.assert_close(m.attention(x), torch.matmul(theta.transpose(1, 2), phi) / 20)


def test_concat_matches_the_explicit_concatenation() -> None:
    """ReLU(w . [theta_i, phi_j]) / N, computed with the (B, N, N, 2Ci) tensor it avoids."""
    m = _active("concat")
    x = _x()
    theta = m.theta(x).flatten(2).transpose(1, 2)  # (B, N, Ci)
    phi = m.phi(x).flatten(2).transpose(1, 2)  # (B, N, Ci)
    n = theta.shape[1]
    pairs = torch.cat(
        [theta.unsqueeze(2).expand(-1, -1, n, -1), phi.unsqueeze(1).expand(-1, n, -1, -1)], -1
    )  # (B, N, N, 2Ci)
    expected = torch.relu(pairs @ m.concat_project.weight.flatten()) / n
    torch.testing.assert_close(m.attention(x), expected)


@pytest.mark.parametrize("mode", list(VARIANTS))
def test_param_count_closed_form(mode: str) -> None:
    c, ci = 64, 32
    g_and_out = (c * ci + ci) + ci * c + 2 * c  # g conv, W_z (no bias), BN scale and shift
    embed = 2 * (c * ci + ci) if mode != "gaussian" else 0
    concat = 2 * ci if mode == "concat" else 0
    m = build_block(f"nl-{mode}-unpooled", c)
    assert sum(p.numel() for p in m.parameters()) == g_and_out + embed + concat
    authors = build_block(f"nl-{mode}", c)  # W_z with a bias (the official code's NO_BIAS = 0)
    assert sum(p.numel() for p in authors.parameters()) == g_and_out + embed + concat + c


@pytest.mark.parametrize("mode", list(VARIANTS))
@pytest.mark.parametrize("layout", ["", "-unpooled"])
def test_starts_as_identity_through_zero_bn_scale(mode: str, layout: str) -> None:
    m = build_block(f"nl-{mode}{layout}", C)
    assert isinstance(m, NonLocal2d) and torch.equal(m.norm.weight, torch.zeros(C))
    x = _x()
    torch.testing.assert_close(m(x), x)


@pytest.mark.parametrize("pool", ["input", "after"])
def test_pooled_layouts_attend_to_a_quarter_of_the_positions(pool: str) -> None:
    m = NonLocal2d(C, "embedded", pool=pool)
    x = torch.randn(2, C, 6, 8)
    assert m.attention(x).shape == (2, 48, 12)
    assert NonLocal2d(C, "embedded", pool="none").attention(x).shape == (2, 48, 48)


def test_scale_divides_the_affinity_by_sqrt_inner_channels() -> None:
    torch.manual_seed(0)
    scaled = NonLocal2d(C, "embedded", pool="none", scale=True)
    plain = NonLocal2d(C, "embedded", pool="none", scale=False)
    plain.load_state_dict(scaled.state_dict())
    x = _x()
    theta, phi = scaled.theta(x).flatten(2), scaled.phi(x).flatten(2)
    f = torch.matmul(theta.transpose(1, 2), phi)
    torch.testing.assert_close(scaled.attention(x), (f / (C // 2) ** 0.5).softmax(-1))
    torch.testing.assert_close(plain.attention(x), f.softmax(-1))


def test_a_map_smaller_than_two_by_two_is_not_pooled() -> None:
    m = NonLocal2d(C, "dot", pool="input")
    assert m.attention(torch.randn(1, C, 1, 5)).shape == (1, 5, 5)
