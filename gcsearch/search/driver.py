"""The search driver: ask, dedupe, tell, and the rung decisions, over one Optuna study.

One Optuna trial is one candidate; its record (``record.TrialRecord``) holds the spec, the
per-seed results, the rung decisions and the cost, and its values are the means over seeds.

* Strategies: ``ehvi`` (``strategy.py``: expected hypervolume improvement over the distinct
  networks, exact costs, a model of accuracy only), Optuna's ``nsga2``, ``tpe`` and
  ``random`` (proposing from a private study of the searched networks only,
  ``sampling.SamplerStudy``), and ``grid`` (every candidate in space order). Every trial of
  the search's study is enqueued with its candidate's parameters, so its own sampler is never
  consulted.
* Reference rows (the ``none`` baseline and the space's presets) are asked first and always
  trained at the full budget.
* Deduplication by the network a candidate builds (``sampling.network_key``): a candidate
  proposed again is answered from the stored result (``duplicate_of``; told to Optuna as a
  failed trial, so no sampler counts a network twice), or when that trial finishes if it is
  still running; ``n_trials`` counts distinct networks trained. ``ehvi`` and ``grid`` never
  propose a known network; after 10 duplicates in a row from an Optuna sampler the driver
  enqueues an unseen network, so a small space is never stuck.
* Multi-fidelity (synchronous successive halving over candidates): every searched candidate
  first trains all its seeds to the first rung; once every candidate of the search has
  reported there, they are ranked on the mean over their seeds (non-dominated sorting, then
  crowding, then accuracy, then id; reference rows shape the fronts but take no slot) and the
  top ``1/eta`` go on to the next rung, trained again from scratch under the same schedule
  (no checkpoint: a rung run is the prefix of the full run). The decision is recorded on the
  candidate and depends neither on the order trials finish in nor on an interrupt and resume.
* Resume: ``recover_stale_trials`` turns the trials a dead driver left running into failed,
  retryable rows; their candidates are asked again, first, in their original order, and the
  new row names the one it retries (``retries``).
* Several drivers on one study (``liveness.py``): each trial is claimed by its driver, whose
  heartbeat says it is alive; a driver never fails a live driver's trials, yields a network
  another live driver is training (and answers it from that result), and retries the trials
  of a driver whose heartbeat stopped. Rung decisions are per driver: give each driver its
  own study for successive halving, or run several drivers without rungs.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gcsearch.errors import IOFault, io_line
from gcsearch.pareto import pareto_front
from gcsearch.search.display import Display
from gcsearch.search.fidelity import rank_rung, rung_vector
from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import (
    OPTUNA_SAMPLERS,
    SamplerStudy,
    candidate_params,
    make_sampler,
    network_key,
    suggest_candidate,
)
from gcsearch.search.space import Space, objective
from gcsearch.search.trial import IO_ERROR, Job
from gcsearch.spec import METRICS, Candidate

#: Failure reasons that say nothing about the candidate: asked again on resume.
RETRYABLE = ("interrupted", "driver died", "worker lost", "stale", IO_ERROR)
#: What a failed write to the study raises (a journal file: OSError; an RDB: Optuna's wrapper).
STUDY_WRITE_ERRORS = (OSError, optuna.exceptions.StorageInternalError)
MAX_DUPLICATE_STREAK = 10
_STATE = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


def recover_stale_trials(
    study: optuna.Study, grace: float | None = None, own: str | None = None
) -> list[tuple[int, Candidate | None, str]]:
    """Trials no live driver owns (``liveness.stale_trials``) become failed, retryable rows;
    returns ``(trial number, candidate, reason)`` for each, so they are asked again.

    The one place that decides which trials are stale, on ``--resume`` and while a driver
    runs beside others: a live driver's trials (``own`` included) are never touched. Uses
    ``Study._storage`` and ``FrozenTrial._trial_id`` (Optuna has no public way to fail another
    process's trial); ``tests/search/test_driver.py`` fails loudly if they change. Two drivers
    recovering one trial at once: the second finds it finished and skips it.
    """
    from gcsearch.search.liveness import liveness_settings, stale_trials

    grace = liveness_settings()[1] if grace is None else grace
    out = []
    storage = study._storage
    for t, why in stale_trials(study, grace, own=own):
        reason = (
            f"driver died: {why} (asked again)"
            if t.state == TrialState.RUNNING
            else f"stale enqueued trial ({why})"
        )
        rec = TrialRecord.read(t)
        try:
            # a WAITING trial must start before it can fail; False: another driver took it
            if t.state == TrialState.WAITING and not storage.set_trial_state_values(
                t._trial_id, state=TrialState.RUNNING
            ):
                continue
            rec.status, rec.reason, rec.retryable = "failed", reason, True
            for key, value in rec.attrs(only=("status", "reason", "retryable")).items():
                storage.set_trial_user_attr(t._trial_id, key, value)
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue  # finished meanwhile (by its owner, or recovered by another driver)
        out.append((t.number, rec.candidate, reason))
    return out


def summarise(results: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """Candidate status from its seeds: any failed -> failed, any pruned -> pruned."""
    for status in ("failed", "pruned"):
        hits = [r for r in results if r.get("status") == status]
        if hits:
            return status, str(hits[0].get("reason") or status)
    if not results:
        return "failed", "no result"
    return "complete", ""


def result_cost(results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    for r in results:
        if r.get("params") is not None and r.get("macs") is not None:
            return {
                k: int(r[k])
                for k in ("params", "macs", "block_params", "block_macs")
                if r.get(k) is not None
            }
    return {}


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


def rung_metrics(results: Sequence[Mapping[str, Any]], epoch: int) -> dict[str, float] | None:
    """Every registered metric of a candidate at ``epoch``: trained metrics measured per epoch
    from the seeds' histories (None unless every seed validated there), the others from the
    results, costs as counted; ``top1_seeds`` lists each seed's top-1."""
    rows = []
    for r in results:
        rec = next((h for h in r.get("history") or [] if int(h.get("epoch", 0)) == epoch), None)
        if rec is None or rec.get("val_top1") is None:
            return None
        rows.append(rec)
    if not rows:
        return None
    out: dict[str, Any] = {k: float(v) for k, v in result_cost(results).items()}
    for metric in METRICS.values():
        if metric.source == "counted":
            continue
        if metric.at_epoch:
            seen = [float(h[metric.at_epoch]) for h in rows if h.get(metric.at_epoch) is not None]
            out[metric.name] = metric.average_of(seen)
        else:
            out[metric.name] = metric.over(results)
    out["top1_seeds"] = [float(h["val_top1"]) for h in rows]
    return out


@dataclass
class _Running:
    trial: optuna.Trial
    record: TrialRecord
    key: str
    stop_at: int | None = None  # rung epoch this segment stops at; None: the full budget
    jobs_left: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    waiting: bool = False  # reached its rung, waits for the decision
    started: float = field(default_factory=time.time)

    @property
    def cand(self) -> Candidate:
        assert self.record.candidate is not None
        return self.record.candidate

    @property
    def role(self) -> str:
        return self.record.role


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
        self.space, self.study, self.executor = space, study, executor
        self.budget, self.device, self.rungs = dict(budget), device, tuple(rungs)
        self.faults, self.display, self.n_trials, self.threads = faults, display, n_trials, threads
        self.strategy = strategy
        self.weights_dir, self.keep_weights = weights_dir, keep_weights
        self.eta = space.fidelity.eta
        self.max_epochs = int(budget.get("epochs", 0))
        # validation where it is read: the rungs, the last epoch, and the space's cadence
        self.validate_at = space.search.validate_at(self.max_epochs, self.rungs)
        self.running: dict[int, _Running] = {}
        self.by_key: dict[str, int] = {}  # network key -> running trial number
        self.waiting_dups: dict[str, list[optuna.Trial]] = {}
        self.finished: dict[str, FrozenTrial] = {}  # network key -> the trial that trained it
        self.seen_ids: set[str] = set()
        self.order = space.candidates()
        self._keys: dict[str, str] = {}
        self.rng = random.Random(space.search.sampler_seed)
        self.streak = 0
        self.job_seconds = 0.0
        self.driver_s = 0.0  # time in ask/tell and bookkeeping (not waiting on trials)
        self.epochs_trained = 0
        self.decisions: list[dict[str, Any]] = []
        self._deciding = False
        self.retry_first: list[Candidate] = []  # candidates a dead driver left: asked first
        # several drivers on one study (liveness.py): this driver's heartbeat, the trials it
        # waits on that another live driver is training, and what the others run
        self.liveness, self.grace, self.deterministic = liveness, grace, deterministic
        self.foreign: dict[int, tuple[FrozenTrial, list[optuna.Trial]]] = {}
        self.foreign_busy: set[str] = set()  # candidate ids other live drivers are training
        self.retry_of: dict[str, dict[str, Any]] = {}  # candidate id -> the row it retries
        self._synced = 0.0
        # an Optuna sampler proposes from its own study of the searched networks, rebuilt
        # from the search's history on a resume
        self.proposer = (
            SamplerStudy(space, make_sampler(space, n_trials))
            if space.search.sampler in OPTUNA_SAMPLERS
            else None
        )
        self._idle_since: float | None = None  # when this driver ran out of work
        # an I/O fault (disk full, read-only run dir, unreadable file) stops the search
        self.fault: str | None = None
        self.where = where
        for t in study.get_trials(deepcopy=False):
            self._learn(t)
            rec = TrialRecord.read(t)
            if rec.candidate is None or not t.state.is_finished():
                continue
            if rec.retryable:
                if not rec.is_duplicate:
                    self.retry_of.setdefault(
                        rec.candidate.id, {"retry_of": t.number, "reason": rec.reason}
                    )
                if rec.role == "search" and not rec.is_duplicate:
                    self.retry_first.append(rec.candidate)
                continue
            self.seen_ids.add(rec.candidate_id)
            if not rec.is_duplicate:
                self.finished.setdefault(self.key(rec.candidate), t)
        self.refs = [c for c in space.references() if c.id not in self.seen_ids]
        done = {self.key(c) for c in self.retry_first} - set(self.finished)
        self.retry_first = [
            c for c in self.retry_first if self.key(c) in done and c.id not in self.seen_ids
        ]
        self.retry_first = list({self.key(c): c for c in self.retry_first}.values())

    # bookkeeping ----------------------------------------------------------------------
    def key(self, cand: Candidate) -> str:
        """The network a candidate builds (candidates with one key are trained once)."""
        if cand.id not in self._keys:
            self._keys[cand.id] = network_key(cand, self.space.backbone, self.space.min_hidden)
        return self._keys[cand.id]

    def known(self, cand: Candidate) -> bool:
        k = self.key(cand)
        return k in self.finished or k in self.by_key

    def trained_search(self) -> int:
        """Distinct searched networks finished or in flight (the n_trials budget)."""
        done = sum(1 for t in self.finished.values() if TrialRecord.read(t).role == "search")
        return done + sum(1 for r in self.running.values() if r.role == "search")

    def unseen(self) -> list[Candidate]:
        """Candidates with no trial yet."""
        busy = {r.cand.id for r in self.running.values()}
        busy |= {TrialRecord.read(d).candidate_id for ds in self.waiting_dups.values() for d in ds}
        busy |= {TrialRecord.read(d).candidate_id for _, ds in self.foreign.values() for d in ds}
        busy |= self.foreign_busy
        return [c for c in self.order if c.id not in self.seen_ids and c.id not in busy]

    def _next_fixed(self) -> Candidate | None:
        """Grid order: a candidate whose network is known costs nothing; a new one needs
        budget."""
        budget = self.trained_search() < self.n_trials
        for cand in self.unseen():
            if self.known(cand) or budget:
                return cand
        return None

    def can_ask(self) -> bool:
        if self.refs:
            return True
        if self.space.search.sampler == "grid":
            return self._next_fixed() is not None
        return self.trained_search() < self.n_trials and any(
            not self.known(c) for c in self.unseen()
        )

    def jobs_in_flight(self) -> int:
        return sum(r.jobs_left for r in self.running.values())

    def answered(self) -> dict[str, FrozenTrial]:
        """Network key -> its finished trial (what a strategy may learn from)."""
        return dict(self.finished)

    def in_flight_keys(self) -> list[str]:
        return list(self.by_key)

    # asking ---------------------------------------------------------------------------
    def _ask_fixed(
        self, cand: Candidate, role: str, proposal: optuna.Trial | None = None
    ) -> optuna.Trial:
        """Enqueue ``cand`` and ask it: the trial carries the candidate's parameters (what
        optuna-dashboard shows); a searched one is bound to its trial in the sampler's study
        (``proposal``, or a new enqueued one there)."""
        params = {} if role == "reference" else candidate_params(self.space, cand)
        attrs = TrialRecord(candidate=cand, role=role).attrs(only=("candidate", "role"))
        self.study.enqueue_trial(params, user_attrs=attrs)
        trial = self._ask()
        if role == "search":
            suggest_candidate(trial, self.space)
            if self.proposer is not None:
                self.proposer.bind(trial.number, proposal or self.proposer.fixed(cand))
        return trial

    def _learn(self, t: FrozenTrial) -> None:
        """Let the sampler's study see a finished trial of the search (once; searched,
        non-duplicate trials only)."""
        if self.proposer is not None:
            self.proposer.learn(t)

    def _drop(self, trial: optuna.Trial) -> None:
        """``trial`` trains nothing here (a duplicate, or parked on another trial of its
        network): the sampler's study never learns from its proposal."""
        if self.proposer is not None:
            self.proposer.drop(trial.number)

    def _ask(self) -> optuna.Trial:
        """``study.ask()``, the trial claimed by this driver at once (liveness.py)."""
        trial = self.study.ask()
        if self.liveness is not None:
            from gcsearch.search.liveness import claim

            claim(self.study, trial, self.liveness.driver_id)
        return trial

    def _propose(self) -> tuple[optuna.Trial, Candidate, str]:
        if self.refs:
            cand = self.refs.pop(0)
            return self._ask_fixed(cand, "reference"), cand, "reference"
        fresh = [c for c in self.retry_first if not self.known(c)]
        self.retry_first = fresh[1:]
        if fresh:
            return self._ask_fixed(fresh[0], "search"), fresh[0], "search"
        sampler = self.space.search.sampler
        if sampler == "grid":
            nxt = self._next_fixed()
            assert nxt is not None
            return self._ask_fixed(nxt, "search"), nxt, "search"
        if sampler not in OPTUNA_SAMPLERS:
            cand = self.strategy.propose(self)
            return self._ask_fixed(cand, "search"), cand, "search"
        if self.streak >= MAX_DUPLICATE_STREAK:
            pick = self.rng.choice([c for c in self.unseen() if not self.known(c)])
            self.streak = 0
            return self._ask_fixed(pick, "search"), pick, "search"
        assert self.proposer is not None
        proposal, cand = self.proposer.propose()
        return self._ask_fixed(cand, "search", proposal), cand, "search"

    def ask_next(self) -> None:
        """Ask one trial and launch, dedupe or park it."""
        trial, cand, role = self._propose()
        key = self.key(cand)
        record = TrialRecord(candidate=cand, role=role, network=key)
        record.write(trial, only=["network"])
        if key not in self.finished and key not in self.by_key:
            other = self._conflict(trial.number, key)
            if other is not None and other.state.is_finished():
                self.finished[key] = other
            elif other is not None:  # another live driver trains this network now
                self.streak += 1
                self._drop(trial)
                self.foreign.setdefault(other.number, (other, []))[1].append(trial)
                return
        if key in self.finished:
            self.streak += 1
            self._drop(trial)
            self._tell_duplicate(trial, self.finished[key], cand)
        elif key in self.by_key:
            self.streak += 1
            self._drop(trial)
            self.waiting_dups.setdefault(key, []).append(trial)
        else:
            self.streak = 0
            self._launch(trial, record, key)

    def _launch(self, trial: optuna.Trial, record: TrialRecord, key: str) -> None:
        if record.candidate is not None and record.candidate.id in self.retry_of:
            # the row says which trial it retries and why (a dead driver's, an interrupt)
            record.retries.append(self.retry_of.pop(record.candidate.id))
        run = _Running(trial, record, key)
        self.running[trial.number] = run
        self.by_key[key] = trial.number
        first = self.rungs[0] if self.rungs and record.role == "search" else None
        self._submit(run, first)

    # several drivers ------------------------------------------------------------------
    def _key_of(self, t: FrozenTrial) -> str | None:
        rec = TrialRecord.read(t)
        if rec.network:
            return rec.network
        return None

    def _trained(self, t: FrozenTrial) -> bool:
        return t.state.is_finished() and TrialRecord.read(t).trained

    def _others_changed(self) -> bool:
        """Whether another driver is alive, or its record changed (it stopped or died) since
        the last full read of the study: only then can there be results this driver has not
        seen. A single driver never pays for the read."""
        from gcsearch.search.liveness import drivers, live_drivers

        own = self.liveness.driver_id
        others = {d: rec for d, rec in drivers(self.study).items() if d != own}
        if live_drivers(self.study, self.grace) - {own}:
            self._others_seen = others
            return True
        if others != getattr(self, "_others_seen", {}):
            self._others_seen = others
            return True
        return False

    def _conflict(self, number: int, key: str) -> FrozenTrial | None:
        """Another driver's trial of network ``key``: finished and trained (answer from it),
        or running under a live driver with a lower number (wait for it)."""
        if self.liveness is None:
            return None
        from gcsearch.search.liveness import claim_conflict, live_drivers

        if self._others_changed():
            self._absorb()
        if key in self.finished:
            return self.finished[key]
        own = self.liveness.driver_id
        if not live_drivers(self.study, self.grace) - {own}:
            return None
        return claim_conflict(self.study, number, key, self._key_of, own, self.grace)

    def sync(self, every: float = 2.0) -> None:
        """What the other drivers finished, run and left stale: read from the study at most
        every ``every`` seconds; stale trials are failed (retryable) and asked again here."""
        if self.liveness is None or time.time() - self._synced < every:
            return
        self._synced = time.time()
        own = self.liveness.driver_id
        recovered = recover_stale_trials(self.study, self.grace, own=own)
        for number, cand, reason in recovered:
            if cand is not None:
                self.retry_of.setdefault(cand.id, {"retry_of": number, "reason": reason})
                if self.key(cand) not in self.finished and cand not in self.retry_first:
                    self.retry_first.append(cand)
        if self._others_changed() or self.foreign or recovered:
            self._absorb()
        self._poll_foreign()

    def _absorb(self) -> None:
        """Read the whole study: other drivers' trained networks join ``finished``; what they
        are training now is kept out of this driver's next asks."""
        from gcsearch.search.liveness import live_drivers, owner

        own = self.liveness.driver_id
        live = live_drivers(self.study, self.grace)
        busy = set()
        for t in self.study.get_trials(deepcopy=False):
            rec = TrialRecord.read(t)
            if rec.candidate is None or owner(t) == own:
                continue
            if t.state == TrialState.RUNNING:
                if owner(t) in live:
                    busy.add(rec.candidate.id)
            elif self._trained(t):
                self.seen_ids.add(rec.candidate.id)
                self.finished.setdefault(self.key(rec.candidate), t)
                self._learn(t)
        self.foreign_busy = busy

    def _poll_foreign(self) -> None:
        """Trials parked on another driver's run: answer them when it finishes; train them
        here when it failed retryably or its driver died."""
        for number, (theirs, mine) in list(self.foreign.items()):
            now = self.study._storage.get_trial(theirs._trial_id)
            if now.state == TrialState.RUNNING:
                continue  # still running under a live driver (sync fails it once stale)
            del self.foreign[number]
            if self._trained(now):
                self.finished[self._key_of(now) or ""] = now
                self._learn(now)
                for trial in mine:
                    self._tell_duplicate(trial, now, TrialRecord.read(trial).candidate)
                continue
            # their run failed retryably (interrupted, its driver died): claim it again, as
            # other drivers parked on the same trial do; the lowest live trial trains it
            first, rest = mine[0], mine[1:]
            rec = TrialRecord.read(first)
            assert rec.candidate is not None
            key = self.key(rec.candidate)
            other = None if key in self.by_key else self._conflict(first.number, key)
            if key in self.finished or (other is not None and other.state.is_finished()):
                done = self.finished.setdefault(key, other)
                for trial in mine:
                    self._tell_duplicate(trial, done, TrialRecord.read(trial).candidate)
            elif key in self.by_key:
                self.waiting_dups.setdefault(key, []).extend(mine)
            elif other is not None:
                self.foreign.setdefault(other.number, (other, []))[1].extend(mine)
            else:
                reason = TrialRecord.read(now).reason or "failed"
                self.retry_of.setdefault(
                    rec.candidate.id, {"retry_of": now.number, "reason": reason}
                )
                self._launch(
                    first, TrialRecord(candidate=rec.candidate, role=rec.role, network=key), key
                )
                self.waiting_dups.setdefault(key, []).extend(rest)

    def _submit(self, run: _Running, stop_at: int | None) -> None:
        run.stop_at, run.waiting, run.results = stop_at, False, []
        seeds = range(self.space.search.seeds)
        run.jobs_left = len(seeds)
        for seed in seeds:
            self.executor.submit(
                Job(
                    trial=run.trial.number,
                    candidate=run.cand.to_dict(),
                    seed=seed,
                    task=self.space.task,
                    data=self.space.data,
                    budget=self.budget,
                    backbone=self.space.backbone,
                    min_hidden=self.space.min_hidden,
                    device=self.device,
                    threads=self.threads,
                    objectives=tuple(self.space.objectives),
                    protected=run.role == "reference",
                    fault=self.faults.get(run.cand.id),
                    stop_at=stop_at,
                    validate_at=self.validate_at,
                    deterministic=self.deterministic,
                    weights_dir=self.weights_dir if stop_at is None else None,
                )
            )
        self.display.progress.running = [r.cand.id for r in self.running.values()]

    # telling --------------------------------------------------------------------------
    def _tell_duplicate(self, trial: optuna.Trial, original: FrozenTrial, cand: Candidate) -> None:
        """Answer ``trial`` from ``original``'s record; told as FAIL so no sampler counts the
        network twice (the record, not the Optuna state, says what it is)."""
        self.seen_ids.add(cand.id)
        rec = TrialRecord.read(original)
        rec.candidate, rec.role, rec.duplicate_of = (
            cand,
            TrialRecord.read(trial).role,
            original.number,
        )
        rec.write(trial)
        self.study.tell(trial, None, state=TrialState.FAIL)
        self.display.progress.duplicates += 1

    def collect(self, job: Job, result: dict[str, Any]) -> None:
        run = self.running.get(job.trial)
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

    def _decide_rungs(self) -> None:
        """Synchronous successive halving: decide a rung once no candidate can still join it
        and every candidate of the search has reported there (see the module docstring)."""
        if not self.rungs or self._deciding or self.refs or self.can_ask():
            return
        searched = [r for r in self.running.values() if r.role == "search"]
        if any(r.role == "reference" for r in self.running.values()):
            return  # reference rows anchor the ranking: wait for their curves
        for k, epoch in enumerate(self.rungs):
            members = [r for r in searched if r.stop_at == epoch]
            if not members:
                continue
            if not all(r.waiting for r in members) or any(
                r.stop_at is not None and r.stop_at < epoch for r in searched
            ):
                return
            self._decide(members, epoch, k)
            return

    def _decide(self, members: list[_Running], epoch: int, k: int) -> None:
        vectors: dict[str, tuple[float, ...]] = {}
        figures: dict[str, dict[str, Any]] = {}
        for r in members:
            m = rung_metrics(r.results, epoch)
            if m is None:
                continue
            vectors[r.cand.id] = rung_vector(self.space.objectives, m)
            figures[r.cand.id] = m
        anchors = {}
        for t in self.finished.values():
            rec = TrialRecord.read(t)
            if rec.role == "reference" and rec.status == "complete":
                m = rung_metrics(rec.results, epoch)
                if m is not None:
                    anchors[rec.candidate_id] = rung_vector(self.space.objectives, m)
        ranked, keep = rank_rung(vectors, anchors, self.eta)
        nxt = self.rungs[k + 1] if k + 1 < len(self.rungs) else None
        outcome = []
        for r in members:
            cid = r.cand.id
            position = ranked.index(cid) + 1 if cid in ranked else len(ranked)
            stop = cid not in ranked or position > keep
            decision = {
                "epoch": epoch,
                "position": position,
                "of": len(ranked),
                "keep": keep,
                "stop": stop,
                "top1_mean": figures.get(cid, {}).get("top1"),
                "top1_seeds": figures.get(cid, {}).get("top1_seeds"),
                "anchors": sorted(anchors),
            }
            r.record.rungs.append(decision)
            r.waiting = False
            self.decisions.append({"candidate": cid, **decision})
            outcome.append((r, stop, position, len(ranked)))
        self._deciding = True  # every member is decided before any is told or resubmitted
        try:
            for r, stop, position, n in outcome:
                if stop:
                    for res in r.results:
                        res.update(
                            status="pruned",
                            reason=f"stopped at rung epoch {epoch} "
                            f"(candidate ranked {position} of {n}, kept {keep})",
                        )
                    self._finish(r)
                else:
                    self._submit(r, nxt)
        finally:
            self._deciding = False

    def _finish(self, run: _Running, forced: str | None = None) -> FrozenTrial:
        results = sorted(run.results, key=lambda r: r.get("seed", 0))
        status, reason = ("failed", forced) if forced else summarise(results)
        cost = result_cost(results)
        values = objective_values(self.space.objectives, results, cost)
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
        trial = run.trial
        frozen = self._tell(trial, rec, values if status == "complete" else None, _STATE[status])
        if self.proposer is not None and run.role == "search":
            self.proposer.tell(trial.number, run.cand, values, _STATE[status])
        del self.running[trial.number]
        self.by_key.pop(run.key, None)
        if not rec.retryable:
            self.finished[run.key] = frozen
            self.seen_ids.add(run.cand.id)
        else:  # asked again (a lost worker, an interrupt): the new row names this one
            self.retry_of.setdefault(run.cand.id, {"retry_of": frozen.number, "reason": reason})
        for dup in self.waiting_dups.pop(run.key, []):
            if rec.retryable:
                self._fail_retryable(dup, reason)
            else:
                self._tell_duplicate(dup, frozen, TrialRecord.read(dup).candidate)
        self._progress(run, status, reason, values, epochs, rec.env)
        if self.rungs:
            self._decide_rungs()
        return frozen

    def _tell(
        self, trial: optuna.Trial, rec: TrialRecord, values: list[float] | None, state: TrialState
    ) -> FrozenTrial:
        """Write the record and tell; if another driver already failed this trial as stale
        (this driver was presumed dead, e.g. a heartbeat stalled past the grace period), the
        result is kept as a new trial carrying the record, never lost."""
        try:
            rec.write(trial)
            return self.study.tell(trial, values, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            from optuna.trial import create_trial

            rec.retries.append(
                {
                    "retry_of": trial.number,
                    "reason": "its trial was failed as "
                    "stale by another driver while this one ran it",
                }
            )
            from gcsearch.search.liveness import OWNER

            owner = {OWNER: self.liveness.driver_id} if self.liveness is not None else {}
            template = create_trial(
                state=state,
                values=values,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs=rec.attrs(),
                system_attrs=owner,
            )
            storage = self.study._storage
            tid = storage.create_new_trial(self.study._study_id, template_trial=template)
            return storage.get_trial(tid)

    def _fail_retryable(self, trial: optuna.Trial, reason: str) -> None:
        rec = TrialRecord.read(trial)
        rec.status, rec.reason, rec.retryable = "failed", reason, True
        rec.write(trial, only=["status", "reason", "retryable"])
        self.study.tell(trial, None, state=TrialState.FAIL)

    def _progress(
        self,
        run: _Running,
        status: str,
        reason: str,
        values: list[float] | None,
        epochs: int,
        env: Mapping[str, Any],
    ) -> None:
        p = self.display.progress
        p.running = [r.cand.id for r in self.running.values()]
        if status == "complete":
            p.done += 1
            self._update_front()
        elif status == "pruned":
            p.pruned += 1
        elif not reason.startswith(RETRYABLE):  # a retryable row is asked again: its
            p.failed += 1  # candidate is not finished, so it is not counted ("[8/7]" otherwise)
        top = values[0] if values else None
        detail = f"top1 {top:.2f}" if status == "complete" and top is not None else f"{reason[:80]}"
        where = env.get("node") or env.get("host") or ""
        where = f", {where}" if where else ""
        self.display.finished(
            f"{run.cand.id} {status} ({detail}, {epochs}/{self.max_epochs} "
            f"epochs, {time.time() - run.started:.1f}s{where})"
        )

    def _update_front(self) -> None:
        rows = [
            (TrialRecord.read(t).candidate_id, list(t.values))
            for t in self.finished.values()
            if t.state == TrialState.COMPLETE and t.values
        ]
        if not rows:
            return
        senses = [objective(o)[1] for o in self.space.objectives]
        front = pareto_front([vals for _, vals in rows], senses)
        names = list(self.space.objectives)
        table = [{"id": rows[i][0], **dict(zip(names, rows[i][1], strict=True))} for i in front]
        self.display.progress.front = sorted(
            table, key=lambda r: -r[names[0]] if objective(names[0])[1] == "max" else r[names[0]]
        )

    def abandon(self, reason: str) -> None:
        """Cancel everything in flight; running trials become failed (retryable) rows."""
        self.executor.cancel_all()
        for run in list(self.running.values()):
            try:
                self._finish(run, forced=reason)
            except (RuntimeError, ValueError):  # interrupted after its tell: already told
                self.running.pop(run.trial.number, None)
            except STUDY_WRITE_ERRORS:  # the study takes no writes: the trial stays running,
                self.running.pop(run.trial.number, None)  # stale on --resume, and retried
        parked = [d for ds in self.waiting_dups.values() for d in ds]
        parked += [d for _, ds in self.foreign.values() for d in ds]
        for dup in parked:
            with contextlib.suppress(RuntimeError, ValueError, *STUDY_WRITE_ERRORS):
                self._fail_retryable(dup, reason)
        self.waiting_dups.clear()
        self.foreign.clear()

    def run(self) -> None:
        """Fill the executor up to ``parallel`` jobs, collect results, until the budget is
        spent and nothing is left in flight.

        Raises ``IOFault`` (one line: what failed and where) when a file the search writes or
        reads fails: the running trials become retryable rows and ``--resume`` goes on."""
        try:
            self._loop()
        except STUDY_WRITE_ERRORS as exc:  # the study takes no writes (disk full, read-only)
            self.fault = io_line(exc, path=getattr(exc, "filename", None) or self.where)
        if self.fault is not None:
            self.abandon(f"interrupted: the search stopped on {IO_ERROR} ({self.fault})")
            raise IOFault(self.fault)

    def _loop(self) -> None:
        self._update_front()
        parallel = max(1, int(self.executor.parallel))
        while self.fault is None:
            tick = time.perf_counter()
            self.sync()
            while self.jobs_in_flight() < parallel and self.can_ask() and self.fault is None:
                self.ask_next()
            if self.rungs:
                self._decide_rungs()
            self.driver_s += time.perf_counter() - tick
            if not self.running:
                # waiting only on other drivers' trials: those parked here, or any still
                # running that may need retrying here (a hung driver)
                if self.foreign or self._others_running():
                    time.sleep(0.5)
                    self.sync(every=1.0)
                    continue
                if self.waiting_dups:  # cannot happen: dups wait only on running trials
                    self.abandon("stale duplicate")
                break
            self._idle_since = None
            if not self.jobs_in_flight():
                raise RuntimeError(
                    "driver stuck: candidates wait at a rung with no job left "
                    f"({sorted(r.cand.id for r in self.running.values())})"
                )
            done = self.executor.wait(1.0)  # returns at once when a trial ends
            tick = time.perf_counter()
            for job, result in done:
                self.collect(job, result)
            self.display.refresh()
            self.driver_s += time.perf_counter() - tick

    def _others_running(self) -> bool:
        """Out of work: whether another driver's running trial may still need this driver.

        A trial is waited for until it finishes, turns stale (``sync`` then retries it here)
        or its driver has beaten ``grace`` seconds after this one ran out of work (alive for
        that long: it finishes its own). So a hung driver (SIGSTOP, a lost host) is caught
        even when it beat just before or after, and a live one is not waited on for ever."""
        if self.liveness is None:
            return False
        from gcsearch.search.liveness import drivers, owner

        own = self.liveness.driver_id
        fresh = self._idle_since is None
        if fresh:
            self._idle_since = time.time()
        beats = drivers(self.study)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            who = owner(t)
            if who is None or who == own:
                continue
            if float(beats.get(who, {}).get("beat", 0)) < self._idle_since + self.grace:
                if fresh and self.display.enabled:
                    self.display.console.print(
                        f"waiting for trial {t.number} of driver {who} (and any others): "
                        f"retried here if its driver stays silent for {self.grace:.0f}s",
                        highlight=False,
                    )
                return True
        return False


__all__ = [
    "RETRYABLE",
    "Driver",
    "objective_values",
    "recover_stale_trials",
    "result_cost",
    "rung_metrics",
    "summarise",
]
