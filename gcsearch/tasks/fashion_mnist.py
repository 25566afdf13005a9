"""Fashion-MNIST (Xiao et al., 2017, https://arxiv.org/abs/1708.07747): 28x28 grey images of
10 kinds of clothing, 60,000 for training and 10,000 for test.

Read straight from the four gzipped IDX files (Debian's ``dataset-fashion-mnist`` installs
them under /usr/share/datasets/fashion-mnist/; Debian recompressed them, so no checksum is
checked, only the IDX headers). ``--data DIR`` points at any folder with the same files, gzipped
or not.
"""

from __future__ import annotations

import functools
import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gcsearch.errors import UserError
from gcsearch.tasks import Budget
from gcsearch.tasks.files import Arrays, ArrayTask, data_dir
from gcsearch.tasks.held import fingerprint, hold_parsed

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
HOW = (
    'allowed: a folder holding the four IDX files, given as [task] data = "DIR" in the space '
    "file or --data DIR, or the Debian package dataset-fashion-mnist (apt-get install "
    "dataset-fashion-mnist)"
)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of the shape its header declares."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"fashion-mnist: cannot read {path} ({exc})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise UserError(f"fashion-mnist: {path} is not an unsigned-byte IDX file (bad magic)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise UserError(
            f"fashion-mnist: {path} holds {len(body)} bytes, its header promises {dims}"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"fashion-mnist: {folder / (stem + '.gz')} not found ({HOW})")


@functools.lru_cache(maxsize=4)
def load(folder: Path) -> Arrays:
    """Train and test images (N, 1, 28, 28) uint8 and labels, from ``folder``: read once per
    node and held in the data cache (``gcsearch.tasks.held``)."""
    paths = [_find(folder, stem) for stem in FILES]

    def parse() -> tuple[np.ndarray, ...]:
        tr_x, tr_y, te_x, te_y = (read_idx(path) for path in paths)
        for images, labels, split in ((tr_x, tr_y, "train"), (te_x, te_y, "t10k")):
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise UserError(
                    f"fashion-mnist: {split} images {images.shape} and labels "
                    f"{labels.shape} in {folder} do not match"
                )
        return tr_x[:, None], tr_y.astype(np.int64), te_x[:, None], te_y.astype(np.int64)

    tr_x, tr_y, te_x, te_y = hold_parsed(
        "fashion-mnist",
        str(folder.resolve()),
        fingerprint(paths, "fashion-mnist"),
        parse,
        (np.uint8, np.int64, np.uint8, np.int64),
    )
    return tr_x, tr_y, te_x, te_y


@dataclass
class FashionMNIST(ArrayTask):
    """Fashion-MNIST from IDX files; the default budget is sized for 2 CPU cores.

    25,000 class-balanced training images x 2 epochs of ResNet-8: with ``--threads 2 --eval
    test`` the baseline reached 88.82 ± 0.24 % test top-1 over seeds 0-2 in 48-54 s per trial
    (``gcsearch train none --task fashion-mnist --threads 2 --eval test --seeds 0,1,2``).
    """

    data: str | None = None
    name: str = "fashion-mnist"
    description: str = (
        "Fashion-MNIST 28x28 clothing, 10 classes: the local control (context should matter little)"
    )
    num_classes: int = 10
    input_shape: tuple[int, int, int] = (1, 28, 28)
    backbone: str = "resnet8"
    budget: Budget = field(
        default_factory=lambda: Budget(
            train_images=25000, val_images=5000, epochs=2, batch_size=64, lr=0.2, warmup_epochs=0.5
        )
    )

    def __post_init__(self) -> None:
        self.folder = data_dir(self.data, DEFAULT_DIR, self.name, HOW)

    def arrays(self) -> Arrays:
        return load(self.folder)

    def counts(self) -> tuple[int, int | None]:
        """From the IDX headers only (no decompression of the images)."""
        n = []
        for stem in (FILES[0], FILES[2]):
            path = _find(self.folder, stem)
            with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
                head = f.read(8)
            n.append(struct.unpack(">I", head[4:8])[0] if len(head) == 8 else 0)
        return n[0], n[1]
