"""CBAM: channel attention followed by spatial attention.

Paper: CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018),
https://arxiv.org/abs/1807.06521.

The channel gate is the framework's ``avgmax-r16-mul`` ``ContextBlock`` (shared MLP over the
average- and max-pooled vectors, summed, sigmoid) with PyTorch's default init, as the paper.
The spatial gate concatenates the channel-wise mean and max maps (the paper's [AvgPool; MaxPool]
order), applies a 7x7 conv and BatchNorm, and rescales every position by the sigmoid of that
one-channel map. Neither gate starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from gcsearch.blocks.context import ContextBlock
from gcsearch.spec import BlockSpec


class SpatialGate(nn.Module):
    """CBAM's spatial attention; ``channels`` is accepted for a uniform constructor."""

    def __init__(self, channels: int, *, kernel_size: int = 7) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch default init for the conv and the BatchNorm (the paper's)."""
        self.conv.reset_parameters()
        self.bn.reset_parameters()

    def map(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial attention map, (B, 1, H, W) in (0, 1)."""
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)  # (B, 2, H, W)
        return torch.sigmoid(self.bn(self.conv(pooled)))  # (B, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.map(x)  # (B, C, H, W) * (B, 1, H, W)


class CBAM(nn.Module):
    """Channel gate, then spatial gate; output shape equals input shape.

    Example:
        >>> CBAM(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(
        self, channels: int, *, ratio: int = 16, min_hidden: int = 8, kernel_size: int = 7
    ) -> None:
        super().__init__()
        self.channels = channels
        spec = BlockSpec("avgmax", "bottleneck", ratio, "none", "mul")
        self.channel_gate = ContextBlock(channels, spec, min_hidden=min_hidden, zero_init=False)
        self.spatial_gate = SpatialGate(channels, kernel_size=kernel_size)

    def reset_parameters(self) -> None:
        self.channel_gate.reset_parameters()
        self.spatial_gate.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(x))  # (B, C, H, W), channel first
