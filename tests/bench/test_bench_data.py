"""bench data: a smoke run's figures (what was decoded on the first run and on the rerun)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gcsearch.cli import main


def test_smoke_run_decodes_once_and_writes_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data.json"
    assert main(["bench", "data", "--smoke", "--dir", str(tmp_path), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    first, rerun = figures["runs"]["first"], figures["runs"]["rerun"]
    assert first["decoded"] == figures["images"] == 400 and first["cache_fills"] == 1
    assert rerun["decoded"] == 0 and rerun["cache_fills"] == 0
    assert figures["cache_file_bytes"] == figures["uint8_bytes"]  # the array, once
    assert len(first["workers"]) == 2 and all(w["batches"] > 0 for w in first["workers"])
    assert "rerun  decoded      0 images" in capsys.readouterr().out
    assert first["held_pss"] > 0  # the workers read their images from the cache mapping
    assert not list(tmp_path.glob("gcsearch-bench-data-*"))  # the scratch folder is removed
