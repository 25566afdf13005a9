"""ParseNet global context: both features L2-normalized and scaled, unpooled, fused early.

Paper: ParseNet: Looking Wider to See Better (Liu et al., 2015), https://arxiv.org/abs/1506.04579,
Sec. 3.3: the local feature (at every position, over channels) and the global average feature
are each L2-normalized and multiplied by a learned per-channel scale; the global one is broadcast
to H x W, concatenated to the local one and mapped back to C by a 1x1 conv. The context is
constant over positions, so the conv is computed as ``W_l * local + W_g * global`` (the two
halves of one weight) without building the broadcast copy: the same function.

Ours, not the paper's (it feeds a classifier, not a residual block): both scales start at
``scale_init`` and the fuse conv at ``[I | 0]`` with zero bias, so at start the block outputs the
normalized local feature times its scale.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def l2_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``x`` divided by its L2 norm over channels (dim 1), the norm clamped at ``eps``."""
    return x / x.pow(2).sum(1, keepdim=True).sqrt().clamp(min=eps)


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
        self.local_scale = nn.Parameter(torch.empty(channels))
        self.scale = nn.Parameter(torch.empty(channels))  # the global feature's
        self.fuse = nn.Conv2d(2 * channels, channels, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Scales at ``scale_init``; fuse weight [I | 0] and zero bias (ours)."""
        nn.init.constant_(self.local_scale, self.scale_init)
        nn.init.constant_(self.scale, self.scale_init)
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.weight[:, : self.channels, 0, 0].copy_(torch.eye(self.channels))
            self.fuse.bias.zero_()

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The unit-L2-norm global vector before its scale, (B, C, 1, 1)."""
        return l2_normalize(x.mean((2, 3), keepdim=True), self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.channels
        local = l2_normalize(x, self.eps) * self.local_scale.view(1, c, 1, 1)  # (B, C, H, W)
        ctx = self.pooled(x) * self.scale.view(1, c, 1, 1)  # (B, C, 1, 1)
        w = self.fuse.weight  # (C, 2C, 1, 1): [local | global]
        out = F.conv2d(local, w[:, :c])  # (B, C, H, W)
        glob = F.conv2d(ctx, w[:, c:], self.fuse.bias)  # (B, C, 1, 1), same for every position
        return out + glob  # (B, C, H, W)
