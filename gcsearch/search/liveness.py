"""Which drivers of a study are alive, and so which running trials are stale.

Several drivers may share one study (PostgreSQL, or a journal file on a shared file system):
each started with ``--storage ... --resume`` from its own run directory. A run directory's lock
cannot tell them apart, so liveness lives in the study's storage itself:

* every driver has an id and a **heartbeat**: the study system attribute
  ``gcsearch:driver:<id>`` holds ``{"beat": <unix time>, "host", "pid", "run_dir", ...}``,
  rewritten every ``interval`` seconds by a background thread (``Heartbeat``) and marked
  ``stopped`` when the driver exits;
* every trial a driver asks is **owned**: the trial system attribute ``gcsearch:driver``;
* ``stale_trials(study, grace)`` = RUNNING/WAITING trials whose owner has not beaten for
  ``grace`` seconds (or stopped without telling them), or that have no owner while no other
  driver is alive (studies from before liveness; a crash between ask and claim).

A driver never judges its own trials, and a live driver's trials are never stale, so two
drivers never fail each other's work; a killed driver's trials turn stale ``grace`` seconds
after its last beat and the next driver to look retries them. Beat times are the writers'
wall clocks: hosts sharing a study need clocks within a few seconds (NTP), far below ``grace``.

``claim_conflict`` keeps two live drivers from training one network at once: after writing
its claim (the trial's network key), a driver yields to any lower-numbered live trial with the
same key (trial numbers are assigned in creation order; see the function).

Uses ``Study._storage``, ``Study._study_id`` and ``Trial._trial_id`` (Optuna has no public
system-attribute writer any more); ``tests/search/test_liveness.py`` fails loudly when they
change.

Example::

    with Heartbeat(study, run_dir="runs/a") as beat:
        trial = study.ask(); claim(study, trial, beat.driver_id)
        stale_trials(study, grace=60, own=beat.driver_id)   # never this driver's trials
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

DRIVER_PREFIX = "gcsearch:driver:"
OWNER = "gcsearch:driver"
#: seconds between beats, and without a beat before a driver counts as dead
INTERVAL, GRACE = 10.0, 60.0


def liveness_settings() -> tuple[float, float]:
    """``(interval, grace)``: the defaults, or ``GCSEARCH_LIVENESS="interval,grace"``."""
    text = os.environ.get("GCSEARCH_LIVENESS", "")
    with contextlib.suppress(ValueError):
        interval, grace = (float(x) for x in text.split(","))
        if 0 < interval < grace:
            return interval, grace
    return INTERVAL, GRACE


def drivers(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """Driver id -> its last heartbeat record."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {
        k.removeprefix(DRIVER_PREFIX): dict(v)
        for k, v in attrs.items()
        if k.startswith(DRIVER_PREFIX) and isinstance(v, Mapping)
    }


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _gone(rec: Mapping[str, Any]) -> bool:
    """A driver on this machine whose process has exited is dead at once: no need to wait out
    the grace period (a SIGKILLed driver resumed in its own run directory, say)."""
    try:
        return rec.get("host") == socket.gethostname() and not pid_alive(int(rec["pid"]))
    except (KeyError, TypeError, ValueError):
        return False


def live_drivers(study: optuna.Study, grace: float, now: float | None = None) -> set[str]:
    """Ids of the drivers that beat within ``grace`` seconds, have not stopped and, when they
    ran on this machine, whose process still exists."""
    now = time.time() if now is None else now
    return {
        d
        for d, rec in drivers(study).items()
        if not rec.get("stopped") and now - float(rec.get("beat", 0)) <= grace and not _gone(rec)
    }


def owner(trial: FrozenTrial | optuna.Trial) -> str | None:
    attrs = trial.system_attrs
    value = attrs.get(OWNER)
    return str(value) if value else None


def claim(study: optuna.Study, trial: optuna.Trial, driver_id: str) -> None:
    """Mark ``trial`` as ``driver_id``'s (right after ``ask``)."""
    study._storage.set_trial_system_attr(trial._trial_id, OWNER, driver_id)


