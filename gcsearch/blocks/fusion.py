"""Fusion stage of the global-context framework: ``add``, ``mul`` or ``both``.

Paper: GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond (Cao et al., 2019),
https://arxiv.org/abs/1904.11492.

``mul`` rescales channels, ``x * sigmoid(t(ctx))`` (SE); ``add`` broadcasts ``x + t(ctx)`` (NL,
SNL, GC); ``both`` has one transform per branch and applies mul first, then add, as the official
GCNet code. Branch names are mmcv's transform attributes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def mul_fusion(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) * sigmoid((B, C, 1, 1))."""
    return x * torch.sigmoid(t)


def add_fusion(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) + (B, C, 1, 1)."""
    return x + t


#: branch attribute (mmcv name) -> how its transformed context meets the features.
BRANCHES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "channel_mul_conv": mul_fusion,
    "channel_add_conv": add_fusion,
}

#: fusion name in ``BlockSpec.fusion`` -> branches, in the order they are applied.
FUSIONS: dict[str, tuple[str, ...]] = {
    "add": ("channel_add_conv",),
    "mul": ("channel_mul_conv",),
    "both": ("channel_mul_conv", "channel_add_conv"),
}
