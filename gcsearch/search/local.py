"""Executors without Ray: in-process (debugging, tests) and table replay (benchmarks).

Both speak the executor protocol the driver uses (``submit``, ``wait``, ``in_flight``,
``cancel_all``, ``describe``, ``shutdown``, ``parallel``). ``TableExecutor`` answers jobs from
the stored full-budget results of an exhaustive run, as tabular NAS benchmarks (NAS-Bench-201,
NATS-Bench) replay recorded learning curves: a rung run (``Job.stop_at``) is the recorded
history cut at the rung, since a run stopped there and a full run under one seed and budget
follow the same curve up to it (the learning-rate schedule depends on the budget, not on where
the run stops).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from typing import Any

from gcsearch.search.trial import Job, run_job


class InlineExecutor:
    """Runs jobs one at a time in this process (no Ray), in submission order."""

    def __init__(self, *, parallel: int = 1) -> None:
        self.parallel = parallel
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def in_flight(self) -> list[Job]:
        return list(self._queue)

    def wait(self, timeout: float) -> list[tuple[Job, dict[str, Any]]]:
        if not self._queue:
            return []
        job = self._queue.popleft()
        return [(job, run_job(job))]

    def cancel_all(self) -> None:
        self._queue.clear()

    def describe(self) -> dict[str, Any]:
        return {"address": "inline", "nodes": 1}

    def shutdown(self) -> None:
        self.cancel_all()


class TableExecutor(InlineExecutor):
    """Answers jobs from recorded full-budget results (``{candidate_id: {seed: result}}``).

    ``epochs_trained`` and ``seconds_trained`` count what the replay charged; ``interrupt_after``
    raises ``KeyboardInterrupt`` after that many answered jobs (to test interrupt and resume).
    """

    def __init__(
        self,
        table: Mapping[str, Mapping[int, Mapping[str, Any]]],
        *,
        parallel: int = 1,
        interrupt_after: int | None = None,
    ) -> None:
        super().__init__(parallel=parallel)
        self.results = table
        self.epochs_trained = 0
        self.seconds_trained = 0.0
        self.answered = 0
        self.interrupt_after = interrupt_after

    def wait(self, timeout: float) -> list[tuple[Job, dict[str, Any]]]:
        if not self._queue:
            return []
        if self.interrupt_after is not None and self.answered >= self.interrupt_after:
            raise KeyboardInterrupt
        job = self._queue.popleft()
        try:
            full = copy.deepcopy(dict(self.results[job.candidate_id][job.seed]))
        except KeyError:
            raise KeyError(f"no recorded result for {job.key}") from None
        history = list(full.get("history") or [])
        if job.stop_at is not None and full.get("status") == "complete":
            history = [h for h in history if int(h["epoch"]) <= job.stop_at]
            last = history[-1]
            full.update(
                status="pruned",
                reason=f"stopped after epoch {job.stop_at}",
                top1=last.get("val_top1"),
                loss=last.get("val_loss"),
                epochs=int(last["epoch"]),
            )
        full["history"] = history
        full["candidate_id"] = job.candidate_id
        self.epochs_trained += len(history)
        self.seconds_trained += sum(float(r.get("seconds") or 0.0) for r in history)
        self.answered += 1
        return [(job, full)]


__all__ = ["InlineExecutor", "TableExecutor"]
