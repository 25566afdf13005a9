"""Search tests: one torch thread and quiet Optuna (no Ray is left running after any test:
``tests/conftest.py``)."""

from __future__ import annotations

import optuna
import torch

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
