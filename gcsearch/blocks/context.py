"""ContextBlock: pooling -> transform -> fusion, the GCNet framework's searchable block.

Paper: GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond (Cao et al., 2019),
https://arxiv.org/abs/1904.11492.

Parameter names follow mmcv's ``ContextBlock`` (``conv_mask``, ``channel_add_conv``,
``channel_mul_conv``), so a GCNet checkpoint loads with ``strict=True`` whenever the spec is one
mmcv can express (att or avg pooling, bottleneck with LN, add/mul/both).
"""

from __future__ import annotations

import torch
from torch import nn

from gcsearch.blocks.fusion import BRANCHES, FUSIONS
from gcsearch.blocks.pooling import POOLINGS
from gcsearch.blocks.transform import ChannelTransform
from gcsearch.spec import SEARCH_INIT


class ContextBlock(nn.Module):
    """A global-context block built from a ``BlockSpec``; output shape equals input shape.

    Example:
        >>> blk = ContextBlock(64, BlockSpec("att", "bottleneck", 16, "ln", "add"))
        >>> blk(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])

    ``spec`` is a ``BlockSpec`` (anything with its five fields); ``init`` names the transforms'
    init (``transform.INITS``).
    """

    def __init__(
        self, channels: int, spec: object, *, min_hidden: int = 8, init: str = SEARCH_INIT
    ) -> None:
        super().__init__()
        self.channels = channels
        self.spec = spec
        pool = POOLINGS[spec.pooling](channels)  # type: ignore[attr-defined]
        self.pool_name = pool.attr_name
        self.views = pool.views
        self.add_module(self.pool_name, pool)
        self.branches = FUSIONS[spec.fusion]  # type: ignore[attr-defined]
        for name in self.branches:
            transform = ChannelTransform(channels, spec, min_hidden=min_hidden, init=init)
            self.add_module(name, transform)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Pooling conv as mmcv (kaiming fan_in), transforms per their ``init``."""
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.get_submodule(self.pool_name)(x)  # (B, C, H, W) -> (views*B, C, 1, 1)
        out = x
        for name in self.branches:
            t = self.get_submodule(name)(ctx)  # (views*B, C, 1, 1)
            if self.views > 1:
                t = t.unflatten(0, (self.views, -1)).sum(0)  # (B, C, 1, 1), views summed
            out = BRANCHES[name](out, t)  # (B, C, H, W)
        return out

    def extra_repr(self) -> str:
        return f"{self.channels}, spec={getattr(self.spec, 'id', self.spec)}"
