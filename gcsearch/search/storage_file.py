"""Open a study storage *file* for reading, or say in one line why it is not one.

A run directory's ``study.db`` must be SQLite; ``*.journal`` / ``*.log`` files must be Optuna
journals (one JSON operation a line). Random bytes, text garbage or a foreign JSON file raise a
``UserError`` naming the file and what was expected, never a decoder traceback, and the file
is never written to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gcsearch.errors import UserError

#: Suffixes of files that must be SQLite (anything else is read as an Optuna journal).
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_journal_file(path: Path, what: str | None = None) -> None:
    """Raise a one-line ``UserError`` unless ``path`` reads as an Optuna journal: every complete
    line a JSON operation (an object with ``op_code``). An unterminated last line is allowed, as
    Optuna allows it (a write in progress); a file with no complete operation and a garbage tail
    is not a journal. An empty file is one (a new study)."""
    name = what or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {name} ({exc.strerror or type(exc).__name__})") from None
    *complete, tail = data.split(b"\n")
    for number, line in enumerate(complete, 1):
        if line.strip() and not _is_operation(line):
            raise UserError(
                f"{name} is not an Optuna journal file (line {number} is not a journal "
                "operation); journal storages are written by gcsearch search --storage FILE.log"
            )
    if tail.strip() and not any(line.strip() for line in complete) and not _is_operation(tail):
        raise UserError(f"{name} is not an Optuna journal file (no journal operation in it)")


def _is_operation(line: bytes) -> bool:
    try:
        op = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(op, dict) and "op_code" in op


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

    check_journal_file(path)
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        storage.get_all_studies()  # replays the whole file: a bad operation fails here
    except Exception as exc:  # JSON lines that are not a consistent journal
        raise UserError(
            f"{path} is not an Optuna journal file ({type(exc).__name__} while replaying it); "
            "journal storages are written by gcsearch search --storage FILE.log"
        ) from None
    return storage, str(path)


__all__ = ["SQLITE_SUFFIXES", "check_journal_file", "open_storage_file"]
