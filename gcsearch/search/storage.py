"""The study's storage: the only module that opens it, for the driver and for readers.

SQLite in the run directory by default (WAL journal, so ``gcsearch report`` and
``optuna-dashboard`` read while the driver writes), any Optuna RDB URL (PostgreSQL for a
shared server), or a journal file. ``open_storage``/``open_study`` are the driver's (it
writes); ``load_study_readonly`` is every reader's (report, export, benchmarks): it never
creates tables, studies or trials. One driver per run directory (a lock file).
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

from gcsearch.errors import UserError, mask_secrets
from gcsearch.search.liveness import pid_alive
from gcsearch.search.space import Space

STORAGE_FILE = "study.db"
#: Storage files a run directory may hold, in the order a reader looks for them.
RUN_STORAGE_FILES = (STORAGE_FILE, "study.sqlite", "study.sqlite3", "study.journal", "study.log")


def open_storage(run_dir: Path, storage: str | None) -> tuple[Any, str]:
    """The Optuna storage and a printable name: SQLite in the run dir by default, an RDB
    URL (``postgresql://...``, ``sqlite:///...``), a journal file (``*.log``/``*.journal``) or
    ``memory`` (no file; cannot resume). The name has any password masked (``mask_secrets``):
    it goes into the progress header, ``run.json`` and error lines."""
    if storage is None:
        path = (run_dir / STORAGE_FILE).resolve()
        url = f"sqlite:///{path}"
    elif storage == "memory":
        return optuna.storages.InMemoryStorage(), "memory"
    elif "://" in storage:
        url = _with_driver(storage)
    elif storage.endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        _make_parent(Path(storage), storage)
        if Path(storage).is_file():  # an existing file must be a journal: say so in one line
            from gcsearch.search.storage_file import check_journal_file

            check_journal_file(Path(storage), f"--storage {storage}")
        try:
            journal = JournalStorage(JournalFileBackend(storage))
            journal.get_all_studies()  # replays the whole file: a bad line fails here
            return journal, storage
        except Exception as exc:  # an existing file that is not a journal (bytes, text)
            raise UserError(
                f"--storage {storage}: not an Optuna journal file "
                f"({type(exc).__name__}); give a new file or one a search "
                "wrote"
            ) from None
    else:
        raise UserError(
            f"--storage: {storage!r} is not a storage (allowed: an Optuna URL such "
            "as postgresql://u:p@host/db or sqlite:///f.db, a journal file *.log, "
            "or memory)"
        )
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        _make_parent(Path(url.removeprefix("sqlite:///")), storage or str(run_dir))
    kwargs = {"connect_args": {"timeout": 60}} if sqlite else {}
    for attempt in range(3):
        try:
            rdb = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            break
        except Exception as exc:  # bad driver, unreachable host, bad credentials
            # two drivers creating the tables of a fresh database at once: one loses the race
            # (IntegrityError) and finds them made when it tries again
            if attempt < 2 and type(exc).__name__ in ("IntegrityError", "ProgrammingError"):
                time.sleep(0.5 * (attempt + 1))
                continue
            raise UserError(
                mask_secrets(
                    f"--storage: cannot open {url} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]})"
                )
            ) from None
    if sqlite:
        _fast_sqlite(rdb)
    return rdb, mask_secrets(url)


def _make_parent(path: Path, given: str) -> None:
    """Create the folder a storage file goes in, or say in one line why it cannot be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"--storage {given}: cannot create {path.parent} "
            f"({exc.strerror or type(exc).__name__}; allowed: a path in a folder "
            "you can write in)"
        ) from None


