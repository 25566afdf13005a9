"""What one driver knows of its study's networks: trained, training here, parked, to retry.

The bookkeeping the driver's parts share (``proposal``, ``claims``, ``telling`` and the loop in
``driver``). A network (``sampling.network_key``) is trained once: a candidate proposed again
is answered from the trial that trained it (``finished``), or parked until this driver's run
of it ends (``waiting_dups``) or another driver's does (``foreign``). A strategy reads it
through ``key``, ``known``, ``unseen``, ``answered``, ``in_flight_keys``, ``by_key`` and
``running`` (``strategy.EHVIStrategy.propose``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gcsearch.result import TrialResult
from gcsearch.search.record import SEED, TrialRecord
from gcsearch.search.sampling import network_key
from gcsearch.search.space import Space
from gcsearch.spec import Candidate


@dataclass
class Running:
    """A candidate this driver trains: its trial and record, and the segment in flight."""

    trial: optuna.Trial
    record: TrialRecord
    key: str
    stop_at: int | None = None  # rung epoch this segment stops at; None: the full budget
    jobs_left: int = 0  # seeds in flight
    fused: bool = False  # its seeds train as one job (they come back together)
    results: list[TrialResult] = field(default_factory=list)
    waiting: bool = False  # reached its rung, waits for the decision
    # seed -> its next segment, started while the rung waits on others (``Driver.start_early``):
    # None while in flight, then its result, used if the rung's decision promotes the run
    early: dict[int, TrialResult | None] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def cand(self) -> Candidate:
        assert self.record.candidate is not None
        return self.record.candidate

    @property
    def role(self) -> str:
        return self.record.role

    def add(self, seed: int, result: TrialResult) -> None:
        """One seed's result; a seed run again (its worker died) is noted on the record."""
        self.results.append(result)
        self.jobs_left -= 1
        attempt = int(result.env.get("attempt") or 1)
        if attempt > 1:
            reason = "worker died; Ray ran the task again"
            self.record.retries.append({"seed": seed, "attempts": attempt, "reason": reason})


def trained(t: FrozenTrial) -> bool:
    """A finished trial that trained its network (not a duplicate, not to be retried)."""
    return t.state.is_finished() and TrialRecord.read(t).trained


