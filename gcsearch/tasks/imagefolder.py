"""A user's own images: one subfolder per class, read with ``torchvision.datasets.ImageFolder``.

``--data DIR`` is either a folder of class subfolders (the training split; no test split), or
holds ``train/`` and ``val/`` (or ``test/``) folders of class subfolders, the second being the
test split. A split's images are decoded to ``budget.image_size`` (S x S, or [H, W]; default
32 x 32) without ever cropping: each image is scaled to fit with its aspect kept and centred on
black padding (letterboxed), so a wide image keeps both its ends. Decoding runs on
``DECODE_THREADS`` threads (Pillow decodes and resizes without the GIL), once per node and
size: the uint8 array is cached on disk and mapped by every worker (``gcsearch.tasks.held``), so
a rerun decodes nothing and the budget's subsets are rows of that one array.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gcsearch.errors import UserError
from gcsearch.tasks import Budget
from gcsearch.tasks.batches import TensorBatches, balanced_indices
from gcsearch.tasks.files import ArrayTask, data_dir, held_loaders
from gcsearch.tasks.held import fingerprint, hold

DEFAULT_SIZE = 32
HOW = (
    "allowed: a folder of class subfolders, or one holding train/ and val/ of them, given as "
    '[task] data = "DIR" in the space file or --data DIR'
)
TEST_NAMES = ("val", "test")


def _split_dirs(root: Path) -> tuple[Path, Path | None]:
    if (root / "train").is_dir():
        test = next((root / n for n in TEST_NAMES if (root / n).is_dir()), None)
        return root / "train", test
    return root, None


@functools.lru_cache(maxsize=8)
def scan(folder: Path) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """Class names and (path, label) samples of an ImageFolder tree."""
    from torchvision.datasets import ImageFolder

    try:
        ds = ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:
        raise UserError(f"imagefolder: no images under {folder} ({exc}; {HOW})") from None
    return tuple(ds.classes), tuple((p, int(t)) for p, t in ds.samples)


#: threads that decode a split (``GCSEARCH_DECODE_THREADS``, else the usable cores, at most 8)
DECODE_THREADS = int(os.environ.get("GCSEARCH_DECODE_THREADS", 0)) or min(
    8, len(os.sched_getaffinity(0))
)
#: images this process has decoded since it started (tests and ``bench data`` read it)
DECODED = [0]
_count = threading.Lock()


def held_split(folder: Path, size: tuple[int, int]) -> torch.Tensor:
    """Every image of ``folder`` as uint8 (N, 3, H, W) at ``size`` (H, W), decoded once per node
    and cached on disk; a changed, added or removed file decodes the split again."""
    paths = tuple(p for p, _ in scan(folder)[1])
    key = fingerprint(paths, "imagefolder", tuple(size))
    return hold(
        "imagefolder",
        f"{folder.resolve()}:{size[0]}x{size[1]}",
        key,
        lambda: (len(paths), 3, *size),
        lambda out: decode_into(paths, out),
    )


def decode_into(paths: tuple[str, ...], out: np.ndarray) -> None:
    """Decode ``paths`` into ``out`` (N, 3, H, W) uint8 on ``DECODE_THREADS`` threads."""
    chunks = [range(i, min(i + 64, len(paths))) for i in range(0, len(paths), 64)]

    def work(rows: range) -> None:
        for i in rows:
            out[i] = decode_one(paths[i], out.shape[2:])
        with _count:
            DECODED[0] += len(rows)

    with ThreadPoolExecutor(max(1, DECODE_THREADS)) as pool:
        list(pool.map(work, chunks))  # re-raises a thread's UserError (an unreadable image)


def decode_one(path: str, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (3, H, W) for ``size`` (H, W): scaled to fit inside it with its
    aspect kept, centred on zero padding; never cropped, so every part of an image survives."""
    from PIL import Image

    h, w = size
    out = np.zeros((3, h, w), dtype=np.uint8)
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = min(w / img.size[0], h / img.size[1])
            fit = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
            if fit != img.size:
                img = img.resize(fit, Image.Resampling.BILINEAR)
            top, left = (h - fit[1]) // 2, (w - fit[0]) // 2
            out[:, top : top + fit[1], left : left + fit[0]] = np.asarray(img).transpose(2, 0, 1)
    except Image.DecompressionBombError as exc:  # over PIL's pixel limit: refused, not read
        raise UserError(
            f"imagefolder: image {path} is too large to decode "
            f"({_first_line(exc)}; allowed: images up to "
            f"{Image.MAX_IMAGE_PIXELS:,} pixels)"
        ) from None
    except OSError as exc:
        raise UserError(f"imagefolder: cannot read image {path} ({exc})") from None
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


