"""Parameters and multiply-accumulates (MACs) of a candidate in its backbone, with fvcore.

fvcore (https://github.com/facebookresearch/fvcore) traces the model at batch 1 and counts one
fused multiply-add as one flop, so its "flops" are MACs, the unit the ResNet, NL and GCNet
papers call FLOPs. It skips many ops that global-context blocks rely on; the handles below
count them with one rule:

* elementwise ops (add, sub, mul, div, sigmoid, softmax, exp, ReLU, ...): one per *output*
  element, so a broadcast ``x + t`` on (C, H, W) costs C*H*W;
* reductions (sum, mean, amax/max, min, adaptive/max pooling): one per *input* element;
* fvcore's own handles stay: conv and matmul/bmm/einsum (MACs), ``linear``, ``layer_norm``
  (5 per element with affine), eval-mode ``batch_norm`` (2 per element), adaptive average
  pooling (1 per input element).

Published ResNet figures leave out the backbone's ReLUs, its max-pool stem and its in-place
residual add; so do we, so ResNet-50 stays at fvcore's 4.11 G MACs (torchvision layout).
Inside a ``context_block`` those ops are counted like any other (``BACKBONE_FREE_OPS``):
a block's cost never loses an op. Data-movement ops (view, permute, cat, ...) cost nothing
(``FREE_OPS``); any other op fvcore has no handle for shows up in ``unsupported_ops()``, and a
test keeps that list empty for every preset and block family.

Example:
    >>> cost = count_cost(Candidate.parse("gc@after_1x1:c3c4c5"), "resnet50", (3, 224, 224),
    ...                   num_classes=1000)
    >>> cost.block_params
    2521741
"""

from __future__ import annotations

import argparse
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gcsearch.backbones import (
    SLOT,
    build_model,
    get_backbone,
    preset_placement,
    validate_placement,
)
from gcsearch.errors import UserError
from gcsearch.spec import PRESETS, Candidate, Placement

if TYPE_CHECKING:
    from fvcore.nn import FlopCountAnalysis

Handle = Callable[[list[Any], list[Any]], int]


def _numel(value: Any) -> int:
    shape = value.type().sizes() if value.isCompleteTensor() else None
    return math.prod(shape) if shape is not None else 0