class Ledger:
    """The networks of one study as this driver sees them, read first from its trials."""

    def __init__(self, space: Space, trials: Iterable[FrozenTrial]) -> None:
        self.space = space
        self.order = space.candidates()
        self.running: dict[int, Running] = {}
        self.by_key: dict[str, int] = {}  # network key -> running trial number
        self.waiting_dups: dict[str, list[optuna.Trial]] = {}  # parked on a run here
        self.foreign: dict[int, tuple[FrozenTrial, list[optuna.Trial]]] = {}  # on another's
        self.foreign_busy: set[str] = set()  # candidate ids other live drivers are training
        self.finished: dict[str, FrozenTrial] = {}  # network key -> the trial that trained it
        self.seen_ids: set[str] = set()  # candidates with a finished answer
        self.retry_of: dict[str, dict[str, Any]] = {}  # candidate id -> the row it retries
        self.retry_first: list[Candidate] = []  # candidates a dead driver left: asked first
        self._keys: dict[str, str] = {}
        for t in trials:
            rec = TrialRecord.read(t)
            if rec.candidate is None or not t.state.is_finished() or rec.role == SEED:
                continue  # a seed row adds to a trained candidate: nothing to search
            if rec.retryable:
                if not rec.is_duplicate:
                    self.note_retry(rec.candidate, t.number, rec.reason)
                if rec.role == "search" and not rec.is_duplicate:
                    self.retry_first.append(rec.candidate)
                continue
            self.seen_ids.add(rec.candidate_id)
            if not rec.is_duplicate:
                self.finished.setdefault(self.key(rec.candidate), t)
        done = {self.key(c) for c in self.retry_first} - set(self.finished)
        self.retry_first = [
            c for c in self.retry_first if self.key(c) in done and c.id not in self.seen_ids
        ]
        self.retry_first = list({self.key(c): c for c in self.retry_first}.values())

    def key(self, cand: Candidate) -> str:
        """The network a candidate builds (candidates with one key are trained once)."""
        if cand.id not in self._keys:
            self._keys[cand.id] = network_key(cand, self.space.backbone, self.space.min_hidden)
        return self._keys[cand.id]

    def known(self, cand: Candidate) -> bool:
        """Whether ``cand``'s network is trained or training here."""
        k = self.key(cand)
        return k in self.finished or k in self.by_key

    def trained_search(self) -> int:
        """Distinct searched networks finished or in flight (the n_trials budget)."""
        done = sum(1 for t in self.finished.values() if TrialRecord.read(t).role == "search")
        return done + sum(1 for r in self.running.values() if r.role == "search")

    def parked(self) -> list[optuna.Trial]:
        """Trials waiting on another trial of their network, here or in another driver."""
        here = [d for ds in self.waiting_dups.values() for d in ds]
        return here + [d for _, ds in self.foreign.values() for d in ds]

    def unseen(self) -> list[Candidate]:
        """Candidates with no trial yet."""
        busy = {r.cand.id for r in self.running.values()}
        busy |= {TrialRecord.read(d).candidate_id for d in self.parked()}
        busy |= self.foreign_busy
        return [c for c in self.order if c.id not in self.seen_ids and c.id not in busy]

    def answered(self) -> dict[str, FrozenTrial]:
        """Network key -> its finished trial (what a strategy may learn from)."""
        return dict(self.finished)

    def in_flight_keys(self) -> list[str]:
        return list(self.by_key)

    def jobs_in_flight(self) -> int:
        """Executor jobs in flight: a fused run's seeds are one job, on one slot; a waiting
        run's early segments count too."""
        return sum(
            (min(r.jobs_left, 1) if r.fused else r.jobs_left)
            + sum(1 for res in r.early.values() if res is None)
            for r in self.running.values()
        )

    def references(self) -> dict[str, list[dict[str, Any]]]:
        """Complete reference rows: candidate id -> seed results (the rungs' anchors)."""
        out = {}
        for t in self.finished.values():
            rec = TrialRecord.read(t)
            if rec.role == "reference" and rec.status == "complete":
                out[rec.candidate_id] = rec.results
        return out

    def front_rows(self) -> list[tuple[str, list[float]]]:
        """``(candidate id, objective values)`` of every complete network."""
        return [
            (TrialRecord.read(t).candidate_id, list(t.values))
            for t in self.finished.values()
            if t.state == TrialState.COMPLETE and t.values
        ]

    def note_retry(self, cand: Candidate, number: int, reason: str | None) -> None:
        """``cand`` is asked again: its next row names trial ``number`` and why (first one
        wins)."""
        self.retry_of.setdefault(cand.id, {"retry_of": number, "reason": reason})

    def start(self, run: Running) -> None:
        """``run`` trains here now; its record names the row it retries, if any."""
        if run.cand.id in self.retry_of:
            run.record.retries.append(self.retry_of.pop(run.cand.id))
        self.running[run.trial.number] = run
        self.by_key[run.key] = run.trial.number

    def close(self, run: Running, told: FrozenTrial, reason: str) -> list[optuna.Trial]:
        """``run`` was told as ``told``; returns the trials parked on it."""
        del self.running[run.trial.number]
        self.by_key.pop(run.key, None)
        if not run.record.retryable:
            self.finished[run.key] = told
            self.seen_ids.add(run.cand.id)
        else:  # asked again (a lost worker, an interrupt): the new row names this one
            self.note_retry(run.cand, told.number, reason)
        return self.waiting_dups.pop(run.key, [])


__all__ = ["Ledger", "Running", "trained"]
