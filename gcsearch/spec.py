"""The candidate spec: the single source of truth for what a searched block is.

GCNet (Cao et al., 2019, https://arxiv.org/abs/1904.11492) frames NL, SNL, SE and GC as one
pipeline: context modeling (pooling) -> transform -> fusion. A ``BlockSpec`` names one point of
that pipeline, a ``Placement`` says where blocks go in a ResNet, and a ``Candidate`` pairs a
block (or a named preset such as ``gc`` or ``nl-embedded``) with a placement. Everything else
(the module, its cost, the trial, the report row, the exported file) is a function of it.

Canonical ids read ``<block>@<position>:<stages>[:last]``, e.g. ``att-r16ln-add@after_1x1:c3c4c5``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gcsearch.errors import UserError


class SpecError(UserError, ValueError):
    """An invalid spec value; the message names the field and the allowed values."""


# ----------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class Axis:
    """One searchable axis: its name, allowed values and the GC block's value (the default)."""

    name: str
    values: tuple[Any, ...]
    default: Any
    doc: str = ""


#: Every axis of the space, defined once; spaces, sampler, frame and report read it.
AXES: dict[str, Axis] = {
    a.name: a
    for a in (
        Axis("pooling", ("avg", "att", "avgmax"), "att", "context modeling"),
        Axis("transform", ("1x1", "bottleneck"), "bottleneck", "channel transform"),
        Axis("ratio", (4, 8, 16, 32), 16, "bottleneck ratio r (hidden C/r)"),
        Axis("norm", ("none", "ln"), "ln", "LayerNorm inside the bottleneck"),
        Axis("fusion", ("add", "mul", "both"), "add", "how the context meets the features"),
        Axis(
            "position",
            ("after_1x1", "after_add", "after_block"),
            "after_1x1",
            "in the residual branch, after the sum, or on the block output after its ReLU",
        ),
        Axis("stages", ("c2", "c3", "c4", "c5"), ("c3", "c4", "c5"), "ResNet stages"),
        Axis(
            "density",
            ("all", "last", "penultimate"),
            "all",
            "every residual block of a stage, its last, or the one before its last",
        ),
    )
}
POOLINGS = AXES["pooling"].values
TRANSFORMS = AXES["transform"].values
RATIOS = AXES["ratio"].values
NORMS = AXES["norm"].values
FUSIONS = AXES["fusion"].values
POSITIONS = AXES["position"].values
STAGES = AXES["stages"].values
SEARCH_STAGES: tuple[str, ...] = AXES["stages"].default
DENSITIES = AXES["density"].values


