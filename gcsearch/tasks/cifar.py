"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009, https://www.cs.toronto.edu/~kriz/cifar.html)
from the standard python-pickle layout on disk, the one ``torchvision.datasets.CIFAR10(root,
download=True)`` writes: ``root/cifar-10-batches-py/data_batch_1..5, test_batch`` and
``root/cifar-100-python/train, test``. Nothing is downloaded at run time.

The pickles are read here rather than through torchvision, whose ``download=False`` still
checks every file's MD5 (so a subset or a re-pickled copy would be refused); these are the
same files, parsed the same way (a dict with ``data`` (N, 3072) uint8 and ``labels`` or
``fine_labels``). As with torchvision, only load pickles from a source you trust.
"""

from __future__ import annotations

import functools
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gcsearch.errors import UserError
from gcsearch.tasks import Budget
from gcsearch.tasks.files import Arrays, ArrayTask, data_dir
from gcsearch.tasks.held import fingerprint, hold_parsed

DEFAULT_ROOT = "data"

#: variant -> (folder, training files, test files, label key, classes)
LAYOUTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str, int]] = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        10,
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels", 100),
}


def _how(variant: str) -> str:
    cls = "CIFAR10" if variant == "cifar10" else "CIFAR100"
    return (
        f'allowed: a folder holding {LAYOUTS[variant][0]}/, given as [task] data = "DIR" in '
        f'the space file or --data DIR (default ./{DEFAULT_ROOT}); python -c "import '
        f"torchvision; torchvision.datasets.{cls}('{DEFAULT_ROOT}', download=True)\" writes it"
    )


def _read(path: Path, label_key: str, variant: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
        raise UserError(f"{variant}: cannot read {path} as a CIFAR batch ({exc!r})") from None
    if len(data) != len(labels):
        raise UserError(f"{variant}: {path} has {len(data)} images but {len(labels)} labels")
    return data, labels


@functools.lru_cache(maxsize=4)
def load(root: Path, variant: str) -> Arrays:
    """Train and test images (N, 3, 32, 32) uint8 and labels of ``variant`` under ``root``,
    parsed once per node and held in the data cache (``gcsearch.tasks.held``)."""
    folder, train_files, test_files, key, _ = LAYOUTS[variant]
    base = root if root.name == folder else root / folder
    splits: list[torch.Tensor] = []
    for split, files in (("train", train_files), ("test", test_files)):
        paths = [base / name for name in files]
        for path in paths:
            if not path.is_file():
                raise UserError(f"{variant}: {path} not found ({_how(variant)})")

        def parse(paths: list[Path] = paths) -> tuple[np.ndarray, ...]:
            parts = [_read(path, key, variant) for path in paths]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

        splits += hold_parsed(
            variant,
            f"{base.resolve()}:{split}",
            fingerprint(paths, variant, split),
            parse,
            (np.uint8, np.int64),
        )
    tr_x, tr_y, te_x, te_y = splits
    return tr_x, tr_y, te_x, te_y


@dataclass
class Cifar10(ArrayTask):
    """CIFAR-10 from disk; the default budget is a GPU-sized proxy (flip-crop augmentation)."""

    data: str | None = None
    name: str = "cifar10"
    description: str = "CIFAR-10 32x32, 10 classes (python pickles on disk)"
    num_classes: int = 10
    input_shape: tuple[int, int, int] = (3, 32, 32)
    backbone: str = "resnet20"
    budget: Budget = field(
        default_factory=lambda: Budget(
            train_images=10000,
            val_images=2000,
            epochs=15,
            batch_size=128,
            lr=0.1,
            warmup_epochs=1.0,
            augment="flip-crop",
        )
    )

    def __post_init__(self) -> None:
        self.root = data_dir(self.data, DEFAULT_ROOT, self.name, _how(self.name))

    def arrays(self) -> Arrays:
        return load(self.root.resolve(), self.name)


@dataclass
class Cifar100(Cifar10):
    """CIFAR-100 (fine labels) from disk."""

    name: str = "cifar100"
    description: str = "CIFAR-100 32x32, 100 fine classes (python pickles on disk)"
    num_classes: int = 100
