"""ImageFolder data a user can get wrong: one class folder (nothing to learn: "top1 100 %,
loss nan" otherwise) and an image over PIL's decompression-bomb limit, each one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcsearch.cli import main
from gcsearch.errors import UserError
from gcsearch.tasks import Budget, get_task


def _images(folder: Path, classes: int, per_class: int, side: int) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i}.png")


def test_one_class_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _images(tmp_path / "data", 1, 8, 8)
    with pytest.raises(UserError, match=r"1 class folder \(class0\); allowed: 2 or more"):
        get_task("imagefolder", str(tmp_path / "data"))
    argv = [
        "train",
        "gc",
        "--task",
        "imagefolder",
        "--data",
        str(tmp_path / "data"),
        "--epochs",
        "1",
        "--train-images",
        "4",
        "--val-images",
        "2",
        "--device",
        "cpu",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "allowed: 2 or more class subfolders" in err


def test_image_over_pils_size_limit_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _images(tmp_path / "data", 2, 4, 40)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 40 x 40 = 1600 > 2 x the limit
    task = get_task("imagefolder", str(tmp_path / "data"))
    with pytest.raises(UserError, match="too large to decode") as info:
        task.loaders(0, Budget(train_images=4, val_images=2, batch_size=2, image_size=8))
    assert "\n" not in str(info.value) and "allowed: images up to 400 pixels" in str(info.value)
