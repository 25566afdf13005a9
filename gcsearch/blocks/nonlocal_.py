"""Non-local block with its four pairwise functions and three layouts.

Paper: Non-local Neural Networks (Wang et al., 2018), https://arxiv.org/abs/1711.07971; official
code: facebookresearch/video-nonlocal-net ``lib/models/nonlocal_helper.py``.

z = x + W_z y (then BN when ``norm``), y_i = sum_j f(x_i, x_j) g(x_j) / C(x); theta, phi and g
are 1x1 convs to C/2 channels. Variants (the paper's Sec. 3.2): ``gaussian`` softmax(x_i . x_j)
on the raw features; ``embedded`` softmax(theta_i . phi_j); ``dot`` theta_i . phi_j / N;
``concat`` ReLU(w . [theta_i, phi_j]) / N, N the number of key positions. Layouts (``pool``):
``input`` max-pools the input of phi and g by 2 (the authors' USE_MAXPOOL, 1/4 of the keys),
``after`` pools after those convs (mmcv's ``sub_sample``), ``none`` pools nothing. ``scale``
divides the affinity by sqrt(C') before the softmax (USE_SCALE / mmcv ``use_scale``). ``init``:
``normal`` is N(0, 0.01) convs with zero biases (CONV_INIT_STD); ``default`` PyTorch's. The block
starts as the identity: the BN scale starts at 0 (BN_INIT_GAMMA) or, without a norm, W_z is zero
(mmcv's ``zeros_init``). Maps smaller than 2x2 are not pooled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


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


#: where phi and g are max-pooled (see the module docstring).
POOLS = ("input", "after", "none")

#: variant name -> its definition (the preset names are ``nl-<variant>``).
VARIANTS: dict[str, Variant] = {
    "gaussian": Variant(embed=False, pairwise=_dot, normalize=_softmax),
    "embedded": Variant(embed=True, pairwise=_dot, normalize=_softmax),
    "dot": Variant(embed=True, pairwise=_dot, normalize=_mean),
    "concat": Variant(embed=True, pairwise=_concat, normalize=_mean, concat=True),
}


class NonLocal2d(nn.Module):
    """Non-local block; output shape equals input shape (see the module docstring).

    Example:
        >>> NonLocal2d(32, "embedded")(torch.randn(2, 32, 8, 8)).shape
        torch.Size([2, 32, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        mode: str = "embedded",
        *,
        pool: str = "input",
        scale: bool = False,
        norm: bool = True,
        out_bias: bool = True,
        init: str = "normal",
    ) -> None:
        super().__init__()
        if pool not in POOLS or init not in ("normal", "default"):
            raise ValueError(
                f"pool {pool!r} / init {init!r}: choose from {POOLS} / normal, default"
            )
        self.channels = channels
        self.mode = mode
        self.variant = VARIANTS[mode]
        self.pool, self.scale, self.init = pool, scale, init
        inter = max(channels // 2, 1)
        self.inter_channels = inter
        self.g = nn.Conv2d(channels, inter, kernel_size=1)
        if self.variant.embed:
            self.theta = nn.Conv2d(channels, inter, kernel_size=1)
            self.phi = nn.Conv2d(channels, inter, kernel_size=1)
        if self.variant.concat:
            self.concat_project = nn.Conv2d(2 * inter, 1, kernel_size=1, bias=False)
        self.conv_out = nn.Conv2d(inter, channels, kernel_size=1, bias=out_bias)
        self.norm = nn.BatchNorm2d(channels) if norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Convs per ``init``; then the BN scale (or, without BN, W_z) at zero: identity."""
        for module in self.children():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if self.init == "normal" and isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if self.norm is not None:
            nn.init.zeros_(self.norm.weight)
        else:
            nn.init.zeros_(self.conv_out.weight)
            if self.conv_out.bias is not None:
                nn.init.zeros_(self.conv_out.bias)

    def _pooled(self, x: torch.Tensor, stage: str) -> torch.Tensor:
        """``x`` max-pooled by 2 when ``pool == stage`` and the map is at least 2x2."""
        return F.max_pool2d(x, 2) if self.pool == stage and min(x.shape[-2:]) >= 2 else x

    def _attention(self, x: torch.Tensor, keys_in: torch.Tensor) -> torch.Tensor:
        theta = (self.theta(x) if self.variant.embed else x).flatten(2)  # (B, Ci, N)
        phi = self.phi(keys_in) if self.variant.embed else keys_in
        phi = self._pooled(phi, "after").flatten(2)  # (B, Ci, M)
        f = self.variant.pairwise(self, theta.transpose(1, 2), phi)  # (B, N, M)
        if self.scale:  # 1/sqrt(C') as a constant (a traced shape would add an op)
            f = f * (self.inter_channels if self.variant.embed else self.channels) ** -0.5
        return self.variant.normalize(f)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The normalized pairwise map f(x_i, x_j)/C(x), (B, N, M): N queries, M keys."""
        return self._attention(x, self._pooled(x, "input"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        keys_in = self._pooled(x, "input")  # (B, C, H', W'): the authors pool once for phi, g
        attn = self._attention(x, keys_in)  # (B, N, M)
        g = self._pooled(self.g(keys_in), "after").flatten(2).transpose(1, 2)  # (B, M, Ci)
        y = torch.matmul(attn.to(g.dtype), g)  # (B, N, Ci)
        y = y.transpose(1, 2).reshape(b, self.inter_channels, h, w)  # (B, Ci, H, W)
        z = self.conv_out(y)  # (B, C, H, W)
        return x + (self.norm(z) if self.norm is not None else z)

    def extra_repr(self) -> str:
        return f"{self.channels}, mode={self.mode!r}, pool={self.pool!r}, scale={self.scale}"
