"""ResNet backbones with global-context blocks inserted at a ``Placement``.

Deep Residual Learning for Image Recognition (He et al., 2016, https://arxiv.org/abs/1512.03385):
torchvision's ImageNet ResNets (stages c2..c5 = ``layer1``..``layer4``) and the paper's CIFAR
ResNets of depth 6n+2 (3x3 stem, three BasicBlock stages named ``c3``, ``c4``, ``c5``) as proxies.

A block sits in a residual block's ``context_block`` slot (mmdet's name), so the backbone's
state-dict keys are unchanged and a block's keys read ``layer3.0.context_block.conv_mask.weight``.
``after_1x1`` runs it on the residual branch after its last conv+BN (Bottleneck ``bn3``,
BasicBlock ``bn2``), ``after_add`` on the residual sum before the final ReLU (GCNet, Sec. 4.1),
``after_block`` on the block's output after that ReLU (the NL paper's placement).

Example:
    >>> from gcsearch.spec import Candidate
    >>> model = build_model(Candidate.parse("gc@after_1x1:c4"), "resnet20")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from gcsearch.errors import UserError
from gcsearch.spec import Candidate, Placement, SpecError, paper_placement

LAYOUTS = ("pytorch", "caffe")
#: attribute of a residual block that holds its context block (mmdet's name)
SLOT = "context_block"


class _ContextSlot:
    """Adds an empty ``context_block`` slot and the hook that runs it at one position."""

    context_position: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_module(SLOT, None)  # type: ignore[attr-defined]
        self.context_position = "after_1x1"

    def insert_context(self, block: nn.Module, position: str) -> None:
        """Put ``block`` into the slot, run at ``position`` (a ``Placement`` position)."""
        self.context_block = block
        self.context_position = position

    def _context(self, out: torch.Tensor, position: str) -> torch.Tensor:
        block = self.context_block
        if block is None or self.context_position != position:
            return out
        return block(out)


class ContextBasicBlock(_ContextSlot, BasicBlock):
    """torchvision's BasicBlock with a context-block slot (after ``bn2`` or after the add)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self._context(out, "after_1x1")
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity  # in place, as torchvision (and uncounted by fvcore, as published)
        out = self._context(out, "after_add")
        return self._context(self.relu(out), "after_block")


