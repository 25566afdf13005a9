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

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from gcsearch.backbone_specs import (  # re-exported: the registry lives there, torch-free
    BACKBONES,
    SHORTCUTS,
    BackboneSpec,
    backbone_stages,
    get_backbone,
    module_key,
    preset_placement,
    validate_placement,
)
from gcsearch.errors import UserError
from gcsearch.spec import Candidate

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


#: a residual block's (groups, base_width, dilation), as torchvision's ResNet passes them
Grouping = tuple[int, int, int]


class _Residual(nn.Module):
    """A ResNet residual block with torchvision's constructor and attribute names: its
    ``ResNet`` builds with these blocks (it passes the arguments below, in this order), with the
    same random draws, and torchvision's weights load. Written here, not subclassed, so a CIFAR
    network (the proxies) never imports torchvision: that import pulls in ``torch._dynamo``, over
    a CPU-second in the driver while Ray starts. Subclasses make the layers (``_layers``)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Any = None,
    ) -> None:
        super().__init__()
        norm = norm_layer or nn.BatchNorm2d
        self._layers(inplanes, planes, stride, (groups, base_width, dilation), norm)
        self.downsample = downsample
        self.stride = stride

    def _layers(self, cin: int, planes: int, stride: int, grouping: Grouping, norm: Any) -> None:
        raise NotImplementedError


class _BasicBlock(_Residual):
    """Two 3x3 convs (He et al., Fig. 2)."""

    def _layers(self, cin: int, planes: int, stride: int, grouping: Grouping, norm: Any) -> None:
        if grouping != (1, 64, 1):
            raise ValueError("a basic block takes groups=1, base_width=64 and dilation=1 only")
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm(planes)


class _Bottleneck(_Residual):
    """1x1-3x3-1x1 (He et al., Fig. 5), expansion 4, striding on the 3x3 (torchvision's
    layout; ``_caffe_strides`` moves it)."""

    expansion = 4

    def _layers(self, cin: int, planes: int, stride: int, grouping: Grouping, norm: Any) -> None:
        groups, width, dilation = grouping
        inner, out = int(planes * (width / 64.0)) * groups, planes * self.expansion
        self.conv1 = nn.Conv2d(cin, inner, 1, bias=False)
        self.bn1 = norm(inner)
        self.conv2 = nn.Conv2d(
            inner, inner, 3, stride, dilation, groups=groups, bias=False, dilation=dilation
        )
        self.bn2 = norm(inner)
        self.conv3 = nn.Conv2d(inner, out, 1, bias=False)
        self.bn3 = norm(out)
        self.relu = nn.ReLU(inplace=True)


class ContextBasicBlock(_ContextSlot, _BasicBlock):
    """A basic block with a context-block slot (after ``bn2`` or after the add)."""

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


class ContextBottleneck(_ContextSlot, _Bottleneck):
    """A bottleneck block with a context-block slot (after ``bn3`` or after the add)."""

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


def _torchvision(
    block: type[nn.Module], layers: tuple[int, ...], num_classes: int, in_chans: int, layout: str
) -> nn.Module:
    from torchvision.models.resnet import ResNet  # the ImageNet ResNets only (see _BasicBlock)

    model = ResNet(block, list(layers), num_classes=num_classes)  # type: ignore[arg-type]
    if in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, 7, stride=2, padding=3, bias=False)
        _init_weights(iter([model.conv1]))
    if layout == "caffe":
        _caffe_strides(model)
    return model


def _caffe_strides(model: nn.Module) -> None:
    """Move each Bottleneck's stride from the 3x3 to the first 1x1 (the original ResNet layout).

    BasicBlocks already stride on their first conv in both layouts, so they are unchanged.
    """
    for m in model.modules():
        if isinstance(m, _Bottleneck) and m.conv2.stride != (1, 1):
            m.conv1.stride, m.conv2.stride = m.conv2.stride, (1, 1)


def _build(spec: BackboneSpec, num_classes: int, in_chans: int, layout: str) -> nn.Module:
    """The plain network a registry entry describes (``backbone_specs.BACKBONES``)."""
    if spec.family == "cifar":
        w = spec.widths
        return CifarResNet(
            2 + 6 * spec.layers[0],
            (w["c3"], w["c4"], w["c5"]),
            num_classes,
            in_chans,
            spec.shortcut,
        )
    block = ContextBottleneck if spec.block == "bottleneck" else ContextBasicBlock
    return _torchvision(block, spec.layers, num_classes, in_chans, layout)


def stage_modules(model: nn.Module, backbone: str) -> dict[str, nn.Sequential]:
    """Stage name -> the ``nn.Sequential`` of residual blocks in a model from ``build_model``."""
    return {s: getattr(model, attr) for s, attr in get_backbone(backbone).stages.items()}


def context_blocks(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, block)`` for every inserted context block, in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, _ContextSlot) and module.context_block is not None:
            yield f"{name}.{SLOT}", module.context_block


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
    model = _build(spec, num_classes, in_chans, layout)
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
            channels = (res.bn3 if isinstance(res, _Bottleneck) else res.bn2).num_features
            res.insert_context(
                build_block(candidate, channels, min_hidden=min_hidden), placement.position
            )
    return model


__all__ = [
    "BACKBONES",
    "LAYOUTS",
    "SLOT",
    "BackboneSpec",
    "CifarResNet",
    "ContextBasicBlock",
    "ContextBottleneck",
    "PadShortcut",
    "backbone_stages",
    "build_model",
    "context_blocks",
    "get_backbone",
    "module_key",
    "preset_placement",
    "stage_modules",
    "validate_placement",
]
