"""fvcore's MACs for single blocks against hand-derived counts (gcsearch.cost's rules:
conv/matmul as MACs, elementwise ops per output, reductions per input, LayerNorm 5/element)."""

from __future__ import annotations

import pytest

from gcsearch.blocks import build_block
from gcsearch.cost import block_analysis


def _gc(c: int, n: int) -> int:
    h = max(c // 16, 8)
    # conv_mask C*N, softmax N, weighted sum C*N, transform 2Ch + LN 5h + ReLU h, add C*N
    return 3 * c * n + n + 2 * c * h + 6 * h


def _se(c: int, n: int) -> int:
    h = max(c // 16, 8)
    return c * n + 2 * c * h + h + c + c * n  # mean, MLP + ReLU, sigmoid, mul


def _danet_cam(c: int, n: int) -> int:
    return 2 * c * c * n + c * c + 2 * c * n  # two C x C x N matmuls, softmax, gamma mul, add


def _parsenet(c: int, n: int) -> int:
    # local: pow, sum over C, div, scale C*N each; sqrt, clamp N each.
    # global: mean C*N; pow, sum, div, scale C each; sqrt, clamp 1 each.
    # fuse convs C*C*N + C*C; add C*N
    local = 4 * c * n + 2 * n
    glob = c * n + 4 * c + 2
    return local + glob + c * c * n + c * c + c * n


def _sagan(c: int, n: int) -> int:
    c8 = max(c // 8, 1)
    return 3 * c * c8 * n + 2 * n * n * c8 + n * n + c8 * c * n + 2 * c * n


CLOSED_FORMS = {"gc": _gc, "se": _se, "danet-cam": _danet_cam, "parsenet": _parsenet,
                "sagan": _sagan}  # fmt: skip


@pytest.mark.parametrize("name", list(CLOSED_FORMS))
@pytest.mark.parametrize(("c", "h", "w"), [(32, 8, 8), (64, 5, 7)])
def test_block_macs_match_closed_form(name: str, c: int, h: int, w: int) -> None:
    analysis = block_analysis(build_block(name, c), (c, h, w))
    assert analysis.total() == CLOSED_FORMS[name](c, h * w)
    assert not analysis.unsupported_ops()
