"""Where an asked trial goes: answered, parked, or trained here one job per seed (or one fused
job for all its seeds, ``[search] fuse_seeds``).

A network (``sampling.network_key``) is trained once. A trial whose network is trained is
answered from that trial (``Teller.duplicate``); one whose network trains here waits for that
run (``Ledger.waiting_dups``), one whose network another live driver trains waits for that
driver's run (``Ledger.foreign``, ``Claims.conflict``); otherwise it trains here: one job per
seed on the executor, to its first rung or the full budget; a promoted candidate continues the
training state its rung run kept (``Job.resume_state``), so rung run and promotion together
train exactly the full run, and charge each epoch once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from gcsearch.search.claims import Claims, network_of
from gcsearch.search.display import Display
from gcsearch.search.ledger import Ledger, Running, trained
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import Space
from gcsearch.search.telling import Teller
from gcsearch.search.trial import Job
from gcsearch.spec import Candidate


class Dispatch:
    """Answers, parks or trains the trials this driver asks."""

    def __init__(
        self,
        executor: Any,
        ledger: Ledger,
        claims: Claims,
        teller: Teller,
        display: Display,
        first: Callable[[str], int | None],
        *,
        space: Space,
        faults: Mapping[str, str],
        weights_dir: str | None,
        states_dir: str | None = None,
        costs: Mapping[str, Mapping[str, int]] | None = None,
        fuse: bool = False,
        extra_validate_at: tuple[int, ...] | None = None,
        **job: Any,
    ) -> None:
        """``first(role)``: the epoch a new run trains to (None: the full budget); ``job``:
        the ``Job`` fields every seed run of the search shares (budget, device, ...).
        ``states_dir``: where a rung run keeps its training state, so a promotion continues
        it instead of training again from scratch; ``costs``: the driver's cost table (network
        key -> cost), sent with each job so no worker counts it again; ``fuse``: a candidate's
        seeds train as one fused job (``tasks.fused``, ``[search] fuse_seeds``);
        ``extra_validate_at``: the epochs an added reference seed validates at (``extend``:
        no rung reads it, so only the last epoch and the space's cadence)."""
        self.executor, self.ledger, self.claims, self.teller = executor, ledger, claims, teller
        self.display, self.first = display, first
        self.seeds, self.faults, self.weights_dir = space.search.seeds, faults, weights_dir
        self.states_dir, self.costs, self.fuse = states_dir, dict(costs or {}), fuse
        self.extra_validate_at = extra_validate_at
        self.job = functools.partial(
            Job,
            task=space.task,
            data=space.data,
            backbone=space.backbone,
            min_hidden=space.min_hidden,
            objectives=tuple(space.objectives),
            **job,
        )

    def place(self, trials: list[optuna.Trial], key: str, cand: Candidate | None = None) -> bool:
        """Answer ``trials`` (all of network ``key``; ``cand``, their candidate if known) from
        the trial that trained it, or park them on the run training it here or in another live
        driver; False: it trains here."""
        ledger = self.ledger
        if key not in ledger.finished and key not in ledger.by_key:
            other = self.claims.conflict(trials[0].number, key)
            if other is not None and other.state.is_finished():
                ledger.finished[key] = other
            elif other is not None:  # another live driver trains this network now
                ledger.foreign.setdefault(other.number, (other, []))[1].extend(trials)
                return True
        if key in ledger.finished:
            for trial in trials:
                self.teller.duplicate(trial, ledger.finished[key], cand)
            return True
        if key in ledger.by_key:
            ledger.waiting_dups.setdefault(key, []).extend(trials)
            return True
        return False

    def launch(self, trial: optuna.Trial, record: TrialRecord, key: str) -> None:
        """Train ``trial``'s candidate here, from its first segment."""
        run = Running(trial, record, key)
        self.ledger.start(run)
        self.submit(run, self.first(record.role))

    def submit(self, run: Running, stop_at: int | None, started: Collection[int] = ()) -> None:
        """One job per seed, training to ``stop_at`` (a rung) or the full budget; a promoted
        run continues from the state its rung run kept (same schedule, same result). The seeds
        in ``started`` run that segment already (``early``): counted, not submitted again."""
        before = run.stop_at if run.results else None  # the rung this run stopped at, if any
        run.stop_at, run.waiting, run.results = stop_at, False, []
        run.jobs_left, run.fused = self.seeds, self.fuse and self.seeds > 1 and not started
        parts = [
            self._part(run, seed, stop_at, before)
            for seed in range(self.seeds)
            if seed not in started
        ]
        if run.fused:  # one job on one worker; each seed still answered as its own job
            self.executor.submit(dataclasses.replace(parts[0], fused=tuple(parts)))
        else:
            for part in parts:
                self.executor.submit(part)
        self.display.progress.running = [r.cand.id for r in self.ledger.running.values()]

    def early(self, run: Running, seed: int, stop_at: int | None) -> None:
        """Seed ``seed`` of ``run``, waiting at its rung, starts its next segment (to
        ``stop_at``) before the rung is decided: kept in ``run.early`` until it is."""
        run.early[seed] = None
        self.executor.submit(self._part(run, seed, stop_at, run.stop_at))

    def extend(self, run: Running, more: int) -> None:
        """``more`` seeds after those ``run`` holds, each trained in full as its own job (a
        reference row narrowing its interval, ``[search] reference_ci``). They validate only
        where they are read: a rung ranks against the row's first ``seeds`` seeds."""
        first = max((r.seed for r in run.results), default=-1) + 1
        run.jobs_left, run.fused = run.jobs_left + more, False
        self.display.progress.extra_jobs += more
        for seed in range(first, first + more):
            part = self._part(run, seed, None, None)
            if self.extra_validate_at is not None:
                part = dataclasses.replace(part, validate_at=self.extra_validate_at)
            self.executor.submit(part)

    def _part(self, run: Running, seed: int, stop_at: int | None, before: int | None) -> Job:
        """The job of one seed of ``run``: to ``stop_at`` (or the full budget), continuing
        the state kept at rung ``before`` when there is one."""
        state = self._state(run, seed)
        return self.job(
            trial=run.trial.number,
            candidate=run.cand.to_dict(),
            seed=seed,
            protected=run.role == "reference",
            fault=self.faults.get(run.cand.id),
            stop_at=stop_at,
            weights_dir=self.weights_dir if stop_at is None else None,
            keep_state=state if stop_at is not None else None,
            resume_state=state if before is not None else None,
            start_epoch=before or 0,
            cost=self.costs.get(run.key),
        )

    def _state(self, run: Running, seed: int) -> str | None:
        """Where one seed of ``run`` keeps its training state between rungs."""
        if self.states_dir is None:
            return None
        from gcsearch.checkpoint import checkpoint_name

        return str(Path(self.states_dir) / f"seed{seed}" / checkpoint_name(run.cand.id))

    def settle(self, learn: Callable[[FrozenTrial], None]) -> None:
        """Trials parked on another driver's run that ended (``Claims.settled``): answered
        from it when it trained (``learn`` shows it to the sampler), else placed again, and
        trained here when no one else has the network."""
        for theirs, mine in self.claims.settled():
            if trained(theirs):
                self.ledger.finished[network_of(theirs) or ""] = theirs
                learn(theirs)
                for trial in mine:
                    self.teller.duplicate(trial, theirs)
                continue
            # their run failed retryably (interrupted, its driver died): claim it again, as
            # other drivers parked on the same trial do; the lowest live trial trains it
            first, rest = mine[0], mine[1:]
            rec = TrialRecord.read(first)
            assert rec.candidate is not None
            key = self.ledger.key(rec.candidate)
            if self.place(mine, key):
                continue
            reason = TrialRecord.read(theirs).reason or "failed"
            self.ledger.note_retry(rec.candidate, theirs.number, reason)
            again = TrialRecord(candidate=rec.candidate, role=rec.role, network=key)
            self.launch(first, again, key)
            self.ledger.waiting_dups.setdefault(key, []).extend(rest)


__all__ = ["Dispatch"]
