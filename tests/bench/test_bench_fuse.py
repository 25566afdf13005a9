"""``gcsearch bench fuse`` prints and records its figures, and ``fuse_seeds = "auto"`` fuses
exactly where a recorded measurement says fusion is faster on this device."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gcsearch.errors import UserError
from gcsearch.tasks import fused


def _args(tmp_path: Path, **kw: object) -> argparse.Namespace:
    base = {
        "smoke": True,
        "task": None,
        "epochs": None,
        "backbone": None,
        "device": "cpu",
        "k": 2,
        "candidate": "gc",
        "repeats": 1,
        "threads": 1,
        "out": str(tmp_path / "fuse.json"),
        "record": False,
    }
    return argparse.Namespace(**{**base, **kw})


def test_bench_fuse_smoke_prints_and_writes_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcsearch.bench.fuse import run_bench_fuse

    assert run_bench_fuse(_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "fused / separate training steps per second" in out
    figures = json.loads((tmp_path / "fuse.json").read_text())
    assert figures["k"] == 2 and figures["workload"] == "resnet8 1x8x8 batch 64 k=2"
    assert figures["speedup"] > 0 and figures["device"] == fused.device_key("cpu", 1)
    (row,) = figures["repeats"]
    assert len(row["separate_top1"]) == len(row["fused_top1"]) == 2


def test_bench_fuse_needs_two_seeds(tmp_path: Path) -> None:
    from gcsearch.bench.fuse import run_bench_fuse

    with pytest.raises(UserError, match="--k: 1"):
        run_bench_fuse(_args(tmp_path, k=1))


@pytest.mark.parametrize(("speedup", "fuses"), [(1.8, True), (0.7, False)])
def test_auto_fuses_where_it_was_measured_faster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speedup: float, fuses: bool
) -> None:
    path = tmp_path / "fuse-seeds.json"
    monkeypatch.setattr(fused, "speedups_path", lambda: path)
    work = fused.workload("resnet8", (3, 32, 32), 64, 3)
    assert fused.decide_fusion("auto", "cpu", 1, work, 3)[0] is False  # never measured
    figures = {"device": fused.device_key("cpu", 1), "workload": work}
    fused.record_speedup({**figures, "speedup": speedup})
    fuse, why = fused.decide_fusion("auto", "cpu", 1, work, 3)
    assert fuse is fuses and f"{speedup:.2f}x" in why
    assert fused.decide_fusion("auto", "cpu", 2, work, 3)[0] is False  # other threads
    other = fused.workload("resnet8", (3, 32, 32), 64, 4)
    assert fused.decide_fusion("auto", "cpu", 1, other, 4)[0] is False  # other k


def test_on_and_off_need_no_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fused, "speedups_path", lambda: tmp_path / "none.json")
    work = fused.workload("resnet8", (3, 32, 32), 64, 3)
    assert fused.decide_fusion("on", "cpu", 1, work, 3)[0] is True
    assert fused.decide_fusion("off", "cpu", 1, work, 3)[0] is False
    assert fused.decide_fusion("on", "cpu", 1, work, 1)[0] is False  # one seed: nothing
