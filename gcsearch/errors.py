"""Errors a user can cause: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input (file, flag, path, study); the message says what and how."""

    exit_code = 2
