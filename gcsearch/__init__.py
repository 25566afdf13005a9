"""gcsearch: search and ablate global-context blocks (NL, SNL, SE, GC, CBAM) for CNNs.

Heavy modules (torch, fvcore, ray, optuna) load on first use, so ``import gcsearch`` and
``gcsearch --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from gcsearch.errors import UserError
from gcsearch.spec import AXES, PRESETS, BlockSpec, Candidate, Objective, Placement, SpecError

__version__ = "0.1.0"

_LAZY = {
    "build_block": "gcsearch.blocks",
    "build_model": "gcsearch.backbones",
    "count_cost": "gcsearch.cost",
    "TrialResult": "gcsearch.result",
}

__all__ = [
    "AXES",
    "PRESETS",
    "BlockSpec",
    "Candidate",
    "Objective",
    "Placement",
    "SpecError",
    "TrialResult",
    "UserError",
    "build_block",
    "build_model",
    "count_cost",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gcsearch' has no attribute {name!r}")
