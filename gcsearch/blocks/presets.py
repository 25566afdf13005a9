"""The published baselines as named presets: one table, name -> constructor.

Papers: Squeeze-and-Excitation Networks (Hu et al., 2018), https://arxiv.org/abs/1709.01507;
GCNet (Cao et al., 2019), https://arxiv.org/abs/1904.11492 (SNL, GC); CBAM (Woo et al., 2018),
https://arxiv.org/abs/1807.06521; Non-local Neural Networks (Wang et al., 2018),
https://arxiv.org/abs/1711.07971; DANet (Fu et al., 2019), https://arxiv.org/abs/1809.02983;
ParseNet (Liu et al., 2015), https://arxiv.org/abs/1506.04579; SAGAN (Zhang et al., 2018),
https://arxiv.org/abs/1805.08318.

Each preset keeps its own paper's initialization: SE and CBAM start from PyTorch's default init,
SNL and GC from a zeroed last conv (official GCNet code), NL from a zero BatchNorm scale,
DANet and SAGAN from a zero gamma; ParseNet's fuse conv starts as [I | 0] (see parsenet.py).
``min_hidden`` bounds the bottleneck width of SE/GC/CBAM as for searchable blocks; it never binds
at ResNet-50 widths (C >= 256 with r = 16 gives h >= 16).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from gcsearch.blocks.cbam import CBAM, SpatialGate
from gcsearch.blocks.context import ContextBlock
from gcsearch.blocks.danet import ChannelAttention, DualAttention, PositionAttention
from gcsearch.blocks.nonlocal_ import NonLocal2d
from gcsearch.blocks.parsenet import ParseNetContext
from gcsearch.blocks.sagan import SelfAttention2d
from gcsearch.spec import BlockSpec

#: constructor signature: (channels, *, min_hidden) -> module with output shape == input shape.
PresetBuilder = Callable[..., nn.Module]


def _context(spec: BlockSpec, zero_init: bool, channels: int, *, min_hidden: int = 8) -> nn.Module:
    return ContextBlock(channels, spec, min_hidden=min_hidden, zero_init=zero_init)


def _nonlocal(mode: str, channels: int, *, min_hidden: int = 8) -> nn.Module:
    return NonLocal2d(channels, mode)  # theta/phi/g at C/2 as in the paper; min_hidden unused


def _plain(cls: Callable[[int], nn.Module], channels: int, *, min_hidden: int = 8) -> nn.Module:
    return cls(channels)  # the paper's fixed widths (C/8 for attention); min_hidden unused


def _cbam(channels: int, *, min_hidden: int = 8) -> nn.Module:
    return CBAM(channels, min_hidden=min_hidden)


#: preset name (a key of ``gcsearch.spec.PRESETS``) -> constructor.
PRESET_BUILDERS: dict[str, PresetBuilder] = {
    "se": partial(_context, BlockSpec("avg", "bottleneck", 16, "none", "mul"), False),
    "snl": partial(_context, BlockSpec("att", "1x1", None, "none", "add"), True),
    "gc": partial(_context, BlockSpec("att", "bottleneck", 16, "ln", "add"), True),
    "cbam-channel": partial(_context, BlockSpec("avgmax", "bottleneck", 16, "none", "mul"), False),
    "nl-gaussian": partial(_nonlocal, "gaussian"),
    "nl-embedded": partial(_nonlocal, "embedded"),
    "nl-dot": partial(_nonlocal, "dot"),
    "nl-concat": partial(_nonlocal, "concat"),
    "cbam": _cbam,
    "cbam-spatial": partial(_plain, SpatialGate),
    "danet-pam": partial(_plain, PositionAttention),
    "danet-cam": partial(_plain, ChannelAttention),
    "danet": partial(_plain, DualAttention),
    "parsenet": partial(_plain, ParseNetContext),
    "sagan": partial(_plain, SelfAttention2d),
}
