"""Non-local block with its four pairwise functions.

Paper: Non-local Neural Networks (Wang et al., 2018), https://arxiv.org/abs/1711.07971.

z = x + BN(W_z y), y_i = sum_j f(x_i, x_j) g(x_j) / C(x). theta, phi and g are 1x1 convs to C/2
channels; the BatchNorm after W_z starts with zero scale, so the block starts as the identity.
Variants (the paper's Sec. 3.2): ``gaussian`` softmax(x_i . x_j) on the raw features;
``embedded`` softmax(theta_i . phi_j); ``dot`` theta_i . phi_j / N; ``concat``
ReLU(w . [theta_i, phi_j]) / N. No sub-sampling of phi/g (the paper's optional max-pool).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn


def _dot(block: NonLocal2d, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    return torch.matmul(theta, phi)  # (B, N, Ci) @ (B, Ci, N) -> (B, N, N)


def _concat(block: NonLocal2d, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    # w . [theta_i, phi_j] = w_t . theta_i + w_p . phi_j: no (B, N, N, 2Ci) tensor needed.
    w = block.concat_project.weight.flatten()  # (2Ci,)
    ci = theta.shape[-1]
    a = torch.matmul(theta, w[:ci].to(theta.dtype)).unsqueeze(-1)  # (B, N, 1)
    b = torch.matmul(w[ci:].to(phi.dtype), phi).unsqueeze(-2)  # (B, 1, N)
    return torch.relu(a + b)  # (B, N, N)


def _softmax(f: torch.Tensor) -> torch.Tensor:
    return f.softmax(dim=-1)


def _mean(f: torch.Tensor) -> torch.Tensor:
    return f / f.shape[-1]


class Variant(NamedTuple):
    """How a variant embeds, pairs and normalizes; ``concat`` adds a projection conv."""

    embed: bool
    pairwise: Callable[[NonLocal2d, torch.Tensor, torch.Tensor], torch.Tensor]
    normalize: Callable[[torch.Tensor], torch.Tensor]
    concat: bool = False


#: variant name -> its definition (the preset names are ``nl-<variant>``).
VARIANTS: dict[str, Variant] = {
    "gaussian": Variant(embed=False, pairwise=_dot, normalize=_softmax),
    "embedded": Variant(embed=True, pairwise=_dot, normalize=_softmax),
    "dot": Variant(embed=True, pairwise=_dot, normalize=_mean),
    "concat": Variant(embed=True, pairwise=_concat, normalize=_mean, concat=True),
}


class NonLocal2d(nn.Module):
    """Non-local block; output shape equals input shape.

    Example:
        >>> NonLocal2d(32, "embedded")(torch.randn(2, 32, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(self, channels: int, mode: str = "embedded") -> None:
        super().__init__()
        self.channels = channels
        self.mode = mode
        self.variant = VARIANTS[mode]
        inter = max(channels // 2, 1)
        self.inter_channels = inter
        self.g = nn.Conv2d(channels, inter, kernel_size=1)
        if self.variant.embed:
            self.theta = nn.Conv2d(channels, inter, kernel_size=1)
            self.phi = nn.Conv2d(channels, inter, kernel_size=1)
        if self.variant.concat:
            self.concat_project = nn.Conv2d(2 * inter, 1, kernel_size=1, bias=False)
        self.conv_out = nn.Conv2d(inter, channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default conv init; BN scale zero so the block starts as the identity (paper 4.1)."""
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        nn.init.zeros_(self.norm.weight)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The normalized pairwise map f(x_i, x_j)/C(x), (B, N, N) with N = H*W (query rows)."""
        theta = (self.theta(x) if self.variant.embed else x).flatten(2)  # (B, Ci, N)
        phi = (self.phi(x) if self.variant.embed else x).flatten(2)  # (B, Ci, N)
        f = self.variant.pairwise(self, theta.transpose(1, 2), phi)  # (B, N, N)
        return self.variant.normalize(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        attn = self.attention(x)  # (B, N, N)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, Ci)
        y = torch.matmul(attn.to(g.dtype), g)  # (B, N, Ci)
        y = y.transpose(1, 2).reshape(b, self.inter_channels, h, w)  # (B, Ci, H, W)
        return x + self.norm(self.conv_out(y))  # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"{self.channels}, mode={self.mode!r}"
