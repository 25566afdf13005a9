from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gcsearch.errors import UserError
from gcsearch.tasks import Budget, get_task
from gcsearch.tasks.imagefolder import decode_one


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
    assert tr.images().shape == (9, 3, 16, 16) and va.images().shape == (6, 3, 16, 16)
    with pytest.raises(UserError, match="no val/ or test/"):
        task.loaders(0, Budget(train_images=9, eval_split="test"))


def test_train_and_val_folders(tmp_path: Path) -> None:
    _images(tmp_path / "train", 2, 5, (8, 8))
    _images(tmp_path / "val", 2, 3, (8, 8))
    task = get_task("imagefolder", str(tmp_path))
    _, test = task.loaders(0, Budget(train_images=4, val_images=2, eval_split="test", image_size=8))
    assert len(test.images()) == 6 and sorted(set(test.y.tolist())) == [0, 1]


def test_imagefolder_needs_data(tmp_path: Path) -> None:
    task = get_task("imagefolder")
    assert "needs --data" in task.summary()
    with pytest.raises(UserError, match="--data"):
        task.loaders(0, task.budget)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        get_task("imagefolder", str(tmp_path / "empty"))


def _strip(path: Path, left: tuple[int, int, int], right: tuple[int, int, int]) -> None:
    """A 16 x 64 strip: one 16 x 16 object at each end, black between them."""
    pixels = np.zeros((16, 64, 3), dtype=np.uint8)
    pixels[:, :16], pixels[:, 48:] = left, right
    Image.fromarray(pixels).save(path)


def test_wide_strip_keeps_both_ends(tmp_path: Path) -> None:
    """A 16 x 64 two-object strip is never cropped: at the default 32 x 32 it is scaled to fit
    (8 x 32) and padded above and below; at image_size [16, 64] it is the strip itself."""
    red, blue = (255, 0, 0), (0, 0, 255)
    for c, (left, right) in enumerate(((red, blue), (blue, red))):
        (tmp_path / f"class{c}").mkdir()
        for i in range(4):
            _strip(tmp_path / f"class{c}" / f"{i}.png", left, right)
    path = str(tmp_path / "class0" / "0.png")
    square = torch.from_numpy(decode_one(path, (32, 32))).int()
    assert square[:, 12:20, :4].float().mean(dim=(1, 2)).tolist() == [255.0, 0.0, 0.0]
    assert square[:, 12:20, -4:].float().mean(dim=(1, 2)).tolist() == [0.0, 0.0, 255.0]
    assert square[:, :11].sum() == 0 and square[:, 21:].sum() == 0  # padding, not image
    assert (
        torch.from_numpy(decode_one(path, (16, 64)))
        .permute(1, 2, 0)[:, :16]
        .eq(torch.tensor(red))
        .all()
    )
    task = get_task("imagefolder", str(tmp_path))
    tr, _ = task.loaders(0, Budget(train_images=4, val_images=2, batch_size=2))
    assert tr.shape == task.shape_at(Budget()) == (3, 32, 32)
    tr, _ = task.loaders(0, Budget(train_images=4, val_images=2, batch_size=2, image_size=(16, 64)))
    ends = tr.images()[:, :, :, :16].mean(dim=(2, 3)), tr.images()[:, :, :, 48:].mean(dim=(2, 3))
    assert tr.shape == (3, 16, 64) and not torch.allclose(ends[0], ends[1])
