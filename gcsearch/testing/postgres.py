"""A throwaway PostgreSQL server on 127.0.0.1, for tests of a shared study and ``bench storage``.

Runs the server's own tools (``initdb``, ``pg_ctl``) on a fresh data directory in a temporary
folder, with trust authentication, a free port and its socket in that folder, and removes it all
when stopped. Debian keeps the binaries in ``/usr/lib/postgresql/<version>/bin`` (not on PATH);
they are looked up there too. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` system user (created by Debian's package) or ``nobody``.

Example::

    with throwaway_postgres() as url:       # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
        optuna.create_study(storage=url)
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """No server could be started here; the message says why in one line."""


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's versioned dirs."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for bindir in sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    ):
        if (Path(bindir) / "initdb").is_file() and (Path(bindir) / "pg_ctl").is_file():
            return Path(bindir)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found (Debian: apt-get install postgresql)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """Command prefix and user for the server: itself unless root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam(name)
            if runuser:
                return [runuser, "-u", name, "--"], user
    raise PostgresUnavailable(
        "running as root without runuser and a 'postgres' or 'nobody' user to run the server as"
    )


def _call(
    prefix: list[str], argv: list[str], timeout: float, cwd: Path
) -> subprocess.CompletedProcess:
    """Run a server tool in ``cwd`` (the server's own folder: the user it runs as may not be
    allowed into the caller's working directory, and PostgreSQL's tools stop there)."""
    return subprocess.run(prefix + argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)


@contextlib.contextmanager
def throwaway_postgres(driver: str = "psycopg", durable: bool = False) -> Iterator[str]:
    """Start a server, yield its SQLAlchemy URL, stop it and delete its data on exit.

    ``durable=False`` (tests) turns fsync off; ``durable=True`` (benchmarks) keeps the
    server's default commit durability, as a real deployment has. Raises
    ``PostgresUnavailable`` (one line) when no server can be started here.
    """
    bindir = find_bindir()
    prefix, user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="gcsearch-pg-"))
    data = root / "data"
    port = free_port()
    started = False
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        init = _call(
            prefix,
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            timeout=120,
            cwd=root,
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {_last_line(init)}")
        opts = f"-h 127.0.0.1 -p {port} -k {root} -c max_connections=200"
        if not durable:
            opts += " -c fsync=off -c full_page_writes=off"
        start = _call(
            prefix,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            timeout=90,
            cwd=root,
        )
        if start.returncode != 0:
            log = (
                (root / "server.log").read_text(errors="replace")
                if (root / "server.log").exists()
                else ""
            )
            raise PostgresUnavailable(f"pg_ctl start failed: {_last_line(start) or log[-200:]}")
        started = True
        yield f"postgresql+{driver}://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _call(
                prefix,
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                timeout=60,
                cwd=root,
            )
        shutil.rmtree(root, ignore_errors=True)


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = [x for x in (proc.stderr or proc.stdout or "").splitlines() if x.strip()]
    return lines[-1][:200] if lines else f"exit code {proc.returncode}"


__all__ = ["PostgresUnavailable", "find_bindir", "throwaway_postgres"]