def _with_driver(url: str) -> str:
    """``postgresql://`` names SQLAlchemy's psycopg2 dialect; use psycopg (3) when that is the
    driver installed (the ``postgres`` extra), so plain PostgreSQL URLs just work."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if (
            url.startswith(prefix)
            and importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None
        ):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


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


def _reader_storage(target: str | os.PathLike[str]) -> tuple[Any, str]:
    """A run directory, a storage file or a storage URL -> (storage, printable name), opened
    without creating anything."""
    text = str(target)
    if "://" in text:
        if text.startswith("sqlite:///"):
            db = Path(text.removeprefix("sqlite:///"))
            if not db.is_file():
                raise UserError(f"storage not found: {db} (from {text})")
        return _rdb_readonly(text, mask_secrets(text)), mask_secrets(text)
    path = Path(text)
    if path.is_dir():
        found = [path / name for name in RUN_STORAGE_FILES if (path / name).is_file()]
        if not found:
            raise UserError(
                f"{path} holds no study storage (expected one of {', '.join(RUN_STORAGE_FILES)})"
            )
        path = found[0]
    elif not path.is_file():
        raise UserError(f"run directory or storage not found: {path}")
    from gcsearch.search.storage_file import open_storage_file

    storage, where = open_storage_file(path)  # SQLite or a journal, or a one-line UserError
    if isinstance(storage, str):  # an SQLite URL: opened without creating tables
        return _rdb_readonly(storage, where), where
    return storage, where


def _rdb_readonly(url: str, where: str) -> Any:
    try:
        return optuna.storages.RDBStorage(url, skip_table_creation=True)
    except Exception as exc:  # a corrupt or foreign file, bad URL, unreachable server
        raise UserError(
            f"cannot read a study storage from {where} ({type(exc).__name__})"
        ) from None


def load_study_readonly(
    target: str | os.PathLike[str], study_name: str | None = None
) -> optuna.Study:
    """The study in a run directory, storage file or URL, for reading (report, export).

    With no ``study_name`` the storage must hold exactly one study.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, where = _reader_storage(target)
    try:
        names = optuna.study.get_all_study_names(storage)
    except Exception as exc:  # a corrupt or foreign file
        raise UserError(
            f"cannot read a study storage from {where} ({type(exc).__name__})"
        ) from None
    if not names:
        raise UserError(f"{where} holds no study")
    if study_name is None:
        if len(names) > 1:
            raise UserError(
                f"{where} holds {len(names)} studies; choose one with --study "
                f"({', '.join(sorted(names))})"
            )
        study_name = names[0]
    if study_name not in names:
        raise UserError(f"unknown study {study_name!r} in {where} (studies: {', '.join(names)})")
    return optuna.load_study(study_name=study_name, storage=storage)


def space_fingerprint(space: Space, budget: Mapping[str, Any]) -> str:
    """What must not change between a run and its resume: candidates, objectives, budget."""
    key = {
        "candidates": [c.id for c in space.candidates()],
        "references": space.reference_ids,
        "objectives": space.objectives,
        "budget": dict(budget),
        "task": space.task,
        "backbone": space.backbone,
        "seeds": space.search.seeds,
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _abandoned(storage: Any, name: str) -> bool:
    """A study a start that was killed (SIGKILL, a lost machine) left behind: no trial and no
    live driver. Starting again in its place loses nothing; refusing would demand --resume."""
    from gcsearch.search.liveness import live_drivers, liveness_settings

    study = optuna.load_study(study_name=name, storage=storage)
    return not study.get_trials(deepcopy=False) and not live_drivers(study, liveness_settings()[1])


def open_study(
    space: Space,
    storage: Any,
    where: str,
    name: str,
    resume: bool,
    sampler: optuna.samplers.BaseSampler,
    attrs: Mapping[str, Any],
) -> optuna.Study:
    """Create the study, or reopen it for ``--resume`` after checking it is the same search."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = optuna.study.get_all_study_names(storage)
    if name in names and not resume and _abandoned(storage, name):
        optuna.delete_study(study_name=name, storage=storage)  # a killed start's: holds nothing
        names.remove(name)
    if name in names and not resume:
        raise UserError(
            f"study {name!r} already exists in {where} (continue it with --resume, "
            "or choose another --study-name or --run-dir)"
        )
    if name not in names:
        if resume:
            raise UserError(
                f"--resume: no study {name!r} in {where} "
                f"(studies there: {', '.join(names) or 'none'})"
            )
        study = optuna.create_study(
            study_name=name, storage=storage, sampler=sampler, directions=space.directions()
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(space.metrics())
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        return study
    study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    old = study.user_attrs.get("fingerprint")
    if old != attrs["fingerprint"]:
        raise UserError(
            f"--resume: study {name!r} was made from a different space or budget "
            f"(fingerprint {old} != {attrs['fingerprint']}); resume with the same "
            "space file and flags, or start a new --study-name"
        )
    return study


@contextlib.contextmanager
def driver_lock(run_dir: Path) -> Iterator[None]:
    """One driver per run directory: a second one on a live study is refused."""
    lock = run_dir / "driver.lock"
    if lock.exists():
        try:
            info = json.loads(lock.read_text())
            alive = info.get("host") == socket.gethostname() and pid_alive(int(info["pid"]))
        except (ValueError, KeyError, OSError):
            alive = False
        if alive:
            raise UserError(
                f"{run_dir}: another driver (pid {info['pid']}) is running this "
                "search; wait for it or stop it first"
            )
    lock.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
    )
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


__all__ = [
    "RUN_STORAGE_FILES",
    "STORAGE_FILE",
    "driver_lock",
    "load_study_readonly",
    "open_storage",
    "open_study",
    "space_fingerprint",
]
