"""The one-call Python API: ``gcsearch.run`` / ``gcsearch.open_run`` return the frame, the
front, the curves, the study and ``export()``; ``import gcsearch`` stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gcsearch
from gcsearch.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name = "tiny-api"
objectives = ["top1:max", "macs:min", "params:min"]
[task]
name = "digits"
backbone = "resnet8"
[axes]
pooling = ["att", "avg"]
transform = ["1x1"]
fusion = ["add"]
stages = ["c4"]
[references]
include = ["none"]
[search]
sampler = "grid"
n_trials = "all"
[fidelity]
enabled = false
"""


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> gcsearch.SearchRun:
    tmp = tmp_path_factory.mktemp("api")
    space = tmp / "tiny.toml"
    space.write_text(TINY)
    return gcsearch.run(
        space, seeds=2, smoke=True, run_dir=tmp / "run", executor="inline", progress=False
    )


def test_run_returns_frame_front_curves_and_study(api_run: gcsearch.SearchRun) -> None:
    assert set(api_run.frame["spec.id"]) == {
        "none",
        "att-1x1-add@after_1x1:c4",
        "avg-1x1-add@after_1x1:c4",
    }
    assert (api_run.frame["metric.top1_n"] == 2).all()  # seeds=2 reached every trial
    assert list(api_run.front["rank"]) == list(range(1, len(api_run.front) + 1))
    assert len(api_run.candidates) == 3
    assert set(api_run.curves["seed"]) == {0, 1} and api_run.curves["epoch"].max() == 2
    assert api_run.study.study_name == "tiny-api"
    assert "on the front" in api_run._repr_html_()


def test_export_writes_what_the_cli_writes(api_run: gcsearch.SearchRun, tmp_path: Path) -> None:
    path = api_run.export(tmp_path / "b.py", id="att-1x1-add@after_1x1:c4")
    assert path.is_file() and "att-1x1-add@after_1x1:c4" in path.read_text()


def test_open_run_reads_the_same_results(api_run: gcsearch.SearchRun) -> None:
    again = gcsearch.open_run(api_run.run_dir)
    assert again.frame["spec.id"].tolist() == api_run.frame["spec.id"].tolist()
    assert again.front["spec.id"].tolist() == api_run.front["spec.id"].tolist()


def test_bad_arguments_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="seeds"):
        gcsearch.run("quick", seeds=0, run_dir=tmp_path / "r")
    with pytest.raises(UserError, match="no such space"):
        gcsearch.run("no-such-space", run_dir=tmp_path / "r")


def test_import_gcsearch_stays_light() -> None:
    code = (
        "import sys, gcsearch; heavy = [m for m in ('torch', 'optuna', 'ray', 'pandas') "
        "if m in sys.modules]; print(heavy); print(sorted(gcsearch.__all__))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "[]"
    assert {"run", "open_run", "SearchRun"} <= set(eval(out[1]))
