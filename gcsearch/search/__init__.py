"""The search: space files (``space``), the Optuna study driver (``study``, with ``sampling``
and ``storage``), Ray execution (``executor``, the only module that imports ray), one trial
(``trial``), successive-halving rungs (``fidelity``), the live display (``display``), executors
without Ray (``local``) and the benchmarks (``bench``).

Submodules load lazily so ``import gcsearch.search`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Space": "gcsearch.search.space",
    "load_space": "gcsearch.search.space",
    "parse_space": "gcsearch.search.space",
    "run_search": "gcsearch.search.run",
    "search": "gcsearch.search.run",
}

__all__ = ["Space", "load_space", "parse_space", "run_search", "search"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gcsearch.search' has no attribute {name!r}")
