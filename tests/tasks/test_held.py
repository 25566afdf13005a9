"""Data held once: uint8 images cached on disk, mapped by every worker, normalised per batch."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gcsearch.errors import IOFault, UserError
from gcsearch.tasks import Budget, get_task, held, imagefolder
from gcsearch.tasks.batches import TensorBatches, channel_stats


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data cache; this process's mappings and scans forgotten."""
    monkeypatch.setenv(held.CACHE_ENV, str(tmp_path / "cache"))
    held.forget()
    imagefolder.scan.cache_clear()
    return tmp_path / "cache"


def _folder(root: Path, classes: int = 2, per_class: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (10 + i, 14, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i}.png")
    return root


BUDGET = Budget(train_images=12, val_images=6, batch_size=4, image_size=8, augment="flip-crop")


def _fresh_process() -> None:
    """As a new worker process would start: nothing scanned, nothing mapped."""
    held.forget()
    imagefolder.scan.cache_clear()


def test_rerun_decodes_nothing_and_a_changed_file_decodes_again(cache: Path, tmp_path: Path):
    data = _folder(tmp_path / "imgs")
    task = get_task("imagefolder", str(data))
    before = imagefolder.DECODED[0]
    first = task.loaders(0, BUDGET)[0].images()
    assert imagefolder.DECODED[0] - before == 20  # the whole split, once
    assert len(list(cache.glob("imagefolder-*.npy"))) == 1
    _fresh_process()
    again = get_task("imagefolder", str(data)).loaders(0, BUDGET)[0].images()
    assert imagefolder.DECODED[0] - before == 20 and torch.equal(first, again)  # a cache hit
    # a file rewritten with other pixels (other size and time): the split is decoded again
    target = data / "c0" / "3.png"
    Image.fromarray(np.full((9, 9, 3), 7, dtype=np.uint8)).save(target)
    os.utime(target, ns=(1, 1))
    _fresh_process()
    x = imagefolder.held_split(data, (8, 8))  # must show the new pixels
    assert imagefolder.DECODED[0] - before == 40
    assert int(x[3].max()) == 7 and int(x[3][:, 0].max()) == 7  # c0/3.png is sample 3
    assert len(list(cache.glob("imagefolder-*.npy"))) == 1  # the stale array was removed
    # an added file changes the list: decoded again
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(data / "c1" / "new.png")
    _fresh_process()
    assert len(imagefolder.held_split(data, (8, 8))) == 21
    assert imagefolder.DECODED[0] - before == 61


def _worker(data: str, cache: str, out: multiprocessing.Queue) -> None:  # pragma: no cover
    """One search worker: loads the task's batches, reports what it decoded and mapped."""
    os.environ[held.CACHE_ENV] = cache
    task = get_task("imagefolder", data)
    tr, _ = task.loaders(0, BUDGET)
    maps = [line.split() for line in Path("/proc/self/maps").read_text().splitlines()]
    ptr = tr.x.untyped_storage().data_ptr()
    mapped = [
        (m[3], m[4], m[5])  # device, inode, path of the region holding the batches' images
        for m in maps
        if len(m) == 6 and int(m[0].split("-")[0], 16) <= ptr < int(m[0].split("-")[1], 16)
    ]
    out.put((imagefolder.DECODED[0], mapped))


def test_two_workers_share_one_mapped_copy(cache: Path, tmp_path: Path) -> None:
    """Two worker processes started together: one decodes (the other waits on the lock), and
    both read their images from a mapping of the same cache file, never a private copy."""
    data = _folder(tmp_path / "imgs")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(data), str(cache), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert sorted(d for d, _ in results) == [0, 20]
    (one,), (two,) = (m for _, m in results)
    assert one == two and one[2].startswith(str(cache)) and one[2].endswith(".npy")


def _old_normalise(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The float path this replaced: statistics reduced in float32 over the whole set."""
    ref = reference.float() / 255
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    return (x.float() / 255 - mean) / std


@pytest.mark.parametrize("augment", ["none", "flip", "flip-crop"])
def test_held_uint8_batches_equal_the_float_path(augment: str) -> None:
    """uint8 rows picked by index, normalised per batch, against the old float32 set: equal
    to 1e-5 (the statistics are now exact, so values differ by float32 rounding only, <= 5e-7
    measured) with the same order, flips and crops from the same seed."""
    x = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    idx = torch.randperm(50)[:40]
    y = torch.arange(40) % 4
    old = TensorBatches(_old_normalise(x[idx], x[idx]), y, 8, shuffle=True, seed=3, augment=augment)
    new = TensorBatches(
        x, y, 8, shuffle=True, seed=3, augment=augment, index=idx, stats=channel_stats(x, idx)
    )
    old.to("cpu"), new.to("cpu")
    for _ in range(2):
        for (a, ya), (b, yb) in zip(old, new, strict=True):
            assert torch.equal(ya, yb) and torch.allclose(a, b, rtol=0, atol=1e-5)
            assert b.dtype == torch.float32 and b.is_contiguous(memory_format=torch.channels_last)
    assert x.storage_offset() == 0 and new.x is x  # the held array itself, not a copy


def test_channel_stats_are_exact_for_uint8() -> None:
    x = torch.randint(0, 256, (30, 2, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(x)
    ref = x.double() / 255
    assert torch.equal(mean.view(-1), ref.mean(dim=(0, 2, 3)).float())
    assert torch.allclose(std.view(-1).double(), ref.std(dim=(0, 2, 3)), rtol=1e-7, atol=0)


def _old_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """The replaced crop: offsets made on the host, grouped with unique().tolist()."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=gen)
    out = torch.empty_like(x)
    for dy, dx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().view(-1)
        out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


def test_device_crop_equals_the_grouped_crop() -> None:
    from gcsearch.tasks.batches import random_crop

    x = torch.randn(33, 3, 6, 7)
    a = random_crop(x, 2, torch.Generator().manual_seed(5))
    b = _old_crop(x, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)


#: ops that make a CUDA device wait for the host (or a value go back to it)
SYNCING = ("_local_scalar_dense", "item", "nonzero", "unique", "masked_select", "is_nonzero")


def _ops(fn) -> list[str]:
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Record() as rec:
        fn()
    return rec.ops


def test_a_training_pass_never_syncs_with_the_host() -> None:
    """Every op of a shuffled, flipped and cropped pass over held uint8 images, recorded at
    torch's dispatcher: none of them reads a value back (the replaced crop did, and is caught)."""
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    idx = torch.arange(0, 40, 2)
    tb = TensorBatches(
        x, idx % 3, 4, shuffle=True, augment="flip-crop", index=idx, stats=channel_stats(x, idx)
    )
    ops = _ops(lambda: [b for b in tb])
    assert ops and not [op for op in ops if any(s in op for s in SYNCING)]
    caught = _ops(lambda: _old_crop(torch.randn(8, 3, 4, 4), 2, torch.Generator()))
    assert [op for op in caught if any(s in op for s in SYNCING)]


def test_an_unwritable_cache_is_one_io_fault(tmp_path: Path, monkeypatch) -> None:
    in_the_way = tmp_path / "file"
    in_the_way.write_text("")
    monkeypatch.setenv(held.CACHE_ENV, str(in_the_way / "cache"))
    held.forget()
    data = _folder(tmp_path / "imgs", per_class=3)
    task = get_task("imagefolder", str(data))
    with pytest.raises(IOFault, match=r"data cache: .*GCSEARCH_CACHE") as info:
        task.loaders(0, Budget(train_images=4, val_images=2, batch_size=2, image_size=8))
    assert "\n" not in str(info.value)


def test_cifar_pickles_are_parsed_once_per_node(cache: Path, tmp_path: Path, monkeypatch):
    import pickle

    from gcsearch.tasks import cifar

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1] * 2}
        (folder / name).write_bytes(pickle.dumps(entry))
    reads: list[str] = []
    real = cifar._read
    monkeypatch.setattr(cifar, "_read", lambda p, *a: (reads.append(p.name), real(p, *a))[1])
    cifar.load.cache_clear()
    first = cifar.load((tmp_path / "data").resolve(), "cifar10")
    assert reads and first[0].dtype == torch.uint8
    n, reads[:] = len(reads), []
    cifar.load.cache_clear()
    held.forget()
    again = cifar.load((tmp_path / "data").resolve(), "cifar10")
    assert not reads and n and all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def _hold_ones(kind: str, n: int = 64) -> torch.Tensor:
    return held.hold(kind, f"src-{kind}", "k", lambda: (n,), lambda out: out.fill(7))


