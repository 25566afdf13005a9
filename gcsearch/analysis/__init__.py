"""Analyses of trained models and of a search's budgets (a proxy task's own seed spread is a
benchmark: ``gcsearch.bench.proxy``).

``nl`` (``gcsearch analyze nl``): GCNet's Table 1, query-independence of Non-local attention.
``fidelity`` (``gcsearch analyze fidelity``): rank agreement of candidates between a cheap and a
full budget.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["run_analyze"]

#: what -> "module:function" taking the parsed args
ANALYSES = {
    "nl": "gcsearch.analysis.nl:run_analyze_nl",
    "fidelity": "gcsearch.analysis.fidelity:run_analyze_fidelity",
}


def run_analyze(args: argparse.Namespace) -> int:
    """Dispatch ``gcsearch analyze WHAT`` (the imports stay lazy)."""
    module, func = ANALYSES[args.what].split(":")
    return int(getattr(importlib.import_module(module), func)(args) or 0)
