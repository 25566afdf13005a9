"""CBAM: channel attention followed by spatial attention.

Paper: CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018),
https://arxiv.org/abs/1807.06521. Follows the authors' code (``Jongchan/attention-module``,
``MODELS/cbam.py`` and the init of ``MODELS/model_resnet.py``).

The channel gate is the framework's ``avgmax-r16-mul`` ``ContextBlock`` (shared MLP over the
average- and max-pooled vectors, summed, sigmoid). The spatial gate stacks the channel-wise max
and mean maps (the code's ``ChannelPool`` order: max first), applies a 7x7 conv without bias and
a BatchNorm (momentum 0.01), and rescales every position by the sigmoid of that map. Init as the
authors' ResidualNet: the spatial conv Kaiming-normal (fan_out), the spatial BN's scale and bias
zero, so the spatial gate starts at exactly 0.5 everywhere; every bias zero, the MLP's weights
PyTorch's default. Deviation: the MLP's Linear layers are 1x1 convs (the same function).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from gcsearch.blocks.context import ContextBlock


class SpatialGate(nn.Module):
    """CBAM's spatial attention; ``channels`` is accepted for a uniform constructor."""

    def __init__(self, channels: int, *, kernel_size: int = 7) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: conv Kaiming normal (fan_out), BN scale and bias 0 (gate 0.5)."""
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out")
        self.bn.reset_parameters()
        nn.init.zeros_(self.bn.weight)

    def map(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial attention map, (B, 1, H, W) in (0, 1)."""
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)  # (B, 2, H, W)
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
        spec = SimpleNamespace(  # the BlockSpec avgmax-r<ratio>-mul
            pooling="avgmax", transform="bottleneck", ratio=ratio, norm="none", fusion="mul"
        )
        self.channel_gate = ContextBlock(channels, spec, min_hidden=min_hidden, init="zero_bias")
        self.spatial_gate = SpatialGate(channels, kernel_size=kernel_size)

    def reset_parameters(self) -> None:
        self.channel_gate.reset_parameters()
        self.spatial_gate.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_gate(self.channel_gate(x))  # (B, C, H, W), channel first
