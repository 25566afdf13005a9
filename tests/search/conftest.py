"""Search tests: one torch thread, quiet Optuna, and no Ray left running after a test."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import optuna
import pytest
import torch

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _no_ray_left() -> Iterator[None]:
    yield
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
