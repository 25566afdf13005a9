"""The report shows every result: the Fashion-MNIST study of issue 11 (13 candidates, 2 seeds,
7 complete), built by hand in the search's storage format (no training), must show all 7
complete candidates, one row per failed/pruned candidate with its seeds, learning curves, and a
self-contained HTML file; when the baseline dominates, the report and export say so."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial

from gcsearch import report
from gcsearch.cli import main
from gcsearch.report.render import _display_candidates, _display_problems
from gcsearch.spec import Candidate

optuna.logging.set_verbosity(optuna.logging.WARNING)
_STATE = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


def _trial(
    study: optuna.Study,
    cid: str,
    finals: list[float],
    status: str = "complete",
    epochs: int = 6,
    block_macs: int = 0,
    block_params: int = 0,
) -> None:
    """One trial of a candidate over seeds 0..n-1 with a rising per-epoch history."""
    cand = Candidate.parse(cid)
    results = []
    for seed, final in enumerate(finals):
        history = [
            {
                "epoch": e,
                "val_top1": final - 2.0 * (epochs - e),
                "val_loss": 1.0 / e,
                "train_loss": 1.2 / e,
                "seconds": 3.0,
            }
            for e in range(1, epochs + 1)
        ]
        results.append(
            {
                "candidate_id": cand.id,
                "seed": seed,
                "status": status,
                "reason": "loss is nan" if status == "failed" else "",
                "top1": final,
                "epochs": epochs,
                "history": history,
                "wall_s": 18.0 + seed,
                "env": {"device": "cpu", "node": "n1", "torch": "2.x"},
            }
        )
    macs, params = 12_000_000 + block_macs, 170_000 + block_params
    attrs: dict[str, Any] = {
        "candidate": cand.to_dict(),
        "candidate_id": cand.id,
        "results": results,
        "status": status,
        "reason": "loss is nan" if status == "failed" else "",
        "cost": {
            "params": params,
            "macs": macs,
            "block_params": block_params,
            "block_macs": block_macs,
        },
        "fidelity": {"epochs": epochs, "max_epochs": 6, "rung": 0},
    }
    values = [float(np.mean(finals)), macs, params] if status == "complete" else None
    study.add_trial(create_trial(state=_STATE[status], values=values, user_attrs=attrs))


def _study(path: Path) -> optuna.Study:
    study = optuna.create_study(
        study_name="fmnist",
        storage=f"sqlite:///{path}",
        directions=["maximize", "minimize", "minimize"],
    )
    for key, value in (
        ("objectives", ["top1:max", "macs:min", "params:min"]),
        ("task", "fashion-mnist"),
        ("backbone", "resnet8"),
        ("input_shape", [1, 28, 28]),
        ("seeds", 2),
        ("fidelity", {"enabled": True, "rungs": [3]}),
    ):
        study.set_user_attr(key, value)
    return study


#: 7 complete: the baseline, 2 presets and 4 searched blocks (3 of them off the front and one
#: axis or more away from gc: the rows the old report dropped).
COMPLETE = [
    ("none", [90.1, 90.3], 0, 0),
    ("gc@after_1x1:c3c4c5", [90.6, 90.9], 40_000, 9_000),
    ("se@after_1x1:c3c4c5", [90.4, 90.2], 20_000, 8_000),
    ("avg-r16ln-mul@after_1x1:c4", [90.0, 89.8], 15_000, 6_000),
    ("att-1x1-mul@after_1x1:c4", [89.7, 90.0], 30_000, 12_000),
    ("avgmax-r4-add@after_add:c3c4c5", [89.5, 89.9], 60_000, 20_000),
    ("att-r16ln-add@after_1x1:c3c4c5", [90.6, 90.9], 40_000, 9_000),
]
PRUNED = [
    "avg-1x1-add@after_1x1:c4",
    "att-r4ln-mul@after_add:c4",
    "avg-r4ln-add@after_1x1:c3c4c5",
    "avgmax-1x1-mul@after_1x1:c4",
]
FAILED = ["att-r16-both@after_1x1:c3c4c5", "avg-r16-both@after_add:c4"]


@pytest.fixture(scope="module")
def fmnist_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("fmnist")
    study = _study(run / "study.db")
    for cid, finals, macs, params in COMPLETE:
        _trial(study, cid, finals, block_macs=macs, block_params=params)
    for i, cid in enumerate(PRUNED):
        _trial(
            study,
            cid,
            [70.0 + i, 71.0 + i],
            status="pruned",
            epochs=3,
            block_macs=10_000 * (i + 1),
            block_params=3_000,
        )
    _trial(
        study,
        PRUNED[0],
        [72.0, 71.5],
        status="pruned",
        epochs=3,
        block_macs=10_000,
        block_params=3_000,
    )  # the same candidate stopped in a second trial
    for cid in FAILED:
        _trial(study, cid, [float("nan"), float("nan")], status="failed", epochs=1)
    return run


def test_the_study_has_13_candidates_7_complete(fmnist_run: Path) -> None:
    frame = report.results_frame(fmnist_run)
    assert frame["spec.id"].nunique() == 13
    assert len(report.build_report(fmnist_run).rows) == 7


def test_every_complete_candidate_is_in_every_rendering(
    fmnist_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    assert (
        main(
            [
                "report",
                str(fmnist_run),
                "--md",
                str(md),
                "--html",
                str(page),
                "--curves",
                str(tmp_path / "curves.csv"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    ids = [Candidate.parse(c).id for c, *_ in COMPLETE]
    table = _display_candidates(report.build_report(fmnist_run))
    assert sorted(table["candidate"]) == sorted(ids)
    text, html = md.read_text(), page.read_text()
    section = text.split("## All complete candidates")[1].split("\n## ")[0]
    for cid in ids:
        assert cid in section and cid in html and cid in out
    # per-seed values and wall time per trial
    gc_row = table[table["candidate"] == ids[1]].iloc[0]
    assert gc_row["top-1 per seed"] == "s0 90.60 · s1 90.90"
    assert gc_row["wall s"] == "37"  # 18 + 19 s over the two seeds


def test_failed_and_pruned_are_one_row_per_candidate_with_seeds(fmnist_run: Path) -> None:
    problems = _display_problems(report.build_report(fmnist_run))
    assert len(problems) == len(PRUNED) + len(FAILED) == 6
    assert problems["candidate"].is_unique
    twice = problems[problems["candidate"] == Candidate.parse(PRUNED[0]).id].iloc[0]
    assert twice["status"] == "pruned x2" and twice["seeds"] == "0,1"
    assert len(twice["trials"].split(",")) == 2
    assert "s0 70.00 · s1 71.00" in twice["top-1 per seed (when stopped)"]
    failed = problems[problems["status"] == "failed"]
    assert len(failed) == 2 and (failed["reason"] == "loss is nan").all()


def test_learning_curves_long_table_and_wide_view(fmnist_run: Path, tmp_path: Path) -> None:
    study = report.load_study(fmnist_run)
    curves = report.curve_frame(study)
    assert list(curves.columns) == list(report.CURVE_COLUMNS)
    # 7 complete x 2 seeds x 6 epochs + 5 pruned trials x 2 x 3 + 2 failed x 2 x 1
    assert len(curves) == 7 * 2 * 6 + 5 * 2 * 3 + 2 * 2 * 1
    wide = report.curve_table(curves)
    gc = Candidate.parse("gc@after_1x1:c3c4c5").id
    assert wide.loc[gc, "epoch 6"] == pytest.approx(90.75)
    assert wide.loc[gc, "epoch 1"] == pytest.approx(80.75)


def test_html_is_self_contained_and_sortable(fmnist_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "only.html"
    assert main(["report", str(fmnist_run), "--html", str(page)]) == 0
    html = page.read_text()
    srcs = re.findall(r'<img src="([^"]{0,40})', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert len(srcs) >= 3  # pareto, marginal effects, learning curves at least
    assert 'class="dataframe sortable"' in html and "<script>" in html
    assert sorted(p.name for p in tmp_path.iterdir()) == ["only.html"]  # no PNG left beside


def test_pareto_plot_shows_pruned_labels_and_a_size_legend(fmnist_run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gcsearch.report.plots import _marginal_figure, _pareto_figure, _short

    rep = report.build_report(fmnist_run)
    fig = _pareto_figure(rep, plt)
    ax = fig.axes[0]
    texts = " ".join(t.get_text() for t in ax.texts)
    for cid, *_ in COMPLETE[3:6]:  # the searched points off the front carry labels
        assert _short(Candidate.parse(cid).id) in texts
    for cid in PRUNED:
        assert _short(Candidate.parse(cid).id) + " (ep 3)" in texts
    legends = [c for c in ax.get_children() if isinstance(c, matplotlib.legend.Legend)]
    titles = {lg.get_title().get_text() for lg in legends}
    assert "marker area" in titles
    labels = {t.get_text() for lg in legends for t in lg.get_texts()}
    assert "pruned (top-1 when stopped)" in labels
    plt.close(fig)
    fig = _marginal_figure(rep, plt)
    assert {a.get_title().split(" ")[0] for a in fig.axes} >= {"pooling", "fusion", "stages"}
    plt.close(fig)


def test_when_the_baseline_dominates_report_and_export_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    study = _study(run / "study.db")
    _trial(study, "none", [91.0, 91.2])
    _trial(study, "gc@after_1x1:c3c4c5", [90.0, 90.4], block_macs=40_000, block_params=9_000)
    _trial(study, "se@after_1x1:c3c4c5", [89.0, 89.4], block_macs=20_000, block_params=8_000)
    rep = report.build_report(run)
    verdict = report.no_block_verdict(rep.rows, rep.front)
    assert verdict and "no block beats the baseline" in verdict and "2 complete block" in verdict
    assert main(["report", str(run)]) == 0
    assert "No block beats the baseline" in capsys.readouterr().out
    for rank in ("1", "2"):
        assert main(["export", str(run), "--rank", rank, "-o", str(tmp_path / "b.py")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no block beats the baseline" in err
        assert "--id" in err
    assert not (tmp_path / "b.py").exists()
    from gcsearch.launch import export_best

    assert export_best(report.load_study(run), run) is None  # the search exports nothing
    assert not (run / "best_block.py").exists()


def test_a_block_on_the_front_gives_no_verdict(fmnist_run: Path) -> None:
    rep = report.build_report(fmnist_run)
    assert report.no_block_verdict(rep.rows, rep.front) is None
    assert isinstance(rep.front, pd.DataFrame)
