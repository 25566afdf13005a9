"""``gcsearch bench WHAT``: every benchmark in one place, each printing measured figures (never
asserting timings).

* ``train`` (``train.py``): the training harness against a bare PyTorch loop;
* ``search`` (``search.py``): search strategies replayed on exhaustive tables (``table.py``:
  the tables, their builder and the executor that replays them);
* ``proxy`` (``proxy.py``): a proxy task's seed spread, modes and split-seed rank agreement;
* ``flops`` (``flops.py``): the ``gcsearch flops`` table against one baseline trace;
* ``storage`` (``storage.py``): trials/s of the study storages under concurrent drivers.

The engine (``gcsearch.search``) never imports this package.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from gcsearch.errors import UserError

#: what -> "module:function" taking the parsed args (a new benchmark adds a row here)
BENCHES: dict[str, str] = {
    "train": "gcsearch.bench.train:bench_train",
    "search": "gcsearch.bench.search:run_bench_search",
    "proxy": "gcsearch.bench.proxy:run_bench_proxy",
    "flops": "gcsearch.bench.flops:bench_flops",
    "storage": "gcsearch.bench.storage:run_bench_storage",
}


def run_bench(args: argparse.Namespace) -> int:
    """Dispatch ``gcsearch bench WHAT`` through ``BENCHES``."""
    if args.what not in BENCHES:
        raise UserError(f"bench: {args.what!r} is not known (choose from {', '.join(BENCHES)})")
    module, func = BENCHES[args.what].split(":")
    bench: Callable[[argparse.Namespace], int | None] = getattr(
        importlib.import_module(module), func
    )
    return int(bench(args) or 0)
