"""Global-context blocks: the searchable ``ContextBlock`` and the published presets.

``build_block`` is the one entry point: a ``Candidate``, a ``BlockSpec``, a preset name or a
block id in, an ``nn.Module`` whose output shape equals its input shape out.
"""

from __future__ import annotations

from torch import nn

from gcsearch.blocks.context import ContextBlock
from gcsearch.blocks.nonlocal_ import NonLocal2d
from gcsearch.blocks.presets import build_preset
from gcsearch.spec import PRESETS, BlockSpec, Candidate, SpecError

__all__ = ["ContextBlock", "NonLocal2d", "build_block", "build_preset"]


def build_block(
    block: Candidate | BlockSpec | str, channels: int, *, min_hidden: int = 8
) -> nn.Module:
    """Build the block module for ``channels`` input channels.

    Args:
        block: a candidate (its placement is ignored), a spec, a preset name such as ``"gc"``,
            or a block/candidate id such as ``"att-r16ln-add"``.
        channels: input (and output) channels C.
        min_hidden: smallest bottleneck width, ``max(C // r, min_hidden)``.

    Example:
        >>> build_block("att-r16ln-add", 64)(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 64, 8, 8])
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise SpecError(f"channels: {channels!r} is not a positive integer")
    if isinstance(min_hidden, bool) or not isinstance(min_hidden, int) or min_hidden < 1:
        raise SpecError(f"min_hidden: {min_hidden!r} is not a positive integer")
    if isinstance(block, str):
        block = Candidate.parse(block)
    if isinstance(block, Candidate):
        if block.is_baseline:
            raise SpecError(
                "block: the baseline 'none' has no block to build "
                f"(give a block id or a preset: {', '.join(PRESETS)})"
            )
        if block.preset is not None:
            spec = PRESETS[block.preset].spec
            if spec is not None:
                spec.hidden(channels, min_hidden)  # a ratio above C: one-line SpecError
            return build_preset(block.preset, channels, min_hidden=min_hidden)
        block = block.block
    if not isinstance(block, BlockSpec):
        raise SpecError(f"block: {type(block).__name__} is not a Candidate, BlockSpec or id")
    block.hidden(channels, min_hidden)  # a ratio above C: one-line SpecError
    return ContextBlock(channels, block, min_hidden=min_hidden)