class ContextBottleneck(_ContextSlot, Bottleneck):
    """torchvision's Bottleneck with a context-block slot (after ``bn3`` or after the add)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = self._context(out, "after_1x1")
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self._context(out, "after_add")
        return self._context(self.relu(out), "after_block")


def _init_weights(modules: Iterator[nn.Module]) -> None:
    for m in modules:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PadShortcut(nn.Module):
    """He et al.'s option A shortcut: identity, subsampled by ``stride``, zero-padded channels.

    Parameter-free, so ResNet-20 has the paper's 0.27 M parameters (Table 6).
    """

    def __init__(self, extra: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # (B, C + extra, H/s, W/s)


SHORTCUTS = ("projection", "identity")


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (Sec. 4.2): 3x3 stem, 3 stages of n BasicBlocks each.

    Depth is 6n+2; stage widths default to 16/32/64 with stride 1/2/2. Shortcuts that change
    shape are 1x1 conv + BN projections (``projection``, the paper's option B) or parameter-free
    zero-padded identities (``identity``, option A, the paper's CIFAR models).
    """

    def __init__(
        self,
        depth: int = 20,
        widths: tuple[int, int, int] = (16, 32, 64),
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: str = "projection",
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise UserError(f"depth: {depth} is not 6n+2 with n >= 1 (e.g. 8, 14, 20, 32, 56)")
        if len(widths) != 3:
            raise UserError(f"widths: {widths!r} must name 3 stage widths, e.g. (16, 32, 64)")
        if shortcut not in SHORTCUTS:
            raise UserError(
                f"shortcut: {shortcut!r} is not allowed (choose from projection, identity)"
            )
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = widths[0]
        for i, (name, width) in enumerate(zip(("c3", "c4", "c5"), widths, strict=True)):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                down: nn.Module | None = None
                if (stride != 1 or inplanes != width) and shortcut == "identity":
                    down = PadShortcut(width - inplanes, stride)
                elif stride != 1 or inplanes != width:
                    down = nn.Sequential(
                        nn.Conv2d(inplanes, width, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(width),
                    )
                blocks.append(ContextBasicBlock(inplanes, width, stride, down))
                inplanes = width
            self.add_module(name, nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        _init_weights(self.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, w0, H, W)
        x = self.c5(self.c4(self.c3(x)))  # (B, w2, H/4, W/4)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _torchvision(block: type[nn.Module], layers: tuple[int, ...]) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_chans: int, layout: str) -> nn.Module:
        model = ResNet(block, list(layers), num_classes=num_classes)  # type: ignore[arg-type]
        if in_chans != 3:
            model.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
            _init_weights(iter([model.conv1]))
        if layout == "caffe":
            _caffe_strides(model)
        return model

    return build


def _caffe_strides(model: nn.Module) -> None:
    """Move each Bottleneck's stride from the 3x3 to the first 1x1 (the original ResNet layout).

    BasicBlocks already stride on their first conv in both layouts, so they are unchanged.
    """
    for m in model.modules():
        if isinstance(m, Bottleneck) and m.conv2.stride != (1, 1):
            m.conv1.stride, m.conv2.stride = m.conv2.stride, (1, 1)


def _cifar(
    depth: int, shortcut: str = "projection", widths: tuple[int, int, int] = (16, 32, 64)
) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_chans: int, layout: str) -> nn.Module:
        return CifarResNet(depth, widths, num_classes, in_chans, shortcut)

    return build


_TV_STAGES = {"c2": "layer1", "c3": "layer2", "c4": "layer3", "c5": "layer4"}
_CIFAR_STAGES = {"c3": "c3", "c4": "c4", "c5": "c5"}
_TV_BASIC_WIDTHS = {"c2": 64, "c3": 128, "c4": 256, "c5": 512}
_TV_BOTTLENECK_WIDTHS = {"c2": 256, "c3": 512, "c4": 1024, "c5": 2048}


def _depths(layers: tuple[int, ...]) -> dict[str, int]:
    return dict(zip(_TV_STAGES, layers, strict=True))


@dataclass(frozen=True)
class BackboneDef:
    """A registered backbone: its builder, stage -> module attribute, usual input size, stage
    widths and residual blocks per stage."""

    build: Callable[..., nn.Module]
    stages: dict[str, str]
    input_size: int
    num_classes: int
    description: str
    widths: dict[str, int]
    depths: dict[str, int]


#: Every backbone ``build_model`` knows; a new one is one entry.
BACKBONES: dict[str, BackboneDef] = {
    "resnet18": BackboneDef(
        _torchvision(ContextBasicBlock, (2, 2, 2, 2)),
        _TV_STAGES,
        224,
        1000,
        "torchvision ResNet-18",
        _TV_BASIC_WIDTHS,
        _depths((2, 2, 2, 2)),
    ),
    "resnet34": BackboneDef(
        _torchvision(ContextBasicBlock, (3, 4, 6, 3)),
        _TV_STAGES,
        224,
        1000,
        "torchvision ResNet-34",
        _TV_BASIC_WIDTHS,
        _depths((3, 4, 6, 3)),
    ),
    "resnet50": BackboneDef(
        _torchvision(ContextBottleneck, (3, 4, 6, 3)),
        _TV_STAGES,
        224,
        1000,
        "torchvision ResNet-50",
        _TV_BOTTLENECK_WIDTHS,
        _depths((3, 4, 6, 3)),
    ),
    "resnet101": BackboneDef(
        _torchvision(ContextBottleneck, (3, 4, 23, 3)),
        _TV_STAGES,
        224,
        1000,
        "torchvision ResNet-101",
        _TV_BOTTLENECK_WIDTHS,
        _depths((3, 4, 23, 3)),
    ),
    **{
        f"resnet{d}{tag}{wtag}": BackboneDef(
            _cifar(d, shortcut, (16 * k, 32 * k, 64 * k)),
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


def get_backbone(name: str) -> BackboneDef:
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


def stage_modules(model: nn.Module, backbone: str) -> dict[str, nn.Sequential]:
    """Stage name -> the ``nn.Sequential`` of residual blocks in a model from ``build_model``."""
    return {s: getattr(model, attr) for s, attr in get_backbone(backbone).stages.items()}


def context_blocks(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, block)`` for every inserted context block, in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, _ContextSlot) and module.context_block is not None:
            yield f"{name}.{SLOT}", module.context_block


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
    validate_placement(candidate, backbone)
    widths = get_backbone(backbone).widths
    hidden = [block.hidden(widths[s], min_hidden) for s in candidate.placement.stages]
    norm = "ln" if block.norm == "ln" else ""
    token = f"h{'.'.join(map(str, hidden))}{norm}"
    return f"{block.pooling}-{token}-{block.fusion}@{candidate.placement.id}"


def build_model(
    candidate: Candidate | str,
    backbone: str = "resnet20",
    *,
    num_classes: int = 10,
    in_chans: int = 3,
    min_hidden: int = 8,
    layout: str = "pytorch",
) -> nn.Module:
    """The backbone with ``candidate``'s block inserted at its placement.

    ``layout='caffe'`` strides on a Bottleneck's first 1x1 (the original ResNet and the GCNet
    paper's counts), ``'pytorch'`` on the 3x3 (torchvision). The baseline ``Candidate.none()``
    returns the plain backbone.

    Example:
        >>> model = build_model(Candidate.parse("gc@after_1x1:c3c4c5"), "resnet50",
        ...                     num_classes=1000)
    """
    if isinstance(candidate, str):
        candidate = Candidate.parse(candidate)
    spec = get_backbone(backbone)
    if layout not in LAYOUTS:
        raise UserError(f"layout: {layout!r} is not allowed (choose from {', '.join(LAYOUTS)})")
    validate_placement(candidate, backbone)
    model = spec.build(num_classes=num_classes, in_chans=in_chans, layout=layout)
    if candidate.is_baseline:
        return model
    from gcsearch.blocks import build_block

    placement = candidate.placement
    for stage in placement.stages:
        residuals = list(getattr(model, spec.stages[stage]))
        if placement.density == "penultimate" and len(residuals) < 2:
            raise UserError(
                f"density: {backbone} stage {stage} has one residual block, so no block before "
                "its last (choose density all or last)"
            )
        residuals = {"all": residuals, "last": residuals[-1:], "penultimate": residuals[-2:-1]}[
            placement.density
        ]
        for res in residuals:
            channels = (res.bn3 if isinstance(res, Bottleneck) else res.bn2).num_features
            res.insert_context(
                build_block(candidate, channels, min_hidden=min_hidden), placement.position
            )
    return model
