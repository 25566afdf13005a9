"""Errors a user can cause: the CLI prints their message on one line and exits with code 2.

Also the one place secrets are masked (``mask_secrets``): every line or file that may quote a
storage URL (error lines, the progress header, ``run.json``, reports) passes through it, so a
PostgreSQL password never leaves the command line it was typed on.
"""

from __future__ import annotations

import re

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