def hidden_width(channels: int, ratio: int, min_hidden: int) -> int:
    """Bottleneck width ``max(C // r, min_hidden)``, capped at C (see ``BlockSpec.hidden``)."""
    return min(channels, max(channels // ratio, min_hidden))


# ----------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Metric:
    """One metric a study can optimise, and every fact the search and report need of it.

    ``source``: ``counted`` (an exact cost, known for every network before training) or
    ``trained`` (measured on each seed's run, then averaged over seeds with ``average``).
    ``per_seed``: where a trained metric sits in a trial result (``"latency.ms"`` is a path);
    ``at_epoch``: its key in a result's per-epoch history (for rung decisions; empty: not
    measured per epoch, the final value serves). ``column``: the results-frame column holding
    it. ``box``: its side of the hypervolume box (``accuracy``: chance to 100 %; ``loss``:
    ln(classes) to 0; ``range``: the searched networks' range, from the ``costs`` of counted
    metrics or the results of trained ones).
    """

    name: str
    direction: str
    source: str
    column: str
    per_seed: str = ""
    at_epoch: str = ""
    average: str = "mean"
    box: str = "range"

    def of(self, result: Mapping[str, Any]) -> float | None:
        """This trained metric's value in one seed's result, or None."""
        value: Any = result
        for part in self.per_seed.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return None if value is None or isinstance(value, bool) else float(value)

    def average_of(self, values: Sequence[float]) -> float:
        """``values`` over seeds as this metric averages them (NaN for none)."""
        if not values:
            return math.nan
        if self.average == "median":
            return statistics.median(values)
        return sum(values) / len(values)

    def over(self, results: Sequence[Mapping[str, Any]]) -> float:
        """This trained metric over a candidate's seeds (NaN when no seed measured it)."""
        return self.average_of([v for r in results if (v := self.of(r)) is not None])


#: The objective registry: every metric a space may name, with the one direction that makes
#: sense (a study maximises accuracy and minimises costs). Adding an objective is one row here
#: (plus, for a new measurement, the trial that measures it).
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("top1", "max", "trained", "metric.top1_mean", "top1", "val_top1", box="accuracy"),
        Metric("loss", "min", "trained", "metric.loss_mean", "loss", "val_loss", box="loss"),
        Metric("macs", "min", "counted", "cost.macs"),
        Metric("params", "min", "counted", "cost.params"),
        Metric("block_macs", "min", "counted", "cost.block_macs"),
        Metric("block_params", "min", "counted", "cost.block_params"),
        Metric("latency", "min", "trained", "obj.latency", "latency.ms", average="median"),
    )
}
DIRECTIONS = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """One study objective, e.g. ``Objective.parse("top1:max")``."""

    metric: str
    direction: str

    def __post_init__(self) -> None:
        _allowed("objective", self.metric, tuple(METRICS))
        _allowed("direction", self.direction, DIRECTIONS)
        best = METRICS[self.metric].direction
        if self.direction != best:
            raise SpecError(
                f"objective: {self.metric}:{self.direction} is not allowed "
                f"({self.metric} is {best}imised: {self.metric}:{best})"
            )

    @classmethod
    def parse(cls, text: str) -> Objective:
        """``metric:max|min``; a bare metric takes its only direction."""
        metric, sep, direction = str(text).strip().partition(":")
        if metric not in METRICS:
            allowed = ", ".join(f"{m}:{d.direction}" for m, d in METRICS.items())
            raise SpecError(f"objective: {text!r} is not allowed (choose from {allowed})")
        return cls(metric, direction if sep else METRICS[metric].direction)

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


