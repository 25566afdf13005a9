"""gcsearch: search and ablate global-context blocks (NL, SNL, SE, GC, CBAM) for CNNs.

Heavy modules (torch, fvcore, ray, optuna) load on first use, so ``import gcsearch`` and
``gcsearch --help`` stay fast.

Example (a notebook)::

    import gcsearch
    run = gcsearch.run("quick", seeds=3)     # or gcsearch.open_run("runs/quick")
    run.front, run.frame, run.curves, run.study
    run.export("my_block.py")
"""

from __future__ import annotations

import importlib
from typing import Any

from gcsearch.errors import UserError
from gcsearch.spec import AXES, PRESETS, BlockSpec, Candidate, Objective, Placement, SpecError

__version__ = "0.1.0"

_LAZY = {
    "run": "gcsearch.api",
    "open_run": "gcsearch.api",
    "SearchRun": "gcsearch.api",
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
    "SearchRun",
    "SpecError",
    "TrialResult",
    "UserError",
    "build_block",
    "build_model",
    "count_cost",
    "open_run",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gcsearch' has no attribute {name!r}")
