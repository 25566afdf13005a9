"""Decoded data held once per node: arrays cached on disk and mapped by every worker.

A file task turns its source files (an ImageFolder tree, CIFAR pickles, IDX files) into plain
arrays once: ``hold`` writes them to ``<cache>/<kind>-<source>-<key>.npy`` and maps that file
into each process (``MAP_PRIVATE``, read only in practice), so the workers of a node share one
copy of the pages in the page cache instead of one private copy each, and a rerun, or a new
worker, maps the file instead of decoding again. ``key`` is a fingerprint of the source files
(paths, sizes, modification times) and of how they are decoded: a changed, added or removed
file gives a new key, so a stale array is never read; the older arrays of the same source are
removed when a new one is written. A lock file makes the second of two workers that start
together wait for the first one's array instead of decoding it as well.

The cache lives in ``$GCSEARCH_CACHE`` (else ``$XDG_CACHE_HOME/gcsearch``, else
``~/.cache/gcsearch``): a local disk of the node, where a rerun finds it. ``$GCSEARCH_CACHE_MAX``
(``20G``, ``500M``, bytes) bounds it: after a new array is written, the arrays used longest ago
are removed until the folder fits (never the new one; a worker that mapped a removed array keeps
its pages, the next run decodes it again). Unset, the cache is not bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from gcsearch.errors import IOFault, UserError, io_line

#: the environment variable naming the cache folder
CACHE_ENV = "GCSEARCH_CACHE"
#: the environment variable bounding the cache's size (``20G``, ``500M``, bytes)
CACHE_MAX_ENV = "GCSEARCH_CACHE_MAX"
#: bump when a decoder changes what it writes for the same files: every cached array is redone
FORMAT = 1
#: size suffixes ``$GCSEARCH_CACHE_MAX`` takes (powers of 1024)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

#: arrays this process mapped, by cache path (a long-lived worker maps each file once)
_MAPPED: dict[Path, torch.Tensor] = {}
#: arrays this process wrote (decoded) since it started, by kind: tests and benchmarks read it
FILLS: dict[str, int] = {}


def cache_dir() -> Path:
    """Where held arrays live: ``$GCSEARCH_CACHE``, ``$XDG_CACHE_HOME/gcsearch`` or
    ``~/.cache/gcsearch``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gcsearch"


def cache_max() -> int | None:
    """``$GCSEARCH_CACHE_MAX`` in bytes (None: unset, no bound); a one-line ``UserError`` when
    it is not a size."""
    text = os.environ.get(CACHE_MAX_ENV, "").strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?", text, flags=re.IGNORECASE)
    if m is None:
        raise UserError(
            f"{CACHE_MAX_ENV}={text!r} is not a size (allowed: bytes, or a number with K, M, G "
            "or T, e.g. 20G; unset for no bound)"
        )
    return int(float(m[1]) * _UNITS[m[2].upper()])


def _trim(folder: Path, keep: Path, limit: int) -> None:
    """Remove the arrays of ``folder`` used longest ago (``hold`` touches what it maps) until
    they fit in ``limit`` bytes; ``keep`` stays whatever its size."""
    arrays = []
    for path in folder.glob("*.npy"):
        with contextlib.suppress(OSError):  # another process removed it meanwhile
            st = path.stat()
            arrays.append((st.st_mtime_ns, st.st_size, path))
    total = sum(size for _, size, _ in arrays)
    for _, size, path in sorted(arrays):
        if total <= limit:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size


def fingerprint(files: Iterable[str | Path], *how: object) -> str:
    """A digest of ``files`` (path, size, modification time, in the order given) and ``how``
    (what the decoder makes of them): equal digests, equal arrays."""
    digest = hashlib.sha256(repr((FORMAT, how)).encode())
    for name in files:
        try:
            st = os.stat(name)
        except OSError as exc:
            raise UserError(f"cannot read {name} ({io_line(exc, '')})") from None
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing), released on exit."""
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def hold(
    kind: str,
    source: str,
    key: str,
    shape: Callable[[], tuple[int, ...]],
    fill: Callable[[np.ndarray], None],
    dtype: np.dtype | type = np.uint8,
) -> torch.Tensor:
    """The array of ``kind`` cached under ``key``, mapped from the node's cache.

    On a miss ``fill(out)`` writes it into ``out`` (an array of ``shape()`` and ``dtype`` that
    is the cache file itself: no second copy), once per node. ``source`` names what the array
    comes from (a folder, a file), so a new key of the same source replaces the old array.
    A cache that cannot be written (full disk, read-only folder) is an ``IOFault``.
    """
    folder, limit = cache_dir(), cache_max()
    stem = f"{kind}-{hashlib.sha256(source.encode()).hexdigest()[:12]}"
    path = folder / f"{stem}-{key}.npy"
    if path in _MAPPED:
        return _MAPPED[path]
    if not path.is_file():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with _locked(folder / f"{stem}.lock"):
                if not path.is_file():  # another process may have written it meanwhile
                    _write(path, shape(), np.dtype(dtype), fill)
                    FILLS[kind] = FILLS.get(kind, 0) + 1
                    for old in folder.glob(f"{stem}-*.npy"):  # the same source, older files
                        if old != path:
                            old.unlink(missing_ok=True)
                    if limit is not None:
                        _trim(folder, path, limit)
        except OSError as exc:
            raise IOFault(
                f"data cache: {io_line(exc, 'writing', exc.filename or path)} (allowed: a "
                f"writable folder with room for the decoded data, set by {CACHE_ENV}=DIR)"
            ) from None
    try:  # copy-on-write mapping: the pages stay the page cache's, shared by every process
        array = np.load(path, mmap_mode="c")
        with contextlib.suppress(OSError):  # used now: the last a bounded cache removes
            os.utime(path)
    except (OSError, ValueError) as exc:
        why = f"data cache: cannot read {path} ({exc}); remove it to decode again"
        raise IOFault(why) from None
    tensor = torch.from_numpy(array)
    _MAPPED[path] = tensor
    return tensor


def hold_parsed(
    kind: str,
    source: str,
    key: str,
    parse: Callable[[], tuple[np.ndarray, ...]],
    dtypes: tuple[type, ...],
) -> tuple[torch.Tensor, ...]:
    """The arrays ``parse()`` returns (of ``dtypes``), held as ``hold`` holds one: ``parse`` runs
    only on a miss, at most once."""
    parsed = functools.cache(parse)
    return tuple(
        hold(
            f"{kind}{i}",
            source,
            key,
            lambda i=i: parsed()[i].shape,
            lambda out, i=i: np.copyto(out, parsed()[i]),
            dtype,
        )
        for i, dtype in enumerate(dtypes)
    )


def _write(path: Path, shape: tuple[int, ...], dtype: np.dtype, fill: Callable) -> None:
    """Fill a new ``.npy`` file of ``shape`` in place and move it to ``path`` when complete
    (a killed decode leaves no half array under the final name)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        with open(tmp, "r+b") as f:  # every block now: a full disk fails here, not as SIGBUS
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        fill(out)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def forget() -> None:
    """Drop this process's mappings (tests: the next ``hold`` looks at the cache again)."""
    _MAPPED.clear()


__all__ = [
    "CACHE_ENV",
    "CACHE_MAX_ENV",
    "FILLS",
    "cache_dir",
    "cache_max",
    "fingerprint",
    "forget",
    "hold",
    "hold_parsed",
]
