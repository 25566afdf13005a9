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
import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gcsearch.backbones import (
    SLOT,
    build_model,
    context_blocks,
    get_backbone,
    preset_placement,
    validate_placement,
)
from gcsearch.errors import UserError
from gcsearch.spec import PRESETS, BlockSpec, Candidate, Placement

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
    return _analysis(model, (torch.zeros(1, *input_shape),))


def _analysis(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    """``analyze`` on given inputs (several, for a module whose forward takes several)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore's import uses torch.jit.script
        from fvcore.nn import FlopCountAnalysis

    model.eval()
    analysis = FlopCountAnalysis(model, inputs if len(inputs) > 1 else inputs[0])
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


def clear_caches() -> None:
    """Forget every counted cost in this process (a cold count, for ``gcsearch bench flops``)."""
    for cache in (_model_cost, _base_and_sites, _sites):
        cache.cache_clear()
    _BLOCK_COSTS.clear()


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """``torch.nn.init`` turned off while modules are built: for counting only (shapes and
    parameter counts; a trace's MACs do not depend on weight values), at a fraction of the
    time. Not thread-safe: it patches ``torch.nn.init`` for the duration."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}

    def keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    try:
        for n in names:
            setattr(nn.init, n, keep)
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


@contextlib.contextmanager
def _meta_build() -> Iterator[None]:
    """Build modules on the meta device without initialising them: structure only."""
    with _no_init(), torch.device("meta"):
        yield


@functools.lru_cache(maxsize=64)
def _base_and_sites(
    backbone: str, input_shape: tuple[int, ...], num_classes: int, layout: str
) -> tuple[tuple[int, int], dict[str, tuple[int, ...]]]:
    """The plain backbone's (params, MACs) from one fvcore trace, and the (C, H, W) at every
    context slot (by module name) read by hooks during that same trace.

    A block sits after a residual block's last BN or after its add; both have the residual
    block's output shape, which is what the hooks record.
    """
    model = build_model(
        Candidate.none(), backbone, num_classes=num_classes, in_chans=input_shape[0], layout=layout
    )
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in model.named_modules():
        if hasattr(module, "insert_context"):  # a residual block with a context slot

            def keep(mod: nn.Module, args: Any, out: torch.Tensor, key: str = name) -> None:
                shapes[f"{key}.{SLOT}"] = tuple(int(s) for s in out.shape[1:])

            hooks.append(module.register_forward_hook(keep))
    analysis = analyze(model, input_shape)
    with torch.no_grad():
        macs = int(analysis.total())
    for hook in hooks:
        hook.remove()
    return (_params(model), macs), shapes


@functools.lru_cache(maxsize=256)
def _sites(
    placement: Placement,
    backbone: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    layout: str,
) -> tuple[str, ...]:
    """Slot names a placement fills, read from a model with a GC block there built on the meta
    device (so ``build_model`` stays the one place that decides where blocks go)."""
    probe = Candidate(block=BlockSpec(), placement=placement)
    with _meta_build():
        model = build_model(
            probe, backbone, num_classes=num_classes, in_chans=input_shape[0], layout=layout
        )
    return tuple(name for name, _ in context_blocks(model))


class _Probes(nn.Module):
    """Lone blocks in one ``context_block`` list, each on its own input: one fvcore trace
    counts them all (``by_module``), each counted as inside a model like ``_Probe``."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.context_block = nn.ModuleList(blocks)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(block(x) for block, x in zip(self.context_block, xs, strict=True))


#: (candidate, (C, H, W), min_hidden) -> one block's (params, MACs); filled by ``_block_costs``.
_BLOCK_COSTS: dict[tuple[Candidate, tuple[int, ...], int], tuple[int, int]] = {}


def _block_costs(keys: Sequence[tuple[Candidate, tuple[int, ...], int]]) -> None:
    """Count every block in ``keys`` not counted yet, in a single fvcore trace."""
    from gcsearch.blocks import build_block

    todo = list(dict.fromkeys(k for k in keys if k not in _BLOCK_COSTS))
    if not todo:
        return
    with _no_init():  # uninitialised weights: the trace counts shapes, not values
        blocks = [build_block(c, shape[0], min_hidden=h) for c, shape, h in todo]
    analysis = _analysis(_Probes(blocks), tuple(torch.zeros(1, *s) for _, s, _ in todo))
    with torch.no_grad():
        per_module = analysis.by_module()
    for i, (key, block) in enumerate(zip(todo, blocks, strict=True)):
        name = f"{SLOT}.{i}"
        missed = analysis.unsupported_ops(name)
        if missed:
            warnings.warn(
                f"gcsearch.cost: no MAC handle for {', '.join(sorted(missed))} in "
                f"{key[0].id}; its MACs are a lower bound",
                RuntimeWarning,
                stacklevel=3,
            )
        _BLOCK_COSTS[key] = (_params(block), int(per_module.get(name, 0)))


def table_costs(
    candidates: Sequence[Candidate],
    backbone: str,
    input_shape: Sequence[int],
    *,
    num_classes: int = 10,
    min_hidden: int = 8,
    layout: str = "pytorch",
) -> list[Cost]:
    """``count_cost`` of many candidates for the price of about one backbone trace.

    The backbone is traced once (its hooks record every slot's input shape); each candidate's
    block is traced alone once per distinct site shape and added per site: a block's output has
    its input's shape, so the rest of the network is unchanged. Equal to ``count_cost`` row by
    row (tests/test_cost_table.py checks every preset).
    """
    shape = tuple(int(s) for s in input_shape)
    (base_params, base_macs), slots = _base_and_sites(backbone, shape, num_classes, layout)
    plans: list[tuple[Candidate, dict[tuple[int, ...], int]]] = []
    for cand in candidates:
        if cand.is_baseline:
            plans.append((cand, {}))
            continue
        validate_placement(cand, backbone)
        counts: dict[tuple[int, ...], int] = {}
        for name in _sites(cand.placement, backbone, shape, num_classes, layout):
            counts[slots[name]] = counts.get(slots[name], 0) + 1
        plans.append((cand, counts))
    _block_costs([(c, site, min_hidden) for c, counts in plans if counts for site in counts])
    out = []
    for cand, counts in plans:
        params, macs = base_params, base_macs
        for site, n in counts.items():
            bp, bm = _BLOCK_COSTS[(cand, site, min_hidden)]
            params, macs = params + n * bp, macs + n * bm
        out.append(Cost(params, macs, base_params, base_macs))
    return out


def flops_candidates(
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
    candidates = flops_candidates(args.candidates, placement, args.backbone)
    for cand in candidates:
        validate_placement(cand, args.backbone)
    shape = (3, side, side)
    kw: dict[str, Any] = {"num_classes": num_classes, "layout": args.layout}

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    with console.status(f"tracing {args.backbone} once and each block at its sites"):
        costs = table_costs(candidates, args.backbone, shape, **kw)
        base = table_costs([Candidate.none()], args.backbone, shape, **kw)[0]
    latencies: dict[str, Any] = {}
    if getattr(args, "latency", False):
        from gcsearch.latency import compare_latency

        if args.batch < 1 or args.threads < 1:
            raise UserError(f"--batch {args.batch} / --threads {args.threads}: both must be >= 1")
        torch.set_num_threads(args.threads)
        with console.status("measuring latency (interleaved rounds)"):
            models = {
                c.id: build_model(c, args.backbone, num_classes=num_classes, layout=args.layout)
                for c in [Candidate.none(), *candidates]
            }
            latencies = compare_latency(models, shape, batch=args.batch, device=args.device)
    unit, scale = ("G", 1e9) if base.base_macs >= 1e9 else ("M", 1e6)
    table = Table(
        title=f"{args.backbone} ({args.layout} layout), input 3x{side}x{side}, "
        f"{num_classes} classes"
    )
    names = ["candidate", "params", "+params", f"MACs ({unit})", "+MACs (M)", "+MACs %"]
    if latencies:
        names += ["latency ms", "+latency %"]
    for name in names:
        table.add_column(name, justify="left" if name == "candidate" else "right", no_wrap=True)
    base_lat = latencies.get(Candidate.none().id)

    def lat_cells(cid: str) -> list[str]:
        if not latencies:
            return []
        ms = latencies[cid].ms
        extra = "" if cid == Candidate.none().id else _signed(100 * (ms / base_lat.ms - 1), ".1f")
        return [f"{ms:.3g}", extra]

    table.add_row(
        "baseline",
        f"{base.params:,}",
        "",
        f"{base.macs / scale:.3f}",
        "",
        "",
        *lat_cells(Candidate.none().id),
    )
    for cand, cost in zip(candidates, costs, strict=True):
        table.add_row(
            cand.id,
            f"{cost.params:,}",
            _signed(cost.block_params, ","),
            f"{cost.macs / scale:.3f}",
            _signed(cost.block_macs / 1e6, ".3f"),
            _signed(100 * cost.block_macs / cost.base_macs, ".2f"),
            *lat_cells(cand.id),
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
    if base_lat is not None:
        notes.append(
            f"Latency: median of {base_lat.iters} forward passes after {base_lat.warmup} "
            f"warm-up, batch {base_lat.batch}, on {base_lat.device} with {base_lat.threads} "
            "torch thread(s) (timm benchmark.py conventions), rows interleaved in 5 rounds; "
            "measured on this machine under its current load."
        )
    for note in notes:
        console.print(note, style="dim", highlight=False)
    return 0