def _allowed(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        choices = ", ".join(str(a) for a in allowed)
        raise SpecError(f"{name}: {value!r} is not allowed (choose from {choices})")


def _only_keys(name: str, data: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(f"{name}: expected a table/object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise SpecError(f"{name}: unknown key {unknown[0]!r} (allowed: {', '.join(keys)})")


@dataclass(frozen=True)
class BlockSpec:
    """One context block of the GCNet framework: pooling -> transform -> fusion.

    ``ratio`` and ``norm`` apply to the ``bottleneck`` transform only (hidden width C/ratio,
    optional LayerNorm before the ReLU); a ``1x1`` transform has ``ratio=None``, ``norm='none'``.
    """

    pooling: str = "att"
    transform: str = "bottleneck"
    ratio: int | None = 16
    norm: str = "ln"
    fusion: str = "add"

    def __post_init__(self) -> None:
        _allowed("pooling", self.pooling, POOLINGS)
        _allowed("transform", self.transform, TRANSFORMS)
        _allowed("norm", self.norm, NORMS)
        _allowed("fusion", self.fusion, FUSIONS)
        if self.transform == "1x1":
            if self.ratio is not None:
                raise SpecError(
                    f"ratio: {self.ratio!r} given with transform '1x1' (a ratio needs "
                    "transform 'bottleneck'; allowed with '1x1': none)"
                )
            if self.norm != "none":
                raise SpecError(
                    f"norm: {self.norm!r} given with transform '1x1' (LayerNorm needs "
                    "transform 'bottleneck'; allowed with '1x1': none)"
                )
        else:
            if isinstance(self.ratio, bool) or not isinstance(self.ratio, int):
                raise SpecError(
                    f"ratio: {self.ratio!r} is not allowed for a bottleneck "
                    f"(choose from {', '.join(map(str, RATIOS))})"
                )
            _allowed("ratio", self.ratio, RATIOS)

    @property
    def transform_id(self) -> str:
        """``1x1``, ``r16`` or ``r16ln``."""
        if self.transform == "1x1":
            return "1x1"
        return f"r{self.ratio}" + ("ln" if self.norm == "ln" else "")

    @property
    def id(self) -> str:
        return f"{self.pooling}-{self.transform_id}-{self.fusion}"

    def hidden(self, channels: int, min_hidden: int = 8) -> int:
        """Hidden width of the transform for ``channels`` inputs.

        A bottleneck uses ``max(C // ratio, min_hidden)``, capped at C: at proxy widths
        (C=16, r=16) a width of 1 would make the LayerNorm output zero and the block inert.
        """
        if self.transform == "1x1":
            return channels
        assert self.ratio is not None
        if self.ratio > channels:
            raise SpecError(
                f"ratio: {self.ratio} is larger than the {channels} channels it would "
                f"reduce (allowed here: {', '.join(str(r) for r in RATIOS if r <= channels)})"
            )
        return hidden_width(channels, self.ratio, min_hidden)

    @classmethod
    def parse(cls, text: str) -> BlockSpec:
        """Parse ``att-r16ln-add`` / ``avg-1x1-mul`` back into a spec."""
        parts = text.split("-")
        if len(parts) != 3:
            raise SpecError(
                f"block: {text!r} is not '<pooling>-<transform>-<fusion>' or a preset "
                f"(presets: {', '.join(PRESETS)})"
            )
        pooling, tid, fusion = parts
        if tid == "1x1":
            return cls(pooling, "1x1", None, "none", fusion)
        m = re.fullmatch(r"r(\d+)(ln)?", tid)
        if not m:
            raise SpecError(f"transform: {tid!r} is not allowed (choose from 1x1, r4..r32[ln])")
        return cls(pooling, "bottleneck", int(m.group(1)), "ln" if m.group(2) else "none", fusion)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pooling": self.pooling,
            "transform": self.transform,
            "ratio": self.ratio,
            "norm": self.norm,
            "fusion": self.fusion,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockSpec:
        _only_keys("block", data, ("pooling", "transform", "ratio", "norm", "fusion"))
        kw = dict(data)
        if kw.get("transform") == "1x1":
            kw.setdefault("ratio", None)
            kw.setdefault("norm", "none")
        return cls(**kw)


@dataclass(frozen=True)
class Placement:
    """Where blocks go: inside the residual branch or after the sum, in which stages, how many.

    ``after_1x1``: after the last conv+BN of the branch, before the residual add (mmdet's
    ``after_conv3``). ``after_add``: after the residual sum, before the final ReLU.
    ``after_block``: on the residual block's output, after its ReLU (where the NL paper and its
    official code put a non-local block). ``density='all'`` puts a block in every residual
    block of the stages, ``'last'`` only in the last residual block of each stage (GCNet's
    "+1 GC at c4" rows), ``'penultimate'`` in the one before the last: with ``after_block`` that
    is the NL paper's "right before the last residual block of res4".
    """

    position: str = "after_1x1"
    stages: tuple[str, ...] = SEARCH_STAGES
    density: str = "all"

    def __post_init__(self) -> None:
        _allowed("position", self.position, POSITIONS)
        _allowed("density", self.density, DENSITIES)
        stages = self.stages
        if isinstance(stages, str):
            stages = tuple(re.findall(r"c\d", stages)) or (stages,)
        stages = tuple(stages)
        if not stages:
            raise SpecError(f"stages: empty (choose a non-empty subset of {', '.join(STAGES)})")
        for s in stages:
            _allowed("stages", s, STAGES)
        if len(set(stages)) != len(stages):
            raise SpecError(f"stages: {'/'.join(stages)} repeats a stage")
        object.__setattr__(self, "stages", tuple(sorted(stages)))

    @property
    def id(self) -> str:
        tail = f":{self.density}" if self.density != "all" else ""
        return f"{self.position}:{''.join(self.stages)}{tail}"

    @classmethod
    def parse(cls, text: str) -> Placement:
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in DENSITIES):
            raise SpecError(
                f"placement: {text!r} is not '<position>:<stages>[:last|:penultimate]' "
                f"(positions: {', '.join(POSITIONS)})"
            )
        stages = tuple(re.findall(r"c\d", parts[1]))
        if "".join(stages) != parts[1]:
            raise SpecError(f"stages: {parts[1]!r} is not allowed (e.g. c4, c3c4c5)")
        return cls(parts[0], stages, parts[2] if len(parts) == 3 else "all")

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "stages": list(self.stages), "density": self.density}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Placement:
        _only_keys("placement", data, ("position", "stages", "density"))
        kw = dict(data)
        if "stages" in kw and not isinstance(kw["stages"], str):
            kw["stages"] = tuple(kw["stages"])
        return cls(**kw)


@dataclass(frozen=True)
class Candidate:
    """A block (a ``BlockSpec`` or a named preset) and where it goes; ``Candidate.none()`` is
    the backbone without any block."""

    block: BlockSpec | None = None
    preset: str | None = None
    placement: Placement = field(default_factory=Placement)

    def __post_init__(self) -> None:
        if self.block is not None and self.preset is not None:
            raise SpecError("candidate: give either a block or a preset, not both")
        if self.preset is not None:
            _allowed("preset", self.preset, tuple(PRESETS))
        if self.block is None and self.preset is None and self.placement != Placement():
            object.__setattr__(self, "placement", Placement())  # the baseline has no placement

    @classmethod
    def none(cls) -> Candidate:
        return cls()

    @property
    def is_baseline(self) -> bool:
        return self.block is None and self.preset is None

    @property
    def block_id(self) -> str:
        if self.block is not None:
            return self.block.id
        return self.preset or "none"

    @property
    def id(self) -> str:
        if self.is_baseline:
            return "none"
        return f"{self.block_id}@{self.placement.id}"

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, text: str) -> Candidate:
        """Parse a canonical id; a bare block or preset gets the default placement."""
        text = text.strip()
        if text in ("none", "baseline"):
            return cls.none()
        head, _, tail = text.partition("@")
        placement = Placement.parse(tail) if tail else Placement()
        if head in PRESETS:
            return cls(preset=head, placement=placement)
        return cls(block=BlockSpec.parse(head), placement=placement)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "block": self.block.to_dict() if self.block else None,
            "preset": self.preset,
            "placement": self.placement.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        _only_keys("candidate", data, ("id", "block", "preset", "placement"))
        block = BlockSpec.from_dict(data["block"]) if data.get("block") else None
        placement = Placement.from_dict(data.get("placement") or {})
        cand = cls(block=block, preset=data.get("preset"), placement=placement)
        if "id" in data and data["id"] != cand.id:
            raise SpecError(f"candidate: id {data['id']!r} does not match its fields ({cand.id})")
        return cand

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"candidate: not valid JSON ({exc.msg})") from None
        return cls.from_dict(data)


