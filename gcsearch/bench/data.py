"""``gcsearch bench data``: the memory a node spends on a file task's images, and what a rerun
decodes.

It writes a generated ImageFolder (``--images`` JPEGs of ``--size`` x ``--size`` in 10 class
folders) and an empty data cache into a scratch folder, then runs the data path of a search in
``--workers`` fresh worker processes started together, twice: a first run (the cache is empty)
and a rerun (new processes, the same cache). Each worker does what a trial does before and
while it trains: ``task.loaders(seed, budget)``, ``.to('cpu')``, one pass over the shuffled,
flipped and cropped training batches and one over the evaluation batches. The budget takes
every image (train + val = the folder), so the held array is the folder's whole uint8 size.

The measure is the data's proportional set size (PSS, from ``/proc/PID/smaps``): each resident
page counts 1/k in each of the k processes that map it. Summed over the workers, the PSS of
their mappings of the data cache counts the shared copy once; the growth of their anonymous
PSS (after the pass, every worker alive, minus before loading) counts any private copy of the
data, the batches and the loaders' own tensors in full. Their sum, against the images' uint8
size, is the figure issue 20 bounds (<= 1.3x). Library pages, whose PSS moves whenever another
process maps or drops the same files, are left out; the growth of RSS (a shared page counted in
every process) is printed beside it. Each worker first runs the same path on a small warm-up
folder (imports, torch's first allocations) and every reading follows ``malloc_trim``, so the
growth is what the data holds, not code or the heap's slack from batches already freed.
Figures, never assertions; ``--out`` writes them as JSON.

Example:
    gcsearch bench data --out benchmarks/bench-data.json
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLASSES = 10
#: the readings each worker reports (bytes)
KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_held")
#: images of the warm-up folder: one full batch of each set, as the measured run reads them
WARM = 320


def smaps(held: str) -> dict[str, int]:
    """This process's memory in bytes after glibc returned its freed heap (``malloc_trim``):
    Rss and Pss_Anon (smaps_rollup), and ``Pss_held``, the PSS of its mappings of files under
    ``held`` (the data cache)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    out: dict[str, int] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        out[name] = int(value.split()[0]) * 1024
    out["Pss_held"], inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):  # a mapping's first line
            inside = len(head) >= 6 and head[5].startswith(held)
        elif inside and head[:1] == ["Pss:"]:
            out["Pss_held"] += int(head[1]) * 1024
    return out


