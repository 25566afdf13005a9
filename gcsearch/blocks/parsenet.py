"""ParseNet global context: pooled, L2-normalized, scaled, unpooled and fused early.

Paper: ParseNet: Looking Wider to See Better (Liu et al., 2015), https://arxiv.org/abs/1506.04579.

The global average of every channel is L2-normalized over channels, multiplied by a learned
per-channel scale, broadcast to H x W, concatenated to the features and mapped back to C by a
1x1 conv. The context is constant over positions, so the conv is computed as
``W_x * x + W_g * g`` (the concatenation's two halves of one weight) without building the
broadcast copy; the function is the concat-then-conv one. The fuse conv starts as ``[I | 0]``
(our choice, so the block starts as the identity inside a ResNet; the paper feeds a classifier);
the scale starts at ``scale_init`` (ours, not from the paper).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ParseNetContext(nn.Module):
    """Early-fusion global context; output shape equals input shape.

    Example:
        >>> ParseNetContext(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, channels: int, *, scale_init: float = 10.0, eps: float = 1e-12) -> None:
        super().__init__()
        self.channels = channels
        self.scale_init = scale_init
        self.eps = eps
        self.scale = nn.Parameter(torch.empty(channels))
        self.fuse = nn.Conv2d(2 * channels, channels, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Scale at ``scale_init``; fuse weight [I | 0] and zero bias: identity at start."""
        nn.init.constant_(self.scale, self.scale_init)
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.weight[:, : self.channels, 0, 0].copy_(torch.eye(self.channels))
            self.fuse.bias.zero_()

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The unit-L2-norm global vector before its scale, (B, C, 1, 1)."""
        g = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        norm = g.pow(2).sum(1, keepdim=True).sqrt().clamp(min=self.eps)  # (B, 1, 1, 1)
        return g / norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels
        ctx = self.pooled(x) * self.scale.view(1, c, 1, 1)  # (B, C, 1, 1)
        w = self.fuse.weight  # (C, 2C, 1, 1): [features | context]
        local = F.conv2d(x, w[:, :c])  # (B, C, H, W)
        glob = F.conv2d(ctx, w[:, c:], self.fuse.bias)  # (B, C, 1, 1), same for every position
        return local + glob  # (B, C, H, W)
