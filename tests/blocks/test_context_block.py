"""ContextBlock semantics: every axis acts, counts match closed forms, mmcv checkpoints load."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from gcsearch.blocks import ContextBlock, build_block
from gcsearch.spec import FUSIONS, NORMS, POOLINGS, RATIOS, TRANSFORMS, BlockSpec, block_specs

AXIS_VALUES = {
    "pooling": POOLINGS, "transform": TRANSFORMS, "ratio": RATIOS, "norm": NORMS,
    "fusion": FUSIONS,
}  # fmt: skip


def _x(c: int, hw: tuple[int, int] = (6, 5), seed: int = 1) -> torch.Tensor:
    return torch.randn(2, c, *hw, generator=torch.Generator().manual_seed(seed))


def _last_convs(m: nn.Module) -> list[nn.Conv2d]:
    return [branch[-1] for branch in m.children() if isinstance(branch, nn.Sequential)]


@pytest.mark.parametrize("spec", [s for s in block_specs() if (s.ratio or 1) <= 16], ids=str)
def test_block_acts_once_last_conv_is_nonzero(spec: BlockSpec) -> None:
    """At C=16 (proxy width) every searchable block must move its output once trained a bit."""
    torch.manual_seed(0)
    m = ContextBlock(16, spec)
    x = _x(16)
    before = m(x)
    with torch.no_grad():
        for conv in _last_convs(m):
            conv.weight.normal_(0, 0.5)  # bias stays zero: the change must come from the context
    assert not torch.allclose(m(x), before, atol=1e-4)


def test_without_min_hidden_gc_at_16_channels_is_inert() -> None:
    """The failure min_hidden exists for: h = 16 // 16 = 1 and LayerNorm over one channel is 0."""
    torch.manual_seed(0)
    m = ContextBlock(16, BlockSpec("att", "bottleneck", 16, "ln", "add"), min_hidden=1)
    x = _x(16)
    with torch.no_grad():
        for conv in _last_convs(m):
            conv.weight.normal_(0, 0.5)
    torch.testing.assert_close(m(x), x)


def _variant(base: BlockSpec, field: str, value: object) -> BlockSpec | None:
    data = base.to_dict() | {field: value}
    if data["transform"] == "1x1":
        data |= {"ratio": None, "norm": "none"}
    elif data["ratio"] is None:
        data["ratio"] = 16
    try:
        spec = BlockSpec.from_dict(data)
    except ValueError:
        return None
    return None if spec == base else spec


def _fingerprint(spec: BlockSpec, channels: int = 256, **kw: object) -> tuple:
    torch.manual_seed(0)
    m = ContextBlock(channels, spec, init="default", **kw)  # type: ignore[arg-type]
    state = m.state_dict()
    out = m(_x(channels))
    shapes = tuple((k, tuple(v.shape)) for k, v in state.items())
    return shapes, tuple(out.flatten()[:64].tolist())


BASES = [BlockSpec.parse(b) for b in ("att-r16ln-add", "avg-r16-mul", "avgmax-1x1-both")]


@pytest.mark.parametrize("base", BASES, ids=str)
@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(BlockSpec)])
def test_every_spec_axis_does_something(base: BlockSpec, field: str) -> None:
    """Flip each BlockSpec field: params/state-dict keys or the seeded output must change.

    At C=256 so that min_hidden=8 does not bind (at C=32 every ratio gives h=8).
    """
    variants = [v for val in AXIS_VALUES[field] if (v := _variant(base, field, val)) is not None]
    if field in ("ratio", "norm") and base.transform == "1x1":
        assert not variants  # those axes do not exist for 1x1; the transform flip covers them
        return
    assert variants, f"no valid flip of {field} from {base.id}"
    reference = _fingerprint(base)
    for spec in variants:
        assert _fingerprint(spec) != reference, f"{base.id} -> {spec.id} changed nothing"


def test_min_hidden_and_zero_init_do_something() -> None:
    spec = BlockSpec("att", "bottleneck", 16, "ln", "add")
    assert _fingerprint(spec, 16, min_hidden=8) != _fingerprint(spec, 16, min_hidden=4)
    assert _fingerprint(spec, 512, min_hidden=8) == _fingerprint(spec, 512, min_hidden=4)
    x = _x(32)
    torch.manual_seed(0)
    zero = ContextBlock(32, spec)(x)
    torch.manual_seed(0)
    default = ContextBlock(32, spec, init="default")(x)
    assert torch.equal(zero, x) and not torch.allclose(default, x)


