"""DANet's position and channel attention modules.

Paper: Dual Attention Network for Scene Segmentation (Fu et al., CVPR 2019),
https://arxiv.org/abs/1809.02983.

PAM: query/key 1x1 convs to C/8, value conv C->C, softmax over positions, ``gamma * out + x``.
CAM: the C x C affinity of the features themselves (no projection), softmax over channels,
``gamma * out + x``. Both gammas start at zero, so each module starts as the identity. We follow
the paper's softmax(A A^T) for CAM; the official code's ``max - energy`` variant is
softmax(-A A^T). ``DualAttention`` adds both attention terms to one residual (the paper sums two
module outputs that each carry x; inside a ResNet block that would double x).
"""

from __future__ import annotations

import torch
from torch import nn


class PositionAttention(nn.Module):
    """PAM; ``attention(x)`` is (B, N, N) with each query row summing to one."""

    def __init__(self, channels: int, *, reduction: int = 8) -> None:
        super().__init__()
        self.channels = channels
        inner = max(channels // reduction, 1)
        self.query_conv = nn.Conv2d(channels, inner, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, inner, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default conv init; gamma zero so the module starts as the identity."""
        for conv in (self.query_conv, self.key_conv, self.value_conv):
            conv.reset_parameters()
        nn.init.zeros_(self.gamma)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        q = self.query_conv(x).flatten(2).transpose(1, 2)  # (B, N, Ci)
        k = self.key_conv(x).flatten(2)  # (B, Ci, N)
        return torch.matmul(q, k).softmax(dim=-1)  # (B, N, N)

    def term(self, x: torch.Tensor) -> torch.Tensor:
        """gamma * (value aggregated by attention), (B, C, H, W)."""
        attn = self.attention(x)  # (B, N, N)
        v = self.value_conv(x).flatten(2)  # (B, C, N)
        out = torch.matmul(v, attn.transpose(1, 2))  # (B, C, N)
        return self.gamma * out.view(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.term(x)  # (B, C, H, W)


class ChannelAttention(nn.Module):
    """CAM; ``attention(x)`` is (B, C, C); its only parameter is gamma."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.zeros(1))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.gamma)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        feats = x.flatten(2).float()  # (B, C, N); fp32: a sum over N overflows fp16 easily
        with torch.autocast(x.device.type, enabled=False):
            energy = torch.matmul(feats, feats.transpose(1, 2))  # (B, C, C)
        return energy.softmax(dim=-1)

    def term(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attention(x).to(x.dtype)  # (B, C, C)
        out = torch.matmul(attn, x.flatten(2))  # (B, C, N)
        return self.gamma * out.view(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.term(x)  # (B, C, H, W)


class DualAttention(nn.Module):
    """PAM and CAM terms summed around one residual: ``x + pam.term(x) + cam.term(x)``."""

    def __init__(self, channels: int, *, reduction: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.pam = PositionAttention(channels, reduction=reduction)
        self.cam = ChannelAttention(channels)

    def reset_parameters(self) -> None:
        self.pam.reset_parameters()
        self.cam.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pam.term(x) + self.cam.term(x)  # (B, C, H, W)
