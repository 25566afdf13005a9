"""The search: space files (``space``), the trial record (``record``), the study storage
(``storage``), the driver (``driver``: the loop, composing ``ledger``, ``proposal``,
``dispatch``, ``claims``, ``rungs`` and ``telling``), the run around it (``run``: set-up,
provenance, outputs, CLI), candidates <-> Optuna parameters and samplers (``sampling``), the
default strategy (``strategy``: expected hypervolume improvement), Ray execution
(``executor``, the only module that imports ray), one trial (``trial``), the live display
(``display``), drivers' heartbeats (``liveness``) and an executor without Ray (``local``).
The engine only: benchmarks live in ``gcsearch.bench``.

Submodules load lazily so ``import gcsearch.search`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Space": "gcsearch.search.space",
    "load_space": "gcsearch.search.space",
    "parse_space": "gcsearch.search.space",
    "SearchConfig": "gcsearch.search.run",
    "run_study": "gcsearch.search.run",
}

__all__ = ["SearchConfig", "Space", "load_space", "parse_space", "run_study"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gcsearch.search' has no attribute {name!r}")
