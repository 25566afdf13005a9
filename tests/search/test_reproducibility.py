"""The same seed on one machine gives the same result, through the real trial path and a real
search; a rerun is checked against a committed results CSV with ``report --compare``; every
row and ``run.json`` name the machine (across machines only the distributions reproduce)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _search_helpers import tiny_space

from gcsearch.cli import main
from gcsearch.launch import search
from gcsearch.report import candidate_rows, results_frame
from gcsearch.search.local import InlineExecutor
from gcsearch.search.space import load_space
from gcsearch.search.trial import SMOKE_BUDGET, Job, run_job
from gcsearch.spec import Candidate


def _job(seed: int) -> Job:
    cand = Candidate.parse("gc@after_1x1:c4")
    return Job(
        trial=0,
        candidate=cand.to_dict(),
        seed=seed,
        task="synthetic",
        budget=SMOKE_BUDGET,
        backbone="resnet8",
        device="cpu",
        threads=1,
    )


def _curve(result: dict) -> list[dict]:
    """The per-epoch history without its timings."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in result["history"]]


def test_run_job_same_seed_twice_same_result() -> None:
    a, b, other = run_job(_job(1)), run_job(_job(1)), run_job(_job(2))
    assert a["status"] == b["status"] == "complete"
    assert len(a["history"]) == SMOKE_BUDGET["epochs"]
    assert (a["top1"], a["loss"]) == (b["top1"], b["loss"])
    assert _curve(a) == _curve(b)
    assert _curve(a) != _curve(other)  # the seed matters, so equality above is not vacuous
    for key in ("cpu", "cpu_isa", "cpu_capability", "gpu", "cuda", "cudnn"):
        assert key in a["env"]


def _search(tmp_path: Path, name: str) -> Path:
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False)).with_overrides(seeds=2)
    run = tmp_path / name
    search(space, run, smoke=True, executor=InlineExecutor(), progress=False, export=False)
    return run


def _means(run: Path) -> dict[str, tuple[float, str]]:
    rows = candidate_rows(results_frame(run))
    seeds = rows.filter(like="metric.top1.s").astype(str).agg(",".join, axis=1)
    return {
        i: (m, s) for i, m, s in zip(rows["spec.id"], rows["metric.top1_mean"], seeds, strict=True)
    }


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("repro")
    return _search(tmp, "a"), _search(tmp, "b")


def test_tiny_search_twice_same_means(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    means = _means(a)
    assert len(means) == 6  # 4 searched blocks, the baseline and se
    assert means == _means(b)


def test_rows_and_run_json_name_the_machine(two_runs: tuple[Path, Path]) -> None:
    a, _ = two_runs
    frame = pd.read_csv(a / "results.csv")
    for col in ("env.cpu", "env.cpu_isa", "env.cpu_capability", "env.gpu", "env.cuda", "env.cudnn"):
        assert col in frame
    assert frame["env.cpu_capability"].notna().all()
    machines = json.loads((a / "run.json").read_text())["machines"]
    assert len(machines) == 1 and machines[0]["trials"] == len(frame)
    assert machines[0]["cpu_capability"] == frame["env.cpu_capability"].iloc[0]


def test_compare_a_rerun_with_its_own_csv_and_a_perturbed_copy(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_runs
    md = tmp_path / "r.md"
    assert main(["report", str(b), "--compare", str(a / "results.csv"), "--md", str(md)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "6 of 6 candidates agree within their intervals" in out
    assert "per-seed values identical for 6 of 6" in out
    assert "machines (a seed reproduces on the same one only):" in out  # the summary names them
    text = md.read_text()
    assert f"## Rerun vs `{a / 'results.csv'}`" in text and "6 of 6 candidates agree" in text

    committed = pd.read_csv(a / "results.csv")
    moved = committed["spec.id"] == "none"
    shift = float(committed.loc[moved, "metric.top1_ci95"].iloc[0]) + 1.0  # just outside
    for col in [c for c in committed if c.startswith("metric.top1.s")] + ["metric.top1_mean"]:
        committed.loc[moved, col] += shift
    perturbed = tmp_path / "perturbed.csv"
    committed.to_csv(perturbed, index=False)
    assert main(["report", str(b), "--compare", str(perturbed)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "5 of 6 candidates agree within their intervals" in out
    assert "per-seed values identical for 5 of 6" in out
