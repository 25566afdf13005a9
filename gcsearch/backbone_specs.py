"""The backbones ``build_model`` knows, as data: names, stages, widths and depths.

Parsing a space, validating a placement and spelling a network's key (``module_key``) need
only this table, so they run without importing torch or torchvision (``gcsearch space
validate`` and the driver's parse); ``gcsearch.backbones`` builds the networks it describes.
"""

from __future__ import annotations

from dataclasses import dataclass

from gcsearch.errors import UserError
from gcsearch.spec import Candidate, Placement, SpecError, paper_placement

#: CIFAR ResNet shortcuts: 1x1 conv + BN projections (option B) or zero-padded identities (A)
SHORTCUTS = ("projection", "identity")


_TV_STAGES = {"c2": "layer1", "c3": "layer2", "c4": "layer3", "c5": "layer4"}
_CIFAR_STAGES = {"c3": "c3", "c4": "c4", "c5": "c5"}
_TV_BASIC_WIDTHS = {"c2": 64, "c3": 128, "c4": 256, "c5": 512}
_TV_BOTTLENECK_WIDTHS = {"c2": 256, "c3": 512, "c4": 1024, "c5": 2048}


def _depths(layers: tuple[int, ...]) -> dict[str, int]:
    return dict(zip(_TV_STAGES, layers, strict=True))


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it (``family`` torchvision or cifar, its residual
    ``block``, blocks per stage ``layers``, CIFAR ``shortcut``), stage -> module attribute,
    usual input size, stage widths and residual blocks per stage."""

    family: str
    block: str
    layers: tuple[int, ...]
    shortcut: str
    stages: dict[str, str]
    input_size: int
    num_classes: int
    description: str
    widths: dict[str, int]
    depths: dict[str, int]


def _tv(block: str, layers: tuple[int, ...], widths: dict[str, int], name: str) -> BackboneSpec:
    return BackboneSpec(
        "torchvision",
        block,
        layers,
        "projection",
        _TV_STAGES,
        224,
        1000,
        f"torchvision {name}",
        widths,
        _depths(layers),
    )


#: Every backbone ``build_model`` knows; a new one is one entry.
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": _tv("basic", (2, 2, 2, 2), _TV_BASIC_WIDTHS, "ResNet-18"),
    "resnet34": _tv("basic", (3, 4, 6, 3), _TV_BASIC_WIDTHS, "ResNet-34"),
    "resnet50": _tv("bottleneck", (3, 4, 6, 3), _TV_BOTTLENECK_WIDTHS, "ResNet-50"),
    "resnet101": _tv("bottleneck", (3, 4, 23, 3), _TV_BOTTLENECK_WIDTHS, "ResNet-101"),
    **{
        f"resnet{d}{tag}{wtag}": BackboneSpec(
            "cifar",
            "basic",
            ((d - 2) // 6,) * 3,
            shortcut,
            _CIFAR_STAGES,
            32,
            10,
            f"CIFAR ResNet-{d} (6n+2), widths {16 * k}/{32 * k}/{64 * k}, {shortcut} shortcuts "
            f"(option {opt})",
            {"c3": 16 * k, "c4": 32 * k, "c5": 64 * k},
            dict.fromkeys(_CIFAR_STAGES, (d - 2) // 6),
        )
        for d in (8, 14, 20, 32, 56)
        for tag, shortcut, opt in (("", "projection", "B"), ("a", "identity", "A"))
        # w4: 4x wide (64/128/256), so that C/4 .. C/32 are distinct bottlenecks at every
        # stage (with min_hidden <= 2): where the paper's ratio axis can be asked about
        for wtag, k in (("", 1), ("w4", 4))
    },
}


def get_backbone(name: str) -> BackboneSpec:
    """The registered backbone ``name``; a ``UserError`` lists the allowed names otherwise."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise UserError(
            f"backbone: {name!r} is not known (choose from {', '.join(BACKBONES)})"
        ) from None


def backbone_stages(name: str) -> tuple[str, ...]:
    """Stage names a placement may use in backbone ``name``, e.g. ``('c3', 'c4', 'c5')``."""
    return tuple(get_backbone(name).stages)


def preset_placement(preset: str, backbone: str) -> Placement:
    """``preset``'s paper placement fitted to ``backbone``: its stages only (SE/CBAM at c3-c5 on
    a CIFAR net), and ``last`` for ``penultimate`` in a stage of one residual block (resnet8)."""
    bb = get_backbone(backbone)
    where = paper_placement(preset, tuple(bb.stages))
    if where.density == "penultimate" and any(bb.depths[s] < 2 for s in where.stages):
        return Placement(where.position, where.stages, "last")
    return where


def validate_placement(candidate: Candidate, backbone: str) -> None:
    """Raise ``SpecError`` if ``candidate`` places a block in a stage ``backbone`` lacks."""
    stages = backbone_stages(backbone)
    if candidate.is_baseline:
        return
    for stage in candidate.placement.stages:
        if stage not in stages:
            raise SpecError(
                f"stages: {stage} is not a stage of {backbone} (allowed: {', '.join(stages)})"
            )


def module_key(candidate: Candidate, backbone: str, min_hidden: int = 8) -> str:
    """An id that is equal for two candidates exactly when they build the same network here.

    A bottleneck is spelled by the hidden width it builds in each stage, not by its ratio: on
    narrow proxy backbones the ``min_hidden`` floor folds ratios together (at C=32, r4 gives
    32 // 4 = 8 and r16 gives max(2, 8) = 8), so ``att-r4ln-add@c4`` and ``att-r16ln-add@c4``
    are one network and the search trains it once. Other candidates keep their id.

    Example:
        >>> module_key(Candidate.parse("att-r32ln-add@after_1x1:c4c5"), "resnet20")
        'att-h8.8ln-add@after_1x1:c4c5'
    """
    block = candidate.block
    if block is None or block.transform == "1x1":
        return candidate.id
    hidden = stage_hidden(candidate, backbone, min_hidden).values()
    norm = "ln" if block.norm == "ln" else ""
    token = f"h{'.'.join(map(str, hidden))}{norm}"
    return f"{block.pooling}-{token}-{block.fusion}@{candidate.placement.id}"


def stage_hidden(candidate: Candidate, backbone: str, min_hidden: int = 8) -> dict[str, int]:
    """The hidden width a searched bottleneck block builds at each of its stages here
    (``max(C // ratio, min_hidden)``, capped at C), in stage order; raises the one-line error
    of ``validate_placement`` for a stage the backbone lacks."""
    assert candidate.block is not None
    validate_placement(candidate, backbone)
    widths = get_backbone(backbone).widths
    stages = candidate.placement.stages
    return {s: candidate.block.hidden(widths[s], min_hidden) for s in stages}


__all__ = [
    "BACKBONES",
    "SHORTCUTS",
    "BackboneSpec",
    "backbone_stages",
    "get_backbone",
    "module_key",
    "preset_placement",
    "stage_hidden",
    "validate_placement",
]
