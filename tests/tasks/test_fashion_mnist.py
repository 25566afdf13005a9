from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

from gcsearch.errors import UserError
from gcsearch.tasks import Budget, get_task
from gcsearch.tasks.fashion_mnist import DEFAULT_DIR, FILES, read_idx


def _write_idx(path: Path, data: torch.Tensor, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    raw = header + data.to(torch.uint8).numpy().tobytes()
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _fake_fashion(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> None:
    gen = torch.Generator().manual_seed(0)
    for stem, n in zip(FILES[::2], (n_train, n_test), strict=True):
        _write_idx(folder / stem, torch.randint(0, 256, (n, 28, 28), generator=gen), gz)
    for stem, n in zip(FILES[1::2], (n_train, n_test), strict=True):
        _write_idx(folder / stem, torch.arange(n) % 10, gz)


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_files_written_here(tmp_path: Path, gz: bool) -> None:
    _fake_fashion(tmp_path, gz=gz)
    task = get_task("fashion-mnist", str(tmp_path))
    assert task.summary() == "60 train / 20 test"
    budget = Budget(train_images=30, val_images=20, epochs=1, batch_size=10)
    tr, va = task.loaders(0, budget)
    assert tr.images().shape == (30, 1, 28, 28) and va.images().shape == (20, 1, 28, 28)
    assert torch.bincount(tr.y, minlength=10).tolist() == [3] * 10
    _, test = task.loaders(0, budget.replace(eval_split="test"))
    assert len(test.images()) == 20


def test_bad_idx_header_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 3) + b"abc")  # float type code
    with pytest.raises(UserError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "y-idx1-ubyte"
    short.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"ab")
    with pytest.raises(UserError, match="header promises"):
        read_idx(short)


def test_missing_files_name_the_path_and_the_package(tmp_path: Path) -> None:
    task = get_task("fashion-mnist", str(tmp_path))
    with pytest.raises(UserError, match="dataset-fashion-mnist") as err:
        task.loaders(0, task.budget)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="not a directory"):
        get_task("fashion-mnist", str(tmp_path / "nope"))


def test_budget_too_large_for_the_data(tmp_path: Path) -> None:
    _fake_fashion(tmp_path)
    task = get_task("fashion-mnist", str(tmp_path))
    with pytest.raises(UserError, match="do not fit"):
        task.loaders(0, Budget(train_images=60, val_images=10))


@pytest.mark.skipif(not Path(DEFAULT_DIR).is_dir(), reason=f"{DEFAULT_DIR} not installed")
def test_real_fashion_mnist() -> None:
    task = get_task("fashion-mnist")
    assert task.summary() == "60000 train / 10000 test"
    tr, te = task.loaders(0, Budget(train_images=100, val_images=10, eval_split="test"))
    assert tr.images().shape == (100, 1, 28, 28) and te.images().shape == (10000, 1, 28, 28)
    assert sorted(torch.unique(te.y).tolist()) == list(range(10))