def stale_trials(
    study: optuna.Study,
    grace: float,
    own: str | None = None,
    now: float | None = None,
    trials: Iterable[FrozenTrial] | None = None,
) -> list[tuple[FrozenTrial, str]]:
    """RUNNING/WAITING trials no live driver owns, with the reason for each.

    ``own`` (this driver) is alive by definition and its trials are never returned. A trial
    with no owner is stale only when no other driver is alive (it was left by a driver from
    before liveness, or by one that died between ``ask`` and ``claim``).
    """
    now = time.time() if now is None else now
    beats = drivers(study)
    live = live_drivers(study, grace, now) | ({own} if own else set())
    others_alive = bool(live - {own})
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    out = []
    for t in trials:
        if t.state not in (TrialState.RUNNING, TrialState.WAITING):
            continue
        who = owner(t)
        if who in live:
            continue
        if who is None:
            if others_alive:
                continue
            out.append((t, "driver died: trial left running with no live driver"))
            continue
        rec = beats.get(who, {})
        if rec.get("stopped"):
            why = f"driver {who} stopped without finishing it"
        elif rec and _gone(rec):
            why = f"driver {who} died (its process {rec.get('pid')} on this machine is gone)"
        elif rec:
            why = f"driver {who} died (no heartbeat for {now - float(rec['beat']):.0f}s)"
        else:
            why = f"driver {who} died (no heartbeat recorded)"
        out.append((t, why))
    return out


def claim_conflict(
    study: optuna.Study,
    number: int,
    key: str,
    key_of: Callable[[Any], str | None],
    own: str,
    grace: float,
    wait: float = 10.0,
) -> FrozenTrial | None:
    """The live trial this driver must yield ``key`` to, or None to train it.

    Called after the claim (trial ``number`` carries its key). Yield to a lower-numbered
    RUNNING trial of another live driver with the same key. Of two drivers claiming one key
    at once, the higher-numbered trial was created after the lower one, so when it reads,
    the lower trial exists; it waits (up to ``wait`` s) for that trial's key to be written,
    sees it and yields, while the lower one never yields to a higher number: exactly one
    trains. ``key_of(trial)`` reads a trial's key (None while unclaimed).
    """
    deadline = time.time() + wait
    while True:
        live = live_drivers(study, grace)
        if not live - {own}:  # alone on the study: nothing to yield to (no scan)
            return None
        pending, match = False, None
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            who = owner(t)
            if t.number >= number or who == own or (who is not None and who not in live):
                continue
            k = key_of(t) if who is not None else None
            if k is None:  # asked but not yet claimed: its key may be ours
                pending = True
            elif k == key and (match is None or t.number < match.number):
                match = t
        if match is not None or not pending or time.time() > deadline:
            return match
        time.sleep(0.05)


class Heartbeat:
    """A driver's liveness record, rewritten every ``interval`` seconds by a daemon thread.

    A beat that fails (database briefly unreachable) is retried at the next interval; the
    driver counts as dead only after ``grace`` seconds without one.
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        interval: float | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.study = study
        self.interval = interval or liveness_settings()[0]
        self.driver_id = uuid.uuid4().hex[:12]
        self.info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "interval": self.interval,
            **dict(info or {}),
        }
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def key(self) -> str:
        return DRIVER_PREFIX + self.driver_id

    def beat(self, stopped: bool = False) -> None:
        record = {**self.info, "beat": time.time(), "stopped": stopped}
        self.study._storage.set_study_system_attr(self.study._study_id, self.key, record)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # a lost beat is retried next interval; grace covers a few
                self.failures += 1

    def start(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(
            target=self._loop, name=f"heartbeat-{self.driver_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
        with contextlib.suppress(Exception):  # the driver's results are already stored
            self.beat(stopped=True)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "GRACE",
    "INTERVAL",
    "Heartbeat",
    "claim",
    "claim_conflict",
    "drivers",
    "live_drivers",
    "liveness_settings",
    "owner",
    "pid_alive",
    "stale_trials",
]
