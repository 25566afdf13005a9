"""``report --compare``: a rerun's per-candidate means against a committed results CSV, and a
one-line error for a file that is none."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from gcsearch.cli import main
from gcsearch.report.compare import compare, comparison_table, read_results_csv
from gcsearch.report.stats import mean_ci


def _csv(path: Path, rows: list[tuple], epochs: int = 10, task: str = "synthetic") -> Path:
    """A results CSV as ``report --csv`` writes it: (id, status, per-seed top-1s) per row."""
    records = []
    for trial, (cid, status, tops) in enumerate(rows):
        mean, half, n = mean_ci(tops)
        rec = {
            "trial": trial,
            "status": status,
            "spec.id": cid,
            "duplicate_of": None,
            "env.task": task,
            "env.cpu": "CPU A",
            "env.cpu_capability": "AVX2",
            "env.torch": "2.x",
            "fidelity.epochs": epochs,
            "fidelity.max_epochs": epochs,
            "metric.top1_mean": mean,
            "metric.top1_ci95": half,
            "metric.top1_n": n,
        }
        rec.update({f"metric.top1.s{s}": t for s, t in enumerate(tops)})
        records.append(rec)
    pd.DataFrame(records).to_csv(path, index=False)
    return path


RERUN = [
    ("gc", "complete", [90.0, 91.0, 92.0]),
    ("se", "complete", [80.0, 82.0, 84.0]),
    ("none", "complete", [50.0]),
    ("snl", "complete", [70.0, 71.0]),
    ("cbam", "pruned", [60.0, 61.0, 62.0]),
]
COMMITTED = [
    ("gc", "complete", [93.5, 94.0, 94.5]),  # outside the rerun's interval
    ("se", "complete", [81.0, 83.0, 85.0]),  # inside
    ("none", "complete", [50.2, 49.8]),  # rerun n = 1: no interval
    ("danet", "complete", [60.0, 62.0]),  # only committed
    ("cbam", "complete", [60.0, 61.0, 62.0]),
]  # pruned in the rerun: not compared


def _compare(tmp_path: Path, **committed: object):
    rerun = read_results_csv(_csv(tmp_path / "rerun.csv", RERUN))
    old = read_results_csv(_csv(tmp_path / "old.csv", COMMITTED, **committed))  # type: ignore[arg-type]
    return compare(rerun, old, "old.csv")


def test_each_candidate_in_both_is_checked_against_the_reruns_interval(tmp_path: Path) -> None:
    comp = _compare(tmp_path)
    t = comp.table.set_index("spec.id")
    assert list(t.index) == ["gc", "se", "none"]
    assert comp.only_committed == ["danet", "cbam"] and comp.only_rerun == ["snl"]
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # sd 1 over 3 seeds
    assert t.loc["gc", "rerun.ci95"] == pytest.approx(half)
    assert t.loc["gc", "within"] is False and t.loc["se", "within"] is True
    assert t.loc["none", "within"] is None
    welch = stats.ttest_ind([90, 91, 92], [93.5, 94.0, 94.5], equal_var=False)
    assert t.loc["gc", "welch.p"] == pytest.approx(welch.pvalue)
    assert t.loc["gc", "welch.delta"] == pytest.approx(91.0 - 94.0)
    assert math.isnan(t.loc["none", "welch.p"])  # one seed in the rerun: no test
    assert t.loc["gc", "welch.p_holm"] == pytest.approx(min(1.0, 2 * welch.pvalue))
    assert comp.agree == 1
    assert comp.summary.startswith("1 of 3 candidates agree within their intervals")
    assert "1 without an interval (rerun n = 1)" in comp.summary
    shown = comparison_table(comp).set_index("candidate")
    assert shown.loc["none", "committed in CI"] == "no interval"
    assert shown.loc["gc", "rerun top-1 % (95% CI)"] == f"91.00 ± {half:.2f} (n = 3)"
    assert "CPU A (AVX2)" in comp.notes[0]


def test_a_different_budget_or_task_is_said(tmp_path: Path) -> None:
    assert not _compare(tmp_path).warnings
    summary = _compare(tmp_path, epochs=3, task="digits").summary
    assert "trained [3] epochs, the rerun [10]" in summary and "on task digits" in summary


def test_no_common_candidate_is_said(tmp_path: Path) -> None:
    rerun = read_results_csv(_csv(tmp_path / "a.csv", [("gc", "complete", [1.0, 2.0])]))
    old = read_results_csv(_csv(tmp_path / "b.csv", [("se", "complete", [1.0, 2.0])]))
    comp = compare(rerun, old, "b.csv")
    assert comp.summary.startswith("0 of 0") and "no candidate is complete in both" in comp.notes[0]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no such file"),
        ("dir", "is a folder"),
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a readable CSV"),
        (b'spec.id,status,metric.top1_mean\n"gc,complete,3\n', "not a readable CSV"),
        (b"a,b\n1,2\n", "no column spec.id, status, metric.top1_mean"),
        (b"spec.id,status,metric.top1_mean\ngc,complete,high\n", "holds 'high' in data row 1"),
    ],
)
def test_a_file_that_is_no_results_csv_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | str | None, says: str
) -> None:
    path = tmp_path / "committed.csv"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    # the file is read before the study: no run is needed to see the error
    assert main(["report", str(tmp_path / "no-run"), "--compare", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--compare {path}" in err and says in err