# ----------------------------------------------------------------------------- presets

#: init of every searched ``ContextBlock`` (the official GCNet code's): last conv at zero.
SEARCH_INIT = "zero_last"

_ALL4 = ("c2", "c3", "c4", "c5")
_NL_PLACE = Placement("after_block", ("c4",), "penultimate")
_ONCE_C4 = _NL_PLACE  # the other pairwise/global blocks are compared at NL's "+1" place
_NL_PAPER = (
    "Wang et al., Non-local Neural Networks, CVPR 2018",
    "https://arxiv.org/abs/1711.07971",
)
_NL_CODE = "facebookresearch/video-nonlocal-net lib/models/nonlocal_helper.py"
_CBAM_PAPER = (
    "Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018",
    "https://arxiv.org/abs/1807.06521",
)
_GC_PAPER = (
    "Cao et al., GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond, 2019",
    "https://arxiv.org/abs/1904.11492",
)
_DANET_PAPER = (
    "Fu et al., Dual Attention Network for Scene Segmentation, CVPR 2019",
    "https://arxiv.org/abs/1809.02983",
)
_COMPARISON = "placed like the '+1 NL' row for comparison; its paper puts it elsewhere"


@dataclass(frozen=True)
class Preset:
    """A published block: what it is, where it comes from, how it is built, where it goes.

    ``builder`` names the module class as ``"module:Class"`` (so this file imports no torch);
    ``gcsearch.blocks.build_block`` calls ``Class(channels, **options)``, adding the
    framework ``spec`` when set and ``min_hidden`` when ``min_hidden`` is true. ``placement``
    is the paper's, on a four-stage ImageNet ResNet (``paper_placement`` fits it to a backbone).
    ``follows`` says what the module reproduces (paper or official code), ``deviations`` what
    differs from it; ``init`` describes the initialization the module applies.
    """

    name: str
    title: str
    paper: str
    url: str
    follows: str
    init: str
    placement: Placement
    builder: str
    options: tuple[tuple[str, Any], ...] = ()
    spec: BlockSpec | None = None
    min_hidden: bool = False
    exportable: bool = True
    deviations: tuple[str, ...] = ()

    @property
    def equivalent_spec(self) -> BlockSpec | None:
        """The searched spec this preset computes exactly, init included; None otherwise."""
        if self.spec is not None and dict(self.options).get("init") == SEARCH_INIT:
            return self.spec
        return None

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


