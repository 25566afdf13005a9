"""A storage password never leaves the command line it was typed on: error lines, the progress
header, ``run.json``, results and reports show ``postgresql://user:***@host/db``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from _search_helpers import tiny_space
from rich.console import Console

from gcsearch.cli import main
from gcsearch.errors import mask_secrets
from gcsearch.launch import search
from gcsearch.search.local import InlineExecutor
from gcsearch.search.space import load_space

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://user:pw@host/db", "postgresql://user:***@host/db"),
        ("postgresql+psycopg://u:p%40ss@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        ("cannot open mysql://u:a@b@h/db (x)", "cannot open mysql://u:***@h/db (x)"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/run/study.db", "sqlite:////tmp/run/study.db"),
        ("runs/quick/study.log", "runs/quick/study.log"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


def _dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on: the connection fails at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://gc:{SECRET}@127.0.0.1:{port}/nodb"


def test_search_error_line_masks_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "search",
        "--space",
        "quick",
        "--smoke",
        "--run-dir",
        str(tmp_path / "run"),
        "--storage",
        _dead_url(),
    ]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "gc:***@127.0.0.1" in out.err and len(out.err.strip().splitlines()) == 1


def test_report_error_line_masks_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", _dead_url()]) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "gc:***@" in out.err


def test_run_json_masks_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run.json`` records the command; a password typed in it is masked there."""
    run = tmp_path / "run"
    monkeypatch.setattr(
        sys, "argv", ["gcsearch", "search", "--storage", f"postgresql://gc:{SECRET}@db.example/x"]
    )
    space = load_space(tiny_space(tmp_path, sampler="random", n_trials="1", fidelity=False))
    search(space, run, smoke=True, executor=InlineExecutor(), progress=False, export=False)
    text = (run / "run.json").read_text()
    assert SECRET not in text and "gc:***@db.example" in text


@pytest.mark.db
def test_no_output_holds_the_password(
    postgres_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end on a real server (trust authentication takes any password): the progress
    output, every file of the run directory and of the reports, and the report's own lines."""
    scheme, rest = postgres_db.split("://", 1)
    user, _, host = rest.rpartition("@")
    url = f"{scheme}://{user.split(':')[0]}:{SECRET}@{host}"
    run = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["gcsearch", "search", "--storage", url])
    space = load_space(tiny_space(tmp_path, sampler="random", n_trials="1", fidelity=False))
    buf = io.StringIO()
    search(
        space,
        run,
        storage=url,
        smoke=True,
        executor=InlineExecutor(),
        console=Console(file=buf, width=200),
        export=False,
    )
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    assert main(["report", url, "--md", str(md), "--html", str(html)]) == 0
    out = capsys.readouterr()
    seen = {"progress": buf.getvalue(), "stdout": out.out, "stderr": out.err}
    for path in [*run.rglob("*"), md, html]:
        if path.is_file() and not path.is_symlink():
            seen[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert "***@" in seen["progress"]
    assert [where for where, text in seen.items() if SECRET in text] == []
