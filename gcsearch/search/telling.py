"""Telling results: a finished run becomes its trial's record, values and state.

One Optuna trial is one candidate; its record (``record.TrialRecord``) holds the spec, the
per-seed results, the rung decisions and the cost, and its values are the means over seeds
(``objective_values``). A candidate answered from another trial of its network is told as a
failed trial carrying that trial's record (``duplicate_of``), so no sampler counts a network
twice. Failures that say nothing about the candidate (``RETRYABLE``: an interrupt, a lost
worker, an I/O fault) are failed rows asked again; an I/O fault also stops the search
(``Teller.fault``), keeping every result told so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from gcsearch.errors import io_line
from gcsearch.search.display import Display
from gcsearch.search.ledger import Ledger, Running
from gcsearch.search.liveness import OWNER
from gcsearch.search.record import TrialRecord
from gcsearch.search.rungs import result_cost
from gcsearch.search.space import objective
from gcsearch.search.trial import IO_ERROR
from gcsearch.spec import METRICS, Candidate

#: Failure reasons that say nothing about the candidate: asked again on resume.
RETRYABLE = ("interrupted", "driver died", "worker lost", "stale", IO_ERROR)
#: What a failed write to the study raises (a journal file: OSError; an RDB: Optuna's wrapper).
STUDY_WRITE_ERRORS = (OSError, optuna.exceptions.StorageInternalError)
_STATE = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


def summarise(results: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """Candidate status from its seeds: any failed -> failed, any pruned -> pruned."""
    for status in ("failed", "pruned"):
        hits = [r for r in results if r.get("status") == status]
        if hits:
            return status, str(hits[0].get("reason") or status)
    if not results:
        return "failed", "no result"
    return "complete", ""


def objective_values(
    objectives: Sequence[str], results: Sequence[Mapping[str, Any]], cost: Mapping[str, float]
) -> list[float] | None:
    """Objective values in study order, read as the registry (``spec.METRICS``) says: trained
    metrics averaged over seeds, costs as counted. None unless every value is finite."""
    values = []
    for o in objectives:
        metric = METRICS[objective(o)[0]]
        if metric.source == "counted":
            values.append(float(cost.get(metric.name, math.nan)))
        else:
            values.append(metric.over(results))
    return values if all(math.isfinite(v) for v in values) else None


#: ``mirror(trial number, candidate, values, state)``: the sampler's study sees a searched result
Mirror = Callable[[int, Candidate, Sequence[float] | None, TrialState], None]


class Teller:
    """Tells this driver's trials: runs that ended, duplicates, retryable failures."""

    def __init__(
        self,
        study: optuna.Study,
        ledger: Ledger,
        display: Display,
        mirror: Mirror,
        *,
        objectives: Sequence[str],
        rungs: Sequence[int],
        max_epochs: int,
        keep_weights: Callable[[str, list[dict[str, Any]]], str | None] | None,
        owner: str | None,
    ) -> None:
        """``keep_weights(network key, results)`` keeps a complete candidate's weights;
        ``owner``, this driver's id, marks a result kept as a new trial."""
        self.study, self.ledger, self.display, self.mirror = study, ledger, display, mirror
        self.objectives, self.rungs, self.max_epochs = tuple(objectives), tuple(rungs), max_epochs
        self.keep_weights, self.owner = keep_weights, owner
        self.fault: str | None = None  # an I/O fault (disk full, read-only run dir) stops it

    def finish(self, run: Running, forced: str | None = None) -> FrozenTrial:
        """Tell ``run`` from its seed results (or failed with ``forced``, the reason) and
        answer the trials parked on it."""
        # the seeds' typed results become the record's (JSON) form here
        results = [r.to_dict() for r in sorted(run.results, key=lambda r: r.seed)]
        status, reason = ("failed", forced) if forced else summarise(results)
        cost = result_cost(results)
        values = objective_values(self.objectives, results, cost)
        if status == "complete" and values is None:
            status, reason = "failed", "no finite objective values"
        epochs = max((int(r.get("epochs") or 0) for r in results), default=0)
        rec = run.record
        io = next((str(r["io_error"]) for r in results if r.get("io_error")), None)
        if status == "complete" and io is None and self.keep_weights is not None:
            try:
                rec.weights = self.keep_weights(run.key, results)
            except OSError as exc:
                io = io_line(exc)
        if status == "complete" and io is not None:  # trained, but its weights are not kept
            status, reason = "failed", f"{IO_ERROR}: {io} (trained; trained again on --resume)"
        if reason.startswith(IO_ERROR) and self.fault is None:
            self.fault = io or reason.removeprefix(f"{IO_ERROR}: ")
        rec.results, rec.status, rec.reason, rec.cost = results, status, reason, cost
        rec.fidelity = {
            "epochs": epochs,
            "max_epochs": self.max_epochs,
            "rung": sum(1 for r in self.rungs if r <= epochs),
        }
        rec.env = (results[0].get("env") or {}) if results else {}
        rec.retryable = status == "failed" and reason.startswith(RETRYABLE)
        told = self.tell(run.trial, rec, values if status == "complete" else None, _STATE[status])
        if run.role == "search":
            self.mirror(run.trial.number, run.cand, values, _STATE[status])
        for dup in self.ledger.close(run, told, reason):
            if rec.retryable:
                self.fail_retryable(dup, reason)
            else:
                self.duplicate(dup, told)
        self._progress(run, status, reason, values, epochs)
        return told

    def tell(
        self, trial: optuna.Trial, rec: TrialRecord, values: list[float] | None, state: TrialState
    ) -> FrozenTrial:
        """Write the record and tell; if another driver already failed this trial as stale
        (this driver was presumed dead, e.g. a heartbeat stalled past the grace period), the
        result is kept as a new trial carrying the record, never lost."""
        try:
            rec.write(trial)
            return self.study.tell(trial, values, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            rec.retries.append(
                {
                    "retry_of": trial.number,
                    "reason": "its trial was failed as "
                    "stale by another driver while this one ran it",
                }
            )
            template = create_trial(
                state=state,
                values=values,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=rec.attrs(),
                system_attrs={OWNER: self.owner} if self.owner is not None else {},
            )
            storage = self.study._storage
            tid = storage.create_new_trial(self.study._study_id, template_trial=template)
            return storage.get_trial(tid)

    def duplicate(
        self, trial: optuna.Trial, original: FrozenTrial, cand: Candidate | None = None
    ) -> None:
        """Answer ``trial`` from ``original``'s record; told as FAIL so no sampler counts the
        network twice (the record, not the Optuna state, says what it is). ``cand``: the
        trial's candidate (read from its record when not given)."""
        mine = TrialRecord.read(trial)
        cand = cand if cand is not None else mine.candidate
        assert cand is not None
        self.ledger.seen_ids.add(cand.id)
        rec = TrialRecord.read(original)
        rec.candidate, rec.role, rec.duplicate_of = cand, mine.role, original.number
        rec.write(trial)
        self.study.tell(trial, None, state=TrialState.FAIL)
        self.display.progress.duplicates += 1

    def fail_retryable(self, trial: optuna.Trial, reason: str) -> None:
        """Tell ``trial`` failed for ``reason``, which says nothing of its candidate: it is
        asked again."""
        rec = TrialRecord.read(trial)
        rec.status, rec.reason, rec.retryable = "failed", reason, True
        rec.write(trial, only=["status", "reason", "retryable"])
        self.study.tell(trial, None, state=TrialState.FAIL)

    def update_front(self) -> None:
        """The live display's Pareto front, from every complete network."""
        self.display.progress.set_front(self.ledger.front_rows())

    def _progress(
        self, run: Running, status: str, reason: str, values: list[float] | None, epochs: int
    ) -> None:
        """Count the run on the display and print its one line."""
        p = self.display.progress
        p.running = [r.cand.id for r in self.ledger.running.values()]
        if status == "complete":
            p.done += 1
            self.update_front()
        elif status == "pruned":
            p.pruned += 1
        elif not reason.startswith(RETRYABLE):  # a retryable row is asked again: its
            p.failed += 1  # candidate is not finished, so it is not counted ("[8/7]" otherwise)
        top = values[0] if values else None
        detail = f"top1 {top:.2f}" if status == "complete" and top is not None else f"{reason[:80]}"
        env = run.record.env
        where = env.get("node") or env.get("host") or ""
        where = f", {where}" if where else ""
        self.display.finished(
            f"{run.cand.id} {status} ({detail}, {epochs}/{self.max_epochs} "
            f"epochs, {time.time() - run.started:.1f}s{where})"
        )


__all__ = ["RETRYABLE", "STUDY_WRITE_ERRORS", "Teller", "objective_values", "summarise"]