def _context(
    name: str,
    title: str,
    paper: tuple[str, str],
    spec: str,
    init: str,
    placement: Placement,
    follows: str,
    init_doc: str,
    deviations: tuple[str, ...] = (),
) -> Preset:
    return Preset(
        name,
        title,
        *paper,
        follows,
        init_doc,
        placement,
        "gcsearch.blocks.context:ContextBlock",
        (("init", init),),
        BlockSpec.parse(spec),
        True,
        True,
        deviations,
    )


def _nonlocal(mode: str, suffix: str = "") -> Preset:
    title = {
        "gaussian": "Gaussian",
        "embedded": "embedded Gaussian",
        "dot": "dot product",
        "concat": "concatenation",
    }[mode]
    paper_only = mode in ("gaussian", "concat")
    if suffix == "":
        opts = {
            "mode": mode,
            "pool": "input",
            "scale": mode == "embedded",
            "norm": True,
            "out_bias": True,
            "init": "normal",
        }
        follows = (
            f"the paper's Eq. for {title} with the official code's layout ({_NL_CODE}: phi and g "
            "on the 2x2 max-pooled input, BN after W_z)"
            if paper_only
            else f"official code, {_NL_CODE}: phi and g on the 2x2 max-pooled input (USE_MAXPOOL)"
            + (
                ", affinity scaled by 1/sqrt(C') (USE_SCALE)"
                if mode == "embedded"
                else ", affinity divided by the number of positions (USE_SOFTMAX off)"
            )
        )
        init = (
            "convs N(0, 0.01), biases 0, BN after W_z with scale 0 (CONV_INIT_STD, BN_INIT_GAMMA)"
        )
        dev: tuple[str, ...] = (
            "2D (spatial) only: the video code pools (1, 2, 2) in time x space",
            "maps smaller than 2x2 are not pooled",
        )
        if paper_only:
            dev += (f"{title} is not in the official code; its layout and init are borrowed",)
    elif suffix == "-unpooled":
        opts = {
            "mode": mode,
            "pool": "none",
            "scale": False,
            "norm": True,
            "out_bias": False,
            "init": "default",
        }
        follows = f"the paper's Eq. for {title} without the optional sub-sampling"
        init = "PyTorch default convs, BN after W_z with scale 0 (paper Sec. 4.1)"
        dev = (
            "no max-pooling of phi/g: every position attends to every position (+4x cost)",
            "no 1/sqrt(C') scale",
            "PyTorch default conv init; W_z without bias",
        )
    else:  # -mmcv
        opts = {
            "mode": mode,
            "pool": "after",
            "scale": True,
            "norm": False,
            "out_bias": True,
            "init": "normal",
        }
        follows = (
            "mmcv NonLocal2d(sub_sample=True, use_scale=True): max-pool after the phi and "
            "g convs, affinity / sqrt(C'), no norm after W_z"
        )
        init = "theta/phi/g N(0, 0.01), biases 0, W_z conv all zero (mmcv zeros_init)"
        dev = ("parameter names are this project's (mmcv wraps each conv in a ConvModule)",)
    return Preset(
        f"nl-{mode}{suffix}",
        f"Non-local, {title}" + (f" ({suffix[1:]})" if suffix else ""),
        *_NL_PAPER,
        follows,
        init,
        _NL_PLACE,
        "gcsearch.blocks.nonlocal_:NonLocal2d",
        tuple(opts.items()),
        deviations=dev,
    )