@dataclass
class ImageFolderTask(ArrayTask):
    """Class-subfolder images from ``data``; num_classes is the number of subfolders."""

    data: str | None = None
    name: str = "imagefolder"
    description: str = "your images: DIR/<class>/*.jpg, optionally DIR/train + DIR/val"
    num_classes: int = 0
    input_shape: tuple[int, int, int] = (3, DEFAULT_SIZE, DEFAULT_SIZE)
    backbone: str = "resnet20"
    budget: Budget = field(
        default_factory=lambda: Budget(
            train_images=1000,
            val_images=200,
            epochs=10,
            batch_size=64,
            lr=0.1,
            warmup_epochs=1.0,
            augment="flip-crop",
        )
    )

    def __post_init__(self) -> None:
        self.root = None if self.data is None else data_dir(self.data, "", self.name, HOW)
        if self.root is not None:
            folder = _split_dirs(self.root)[0]
            classes = scan(folder)[0]
            if len(classes) < 2:  # one class: top-1 is 100 % and the loss nan, by construction
                raise UserError(
                    f"imagefolder: {folder} holds {len(classes)} class folder"
                    f"{'' if len(classes) == 1 else 's'} ({', '.join(classes)}); "
                    "allowed: 2 or more class subfolders"
                )
            self.num_classes = len(classes)

    def _samples(self, test: bool) -> tuple[tuple[str, ...], torch.Tensor]:
        if self.root is None:
            raise UserError(f"imagefolder: no data folder ({HOW})")
        train_dir, test_dir = _split_dirs(self.root)
        folder = test_dir if test else train_dir
        if folder is None:
            raise UserError(f"eval_split: {self.root} has no val/ or test/ folder (use val)")
        classes, samples = scan(folder)
        if test and classes != scan(train_dir)[0]:
            raise UserError(f"imagefolder: classes of {folder} differ from those of {train_dir}")
        return tuple(p for p, _ in samples), torch.tensor([t for _, t in samples])

    def counts(self) -> tuple[int, int | None]:
        """Images in the training split and in val/ (or test/), None without one."""
        if self.root is None:
            raise UserError(f"imagefolder: no data folder ({HOW})")
        has_test = _split_dirs(self.root)[1] is not None
        return len(self._samples(False)[0]), len(self._samples(True)[0]) if has_test else None

    def summary(self) -> str:
        if self.root is None:
            return f"needs --data DIR ({HOW})"
        try:
            n_train, n_test = self.counts()
        except UserError as exc:
            return f"MISSING: {exc}"
        tail = f" / {n_test} test" if n_test is not None else " (no test split)"
        return f"{n_train} train in {self.num_classes} classes{tail}"

    def loaders(self, seed: int, budget: Budget) -> tuple[TensorBatches, TensorBatches]:
        size = self.shape_at(budget)[1:]
        paths, labels = self._samples(False)  # the test split's problems are said here too
        if budget.eval_split == "test":
            self._samples(True)
        n_val = budget.val_images if budget.eval_split == "val" else 0
        try:
            picks = balanced_indices(labels, (budget.train_images, n_val), budget.data_seed)
        except ValueError as exc:
            raise UserError(
                f"budget: {budget.train_images} train + {n_val} val images do not "
                f"fit the {len(paths)} images of {self.root} ({exc})"
            ) from None
        train_dir, test_dir = _split_dirs(self.root)
        x = held_split(train_dir, size)
        if budget.eval_split == "val":
            evaluation = (x, picks[1], labels[picks[1]])
        else:
            assert test_dir is not None  # _samples(True) said so
            evaluation = (held_split(test_dir, size), None, self._samples(True)[1])
        return held_loaders((x, picks[0], labels[picks[0]]), evaluation, seed, budget, size)
