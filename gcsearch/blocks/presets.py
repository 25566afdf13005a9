"""Build a published preset from its registry record (``gcsearch.spec.PRESETS``).

Every fact about a preset (paper, what it follows, init, placement, deviations, the module and
its options) lives in its ``Preset`` record; this module only turns ``builder`` (``"module:Class"``)
into the class and calls it. ``min_hidden`` bounds the bottleneck width of SE/GC/CBAM as for
searchable blocks; it never binds at ResNet-50 widths (C >= 256 with r = 16 gives h >= 16).
"""

from __future__ import annotations

import importlib

from torch import nn

from gcsearch.spec import PRESETS, Preset


def preset_class(preset: Preset) -> type[nn.Module]:
    """The module class ``preset.builder`` names."""
    module, _, name = preset.builder.partition(":")
    return getattr(importlib.import_module(module), name)


def preset_kwargs(preset: Preset, min_hidden: int = 8) -> dict[str, object]:
    """Keyword arguments (besides ``channels``) that build ``preset``."""
    kwargs: dict[str, object] = dict(preset.options)
    if preset.spec is not None:
        kwargs["spec"] = preset.spec
    if preset.min_hidden:
        kwargs["min_hidden"] = min_hidden
    return kwargs


def build_preset(name: str, channels: int, *, min_hidden: int = 8) -> nn.Module:
    """The module of preset ``name`` for ``channels`` inputs, initialized as its record says."""
    preset = PRESETS[name]
    return preset_class(preset)(channels, **preset_kwargs(preset, min_hidden))
