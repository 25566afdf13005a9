"""The search driver: the loop that asks candidates, runs their seeds and tells the results.

Each concern lives in a module of its own; the driver composes them:

* ``ledger``: what the driver knows of each network (trained, training here, parked);
  a network is trained once, and a candidate proposed again is answered from its trial.
* ``proposal``: which candidate to ask next (reference rows, retries, the strategy).
* ``claims``: several drivers on one study (claims, liveness, stale trials retried).
* ``rungs``: the rung policy (synchronous successive halving), ``RungPolicy.decide``.
* ``telling``: a run's record, values and state; duplicates; retryable failures; I/O faults.

One loop turn: read what other drivers did (``sync``), ask until every slot has a job
(``ask_next``: train, answer or park each candidate), decide any rung that is complete, then
collect what the executor finished (``collect``: a candidate is told once all its seeds
report, or waits at its rung).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from gcsearch.errors import IOFault, io_line
from gcsearch.search.claims import Claims, network_of, recover_stale_trials
from gcsearch.search.display import Display
from gcsearch.search.ledger import Ledger, Running, trained
from gcsearch.search.proposal import Proposal
from gcsearch.search.record import TrialRecord
from gcsearch.search.rungs import RungPolicy, result_cost, rung_metrics
from gcsearch.search.space import Space
from gcsearch.search.telling import (
    RETRYABLE,
    STUDY_WRITE_ERRORS,
    Teller,
    objective_values,
    summarise,
)
from gcsearch.search.trial import IO_ERROR, Job
from gcsearch.spec import Candidate


class Driver:
    """Asks candidates, submits one job per seed, tells results; owns no training code."""

    def __init__(
        self,
        space: Space,
        study: optuna.Study,
        executor: Any,
        *,
        budget: Mapping[str, Any],
        device: str,
        rungs: Sequence[int],
        faults: Mapping[str, str],
        display: Display,
        n_trials: int,
        threads: int,
        strategy: Any = None,
        weights_dir: str | None = None,
        keep_weights: Callable[[str, list[dict[str, Any]]], str | None] | None = None,
        liveness: Any = None,
        grace: float = 60.0,
        deterministic: bool = False,
        where: str = "the study",
    ) -> None:
        self.space, self.executor, self.display, self.where = space, executor, display, where
        self.faults, self.weights_dir = faults, weights_dir
        self.policy = RungPolicy(rungs, space.fidelity.eta, space.objectives)
        max_epochs = int(budget.get("epochs", 0))
        # every seed run of the search, but which candidate, seed and segment
        self.job = functools.partial(
            Job,
            task=space.task,
            data=space.data,
            budget=dict(budget),
            backbone=space.backbone,
            min_hidden=space.min_hidden,
            device=device,
            threads=threads,
            objectives=tuple(space.objectives),
            # validation where it is read: the rungs, the last epoch, and the space's cadence
            validate_at=space.search.validate_at(max_epochs, self.policy.rungs),
            deterministic=deterministic,
        )
        trials = study.get_trials(deepcopy=False)
        self.ledger = Ledger(space, trials)
        self.claims = Claims(study, self.ledger, liveness, grace, lambda t: self.proposal.learn(t))
        self.proposal = Proposal(
            space, study, self.ledger, self.claims.ask,
            n_trials=n_trials, strategy=strategy, trials=trials,
        )  # fmt: skip
        self.teller = Teller(
            study, self.ledger, display, self.proposal.told,
            objectives=space.objectives, rungs=self.policy.rungs, max_epochs=max_epochs,
            keep_weights=keep_weights, owner=self.claims.own,
        )  # fmt: skip
        self.job_seconds = 0.0  # wall time of the seed runs collected
        self.driver_s = 0.0  # time in ask/tell and bookkeeping (not waiting on trials)
        self.epochs_trained = 0
        self.decisions: list[dict[str, Any]] = []  # every rung decision, for run.json
        self._deciding = False  # a rung's members are being told or resubmitted

    def key(self, cand: Candidate) -> str:
        """The network a candidate builds (candidates with one key are trained once)."""
        return self.ledger.key(cand)

    # the loop -----------------------------------------------------------------------
    def run(self) -> None:
        """Fill the executor up to ``parallel`` jobs, collect results, until the budget is
        spent and nothing is left in flight.

        Raises ``IOFault`` (one line: what failed and where) when a file the search writes or
        reads fails: the running trials become retryable rows and ``--resume`` goes on."""
        try:
            self._loop()
        except STUDY_WRITE_ERRORS as exc:  # the study takes no writes (disk full, read-only)
            self.teller.fault = io_line(exc, path=getattr(exc, "filename", None) or self.where)
        if self.teller.fault is not None:
            self.abandon(f"interrupted: the search stopped on {IO_ERROR} ({self.teller.fault})")
            raise IOFault(self.teller.fault)

    def _loop(self) -> None:
        self.teller.update_front()
        parallel = max(1, int(self.executor.parallel))
        ledger, teller = self.ledger, self.teller
        while teller.fault is None:
            tick = time.perf_counter()
            self._sync()
            while (
                ledger.jobs_in_flight() < parallel
                and self.proposal.can_ask()
                and teller.fault is None
            ):
                self.ask_next()
            self._decide_rungs()
            self.driver_s += time.perf_counter() - tick
            if not ledger.running:
                # waiting only on other drivers' trials: those parked here, or any still
                # running that may need retrying here (a hung driver)
                if ledger.foreign or self.claims.others_running(self._say):
                    time.sleep(0.5)
                    self._sync(every=1.0)
                    continue
                if ledger.waiting_dups:  # cannot happen: dups wait only on running trials
                    self.abandon("stale duplicate")
                break
            self.claims.working()
            if not ledger.jobs_in_flight():
                raise RuntimeError(
                    "driver stuck: candidates wait at a rung with no job left "
                    f"({sorted(r.cand.id for r in ledger.running.values())})"
                )
            done = self.executor.wait(1.0)  # returns at once when a trial ends
            tick = time.perf_counter()
            for job, result in done:
                self.collect(job, result)
            self.display.refresh()
            self.driver_s += time.perf_counter() - tick

    def _say(self, line: str) -> None:
        if self.display.enabled:
            self.display.console.print(line, highlight=False)

    # asking -------------------------------------------------------------------------
    def ask_next(self) -> None:
        """Ask one trial and launch, answer or park it."""
        trial, cand, role = self.proposal.ask()
        key = self.key(cand)
        record = TrialRecord(candidate=cand, role=role, network=key)
        record.write(trial, only=["network"])
        placed = self._place([trial], key, cand)
        self.proposal.placed(trial, trains=not placed)
        if not placed:
            self._launch(trial, record, key)

    def _place(self, trials: list[optuna.Trial], key: str, cand: Candidate | None = None) -> bool:
        """Answer ``trials`` (all of network ``key``) from the trial that trained it, or park
        them on the run training it here or in another live driver; False: train it here."""
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

    def _launch(self, trial: optuna.Trial, record: TrialRecord, key: str) -> None:
        run = Running(trial, record, key)
        self.ledger.start(run)
        self._submit(run, self.policy.first(record.role))

    def _submit(self, run: Running, stop_at: int | None) -> None:
        """One job per seed, training to ``stop_at`` (a rung) or the full budget."""
        run.stop_at, run.waiting, run.results = stop_at, False, []
        run.jobs_left = self.space.search.seeds
        for seed in range(run.jobs_left):
            self.executor.submit(
                self.job(
                    trial=run.trial.number,
                    candidate=run.cand.to_dict(),
                    seed=seed,
                    protected=run.role == "reference",
                    fault=self.faults.get(run.cand.id),
                    stop_at=stop_at,
                    weights_dir=self.weights_dir if stop_at is None else None,
                )
            )
        self.display.progress.running = [r.cand.id for r in self.ledger.running.values()]

    # other drivers ------------------------------------------------------------------
    def _sync(self, every: float = 2.0) -> None:
        """Read what other drivers did (``Claims.sync``), then settle the trials parked on
        their runs: answered from a trained one; placed again, or trained here, otherwise."""
        if not self.claims.sync(every):
            return
        for theirs, mine in self.claims.settled():
            if trained(theirs):
                self.ledger.finished[network_of(theirs) or ""] = theirs
                self.proposal.learn(theirs)
                for trial in mine:
                    self.teller.duplicate(trial, theirs)
                continue
            # their run failed retryably (interrupted, its driver died): claim it again, as
            # other drivers parked on the same trial do; the lowest live trial trains it
            first, rest = mine[0], mine[1:]
            rec = TrialRecord.read(first)
            assert rec.candidate is not None
            key = self.key(rec.candidate)
            if self._place(mine, key):
                continue
            reason = TrialRecord.read(theirs).reason or "failed"
            self.ledger.note_retry(rec.candidate, theirs.number, reason)
            again = TrialRecord(candidate=rec.candidate, role=rec.role, network=key)
            self._launch(first, again, key)
            self.ledger.waiting_dups.setdefault(key, []).extend(rest)

    # collecting and telling ---------------------------------------------------------
    def collect(self, job: Job, result: dict[str, Any]) -> None:
        """One seed's result; its candidate is told, or waits at its rung, once all report."""
        run = self.ledger.running.get(job.trial)
        if run is None:  # cancelled meanwhile
            return
        run.results.append(result)
        run.jobs_left -= 1
        env = result.get("env") or {}
        if int(env.get("attempt") or 1) > 1:
            run.record.retries.append(
                {
                    "seed": job.seed,
                    "attempts": int(env["attempt"]),
                    "reason": "worker died; Ray ran the task again",
                }
            )
        wall = float(env.get("job_wall_s") or result.get("wall_s") or 0)
        self.job_seconds += wall
        self.epochs_trained += int(result.get("epochs") or 0)
        self.display.progress.job_seconds.append(wall)
        if run.jobs_left:
            return
        status, _ = summarise(run.results)
        reached = (
            run.stop_at is not None
            and status != "failed"
            and all(int(r.get("epochs") or 0) >= run.stop_at for r in run.results)
        )
        if reached:
            run.waiting = True
            self._decide_rungs()
        else:
            self._finish(run)

    def _finish(self, run: Running, forced: str | None = None) -> FrozenTrial:
        told = self.teller.finish(run, forced)
        self._decide_rungs()
        return told

    def _decide_rungs(self) -> None:
        """Decide a rung once no candidate can still join it and every searched candidate has
        reported there (``RungPolicy.due``); reference rows anchor the ranking, so none may
        still be running. Stopped candidates are told pruned, the others go on."""
        if not self.policy or self._deciding or self.proposal.refs or self.proposal.can_ask():
            return
        runs = list(self.ledger.running.values())
        if any(r.role == "reference" for r in runs):
            return
        searched = [r for r in runs if r.role == "search"]
        epoch = self.policy.due((r.stop_at, r.waiting) for r in searched)
        if epoch is None:
            return
        members = [r for r in searched if r.stop_at == epoch]
        decided = self.policy.decide(
            epoch, {r.cand.id: r.results for r in members}, self.ledger.references()
        )
        for r in members:
            r.record.rungs.append(decided[r.cand.id].record)
            r.waiting = False
            self.decisions.append({"candidate": r.cand.id, **decided[r.cand.id].record})
        self._deciding = True  # every member is decided before any is told or resubmitted
        try:
            for r in members:
                d = decided[r.cand.id]
                if d.stop:
                    for res in r.results:
                        res.update(status="pruned", reason=d.reason)
                    self._finish(r)
                else:
                    self._submit(r, d.next_at)
        finally:
            self._deciding = False

    def abandon(self, reason: str) -> None:
        """Cancel everything in flight; running trials become failed (retryable) rows."""
        self.executor.cancel_all()
        for run in list(self.ledger.running.values()):
            try:
                self._finish(run, forced=reason)
            except (RuntimeError, ValueError):  # interrupted after its tell: already told
                self.ledger.running.pop(run.trial.number, None)
            except STUDY_WRITE_ERRORS:  # the study takes no writes: the trial stays running,
                self.ledger.running.pop(run.trial.number, None)  # stale on --resume, retried
        for dup in self.ledger.parked():
            with contextlib.suppress(RuntimeError, ValueError, *STUDY_WRITE_ERRORS):
                self.teller.fail_retryable(dup, reason)
        self.ledger.waiting_dups.clear()
        self.ledger.foreign.clear()


__all__ = [
    "RETRYABLE",
    "Driver",
    "objective_values",
    "recover_stale_trials",
    "result_cost",
    "rung_metrics",
    "summarise",
]
