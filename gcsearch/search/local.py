"""Executors without Ray: in-process (debugging) and table replay (benchmarks).

Both speak the executor protocol the driver uses (``submit``, ``wait``, ``in_flight``,
``cancel_all``, ``rung_decisions``, ``describe``, ``shutdown``, ``parallel``).
``TableExecutor`` answers jobs from the stored results of an earlier exhaustive run, replaying
each trial's per-epoch history through the successive-halving rungs, as tabular NAS
benchmarks (NAS-Bench-201, NATS-Bench) replay recorded learning curves: a pruned run and a full
run under one seed and budget follow the same curve up to the rung (the learning-rate schedule
depends on the budget, not on where the run stops).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from gcsearch.search.fidelity import RungTable, rung_vector
from gcsearch.search.trial import Job, run_job


class InlineExecutor:
    """Runs jobs one at a time in this process (no Ray); rungs are a local ``RungTable``."""

    def __init__(self, *, parallel: int = 1, rungs: Sequence[int] = (), eta: int = 3) -> None:
        self.parallel = parallel
        self.table = RungTable(tuple(rungs), eta) if rungs else None
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def in_flight(self) -> list[Job]:
        return list(self._queue)

    def _stop_check(self, job: Job) -> Any:
        table = self.table
        if table is None:
            return None
        return lambda epoch, metrics: table.report(
            job.key, epoch, rung_vector(job.objectives, metrics), job.protected)

    def wait(self, timeout: float) -> list[tuple[Job, dict[str, Any]]]:
        if not self._queue:
            return []
        job = self._queue.popleft()
        return [(job, run_job(job, self._stop_check(job)))]

    def cancel_all(self) -> None:
        self._queue.clear()

    def rung_decisions(self) -> list[dict[str, Any]]:
        return list(self.table.decisions) if self.table else []

    def describe(self) -> dict[str, Any]:
        return {"address": "inline", "nodes": 1}

    def shutdown(self) -> None:
        self.cancel_all()


class TableExecutor(InlineExecutor):
    """Answers jobs from recorded full-budget results (``{candidate_id: {seed: result}}``).

    With rungs, a recorded history is cut where the rung table would have stopped it and the
    result marked pruned, so a replayed search spends (and saves) compute as a live one would.
    ``epochs_trained`` counts the epochs the replay charged.
    """

    def __init__(self, table: Mapping[str, Mapping[int, Mapping[str, Any]]], *,
                 parallel: int = 1, rungs: Sequence[int] = (), eta: int = 3) -> None:
        super().__init__(parallel=parallel, rungs=rungs, eta=eta)
        self.results = table
        self.epochs_trained = 0
        self.seconds_trained = 0.0

    def wait(self, timeout: float) -> list[tuple[Job, dict[str, Any]]]:
        if not self._queue:
            return []
        job = self._queue.popleft()
        try:
            full = copy.deepcopy(dict(self.results[job.candidate_id][job.seed]))
        except KeyError:
            raise KeyError(f"no recorded result for {job.key}") from None
        history = list(full.get("history") or [])
        costs = {k: float(full[k]) for k in ("params", "macs", "block_params", "block_macs")
                 if full.get(k) is not None}
        check = self._stop_check(job)
        kept = []
        for rec in history:
            kept.append(rec)
            if check is not None and full.get("status") == "complete":
                metrics = {**costs, "top1": float(rec.get("val_top1", math.nan)),
                           "loss": float(rec.get("val_loss", math.nan))}
                if check(int(rec["epoch"]), metrics):
                    full.update(status="pruned", reason=f"stopped at rung epoch {rec['epoch']}",
                                top1=rec.get("val_top1"), loss=rec.get("val_loss"),
                                epochs=int(rec["epoch"]))
                    break
        full["history"] = kept
        seconds = sum(float(r.get("seconds") or 0.0) for r in kept)
        self.epochs_trained += len(kept)
        self.seconds_trained += seconds
        return [(job, full)]


__all__ = ["InlineExecutor", "TableExecutor"]
