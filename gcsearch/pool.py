"""Worker processes for the benchmarks that train several candidates at once.

One constructor so that every such pool behaves the same: spawned (not forked: torch and its
thread pools do not survive a fork), and each worker exits when the process that started it is
gone. Without that, a benchmark stopped with ``kill`` leaves its workers training on as orphans,
and their load silently inflates the seconds per trial of whatever is measured next.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

#: seconds between a worker's checks that its parent is still alive
POLL_S = 1.0


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-context pool of ``workers`` processes that die with the calling process."""
    return ProcessPoolExecutor(
        max(1, workers),
        mp_context=mp.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )


def _exit_with_parent(parent: int) -> None:
    """Runs in each worker: a daemon thread ends the worker once it is re-parented."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