#: In lineage order (NL, SNL, SE, GC, then the other global-context blocks): reports use it.
_PRESET_LIST: tuple[Preset, ...] = (
    *(_nonlocal(m) for m in ("embedded", "gaussian", "dot", "concat")),
    *(_nonlocal(m, "-unpooled") for m in ("embedded", "gaussian", "dot", "concat")),
    _nonlocal("embedded", "-mmcv"),
    _context(
        "snl",
        "Simplified non-local",
        _GC_PAPER,
        "att-1x1-add",
        SEARCH_INIT,
        Placement("after_1x1", SEARCH_STAGES),
        "paper (Fig. 4b: attention pooling, one 1x1 conv W_v, add)",
        "conv_mask Kaiming fan_in, W_v zero (the official GCNet init)",
    ),
    _context(
        "se",
        "Squeeze-and-Excitation",
        (
            "Hu et al., Squeeze-and-Excitation Networks, CVPR 2018",
            "https://arxiv.org/abs/1709.01507",
        ),
        "avg-r16-mul",
        "default",
        Placement("after_1x1", _ALL4),
        "paper (Fig. 3, SE-ResNet module; every block of c2-c5, Table 13) and timm SEModule",
        "PyTorch default for both convs, as timm's SEModule",
        ("1x1 convs in place of the paper's FC layers (the same function)",),
    ),
    _context(
        "cbam-channel",
        "CBAM channel attention",
        _CBAM_PAPER,
        "avgmax-r16-mul",
        "zero_bias",
        Placement("after_1x1", _ALL4),
        "official code (Jongchan/attention-module ChannelGate: shared MLP on avg and max)",
        "MLP weights PyTorch default, biases 0 (the authors' ResidualNet init)",
        ("1x1 convs in place of Linear layers (the same function)",),
    ),
    _context(
        "gc",
        "Global context block",
        _GC_PAPER,
        "att-r16ln-add",
        SEARCH_INIT,
        Placement("after_1x1", SEARCH_STAGES),
        "official code (mmcv ContextBlock, pooling 'att', fusion channel_add, ratio 1/16)",
        "conv_mask Kaiming fan_in, last transform conv zero (mmcv reset_parameters)",
    ),
    Preset(
        "cbam",
        "CBAM",
        *_CBAM_PAPER,
        "official code (Jongchan/attention-module: ChannelGate then SpatialGate)",
        "the authors' ResidualNet: spatial conv Kaiming normal fan_out, spatial BN scale 0 and "
        "every bias 0 (spatial gate exactly 0.5 at start), MLP weights PyTorch default, "
        "spatial BN momentum 0.01",
        Placement("after_1x1", _ALL4),
        "gcsearch.blocks.cbam:CBAM",
        min_hidden=True,
        deviations=("channel MLP as 1x1 convs (the same function)",),
    ),
    Preset(
        "cbam-spatial",
        "CBAM spatial attention alone",
        *_CBAM_PAPER,
        "official code (Jongchan/attention-module SpatialGate: [max, mean] maps, 7x7 conv, BN)",
        "conv Kaiming normal fan_out, BN scale and bias 0 (gate exactly 0.5), momentum 0.01",
        Placement("after_1x1", _ALL4),
        "gcsearch.blocks.cbam:SpatialGate",
        deviations=("the paper ablates it only together with the channel gate",),
    ),
    Preset(
        "danet-pam",
        "DANet position attention",
        *_DANET_PAPER,
        "official code (da_att.py PAM_Module: C/8 query/key, C value, zero gamma)",
        "PyTorch default convs, gamma 0",
        _ONCE_C4,
        "gcsearch.blocks.danet:PositionAttention",
        deviations=(_COMPARISON + " (on the dilated ResNet's output)",),
    ),
    Preset(
        "danet-cam",
        "DANet channel attention",
        *_DANET_PAPER,
        "paper (softmax of A A^T over channels)",
        "gamma 0",
        _ONCE_C4,
        "gcsearch.blocks.danet:ChannelAttention",
        deviations=(
            "the official code's softmax(max - energy) is softmax(-A A^T); we keep the "
            "paper's sign",
            _COMPARISON,
        ),
    ),
    Preset(
        "danet",
        "DANet dual attention",
        *_DANET_PAPER,
        "paper (PAM + CAM), both terms around one residual",
        "as danet-pam and danet-cam",
        _ONCE_C4,
        "gcsearch.blocks.danet:DualAttention",
        deviations=(
            "the paper sums two module outputs that each carry x; inside a residual "
            "block we add both terms to one x",
            _COMPARISON,
        ),
    ),
    Preset(
        "parsenet",
        "ParseNet global context",
        "Liu et al., ParseNet: Looking Wider to See Better, 2015",
        "https://arxiv.org/abs/1506.04579",
        "paper (Sec. 3.3: L2-normalise the local and the global features, each with a learned "
        "per-channel scale, unpool, concat, 1x1 conv)",
        "both scales 10, fuse conv [I | 0] and bias 0 (ours)",
        _ONCE_C4,
        "gcsearch.blocks.parsenet:ParseNetContext",
        deviations=(
            "scale and fuse init are ours (not given for this use)",
            "the fuse conv is computed as its two halves (the same function)",
            _COMPARISON,
        ),
    ),
    Preset(
        "sagan",
        "SAGAN self-attention",
        "Zhang et al., Self-Attention Generative Adversarial Networks, ICML 2019",
        "https://arxiv.org/abs/1805.08318",
        "paper (Eq. 1-3: C/8 f, g, h, v back to C, zero gamma)",
        "PyTorch default, gamma 0",
        _ONCE_C4,
        "gcsearch.blocks.sagan:SelfAttention2d",
        deviations=(
            "the official code's C/2 value path and max-pooled keys/values are not "
            "used; we follow the paper's equations",
            _COMPARISON,
        ),
    ),
)

