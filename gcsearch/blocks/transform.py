"""Transform stage of the global-context framework: ``1x1`` or a ``bottleneck``.

Paper: GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond (Cao et al., 2019),
https://arxiv.org/abs/1904.11492.

A bottleneck is conv C->h, optional LayerNorm([h, 1, 1]), ReLU, conv h->C, as mmcv's
``channel_add_conv``/``channel_mul_conv`` (same indices, so checkpoints load). The hidden width
comes from ``BlockSpec.hidden``: ``max(C // r, min_hidden)``, because a LayerNorm over one channel
outputs zero and would make a small-proxy block inert. The last conv starts at zero (official
GCNet init) unless ``zero_init=False`` (SE/CBAM keep their default init).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gcsearch.spec import BlockSpec


def _pointwise(channels: int, hidden: int, norm: bool) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, kernel_size=1)]


def _bottleneck(channels: int, hidden: int, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(channels, hidden, kernel_size=1)]
    if norm:
        layers.append(nn.LayerNorm([hidden, 1, 1]))
    layers += [nn.ReLU(), nn.Conv2d(hidden, channels, kernel_size=1)]
    return layers


#: transform name in ``BlockSpec.transform`` -> layer list builder (channels, hidden, norm).
TRANSFORMS: dict[str, Callable[[int, int, bool], list[nn.Module]]] = {
    "1x1": _pointwise,
    "bottleneck": _bottleneck,
}


class ChannelTransform(nn.Sequential):
    """Maps a context vector (N, C, 1, 1) to (N, C, 1, 1); see the module docstring."""

    def __init__(
        self, channels: int, spec: BlockSpec, *, min_hidden: int = 8, zero_init: bool = True
    ) -> None:
        hidden = spec.hidden(channels, min_hidden)
        super().__init__(*TRANSFORMS[spec.transform](channels, hidden, spec.norm == "ln"))
        self.hidden = hidden
        self.zero_init = zero_init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default init for every layer, then a zero last conv when ``zero_init``."""
        for layer in self:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        if self.zero_init:
            last = self[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)
