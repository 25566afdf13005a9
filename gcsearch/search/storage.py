"""The study's record: where it is stored, how it is opened, and who may write it.

SQLite in the run directory by default (WAL journal, so ``gcsearch report`` and
``optuna-dashboard`` read while the driver writes), any Optuna RDB URL (PostgreSQL for a
shared server), or a journal file. One driver per run directory (a lock file), and on
``--resume`` the trials a dead driver left running are turned into failed, retryable rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from gcsearch.errors import UserError
from gcsearch.search.space import Space

STORAGE_FILE = "study.db"


def open_storage(run_dir: Path, storage: str | None) -> tuple[Any, str]:
    """The Optuna storage and a printable name: SQLite in the run dir by default, an RDB
    URL (``postgresql://...``, ``sqlite:///...``), a journal file (``*.log``/``*.journal``) or
    ``memory`` (no file; cannot resume)."""
    if storage is None:
        path = (run_dir / STORAGE_FILE).resolve()
        url = f"sqlite:///{path}"
    elif storage == "memory":
        return optuna.storages.InMemoryStorage(), "memory"
    elif "://" in storage:
        url = storage
    elif storage.endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        if Path(storage).is_file():  # an existing file must be a journal: say so in one line
            from gcsearch.report.storage_file import check_journal_file

            check_journal_file(Path(storage), f"--storage {storage}")
        try:
            journal = JournalStorage(JournalFileBackend(storage))
            journal.get_all_studies()  # replays the whole file: a bad line fails here
            return journal, storage
        except Exception as exc:  # an existing file that is not a journal (bytes, text)
            raise UserError(f"--storage {storage}: not an Optuna journal file "
                            f"({type(exc).__name__}); give a new file or one a search "
                            "wrote") from None
    else:
        raise UserError(f"--storage: {storage!r} is not a storage (allowed: an Optuna URL such "
                        "as postgresql://u:p@host/db or sqlite:///f.db, a journal file *.log, "
                        "or memory)")
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
    try:
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # bad driver, unreachable host, bad credentials
        raise UserError(f"--storage: cannot open {url} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]})") from None
    if sqlite:
        _fast_sqlite(rdb)
    return rdb, url


def _fast_sqlite(rdb: optuna.storages.RDBStorage) -> None:
    """WAL journal with ``synchronous=NORMAL``: a commit no longer waits for an fsync (10 ms
    each here, ~20 per trial), readers such as ``gcsearch report`` never block the driver, and
    a killed driver still loses nothing it committed (only an OS crash could)."""
    from sqlalchemy import event

    def on_connect(conn: Any, record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(rdb.engine, "connect", on_connect)
    rdb.engine.dispose()  # reconnect with the pragmas


def space_fingerprint(space: Space, budget: Mapping[str, Any]) -> str:
    """What must not change between a run and its resume: candidates, objectives, budget."""
    key = {"candidates": [c.id for c in space.candidates()], "references": space.reference_ids,
           "objectives": space.objectives, "budget": dict(budget), "task": space.task,
           "backbone": space.backbone, "seeds": space.search.seeds}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def mark_dead_driver_trials(study: optuna.Study) -> int:
    """Trials a killed driver left RUNNING or WAITING become failed, retryable rows."""
    n = 0
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        reason = ("driver died: trial left running (asked again on resume)"
                  if t.state == TrialState.RUNNING else "stale enqueued trial (driver died)")
        if t.state == TrialState.WAITING:  # a WAITING trial must start before it can fail
            storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING)
        for key, value in (("status", "failed"), ("reason", reason), ("retryable", True)):
            storage.set_trial_user_attr(t._trial_id, key, value)
        storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        n += 1
    return n


def open_study(space: Space, storage: Any, where: str, name: str, resume: bool,
               sampler: optuna.samplers.BaseSampler, attrs: Mapping[str, Any]) -> optuna.Study:
    """Create the study, or reopen it for ``--resume`` after checking it is the same search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = optuna.study.get_all_study_names(storage)
    if name in names and not resume:
        raise UserError(f"study {name!r} already exists in {where} (continue it with --resume, "
                        "or choose another --study-name or --run-dir)")
    if name not in names:
        if resume:
            raise UserError(f"--resume: no study {name!r} in {where} "
                            f"(studies there: {', '.join(names) or 'none'})")
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    directions=space.directions())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(space.metrics())
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    old = study.user_attrs.get("fingerprint")
    if old != attrs["fingerprint"]:
        raise UserError(f"--resume: study {name!r} was made from a different space or budget "
                        f"(fingerprint {old} != {attrs['fingerprint']}); resume with the same "
                        "space file and flags, or start a new --study-name")
    return study


@contextlib.contextmanager
def driver_lock(run_dir: Path) -> Iterator[None]:
    """One driver per run directory: a second one on a live study is refused."""
    lock = run_dir / "driver.lock"
    if lock.exists():
        try:
            info = json.loads(lock.read_text())
            alive = info.get("host") == socket.gethostname() and _pid_alive(int(info["pid"]))
        except (ValueError, KeyError, OSError):
            alive = False
        if alive:
            raise UserError(f"{run_dir}: another driver (pid {info['pid']}) is running this "
                            "search; wait for it or stop it first")
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["STORAGE_FILE", "driver_lock", "mark_dead_driver_trials", "open_storage",
           "open_study", "space_fingerprint"]
