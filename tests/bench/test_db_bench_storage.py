"""``gcsearch bench storage``: a tiny real run (file storages; PostgreSQL in the db set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gcsearch.bench.storage import scales_to
from gcsearch.cli import main


def _rows(*rates: float) -> list[dict]:
    return [{"drivers": 2**i, "trials_per_s": r} for i, r in enumerate(rates)]


def test_scales_to_is_the_last_count_that_still_gained() -> None:
    assert scales_to(_rows(10, 19, 30, 31)) == 4
    assert scales_to(_rows(10, 9, 30)) == 1  # stops at the first count that does not gain
    assert scales_to(_rows(10)) == 1


def _bench(tmp_path: Path, storages: str, drivers: str, extra: list[str] | None = None) -> dict:
    code = main(
        [
            "bench",
            "storage",
            "--storages",
            storages,
            "--drivers",
            drivers,
            "--trials",
            "3",
            "--out",
            str(tmp_path / "b.json"),
            *(extra or []),
        ]
    )
    assert code == 0
    return json.loads((tmp_path / "b.json").read_text())


def test_bench_storage_file_storages(tmp_path: Path) -> None:
    figures = _bench(tmp_path, "sqlite,journal", "2")  # one point each: driver processes
    for kind in ("sqlite", "journal"):  # are slow to start
        rows = figures["storages"][kind]["rows"]
        assert [r["drivers"] for r in rows] == [2]
        for r in rows:
            assert r["trials"] == 3 * r["drivers"] == r["complete"]  # nothing lost
            assert r["trials_per_s"] > 0 and r["overhead_ms"] > 0
        assert figures["storages"][kind]["scales_to"] == 2


@pytest.mark.db
def test_bench_storage_postgresql(tmp_path: Path, postgres_url: str) -> None:
    figures = _bench(tmp_path, "postgresql", "1", ["--postgres", postgres_url])
    rows = figures["storages"]["postgresql"]["rows"]
    assert all(r["trials"] == r["complete"] for r in rows)


def test_bench_storage_refuses_unknown_storages(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "storage", "--storages", "redis"]) == 2
    assert "allowed: sqlite, journal, postgresql" in capsys.readouterr().err
