"""The search spaces shipped with gcsearch, found by name (``--space quick``).

The TOML files live in this package (installed as package data), so an installed copy runs
from any folder; the checkout's ``spaces/`` is a link to this folder for the Makefile and the
README's paths. ``resolve_space("quick")`` returns ``.../gcsearch/spaces/quick.toml``; a path
that exists is returned as given, so a user's own file always wins over a shipped name.
"""

from __future__ import annotations

from pathlib import Path

from gcsearch.errors import UserError

#: The folder holding the shipped ``*.toml`` space files.
SPACES_DIR = Path(__file__).resolve().parent


def shipped_spaces() -> list[str]:
    """Names of the shipped spaces, e.g. ``['bench-small', 'full', 'gcnet-paper', 'quick']``."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.toml"))


def resolve_space(text: str | Path) -> Path:
    """The file ``text`` names: an existing path, or a shipped space by name.

    ``quick``, ``quick.toml`` and ``spaces/quick.toml`` (the checkout's path, from any folder)
    all find the shipped file when no such file exists where the user is.
    """
    path = Path(text)
    if path.exists():
        return path
    name = path.name.removesuffix(".toml")
    shipped = SPACES_DIR / f"{name}.toml"
    bare = len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "spaces")
    if bare and shipped.is_file():
        return shipped
    raise UserError(
        f"{text}: no such space file (shipped spaces by name: {', '.join(shipped_spaces())})"
    )


__all__ = ["SPACES_DIR", "resolve_space", "shipped_spaces"]
