from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcsearch.errors import UserError
from gcsearch.tasks import Budget, get_task


def _images(folder: Path, classes: int, per_class: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")


def test_flat_folder_is_the_training_split(tmp_path: Path) -> None:
    _images(tmp_path, 3, 6, (20, 12))
    task = get_task("imagefolder", str(tmp_path))
    assert task.num_classes == 3 and "18 train" in task.summary()
    tr, va = task.loaders(0, Budget(train_images=9, val_images=6, batch_size=4, image_size=16))
    assert tr.x.shape == (9, 3, 16, 16) and va.x.shape == (6, 3, 16, 16)
    with pytest.raises(UserError, match="no val/ or test/"):
        task.loaders(0, Budget(train_images=9, eval_split="test"))


def test_train_and_val_folders(tmp_path: Path) -> None:
    _images(tmp_path / "train", 2, 5, (8, 8))
    _images(tmp_path / "val", 2, 3, (8, 8))
    task = get_task("imagefolder", str(tmp_path))
    _, test = task.loaders(0, Budget(train_images=4, val_images=2, eval_split="test", image_size=8))
    assert len(test.x) == 6 and sorted(set(test.y.tolist())) == [0, 1]


def test_imagefolder_needs_data(tmp_path: Path) -> None:
    task = get_task("imagefolder")
    assert "needs --data" in task.summary()
    with pytest.raises(UserError, match="--data"):
        task.loaders(0, task.budget)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        get_task("imagefolder", str(tmp_path / "empty"))
