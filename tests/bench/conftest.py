"""Benchmark tests: one torch thread, quiet Optuna, and the search tests' helpers
(``_search_helpers``, ``_bench_helpers``: tiny spaces and made-up exhaustive tables)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
