"""Analyses of trained models and of the proxies themselves.

``proxy`` (``gcsearch bench proxy``): seed spread, solved/unsolved modes, minimum detectable
difference and split-seed ranking agreement of a proxy task. ``nl`` (``gcsearch analyze nl``):
GCNet's Table 1, query-independence of Non-local attention. ``fidelity`` (``gcsearch analyze
fidelity``): rank agreement of candidates between a cheap and a full budget.
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
