"""Contract tests every block honours: every preset and the whole searchable block space."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gcsearch.blocks import ContextBlock, build_block
from gcsearch.blocks.presets import preset_class
from gcsearch.spec import PRESETS, BlockSpec, Candidate, Placement, SpecError, block_specs

C = 32
SPECS = [s.id for s in block_specs()]  # all 81 block ids, every one valid at C=32
BLOCKS = sorted(PRESETS) + SPECS
#: presets that start as the identity (zeroed last conv, zero BN scale or zero gamma).
IDENTITY_PRESETS = {
    "snl", "gc", "danet-pam", "danet-cam", "danet", "sagan",
    *(p for p in PRESETS if p.startswith("nl-")),
}  # fmt: skip
#: CBAM's spatial gate alone starts at exactly 0.5 (zero BN scale and bias, the authors' init).
HALF_PRESETS = {"cbam-spatial"}


def _build(block: str, channels: int = C, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_block(block, channels)


def _input(shape: tuple[int, ...] = (2, C, 6, 5), seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_record_names_a_module_class(preset: str) -> None:
    record = PRESETS[preset]
    assert issubclass(preset_class(record), nn.Module)
    assert isinstance(_build(preset), preset_class(record))
    assert record.paper and record.url.startswith("https://") and record.follows and record.init


@pytest.mark.parametrize("block", BLOCKS)
def test_shape_and_backward(block: str) -> None:
    m = _build(block)
    x = _input().requires_grad_(True)
    y = m(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    (y * _input(seed=2)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("block", BLOCKS)
def test_eval_channels_last_and_autocast(block: str) -> None:
    m = _build(block).eval().to(memory_format=torch.channels_last)
    x = _input().to(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = _build(block).eval()(x.contiguous())
        y = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    assert low.shape == x.shape and torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), y, rtol=0.1, atol=0.1)


@pytest.mark.parametrize("block", BLOCKS)
def test_spec_round_trip_rebuilds_the_same_module(block: str) -> None:
    cand = Candidate.parse(f"{block}@after_add:c4:last")
    again = Candidate.from_json(cand.to_json())
    assert again == cand and again.block_id == block
    torch.manual_seed(0)
    a = build_block(cand, C)
    torch.manual_seed(0)
    b = build_block(again.block_id, C)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k])
    if cand.block is not None:
        assert isinstance(a, ContextBlock) and a.spec == cand.block == BlockSpec.parse(block)


@pytest.mark.parametrize("block", [b for b in SPECS if b.endswith("-add")])
def test_add_block_is_identity_at_init(block: str) -> None:
    x = _input()
    torch.testing.assert_close(_build(block)(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("block", [b for b in SPECS if not b.endswith("-add")])
def test_mul_and_both_start_at_half_scale(block: str) -> None:
    """Zeroed last conv: sigmoid(0) = 1/2 (the official GCNet init for channel_mul_conv)."""
    x = _input()
    torch.testing.assert_close(_build(block)(x), 0.5 * x, rtol=0, atol=1e-7)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_keep_their_own_init(preset: str) -> None:
    m = _build(preset).train()
    x = _input()
    with torch.no_grad():
        y = m(x)
    if preset in IDENTITY_PRESETS:
        torch.testing.assert_close(y, x, rtol=0, atol=1e-6)
    elif preset in HALF_PRESETS:
        torch.testing.assert_close(y, 0.5 * x, rtol=0, atol=0)
    else:  # SE / CBAM / ParseNet: the block acts from the first step
        assert not torch.allclose(y, x, atol=1e-3) and not torch.allclose(y, 0.5 * x, atol=1e-3)


def test_build_block_accepts_every_form() -> None:
    spec = BlockSpec("att", "bottleneck", 16, "ln", "add")
    forms: list[Candidate | BlockSpec | str] = [
        spec, "att-r16ln-add", "att-r16ln-add@after_1x1:c3c4c5",
        Candidate(block=spec, placement=Placement("after_add", ("c4",))),
    ]  # fmt: skip
    keys = {tuple(build_block(f, 64).state_dict()) for f in forms}
    assert len(keys) == 1
    assert isinstance(build_block(Candidate(preset="gc"), 64), ContextBlock)


@pytest.mark.parametrize(
    ("block", "channels", "needle"),
    [
        (Candidate.none(), 16, "baseline"),
        ("none", 16, "baseline"),
        ("att-r3-add", 16, "ratio"),
        ("att-q16-add", 16, "transform"),
        ("nonsense", 16, "presets"),
        ("att-r32ln-add", 16, "ratio"),
        ("gc", 0, "channels"),
    ],
)
def test_build_block_rejects_bad_input(block: Candidate | str, channels: int, needle: str) -> None:
    with pytest.raises(SpecError, match=needle):
        build_block(block, channels)
