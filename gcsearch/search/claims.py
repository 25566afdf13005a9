"""Several drivers on one study: claimed trials, the others' results, stale trials retried.

Each trial is claimed by the driver that asks it, whose heartbeat (``liveness.py``) says it is
alive. A driver never fails a live driver's trials, yields a network another live driver is
training (and is answered from that result), and retries the trials of a driver whose
heartbeat stopped. The same rule serves ``--resume``: ``recover_stale_trials`` turns the trials
a dead driver left running into failed, retryable rows; their candidates are asked again,
first, in their original order, and the new row names the one it retries (``retries``).
Rung decisions are per driver: give each driver its own study for successive halving, or run
several drivers without rungs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gcsearch.search.ledger import Ledger, trained
from gcsearch.search.liveness import (
    claim,
    claim_conflict,
    drivers,
    live_drivers,
    liveness_settings,
    owner,
    stale_trials,
)
from gcsearch.search.record import TrialRecord
from gcsearch.spec import Candidate


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


def network_of(t: FrozenTrial) -> str | None:
    """The network key a trial claimed (None while unclaimed)."""
    return TrialRecord.read(t).network or None


class Claims:
    """This driver's side of a shared study; with no heartbeat (``liveness`` None) it only
    asks, and the rest does nothing."""

    def __init__(
        self,
        study: optuna.Study,
        ledger: Ledger,
        liveness: Any,
        grace: float,
        learn: Callable[[FrozenTrial], None],
    ) -> None:
        """``learn`` shows another driver's trained trial to this driver's sampler."""
        self.study, self.ledger, self.liveness, self.grace = study, ledger, liveness, grace
        self.learn = learn
        self._synced = 0.0
        self._others_seen: dict[str, dict[str, Any]] = {}
        self._idle_since: float | None = None  # when this driver ran out of work

    @property
    def own(self) -> str | None:
        """This driver's id in the study (None: no heartbeat)."""
        return self.liveness.driver_id if self.liveness is not None else None

    def ask(self) -> optuna.Trial:
        """``study.ask()``, the trial claimed by this driver at once."""
        trial = self.study.ask()
        if self.own is not None:
            claim(self.study, trial, self.own)
        return trial

    def conflict(self, number: int, key: str) -> FrozenTrial | None:
        """Another driver's trial of network ``key``: finished and trained (answer from it),
        or running under a live driver with a lower number (wait for it)."""
        if self.own is None:
            return None
        if self._others_changed():
            self._absorb()
        if key in self.ledger.finished:
            return self.ledger.finished[key]
        if not live_drivers(self.study, self.grace) - {self.own}:
            return None
        return claim_conflict(self.study, number, key, network_of, self.own, self.grace)

    def sync(self, every: float = 2.0) -> bool:
        """What the other drivers finished, run and left stale: read from the study at most
        every ``every`` seconds; stale trials are failed (retryable) and asked again here.
        Returns whether it read (then trials parked on other drivers may be settled)."""
        if self.own is None or time.time() - self._synced < every:
            return False
        self._synced = time.time()
        recovered = recover_stale_trials(self.study, self.grace, own=self.own)
        for number, cand, reason in recovered:
            if cand is not None:
                self.ledger.note_retry(cand, number, reason)
                retry = self.ledger.retry_first
                if self.ledger.key(cand) not in self.ledger.finished and cand not in retry:
                    retry.append(cand)
        if self._others_changed() or self.ledger.foreign or recovered:
            self._absorb()
        return True

    def settled(self) -> Iterator[tuple[FrozenTrial, list[optuna.Trial]]]:
        """Trials parked on another driver's trial that is no longer running: that trial as it
        ended, and the parked trials (taken out of ``Ledger.foreign``)."""
        for number, (theirs, mine) in list(self.ledger.foreign.items()):
            now = self.study._storage.get_trial(theirs._trial_id)
            if now.state == TrialState.RUNNING:
                continue  # still running under a live driver (sync fails it once stale)
            del self.ledger.foreign[number]
            yield now, mine

    def working(self) -> None:
        """This driver has trials of its own running."""
        self._idle_since = None

    def others_running(self, say: Callable[[str], None]) -> bool:
        """Out of work: whether another driver's running trial may still need this driver.

        A trial is waited for until it finishes, turns stale (``sync`` then retries it here)
        or its driver has beaten ``grace`` seconds after this one ran out of work (alive for
        that long: it finishes its own). So a hung driver (SIGSTOP, a lost host) is caught
        even when it beat just before or after, and a live one is not waited on for ever.
        ``say`` prints the one line that says so."""
        if self.own is None:
            return False
        fresh = self._idle_since is None
        if fresh:
            self._idle_since = time.time()
        beats = drivers(self.study)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            who = owner(t)
            if who is None or who == self.own:
                continue
            if float(beats.get(who, {}).get("beat", 0)) < self._idle_since + self.grace:
                if fresh:
                    say(
                        f"waiting for trial {t.number} of driver {who} (and any others): "
                        f"retried here if its driver stays silent for {self.grace:.0f}s"
                    )
                return True
        return False

    def _others_changed(self) -> bool:
        """Whether another driver is alive, or its record changed (it stopped or died) since
        the last full read of the study: only then can there be results this driver has not
        seen. A single driver never pays for the read."""
        others = {d: rec for d, rec in drivers(self.study).items() if d != self.own}
        if live_drivers(self.study, self.grace) - {self.own} or others != self._others_seen:
            self._others_seen = others
            return True
        return False

    def _absorb(self) -> None:
        """Read the whole study: other drivers' trained networks join ``finished``; what they
        are training now is kept out of this driver's next asks."""
        live = live_drivers(self.study, self.grace)
        busy = set()
        for t in self.study.get_trials(deepcopy=False):
            rec = TrialRecord.read(t)
            if rec.candidate is None or owner(t) == self.own:
                continue
            if t.state == TrialState.RUNNING:
                if owner(t) in live:
                    busy.add(rec.candidate.id)
            elif trained(t):
                self.ledger.seen_ids.add(rec.candidate.id)
                self.ledger.finished.setdefault(self.ledger.key(rec.candidate), t)
                self.learn(t)
        self.ledger.foreign_busy = busy


__all__ = ["Claims", "network_of", "recover_stale_trials"]