def _per_output(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(outputs[0])


def _per_input(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(inputs[0])


def _matmul(inputs: list[Any], outputs: list[Any]) -> int:
    """``matmul`` with any ranks (fvcore's asserts 2-D operands): output elements x inner dim."""
    return _numel(outputs[0]) * inputs[0].type().sizes()[-1]


def _sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    """``scaled_dot_product_attention``: Q K^T and A V as MACs, plus the softmax over L x S."""
    q, k, v = (value.type().sizes() for value in inputs[:3])
    rows = math.prod(q[:-1])  # batch x heads x L
    return rows * k[-2] * (q[-1] + v[-1]) + rows * k[-2]


def _in_block_only(handle: Handle) -> Handle:
    """Count ``handle`` inside a context block; zero in the backbone (published convention)."""

    def counted(inputs: list[Any], outputs: list[Any]) -> int:
        return handle(inputs, outputs) if SLOT in outputs[0].node().scopeName() else 0

    return counted


_ELEMENTWISE = (
    "add", "sub", "rsub", "mul", "div", "sigmoid", "hardsigmoid", "softmax", "_softmax",
    "log_softmax", "exp", "tanh", "pow", "sqrt", "rsqrt", "clamp", "neg", "abs", "gelu",
    "silu", "hardswish", "maximum", "minimum", "where",
)  # fmt: skip
_REDUCTIONS = (
    "sum", "mean", "amax", "amin", "max", "min", "std", "var", "logsumexp",
    "adaptive_max_pool2d", "avg_pool2d",
)  # fmt: skip

#: ops the backbone uses that published ResNet figures leave out; counted inside blocks only.
BACKBONE_FREE_OPS: dict[str, Handle] = {
    "aten::relu": _per_output,
    "aten::relu_": _per_output,
    "aten::add_": _per_output,
    "aten::max_pool2d": _per_input,
}

#: every handle added to fvcore's defaults (in-place ``op_`` variants share the handle).
EXTRA_HANDLES: dict[str, Handle] = {
    **{f"aten::{op}{tail}": _per_output for op in _ELEMENTWISE for tail in ("", "_")},
    **{f"aten::{op}": _per_input for op in _REDUCTIONS},
    "aten::matmul": _matmul,
    "aten::scaled_dot_product_attention": _sdpa,
    **{op: _in_block_only(handle) for op, handle in BACKBONE_FREE_OPS.items()},
}

#: data movement, shape arithmetic and constants: no arithmetic on tensor elements.
FREE_OPS = frozenset(
    f"aten::{op}"
    for op in (
        "view", "reshape", "flatten", "permute", "transpose", "t", "contiguous", "expand",
        "expand_as", "squeeze", "unsqueeze", "unsqueeze_", "cat", "stack", "split", "chunk",
        "unbind", "select", "slice", "narrow", "size", "numel", "to", "type_as", "detach",
        "clone", "copy_", "dropout", "Int", "ScalarImplicit", "zeros", "zeros_like", "ones",
        "ones_like", "empty", "full", "full_like", "arange", "unflatten", "repeat",
    )
)  # fmt: skip


@dataclass(frozen=True)
class Cost:
    """Params and MACs of a model and of its plain backbone; the difference is the block's."""

    params: int
    macs: int
    base_params: int
    base_macs: int

    @property
    def block_params(self) -> int:
        return self.params - self.base_params

    @property
    def block_macs(self) -> int:
        return self.macs - self.base_macs

    def to_dict(self) -> dict[str, int]:
        """The study's ``cost`` record."""
        return {
            "params": self.params,
            "macs": self.macs,
            "block_params": self.block_params,
            "block_macs": self.block_macs,
        }


def analyze(model: nn.Module, input_shape: Sequence[int]) -> FlopCountAnalysis:
    """An fvcore analysis of ``model`` (put in eval mode) at batch 1, with gcsearch's handles.

    Warnings are silenced; read ``unsupported_ops()`` to see what was not counted.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore's import uses torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    model.eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, *input_shape))
    analysis.set_op_handle(**EXTRA_HANDLES, **dict.fromkeys(FREE_OPS))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


class _Probe(nn.Module):
    """Holds a lone block in a ``context_block`` slot so it is counted like one in a model."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.context_block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.context_block(x)


def block_analysis(block: nn.Module, input_shape: Sequence[int]) -> FlopCountAnalysis:
    """``analyze`` for a single block on a (C, H, W) input, counted as inside a model."""
    return analyze(_Probe(block), input_shape)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.lru_cache(maxsize=1024)
def _model_cost(
    candidate: Candidate,
    backbone: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    min_hidden: int,
    layout: str,
) -> tuple[int, int]:
    model = build_model(
        candidate,
        backbone,
        num_classes=num_classes,
        in_chans=input_shape[0],
        min_hidden=min_hidden,
        layout=layout,
    )
    analysis = analyze(model, input_shape)
    with torch.no_grad():
        macs = int(analysis.total())
    missed = analysis.unsupported_ops()
    if missed:  # a new op with no handle: say so once instead of undercounting quietly
        warnings.warn(
            f"gcsearch.cost: no MAC handle for {', '.join(sorted(missed))} in "
            f"{candidate.id}; its MACs are a lower bound",
            RuntimeWarning,
            stacklevel=3,
        )
    return _params(model), macs


def count_cost(
    candidate: Candidate | str,
    backbone: str = "resnet20",
    input_shape: Sequence[int] = (3, 32, 32),
    *,
    num_classes: int = 10,
    min_hidden: int = 8,
    layout: str = "pytorch",
) -> Cost:
    """Params and MACs of ``candidate`` in ``backbone`` at ``input_shape`` (C, H, W), batch 1.

    The trace runs on CPU whatever device the trial trains on. Results (and the baseline)
    are cached per process, so repeated calls are free.
    """
    if isinstance(candidate, str):
        candidate = Candidate.parse(candidate)
    shape = tuple(int(s) for s in input_shape)
    base = _model_cost(Candidate.none(), backbone, shape, num_classes, 8, layout)
    model = (
        base
        if candidate.is_baseline
        else _model_cost(candidate, backbone, shape, num_classes, min_hidden, layout)
    )
    return Cost(params=model[0], macs=model[1], base_params=base[0], base_macs=base[1])


def _flops_candidates(
    texts: Sequence[str], placement: Placement | None, backbone: str
) -> list[Candidate]:
    """Given ids, or every preset. A bare block or preset takes ``placement``; without one a
    preset takes its paper's placement in ``backbone`` and a block the default
    (after_1x1:c3c4c5)."""
    out = []
    for text in texts or PRESETS:
        cand = Candidate.parse(text)
        if "@" not in text and not cand.is_baseline:
            where = placement
            if where is None:
                where = preset_placement(cand.preset, backbone) if cand.preset else Placement()
            cand = Candidate(block=cand.block, preset=cand.preset, placement=where)
        out.append(cand)
    return out


def _signed(value: float, fmt: str) -> str:
    return ("+" if value >= 0 else "-") + format(abs(value), fmt)


def run_flops(args: argparse.Namespace) -> int:
    """``gcsearch flops``: the paper's cost columns for the baseline and each preset/candidate."""
    from rich.console import Console
    from rich.table import Table

    spec = get_backbone(args.backbone)
    side = spec.input_size if args.input is None else args.input
    num_classes = spec.num_classes if args.num_classes is None else args.num_classes
    if side < 1 or num_classes < 1:
        raise UserError(f"--input {side} / --num-classes {num_classes}: both must be >= 1")
    placement = Placement.parse(args.placement) if args.placement else None
    candidates = _flops_candidates(args.candidates, placement, args.backbone)
    for cand in candidates:
        validate_placement(cand, args.backbone)
    shape = (3, side, side)
    kw: dict[str, Any] = {"num_classes": num_classes, "layout": args.layout}

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    with console.status(f"tracing {args.backbone} with fvcore") as status:
        base = count_cost(Candidate.none(), args.backbone, shape, **kw)
        costs = []
        for cand in candidates:
            status.update(f"tracing {cand.id}")
            costs.append(count_cost(cand, args.backbone, shape, **kw))
    unit, scale = ("G", 1e9) if base.base_macs >= 1e9 else ("M", 1e6)
    table = Table(
        title=f"{args.backbone} ({args.layout} layout), input 3x{side}x{side}, "
        f"{num_classes} classes"
    )
    for name in ("candidate", "params", "+params", f"MACs ({unit})", "+MACs (M)", "+MACs %"):
        table.add_column(name, justify="left" if name == "candidate" else "right", no_wrap=True)
    table.add_row("baseline", f"{base.params:,}", "", f"{base.macs / scale:.3f}", "", "")
    for cand, cost in zip(candidates, costs, strict=True):
        table.add_row(
            cand.id,
            f"{cost.params:,}",
            _signed(cost.block_params, ","),
            f"{cost.macs / scale:.3f}",
            _signed(cost.block_macs / 1e6, ".3f"),
            _signed(100 * cost.block_macs / cost.base_macs, ".2f"),
        )
    console.print(table)
    notes = [
        "MACs by fvcore: one multiply-add counts one (the papers' 'FLOPs'). Eval-mode BatchNorm "
        "counts 2 per element; the backbone's ReLUs, max-pool and residual add count 0, as in "
        "published ResNet figures (ResNet-50: 4.11 G here; the papers' 3.86 G is conv + fc in "
        "the caffe layout).",
    ]
    if placement is None:
        notes.append(
            "Presets sit where their papers put them (gcsearch.spec.PRESETS: NL once, before the "
            "last block of c4; SE and CBAM in every block of c2-c5, c3-c5 on CIFAR nets); "
            "--placement puts every row at one placement."
        )
    for note in notes:
        console.print(note, style="dim", highlight=False)
    return 0