def test_a_bounded_cache_removes_the_arrays_used_longest_ago(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$GCSEARCH_CACHE_MAX: once a new array is written, the arrays used longest ago go until the
    folder fits; mapping an array counts as using it; the new one always stays."""
    a = _hold_ones("a")
    one = next(cache.glob("a-*.npy")).stat().st_size
    monkeypatch.setenv(held.CACHE_MAX_ENV, str(2 * one + one // 2))  # room for two arrays
    _hold_ones("b")
    path_a, path_b = next(cache.glob("a-*.npy")), next(cache.glob("b-*.npy"))
    os.utime(path_a, ns=(1_000, 1_000))  # a used long ago ...
    os.utime(path_b, ns=(2_000, 2_000))
    held.forget()
    _hold_ones("a")  # ... and again now (a new worker maps it)
    assert path_a.stat().st_mtime_ns > 2_000
    _hold_ones("c")
    assert sorted(p.name[0] for p in cache.glob("*.npy")) == ["a", "c"]  # b went
    assert int(a.sum()) == 7 * 64  # a mapping of a removed or kept array stays readable
    monkeypatch.setenv(held.CACHE_MAX_ENV, "1")  # smaller than any array: the new one stays
    _hold_ones("d")
    assert [p.name[0] for p in cache.glob("*.npy")] == ["d"]


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "5 X"])
def test_a_cache_bound_that_is_not_a_size_is_a_one_line_error(
    cache: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(held.CACHE_MAX_ENV, value)
    with pytest.raises(UserError, match=r"GCSEARCH_CACHE_MAX=.* is not a size \(allowed: "):
        _hold_ones("e")
    monkeypatch.setenv(held.CACHE_MAX_ENV, "1.5G")
    assert held.cache_max() == int(1.5 * 1024**3)
