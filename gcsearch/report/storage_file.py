"""Open a study storage *file* for reading, or say in one line why it is not one.

A run directory's ``study.db`` must be SQLite; ``*.journal`` / ``*.log`` files must be Optuna
journals (one JSON operation a line). Random bytes, text garbage or a foreign JSON file raise a
``UserError`` naming the file and what was expected, never a decoder traceback, and the file
is never written to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gcsearch.errors import UserError

#: Suffixes of files that must be SQLite (anything else is read as an Optuna journal).
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def open_storage_file(path: Path) -> tuple[Any, str]:
    """``(storage, where)`` for a storage file: an SQLite URL or a read journal storage."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    if head == _SQLITE_MAGIC:
        return f"sqlite:///{path.resolve()}", str(path)
    if path.suffix.lower() in SQLITE_SUFFIXES:
        what = "empty" if not head else f"starts with {head[:8]!r}"
        raise UserError(
            f"{path} is not an SQLite study storage ({what}); a run directory's study.db is "
            "written by gcsearch search (journal storages end in .journal or .log)"
        )
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # any decoding failure of a foreign file
        raise UserError(
            f"{path} is not an Optuna journal storage ({type(exc).__name__}); expected one "
            "JSON operation per line as written by --storage FILE.journal"
        ) from None
    return storage, str(path)


__all__ = ["SQLITE_SUFFIXES", "open_storage_file"]
