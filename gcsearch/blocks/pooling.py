"""Context modeling (pooling) of the global-context framework.

Paper: GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond (Cao et al., 2019),
https://arxiv.org/abs/1904.11492 -- and, for ``avgmax``, CBAM: Convolutional Block Attention
Module (Woo et al., 2018), https://arxiv.org/abs/1807.06521.

Each pooling maps (B, C, H, W) to ``views`` stacked context vectors of shape (views*B, C, 1, 1);
the transform runs once on the stack (shared weights) and ``ContextBlock`` sums the views.
``attr_name`` is the attribute the pooling gets in ``ContextBlock``; attention pooling uses
mmcv's ``conv_mask`` so that mmcv GCNet checkpoints load unchanged.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class GlobalAvgPool(nn.Module):
    """SE's squeeze: the global mean of every channel."""

    views: ClassVar[int] = 1
    attr_name: ClassVar[str] = "avg_pool"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)


class AvgMaxPool(nn.Module):
    """CBAM's channel context: the average- and the max-pooled vectors, stacked on the batch."""

    views: ClassVar[int] = 2
    attr_name: ClassVar[str] = "avgmax_pool"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        top = x.amax((2, 3), keepdim=True)  # (B, C, 1, 1)
        return torch.cat([avg, top], dim=0)  # (2B, C, 1, 1)


class AttentionPool(nn.Conv2d):
    """Query-independent attention pooling of SNL/GC: a 1x1 conv C->1, softmax over H*W, and
    the features' weighted sum. The module *is* that conv, so its keys are ``conv_mask.*``.

    Costs O(C*H*W): no H*W x H*W affinity matrix is ever formed.
    """

    views: ClassVar[int] = 1
    attr_name: ClassVar[str] = "conv_mask"

    def __init__(self, channels: int) -> None:
        super().__init__(channels, 1, kernel_size=1)

    def reset_parameters(self) -> None:
        """Kaiming-normal (fan_in) weight and zero bias, as mmcv's ContextBlock."""
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.bias)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map over positions, (B, H*W); each row sums to one."""
        return super().forward(x).flatten(1).softmax(dim=-1)  # (B, 1, H, W) -> (B, H*W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        w = self.weights(x).unsqueeze(-1)  # (B, H*W, 1)
        feats = x.flatten(2)  # (B, C, H*W); a view also for channels_last
        return torch.matmul(feats, w).view(b, c, 1, 1)  # (B, C, 1) -> (B, C, 1, 1)


#: pooling name in ``BlockSpec.pooling`` -> module class (constructor takes ``channels``).
POOLINGS: dict[str, type[GlobalAvgPool | AvgMaxPool | AttentionPool]] = {
    "avg": GlobalAvgPool,
    "att": AttentionPool,
    "avgmax": AvgMaxPool,
}
