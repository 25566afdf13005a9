from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from gcsearch.errors import UserError
from gcsearch.tasks import Budget, get_task


def _batch(path: Path, n: int, key: str, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    entry = {
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        key: [i % classes for i in range(n)],
    }
    path.write_bytes(pickle.dumps(entry))


def test_cifar10_pickle_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _batch(folder / f"data_batch_{i}", 10, "labels", 10, i)
    _batch(folder / "test_batch", 20, "labels", 10, 9)
    for data in (tmp_path, folder):  # the root, or the batches folder itself
        task = get_task("cifar10", str(data))
        assert task.summary() == "50 train / 20 test"
    tr, te = task.loaders(
        1, Budget(train_images=30, val_images=10, batch_size=8, eval_split="test")
    )
    assert tr.images().shape == (30, 3, 32, 32) and len(te.images()) == 20 and len(tr) == 3


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _batch(folder / "train", 300, "fine_labels", 100, 0)
    _batch(folder / "test", 100, "fine_labels", 100, 1)
    task = get_task("cifar100", str(tmp_path))
    tr, va = task.loaders(0, Budget(train_images=200, val_images=100))
    assert task.num_classes == 100 and int(tr.y.max()) == 99 and len(va.images()) == 100


def test_missing_cifar_is_one_line_with_the_fix(tmp_path: Path) -> None:
    task = get_task("cifar10", str(tmp_path))
    with pytest.raises(UserError) as err:
        task.loaders(0, task.budget)
    msg = str(err.value)
    assert "data_batch_1 not found" in msg and "download=True" in msg and "\n" not in msg
    assert task.summary().startswith("MISSING")


def test_corrupt_cifar_batch(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(b"not a pickle")
    (folder / "test").write_bytes(b"")
    with pytest.raises(UserError, match="cannot read"):
        get_task("cifar100", str(tmp_path)).loaders(0, Budget())