def _closed_form_params(spec: BlockSpec, c: int, min_hidden: int = 8) -> int:
    pool = c + 1 if spec.pooling == "att" else 0  # conv_mask C->1 with bias
    if spec.transform == "1x1":
        branch = c * c + c
    else:
        h = max(c // spec.ratio, min_hidden)  # type: ignore[operator]
        branch = 2 * c * h + h + c + (2 * h if spec.norm == "ln" else 0)
    return pool + branch * (2 if spec.fusion == "both" else 1)


def test_gc_param_count_matches_the_paper_formula() -> None:
    c, r = 512, 16  # 2C^2/r + 3C/r + 2C + 1
    n = sum(p.numel() for p in build_block("gc", c).parameters())
    assert n == 2 * c * c // r + 3 * c // r + 2 * c + 1 == 33889


@pytest.mark.parametrize("channels", [16, 64, 512])
def test_param_counts_match_closed_form(channels: int) -> None:
    for spec in block_specs():
        if (spec.ratio or 1) > channels:
            continue
        n = sum(p.numel() for p in ContextBlock(channels, spec).parameters())
        assert n == _closed_form_params(spec, channels), spec.id


def test_avgmax_shares_one_transform_over_both_pooled_vectors() -> None:
    torch.manual_seed(0)
    m = build_block("cbam-channel", 32)
    branches = [c for c in m.children() if isinstance(c, nn.Sequential)]
    assert len(branches) == 1
    x = _x(32)
    t = branches[0]
    expected = x * torch.sigmoid(t(x.mean((2, 3), keepdim=True)) + t(x.amax((2, 3), keepdim=True)))
    torch.testing.assert_close(m(x), expected)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize(
    ("block", "quadratic"), [("att-r4ln-add", False), ("nl-dot-unpooled", True)]
)
def test_att_pooling_never_builds_an_hw_by_hw_matrix(block: str, quadratic: bool) -> None:
    m = build_block(block, 8)
    x = torch.randn(1, 8, 16, 16)  # HW = 256: HW^2 = 65,536 >> B*C*H*W = 2,048
    with _LargestTensor() as probe:
        m(x)
    assert (probe.largest >= 256 * 256) is quadratic  # the NL row shows that the probe works


def _mmcv_layout(c: int, h: int, att: bool, branches: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """A GCNet checkpoint's ContextBlock keys and shapes, written from mmcv's published layout."""
    g = torch.Generator().manual_seed(3)
    state = {}
    if att:
        state |= {"conv_mask.weight": torch.randn(1, c, 1, 1, generator=g)}
        state |= {"conv_mask.bias": torch.randn(1, generator=g)}
    for b in branches:
        shapes = {
            "0.weight": (h, c, 1, 1), "0.bias": (h,), "1.weight": (h, 1, 1), "1.bias": (h, 1, 1),
            "3.weight": (c, h, 1, 1), "3.bias": (c,),
        }  # fmt: skip
        state |= {f"{b}.{k}": torch.randn(*s, generator=g) * 0.3 for k, s in shapes.items()}
    return state


def _mmcv_forward(state: dict[str, torch.Tensor], x: torch.Tensor, branches: tuple[str, ...]):
    """mmcv's ContextBlock.forward, re-derived in plain functional torch."""
    b, c, hh, ww = x.shape
    if "conv_mask.weight" in state:
        mask = nn.functional.conv2d(x, state["conv_mask.weight"], state["conv_mask.bias"])
        mask = mask.view(b, 1, hh * ww).softmax(2).unsqueeze(-1)  # [N, 1, HW, 1]
        ctx = torch.matmul(x.view(b, c, hh * ww).unsqueeze(1), mask).view(b, c, 1, 1)
    else:
        ctx = x.mean((2, 3), keepdim=True)
    terms = {}
    for br in branches:
        s = {k[len(br) + 1 :]: v for k, v in state.items() if k.startswith(br + ".")}
        t = nn.functional.conv2d(ctx, s["0.weight"], s["0.bias"])
        t = nn.functional.layer_norm(t, t.shape[1:], s["1.weight"], s["1.bias"])
        terms[br] = nn.functional.conv2d(torch.relu(t), s["3.weight"], s["3.bias"])
    out = x
    if "channel_mul_conv" in terms:
        out = out * torch.sigmoid(terms["channel_mul_conv"])
    if "channel_add_conv" in terms:
        out = out + terms["channel_add_conv"]
    return out


MMCV_BRANCHES = {
    "add": ("channel_add_conv",), "mul": ("channel_mul_conv",),
    "both": ("channel_add_conv", "channel_mul_conv"),
}  # fmt: skip


@pytest.mark.parametrize("pooling", ["att", "avg"])
@pytest.mark.parametrize("fusion", ["add", "mul", "both"])
@pytest.mark.parametrize(("c", "r", "min_hidden"), [(256, 16, 8), (64, 16, 1)])
def test_mmcv_state_dict_loads_strictly_and_computes_the_same(
    pooling: str, fusion: str, c: int, r: int, min_hidden: int
) -> None:
    state = _mmcv_layout(c, c // r, pooling == "att", MMCV_BRANCHES[fusion])
    block = build_block(f"{pooling}-r{r}ln-{fusion}", c, min_hidden=min_hidden)
    block.load_state_dict(state, strict=True)
    x = _x(c)
    torch.testing.assert_close(block(x), _mmcv_forward(state, x, MMCV_BRANCHES[fusion]))
