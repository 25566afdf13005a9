"""Errors a user can cause are one line and exit 2, and nothing on disk is lost or changed:
output paths under a file or in an unwritable place, and storage files that are random bytes or
text garbage (fuzzed with hypothesis)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcsearch.cli import main
from gcsearch.errors import UserError
from gcsearch.report import load_study


def _one_line_error(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"gcsearch {command}: error:")
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("under", ["file", "file-child"])
def test_search_run_dir_under_a_file(
    under: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    run_dir = blocker if under == "file" else blocker / "run"
    assert main(["search", "--space", "quick", "--run-dir", str(run_dir), "--smoke"]) == 2
    err = _one_line_error(capsys, "search")
    assert "--run-dir" in err and "is a file" in err
    assert blocker.read_text() == "keep me"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_search_run_dir_in_an_unwritable_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["search", "--space", "quick", "--run-dir", str(locked / "run")]) == 2
    finally:
        locked.chmod(0o700)
    assert "cannot write" in _one_line_error(capsys, "search")


def test_search_run_dir_on_a_read_only_file_system(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    assert main(["search", "--space", "quick", "--run-dir", "/proc/self/gcsearch-run"]) == 2
    assert "--run-dir" in _one_line_error(capsys, "search")


def test_export_output_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "block.py"
    blocker.write_text("# mine")
    assert main(["export", "--id", "gc", "-o", str(blocker / "x.py")]) == 2
    assert "is a file" in _one_line_error(capsys, "export")
    assert main(["export", "--id", "gc", "-o", str(tmp_path)]) == 2
    assert "is a folder" in _one_line_error(capsys, "export")
    assert blocker.read_text() == "# mine"


def test_report_outputs_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("x")
    for flag in ("--md", "--html", "--csv"):
        assert main(["report", str(tmp_path), flag, str(blocker / "r.out")]) == 2
        assert flag in _one_line_error(capsys, "report")


# ------------------------------------------------------------------------ corrupt storage
_NAMES = ("study.db", "study.journal", "study.log")


def _check_storage_bytes(name: str, data: bytes) -> None:
    """``load_study`` on a run dir holding ``data`` as ``name``: a one-line UserError, the file
    byte-for-byte unchanged, and nothing new in the folder."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        path = run / name
        path.write_bytes(data)
        with pytest.raises(UserError) as info:
            load_study(run)
        assert "\n" not in str(info.value)
        assert str(path) in str(info.value) or "holds no study" in str(info.value)
        assert path.read_bytes() == data
        assert sorted(p.name for p in run.iterdir()) == [name]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_NAMES), data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_as_storage_are_one_line(name: str, data: bytes) -> None:
    _check_storage_bytes(name, data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_NAMES), text=st.text(max_size=2000))
def test_random_text_as_storage_is_one_line(name: str, text: str) -> None:
    _check_storage_bytes(name, text.encode("utf-8"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.dictionaries(
            st.sampled_from(["op_code", "worker_id", "study_name", "x"]),
            st.one_of(st.integers(-3, 20), st.text(max_size=5), st.none()),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_json_lines_that_are_no_journal_are_one_line(lines: list[dict]) -> None:
    import json

    data = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"
    _check_storage_bytes("study.journal", data)


@pytest.mark.parametrize("tail", [b"", b"\x00" * 200, os.urandom(3000)])
def test_sqlite_header_with_garbage_is_one_line(tail: bytes) -> None:
    _check_storage_bytes("study.db", b"SQLite format 3\x00" + tail)


def test_cli_report_on_garbage_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "study.db").write_bytes(b"\x89\xff\x00garbage" * 50)
    assert main(["report", str(tmp_path)]) == 2
    assert "not an SQLite study storage" in _one_line_error(capsys, "report")
    (tmp_path / "study.db").write_text("just some text\n")
    assert main(["report", str(tmp_path)]) == 2
    assert "not an SQLite study storage" in _one_line_error(capsys, "report")


@pytest.mark.parametrize("data", [os.urandom(2000), b"not a journal\n", b'{"op_code": 0}\n'])
def test_search_on_a_corrupt_journal_storage_is_one_line(
    data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "study.log"
    journal.write_bytes(data)
    argv = [
        "search",
        "--space",
        "quick",
        "--smoke",
        "--run-dir",
        str(tmp_path / "run"),
        "--storage",
        str(journal),
    ]
    assert main(argv) == 2
    assert "not an Optuna journal file" in _one_line_error(capsys, "search")
    assert journal.read_bytes() == data
