"""An executor without Ray: jobs run one at a time in this process (debugging, tests).

It speaks the executor protocol the driver uses (``submit``, ``wait``, ``in_flight``,
``cancel_all``, ``describe``, ``shutdown``, ``parallel``); ``gcsearch.bench.table``'s
``TableExecutor`` answers the same protocol from an exhaustive table.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gcsearch.result import TrialResult
from gcsearch.search.trial import Job, run_jobs


class InlineExecutor:
    """Runs jobs one at a time in this process (no Ray), in submission order."""

    def __init__(self, *, parallel: int = 1) -> None:
        self.parallel = parallel
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def in_flight(self) -> list[Job]:
        return list(self._queue)

    def wait(self, timeout: float) -> list[tuple[Job, TrialResult]]:
        if not self._queue:
            return []
        return run_jobs(self._queue.popleft())  # a fused job answers each of its seeds

    def cancel_all(self) -> None:
        self._queue.clear()

    def describe(self) -> dict[str, Any]:
        return {"address": "inline", "nodes": 1}

    def shutdown(self, wait: bool = True) -> None:
        """Drop what is queued; ``wait`` as ``RayExecutor.shutdown`` takes it (nothing here
        outlives the call, so there is nothing to wait for)."""
        self.cancel_all()