#: Every named preset, defined once: name -> record.
PRESETS: dict[str, Preset] = {p.name: p for p in _PRESET_LIST}


def paper_placement(preset: str, stages: tuple[str, ...] | None = None) -> Placement:
    """Where ``preset``'s paper puts it; ``stages``: those the backbone has (SE and CBAM go in
    every block of c2-c5, so c3-c5 on a CIFAR net without c2)."""
    _allowed("preset", preset, tuple(PRESETS))
    where = PRESETS[preset].placement
    if stages is None:
        return where
    kept = tuple(s for s in where.stages if s in stages)
    if not kept:
        raise SpecError(
            f"stages: {preset}'s paper places it in {''.join(where.stages)}, which this "
            f"backbone lacks (it has {', '.join(stages)})"
        )
    return Placement(where.position, kept, where.density)


def block_specs(
    poolings: tuple[str, ...] = POOLINGS,
    transforms: tuple[str, ...] = TRANSFORMS,
    ratios: tuple[int, ...] = RATIOS,
    norms: tuple[str, ...] = NORMS,
    fusions: tuple[str, ...] = FUSIONS,
) -> Iterator[BlockSpec]:
    """Every valid ``BlockSpec`` over the given axis values (ratio/norm only for bottlenecks)."""
    for pooling, transform, fusion in itertools.product(poolings, transforms, fusions):
        if transform == "1x1":
            yield BlockSpec(pooling, "1x1", None, "none", fusion)
            continue
        for ratio, norm in itertools.product(ratios, norms):
            yield BlockSpec(pooling, "bottleneck", ratio, norm, fusion)


def stage_sets(stages: tuple[str, ...] = SEARCH_STAGES) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``stages``, smallest first."""
    return [combo for n in range(1, len(stages) + 1) for combo in itertools.combinations(stages, n)]


def enumerate_candidates(
    blocks: tuple[BlockSpec, ...] | None = None,
    positions: tuple[str, ...] = POSITIONS,
    stage_choices: list[tuple[str, ...]] | None = None,
    densities: tuple[str, ...] = ("all",),
) -> Iterator[Candidate]:
    """The cross product of blocks and placements (1,701 at density 'all'; 1,134 with GCNet's
    two positions, as ``spaces/full.toml``)."""
    blocks = tuple(block_specs()) if blocks is None else blocks
    stage_choices = stage_sets() if stage_choices is None else stage_choices
    for block, pos, stages, dens in itertools.product(blocks, positions, stage_choices, densities):
        yield Candidate(block=block, placement=Placement(pos, stages, dens))