def write_folder(root: Path, images: int, size: int, seed: int = 0) -> None:
    """``images`` JPEGs of ``size`` x ``size`` in ``CLASSES`` class folders: noise tinted by
    class, so decoding does real work."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        c = i % CLASSES
        pixels = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
        pixels[..., c % 3] += np.uint8(55)
        Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.jpg", quality=90)


def _data_path(data: str, budget: dict[str, Any], seed: int) -> tuple[float, float, int]:
    """What a trial does with its data before and while it trains: seconds to make the
    loaders, seconds of one pass over both sets, batches read."""
    from gcsearch.tasks import Budget, get_task

    t0 = time.perf_counter()
    train, evaluation = get_task("imagefolder", data).loaders(seed, Budget.from_dict(budget))
    train.to("cpu"), evaluation.to("cpu")
    loaders_s = time.perf_counter() - t0
    batches = sum(1 for _ in train) + sum(1 for _ in evaluation)
    return loaders_s, time.perf_counter() - t0 - loaders_s, batches


def _worker(
    data: str, warm: str, budget: dict[str, Any], seed: int, barrier: Any, out: Any
) -> None:
    """One slot's data path, measured (runs in a fresh process). The same path on the tiny
    ``warm`` folder first pays the imports and torch's first-use allocations, which are the
    process's, not the data's."""
    import torch

    from gcsearch.tasks import held, imagefolder

    torch.set_num_threads(1)
    small = {**budget, "train_images": WARM - 260, "val_images": 260}  # full batches
    _data_path(warm, small, seed)
    decoded, fills = imagefolder.DECODED[0], sum(held.FILLS.values())
    barrier.wait()  # start together, as a search's slots do
    held_dir = os.path.realpath(os.environ["GCSEARCH_CACHE"])
    before = smaps(held_dir)
    loaders_s, pass_s, batches = _data_path(data, budget, seed)
    barrier.wait()  # both have mapped and read everything: PSS splits the shared pages
    after = smaps(held_dir)
    out.put(
        {
            "pid": os.getpid(),
            "decoded": imagefolder.DECODED[0] - decoded,
            "cache_fills": sum(held.FILLS.values()) - fills,
            "loaders_s": loaders_s,
            "pass_s": pass_s,
            "batches": batches,
            "before": {k: before[k] for k in KEYS},
            "after": {k: after[k] for k in KEYS},
        }
    )
    barrier.wait()  # stay mapped until every worker has measured


def run_workers(
    data: Path, warm: Path, cache: Path, budget: dict[str, Any], workers: int
) -> dict[str, Any]:
    """``workers`` fresh processes loading the task together; their figures and the sums."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    old = os.environ.get("GCSEARCH_CACHE")
    os.environ["GCSEARCH_CACHE"] = str(cache)  # the children inherit it
    try:
        t0 = time.perf_counter()
        procs = [
            ctx.Process(target=_worker, args=(str(data), str(warm), budget, i, barrier, queue))
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        rows = [queue.get(timeout=3600) for _ in procs]
        for p in procs:
            p.join(120)
        wall = time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("GCSEARCH_CACHE", None)
        else:
            os.environ["GCSEARCH_CACHE"] = old
    if any(p.exitcode for p in procs):
        from gcsearch.errors import UserError

        raise UserError(f"bench data: a worker failed (exit codes {[p.exitcode for p in procs]})")

    def grown(key: str) -> int:
        return sum(r["after"][key] - r["before"][key] for r in rows)

    return {
        "wall_s": wall,
        "decoded": sum(r["decoded"] for r in rows),
        "cache_fills": sum(r["cache_fills"] for r in rows),
        "loaders_s_max": max(r["loaders_s"] for r in rows),
        "data_bytes": grown("Pss_held") + grown("Pss_Anon"),
        "data_mib": (grown("Pss_held") + grown("Pss_Anon")) / 2**20,
        "held_pss": grown("Pss_held"),
        "anon_pss_growth": grown("Pss_Anon"),
        "rss_growth": grown("Rss"),
        "pss_growth": grown("Pss"),
        "workers": rows,
    }


def run_bench_data(args: argparse.Namespace) -> int:
    """Write the folder, run the workers twice (empty cache, then the rerun), print and save."""
    import numpy as np
    import PIL
    import torch

    from gcsearch import __version__
    from gcsearch.tasks.imagefolder import DECODE_THREADS

    images = 400 if args.smoke else int(args.images or 20000)
    size = int(args.size or 64)
    workers = int(args.workers or 2)
    val = max(CLASSES, images // 10)
    budget = {
        "train_images": images - val,
        "val_images": val,
        "image_size": size,
        "batch_size": 64,
        "augment": "flip-crop",
    }
    with tempfile.TemporaryDirectory(prefix="gcsearch-bench-data-", dir=args.dir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_folder(root / "images", images, size)
        written = time.perf_counter() - t0
        write_folder(root / "warm", WARM, size, seed=1)
        on_disk = sum(f.stat().st_size for f in (root / "images").rglob("*.jpg"))
        runs = {
            name: run_workers(root / "images", root / "warm", root / "cache", budget, workers)
            for name in ("first", "rerun")
        }
        arrays = [np.load(f, mmap_mode="r") for f in (root / "cache").glob("imagefolder-*.npy")]
        cached = sum(a.nbytes for a in arrays if len(a) != WARM)  # not the warm-up's array
        del arrays
    uint8 = images * 3 * size * size
    print(
        f"bench data: {images:,} JPEGs {size}x{size} in {CLASSES} classes "
        f"({on_disk / 2**20:.0f} MiB on disk, written in {written:.0f} s), {workers} workers, "
        f"decoding on {DECODE_THREADS} thread(s); uint8 size {uint8 / 2**20:.1f} MiB "
        f"(cache file {cached / 2**20:.1f} MiB)"
    )
    for name, r in runs.items():
        print(
            f"  {name:6s} decoded {r['decoded']:6,} images (cache fills {r['cache_fills']}), "
            f"loaders {r['loaders_s_max']:5.1f} s (slowest worker); resident data "
            f"{r['data_bytes'] / 2**20:6.1f} MiB = {r['data_bytes'] / uint8:.2f}x uint8 (held "
            f"{r['held_pss'] / 2**20:.1f} + anonymous {r['anon_pss_growth'] / 2**20:.1f} MiB; "
            f"RSS growth {r['rss_growth'] / 2**20:.1f} MiB)"
        )
    figures = {
        "images": images,
        "size": size,
        "workers": workers,
        "budget": budget,
        "uint8_bytes": uint8,
        "uint8_mib": uint8 / 2**20,
        "cache_file_bytes": cached,
        "jpeg_bytes": on_disk,
        "decode_threads": DECODE_THREADS,
        "ratio_first": runs["first"]["data_bytes"] / uint8,
        "ratio_rerun": runs["rerun"]["data_bytes"] / uint8,
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "versions": {
            "gcsearch": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
        },
        "command": " ".join(["gcsearch", *sys.argv[1:]]),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures: {args.out}")
    return 0


__all__ = ["run_bench_data", "run_workers", "smaps", "write_folder"]
