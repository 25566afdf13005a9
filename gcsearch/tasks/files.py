"""The shared shape of every task backed by a real data set (files on disk or a package).

A subclass only says how to read its arrays: uint8 images (N, C, H, W) and int labels for the
training split and, where the data set has one, the official test split. ``ArrayTask`` turns
them into a budget's loaders: class-balanced training and validation subsets of the training
split drawn with ``budget.data_seed`` (disjoint, so validation images are never trained on),
normalised per batch on the device with the training subset's per-channel statistics, resized
when ``budget.image_size`` asks for another size (``shape_at``). The arrays stay uint8 and are
indexed, never copied: a subclass that holds them with ``gcsearch.tasks.held`` shares one copy
between the node's workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from gcsearch.errors import UserError
from gcsearch.tasks import Budget, sized
from gcsearch.tasks.batches import TensorBatches, balanced_indices, channel_stats, eval_batch

#: (train images, train labels, test images or None, test labels or None)
Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def data_dir(data: str | None, default: str | Path, name: str, how: str) -> Path:
    """The folder to read: ``data`` if given (it must exist), else ``default``."""
    if data is None:
        return Path(default).expanduser()
    path = Path(data).expanduser()
    if not path.is_dir():
        raise UserError(f"{name}: data folder {data} is not a directory ({how})")
    return path


@dataclass
class ArrayTask:
    """Base of the file-backed tasks; subclasses set the fields and implement ``arrays``."""

    name: str
    description: str
    num_classes: int
    input_shape: tuple[int, int, int]
    backbone: str
    budget: Budget
    #: memory per pixel value of the held images (uint8; ``train.data_bytes`` reads it)
    bytes_per_value: ClassVar[int] = 1

    def arrays(self) -> Arrays:
        """Read the data set (cached per process by the subclass)."""
        raise NotImplementedError

    def shape_at(self, budget: Budget) -> tuple[int, int, int]:
        """The native shape resized as ``budget.image_size`` asks (``loaders`` resizes so)."""
        return sized(self.input_shape, budget.image_size)

    def counts(self) -> tuple[int, int | None]:
        """Images in the training and test splits (subclasses may answer without loading)."""
        tr_x, _, te_x, _ = self.arrays()
        return len(tr_x), None if te_x is None else len(te_x)

    def summary(self) -> str:
        try:
            n_train, n_test = self.counts()
        except UserError as exc:
            return f"MISSING: {exc}"
        test = f" / {n_test} test" if n_test is not None else " (no test split)"
        return f"{n_train} train{test}"

    def loaders(self, seed: int, budget: Budget) -> tuple[TensorBatches, TensorBatches]:
        tr_x, tr_y, te_x, te_y = self.arrays()
        n_val = budget.val_images if budget.eval_split == "val" else 0
        try:
            picks = balanced_indices(tr_y, (budget.train_images, n_val), budget.data_seed)
        except ValueError as exc:
            raise UserError(
                f"budget: {budget.train_images} train + {n_val} val images do not fit the "
                f"{len(tr_y)} training images of {self.name} ({exc})"
            ) from None
        if budget.eval_split == "val":
            x_eval, i_eval, y_eval = tr_x, picks[1], tr_y[picks[1]]
        elif te_x is None or te_y is None:
            raise UserError(f"eval_split: {self.name} has no test split (use val)")
        else:
            x_eval, i_eval, y_eval = te_x, None, te_y
        return held_loaders(
            (tr_x, picks[0], tr_y[picks[0]]),
            (x_eval, i_eval, y_eval),
            seed,
            budget,
            self.shape_at(budget)[1:],
        )


#: (images, the rows of them a set uses or None for all, the labels of those rows)
Held = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]


def held_loaders(
    train: Held, evaluation: Held, seed: int, budget: Budget, size: tuple[int, int]
) -> tuple[TensorBatches, TensorBatches]:
    """The train and evaluation batches of held images: both normalised per batch with the
    training rows' statistics and resized to ``size``, the training ones shuffled by ``seed``
    and augmented as ``budget.augment`` says."""
    stats = channel_stats(train[0], train[1])
    return (
        TensorBatches(
            train[0],
            train[2],
            budget.batch_size,
            shuffle=True,
            seed=seed,
            augment=budget.augment,
            index=train[1],
            stats=stats,
            size=size,
        ),
        TensorBatches(
            evaluation[0],
            evaluation[2],
            eval_batch(budget.batch_size),
            index=evaluation[1],
            stats=stats,
            size=size,
        ),
    )
