"""Transform stage of the global-context framework: ``1x1`` or a ``bottleneck``.

Paper: GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond (Cao et al., 2019),
https://arxiv.org/abs/1904.11492.

A bottleneck is conv C->h, optional LayerNorm([h, 1, 1]), ReLU, conv h->C, as mmcv's
``channel_add_conv``/``channel_mul_conv`` (same indices, so checkpoints load). The hidden width
is ``max(C // r, min_hidden)`` (``hidden_width``), because a LayerNorm over one channel outputs
zero and would make a small-proxy block inert. ``init`` names one of ``INITS``: the official GCNet
init zeroes the last conv (``zero_last``, every searched block); SE keeps PyTorch's default
(``default``); the CBAM authors' ResidualNet zeroes every bias (``zero_bias``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gcsearch.spec import SEARCH_INIT, hidden_width


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


def _zero_last(layers: nn.Sequential) -> None:
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)


def _zero_bias(layers: nn.Sequential) -> None:
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            nn.init.zeros_(layer.bias)


#: init name -> what it does after PyTorch's default init of every layer.
INITS: dict[str, Callable[[nn.Sequential], None]] = {
    "zero_last": _zero_last,
    "default": lambda layers: None,
    "zero_bias": _zero_bias,
}


class ChannelTransform(nn.Sequential):
    """Maps a context vector (N, C, 1, 1) to (N, C, 1, 1); ``spec`` needs ``transform``,
    ``ratio`` and ``norm`` (a ``BlockSpec``); see the module docstring."""

    def __init__(
        self, channels: int, spec: object, *, min_hidden: int = 8, init: str = SEARCH_INIT
    ) -> None:
        transform, ratio, norm = spec.transform, spec.ratio, spec.norm  # type: ignore[attr-defined]
        hidden = channels
        if transform == "bottleneck":
            if ratio > channels:
                raise ValueError(f"ratio {ratio} is larger than the {channels} channels it reduces")
            hidden = hidden_width(channels, ratio, min_hidden)
        super().__init__(*TRANSFORMS[transform](channels, hidden, norm == "ln"))
        self.hidden = hidden
        self.init = init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default init for every layer, then ``INITS[init]``."""
        for layer in self:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        INITS[self.init](self)
