"""scikit-learn's bundled handwritten digits (8x8, 10 classes, 1,797 images; no download).

Tiny and instant: the task the fast tests train on. scikit-learn ships no test split, so a
fixed class-balanced fifth (360 images, seed 0) is held out as one; the rest is the training
split that budgets draw their training and validation subsets from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from gcsearch.errors import UserError
from gcsearch.tasks import Budget
from gcsearch.tasks.batches import balanced_indices
from gcsearch.tasks.files import Arrays, ArrayTask

TEST_IMAGES = 360


@functools.lru_cache(maxsize=1)
def _digits() -> Arrays:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # an optional dependency: only this task needs it
        raise UserError(
            "task digits needs scikit-learn: pip install 'gcsearch[tasks]' "
            "(or choose another task: gcsearch tasks list)"
        ) from None

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).mul(16).clamp(0, 255).to(torch.uint8).unsqueeze(1)
    y = torch.from_numpy(bunch.target).long()
    rest = torch.ones(len(y), dtype=torch.bool)
    (test,) = balanced_indices(y, (TEST_IMAGES,), seed=0)
    rest[test] = False
    return x[rest], y[rest], x[test], y[test]


@dataclass
class Digits(ArrayTask):
    """8x8 grey digits; ``budget`` trains ResNet-8 on 1,000 images in a few seconds."""

    name: str = "digits"
    description: str = "scikit-learn 8x8 handwritten digits (tiny; for tests)"
    num_classes: int = 10
    input_shape: tuple[int, int, int] = (1, 8, 8)
    backbone: str = "resnet8"
    budget: Budget = field(
        default_factory=lambda: Budget(
            train_images=1000, val_images=300, epochs=8, batch_size=64, lr=0.1, warmup_epochs=1.0
        )
    )

    def arrays(self) -> Arrays:
        return _digits()
