"""Errors a user can cause: the CLI prints their message on one line and exits with code 2
(1 for an ``IOFault``: a disk, folder or file to fix before ``--resume``).

Also the one place secrets are masked (``mask_secrets``): every line or file that may quote a
storage URL (error lines, the progress header, ``run.json``, reports) passes through it, so a
PostgreSQL password never leaves the command line it was typed on.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

#: ``scheme://user:password@`` -> the password part (up to the last ``@`` of the authority).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^/\s]*)@")


class UserError(Exception):
    """A problem in the user's input (file, flag, path, study); the message says what and how."""

    exit_code = 2


class InputWarning(UserWarning):
    """Input that works but is likely a mistake; the CLI prints it as one warning line."""


def mask_secrets(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    ``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; a URL without a
    password, and any other text, is returned unchanged.
    """
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", str(text))


class IOFault(UserError):
    """A file the run reads or writes failed (disk full, read-only or forbidden path, an
    unreadable file): nothing about the candidates, so the search stops and ``--resume``
    continues once it is fixed. Exit code 1 tells it from a mistake in the input (2)."""

    exit_code = 1


def io_line(exc: BaseException, doing: str = "writing", path: object = None) -> str:
    """What failed and where, on one line: ``no space left on device writing runs/x/a.pt``
    (``doing=""``: ``permission denied: data/a.png``, for a read or write unknown here).

    ``path`` (else the error's own file name) is shown relative to the working directory when
    it lies under it; an error with no ``strerror`` (SQLAlchemy's, say) gives its type and
    last line.
    """
    while not getattr(exc, "strerror", None) and exc.__cause__ is not None:
        exc = exc.__cause__  # the storage's own error under Optuna's and SQLAlchemy's wrappers
    what = getattr(exc, "strerror", None)
    if not what and isinstance(exc, OSError) and exc.args and isinstance(exc.args[0], int):
        what = os.strerror(exc.args[0])  # OSError(errno.ENOSPC) alone sets no strerror
    if not what:
        lines = str(exc).strip().splitlines()
        what = f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
    else:
        what = what[0].lower() + what[1:]
    where = path if path is not None else getattr(exc, "filename", None)
    if where is None:
        return what
    shown = str(where)
    if Path(shown).is_absolute():  # a file path; a URL or a phrase is shown as given
        with contextlib.suppress(ValueError, OSError):
            shown = str(Path(shown).resolve().relative_to(Path.cwd().resolve()))
    return f"{what} {doing} {shown}" if doing else f"{what}: {shown}"
