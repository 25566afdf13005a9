"""Self-attention as in SAGAN.

Paper: Self-Attention Generative Adversarial Networks (Zhang et al., 2018),
https://arxiv.org/abs/1805.08318.

s_ij = f(x_i)^T g(x_j), beta_ji = softmax_i(s_ij), o_j = v(sum_i beta_ji h(x_i)),
y = gamma * o + x with gamma starting at zero. f, g, h are 1x1 convs to C/8 and v a 1x1 conv
back to C (the paper's Eq. 2-3, C-bar = C/8). A C->C value conv without v would be exactly
DANet's PAM (``danet-pam``), which took its position attention from SAGAN.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention2d(nn.Module):
    """SAGAN self-attention; output shape equals input shape.

    Example:
        >>> SelfAttention2d(64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """

    def __init__(self, channels: int, *, reduction: int = 8) -> None:
        super().__init__()
        self.channels = channels
        inner = max(channels // reduction, 1)
        self.inner_channels = inner
        self.f = nn.Conv2d(channels, inner, kernel_size=1)  # keys
        self.g = nn.Conv2d(channels, inner, kernel_size=1)  # queries
        self.h = nn.Conv2d(channels, inner, kernel_size=1)  # values
        self.v = nn.Conv2d(inner, channels, kernel_size=1)  # back to C
        self.gamma = nn.Parameter(torch.zeros(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default conv init; gamma zero so the block starts as the identity."""
        for conv in (self.f, self.g, self.h, self.v):
            conv.reset_parameters()
        nn.init.zeros_(self.gamma)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """beta, (B, N, N): row j (query) sums to one over the keys i."""
        query = self.g(x).flatten(2).transpose(1, 2)  # (B, N, Ci)
        key = self.f(x).flatten(2)  # (B, Ci, N)
        return torch.matmul(query, key).softmax(dim=-1)  # (B, N, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        beta = self.attention(x)  # (B, N, N)
        values = self.h(x).flatten(2).transpose(1, 2)  # (B, N, Ci)
        o = torch.matmul(beta, values).transpose(1, 2)  # (B, Ci, N)
        o = self.v(o.reshape(b, self.inner_channels, h, w))  # (B, C, H, W)
        return x + self.gamma * o
