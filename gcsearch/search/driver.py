"""The search driver: the loop that asks candidates, runs their seeds and tells the results.

Each concern lives in a module of its own; the driver composes them:

* ``ledger``: what the driver knows of each network (trained, training here, parked);
  a network is trained once, and a candidate proposed again is answered from its trial.
* ``proposal``: which candidate to ask next (reference rows, retries, the strategy).
* ``dispatch``: where an asked trial goes: answered, parked, or trained here, a job per seed.
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
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from gcsearch.errors import IOFault, io_line
from gcsearch.result import TrialResult
from gcsearch.search.claims import Claims, recover_stale_trials
from gcsearch.search.dispatch import Dispatch
from gcsearch.search.display import Display
from gcsearch.search.ledger import Ledger, Running
from gcsearch.search.precision import seeds_for_width
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
        states_dir: str | None = None,
        costs: Mapping[str, Mapping[str, int]] | None = None,
        keep_weights: Callable[[str, list[dict[str, Any]]], str | None] | None = None,
        liveness: Any = None,
        grace: float = 60.0,
        deterministic: bool = False,
        fuse: bool = False,
        where: str = "the study",
    ) -> None:
        self.executor, self.display, self.where = executor, display, where
        self.policy = RungPolicy(rungs, space.fidelity.eta, space.objectives)
        max_epochs = int(budget.get("epochs", 0))
        trials = study.get_trials(deepcopy=False)
        self.ledger = Ledger(space, trials)
        # what other drivers trained, the sampler's study learns too
        self.claims = Claims(study, self.ledger, liveness, grace, lambda t: self.proposal.learn(t))
        self.proposal = Proposal(
            space,
            study,
            self.ledger,
            self.claims.ask,
            n_trials=n_trials,
            strategy=strategy,
            trials=trials,
        )
        self.teller = Teller(
            study,
            self.ledger,
            display,
            self.proposal.told,
            objectives=space.objectives,
            rungs=self.policy.rungs,
            max_epochs=max_epochs,
            keep_weights=keep_weights,
            owner=self.claims.own,
        )
        self.dispatch = Dispatch(
            executor,
            self.ledger,
            self.claims,
            self.teller,
            display,
            self.policy.first,
            space=space,
            faults=faults,
            weights_dir=weights_dir,
            states_dir=states_dir,
            costs=costs,
            budget=dict(budget),
            device=device,
            threads=threads,
            deterministic=deterministic,
            fuse=fuse,
            compile=space.search.compile,
            # validation where it is read: the rungs, the last epoch, and the space's cadence
            validate_at=space.search.validate_at(max_epochs, self.policy.rungs),
            extra_validate_at=space.search.validate_at(max_epochs, ()),
        )
        self.reference_ci = space.search.reference_ci
        self.reference_max_seeds = space.search.reference_max_seeds
        val_images = int(budget.get("val_images") or 0)
        self.top1_step = 100.0 / val_images if val_images else 0.0  # top-1's resolution
        self.job_seconds = 0.0  # wall time of the seed runs collected
        self.driver_s = 0.0  # time in ask/tell and bookkeeping (not waiting on trials)
        self.epochs_trained = 0
        self.decisions: list[dict[str, Any]] = []  # every rung decision, for run.json
        self._deciding = False  # a rung's members are being told or resubmitted
        # idle slots at a rung's barrier start the likely promotions (``start_early``)
        self.speculate = space.fidelity.speculate and not fuse
        self.early = {"started": 0, "used": 0, "wasted": 0}  # those segments, for run.json
        self._orphans: set[tuple[int, int]] = set()  # (trial, seed) early, of stopped runs

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
        reported = True  # results came in since the last turn (a rung may rank otherwise)
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
            if reported:
                self.start_early(parallel)
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
                if not self._orphans:
                    break
                # a stopped candidate's early segment still runs: it ends (and writes what it
                # writes) before the search does, so the run directory's clean-up is final
            elif not ledger.jobs_in_flight():
                raise RuntimeError(
                    "driver stuck: candidates wait at a rung with no job left "
                    f"({sorted(r.cand.id for r in ledger.running.values())})"
                )
            else:
                self.claims.working()
            done = self.executor.wait(1.0)  # returns at once when a trial ends
            reported = bool(done)
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
        """Ask one trial and launch, answer or park it (``Dispatch``)."""
        trial, cand, role = self.proposal.ask()
        key = self.key(cand)
        record = TrialRecord(candidate=cand, role=role, network=key)
        record.write(trial, only=["network"])
        placed = self.dispatch.place([trial], key, cand)
        self.proposal.placed(trial, trains=not placed)
        if not placed:
            self.dispatch.launch(trial, record, key)

    def _sync(self, every: float = 2.0) -> None:
        """Read what other drivers did (``Claims.sync``) and settle the trials parked on
        their runs."""
        if self.claims.sync(every):
            self.dispatch.settle(self.proposal.learn)

    # collecting and telling ---------------------------------------------------------
    def collect(self, job: Job, result: TrialResult) -> None:
        """One seed's result; its candidate is told, or waits at its rung, once all report."""
        run = self.ledger.running.get(job.trial)
        if run is None:  # cancelled meanwhile, or an early segment of a stopped candidate
            if (job.trial, job.seed) in self._orphans:
                self._orphans.discard((job.trial, job.seed))
                self._count(result)
            return
        self._count(result)
        if run.waiting:  # an early segment: kept until the rung's decision
            run.early[job.seed] = result
            return
        run.add(job.seed, result)
        if not run.jobs_left:
            self._segment_done(run)

    def _count(self, result: TrialResult) -> None:
        """A job's wall time and the epochs it trained (a promotion resumed from its rung
        trains only the epochs after it)."""
        wall = float(result.env.get("job_wall_s") or result.wall_s or 0)
        self.job_seconds += wall
        resumed = int(result.env.get("resumed") or 0)
        self.epochs_trained += max(0, result.epochs - resumed)
        self.display.progress.job_seconds.append(wall)

    def _segment_done(self, run: Running) -> None:
        """Every seed of ``run``'s segment reported: it waits at its rung, narrows its
        interval (a reference row), or is told."""
        failed = any(r.status == "failed" for r in run.results)
        reached = (
            run.stop_at is not None
            and not failed
            and all(r.epochs >= run.stop_at for r in run.results)
        )
        if reached:
            run.waiting = True
            self._decide_rungs()
        elif not failed and self._narrow(run):
            return
        else:
            self._finish(run)

    def _narrow(self, run: Running) -> bool:
        """A reference row whose top-1 interval is wider than ``[search] reference_ci`` trains
        more seeds (as many as its observed sd projects, at most one per slot at a time, up to
        ``reference_max_seeds``); True while it does. Seeds go where the answer is still open:
        the rows every comparison is read against."""
        target = self.reference_ci
        if not target or run.role != "reference" or run.stop_at is not None:
            return False
        top1 = [r.top1 for r in run.results if r.top1 is not None]
        cap = max(self.reference_max_seeds, len(run.results))
        want = seeds_for_width(top1, target, floor=self.top1_step, most=cap)
        more = min(want - len(run.results), max(1, int(self.executor.parallel)))
        if more <= 0:
            return False
        self.dispatch.extend(run, more)
        return True

    def start_early(self, parallel: int) -> None:
        """Slots left idle at a rung's barrier (nothing left to ask, its last members still
        train) start the next segment of the waiting candidates most sure to go on
        (``RungPolicy.likely``), a seed per free slot, best first. The decision is taken as
        always, once the whole rung reported; a promoted candidate then uses its early seeds
        (each the same job it would have run), a stopped one's are lost work
        (``early['wasted']``). Off with ``[fidelity] speculate = false``."""
        ledger = self.ledger
        if not self.speculate or ledger.jobs_in_flight() >= parallel:
            return
        rung = [r for r in self._rung_runs() if r.stop_at is not None]
        if not rung:
            return
        epoch = min(r.stop_at for r in rung if r.stop_at is not None)
        rung = [r for r in rung if r.stop_at == epoch]
        waiting = {r.cand.id: r for r in rung if r.waiting}
        if not waiting or len(waiting) == len(rung):  # nothing reported yet, or due now
            return
        reported = {cid: [x.to_dict() for x in r.results] for cid, r in waiting.items()}
        nxt = self.policy.next_at(epoch)
        for cid in self.policy.likely(epoch, reported, ledger.references(), len(rung)):
            run = waiting[cid]
            for seed in range(self.dispatch.seeds):
                if ledger.jobs_in_flight() >= parallel:
                    return
                if seed not in run.early:
                    self.dispatch.early(run, seed, nxt)
                    self.early["started"] += 1

    def _finish(self, run: Running, forced: str | None = None) -> None:
        self.teller.finish(run, forced)
        self._decide_rungs()  # its end may complete a rung

    def _rung_runs(self) -> list[Running]:
        """The searched runs in flight once their rungs are closed: no candidate can still
        join one and the reference rows, which anchor the ranking, are all in. Empty before
        (or without rungs): no rung may be decided, nor work started ahead of a decision."""
        if not self.policy or self.proposal.refs or self.proposal.can_ask():
            return []
        runs = list(self.ledger.running.values())
        if any(r.role == "reference" for r in runs):
            return []
        return [r for r in runs if r.role == "search"]

    def _decide_rungs(self) -> None:
        """Decide a rung once no candidate can still join it and every searched candidate has
        reported there (``RungPolicy.due``); reference rows anchor the ranking, so none may
        still be running. Stopped candidates are told pruned, the others go on."""
        if self._deciding:
            return
        searched = self._rung_runs()
        epoch = self.policy.due((r.stop_at, r.waiting) for r in searched)
        if epoch is None:
            return
        members = [r for r in searched if r.stop_at == epoch]
        decided = self.policy.decide(  # the seeds' results as their records will hold them
            epoch,
            {r.cand.id: [x.to_dict() for x in r.results] for r in members},
            self.ledger.references(),
        )
        for r in members:
            r.record.rungs.append(decided[r.cand.id].record)
            r.waiting = False
            self.decisions.append({"candidate": r.cand.id, **decided[r.cand.id].record})
        self._deciding = True  # every member is decided before any is told or resubmitted
        try:
            for r in members:
                d = decided[r.cand.id]
                early, r.early = r.early, {}
                if d.stop:
                    self.early["wasted"] += len(early)
                    self._orphans |= {(r.trial.number, s) for s, x in early.items() if x is None}
                    for res in r.results:
                        res.status, res.reason = "pruned", d.reason
                    self._finish(r)
                    continue
                self.dispatch.submit(r, d.next_at, started=early)
                for seed, res in sorted(early.items()):  # each the job submit would have run
                    self.early["used"] += 1
                    if res is not None:
                        r.add(seed, res)
                if not r.jobs_left:  # every seed's segment ended early
                    self._segment_done(r)
        finally:
            self._deciding = False

    def abandon(self, reason: str) -> None:
        """Cancel everything in flight; running trials become failed (retryable) rows."""
        self.executor.cancel_all()
        self._orphans.clear()
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
