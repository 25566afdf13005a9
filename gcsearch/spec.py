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
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gcsearch.errors import UserError

POOLINGS = ("avg", "att", "avgmax")
TRANSFORMS = ("1x1", "bottleneck")
RATIOS = (4, 8, 16, 32)
NORMS = ("none", "ln")
FUSIONS = ("add", "mul", "both")
POSITIONS = ("after_1x1", "after_add")
STAGES = ("c2", "c3", "c4", "c5")
SEARCH_STAGES = ("c3", "c4", "c5")
DENSITIES = ("all", "last")

#: Named baselines from the literature; the modules live in ``gcsearch.blocks.presets``.
PRESETS: dict[str, str] = {
    "se": "Squeeze-and-Excitation (Hu et al., 2018): avg pool, r16 bottleneck, sigmoid mul",
    "snl": "Simplified Non-local (Cao et al., 2019): att pool, 1x1 transform, add",
    "gc": "Global Context block (Cao et al., 2019): att pool, r16 bottleneck + LN, add",
    "cbam-channel": "CBAM channel attention (Woo et al., 2018): avg+max pool, r16 MLP, mul",
    "nl-gaussian": "Non-local, Gaussian (Wang et al., 2018)",
    "nl-embedded": "Non-local, embedded Gaussian (Wang et al., 2018)",
    "nl-dot": "Non-local, dot product (Wang et al., 2018)",
    "nl-concat": "Non-local, concatenation (Wang et al., 2018)",
    "cbam": "CBAM (Woo et al., 2018): channel attention, then 7x7 spatial attention",
    "cbam-spatial": "CBAM spatial attention alone (Woo et al., 2018): mean+max maps, 7x7 conv",
    "danet-pam": "DANet position attention (Fu et al., 2019): C/8 query/key, zero gamma",
    "danet-cam": "DANet channel attention (Fu et al., 2019): CxC affinity, no projections",
    "danet": "DANet dual attention (Fu et al., 2019): PAM + CAM terms summed",
    "parsenet": "ParseNet global context (Liu et al., 2015): L2-normed GAP, concat, 1x1 conv",
    "sagan": "SAGAN self-attention (Zhang et al., 2018): C/8 f/g/h, v back to C, zero gamma",
}


#: Presets whose papers place them once, after the last residual block of c4 (the NL paper's
#: "+1 NL" row): they build an HW x HW (or C x C) affinity. Every other preset goes, as in
#: GCNet, SE and CBAM, after the last 1x1 of every residual block of c3-c5.
_ONCE_AT_C4 = frozenset(
    {
        "nl-gaussian",
        "nl-embedded",
        "nl-dot",
        "nl-concat",
        "danet-pam",
        "danet-cam",
        "danet",
        "sagan",
        "parsenet",
    }
)


def paper_placement(preset: str) -> Placement:
    """The placement ``preset``'s own paper reports, used where the user names none."""
    _allowed("preset", preset, tuple(PRESETS))
    if preset in _ONCE_AT_C4:
        return Placement("after_add", ("c4",), "last")
    return Placement("after_1x1", SEARCH_STAGES, "all")


class SpecError(UserError, ValueError):
    """An invalid spec value; the message names the field and the allowed values."""


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
        return min(channels, max(channels // self.ratio, min_hidden))

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
    ``density='all'`` puts a block in every residual block of the stages, ``'last'`` only in
    the last residual block of each stage (the paper's "+1 GC at c4" rows).
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
        tail = ":last" if self.density == "last" else ""
        return f"{self.position}:{''.join(self.stages)}{tail}"

    @classmethod
    def parse(cls, text: str) -> Placement:
        parts = text.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in DENSITIES):
            raise SpecError(
                f"placement: {text!r} is not '<position>:<stages>[:last]' "
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
    """The cross product of blocks and placements (the full space: 1,134 at density 'all')."""
    blocks = tuple(block_specs()) if blocks is None else blocks
    stage_choices = stage_sets() if stage_choices is None else stage_choices
    for block, pos, stages, dens in itertools.product(blocks, positions, stage_choices, densities):
        yield Candidate(block=block, placement=Placement(pos, stages, dens))
