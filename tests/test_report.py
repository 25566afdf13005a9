"""The report: results frame, Pareto front and hypervolume vs brute force, ablations, rendering.

Studies are built directly in the storage format of COMMON's contract (``user_attrs`` per
trial), with failed, pruned, running and duplicate trials, so no search has to run.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState, create_trial

from gcsearch import report
from gcsearch.cli import main
from gcsearch.report.render import _display_ablation
from gcsearch.result import TrialResult
from gcsearch.spec import Candidate

optuna.logging.set_verbosity(optuna.logging.WARNING)

_STATES = {
    "complete": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "running": TrialState.RUNNING,
}


def add_trial(
    study: optuna.Study,
    cid: str,
    top1s: list[float],
    *,
    status: str = "complete",
    macs: int | None = None,
    params: int | None = None,
    duplicate_of: int | None = None,
    epochs: int = 4,
    weights: str | None = None,
) -> None:
    """Append one trial in the COMMON user_attrs format."""
    cand = Candidate.parse(cid)
    size = len(cand.id)  # a deterministic, id-dependent cost
    macs = macs if macs is not None else 40_000_000 + 7_919 * size * (1 + cand.id.count("c"))
    params = params if params is not None else 270_000 + 131 * size
    env = {"node": "node-1", "device": "cpu", "torch": "2.x", "time": "2026-01-01T00:00:00"}
    results = [
        TrialResult(
            cand.id,
            seed,
            status="complete" if status == "running" else status,
            reason="loss is nan" if status == "failed" else "",
            top1=t,
            epochs=epochs,
            env=env,
        ).to_dict()
        for seed, t in enumerate(top1s)
    ]
    attrs: dict[str, Any] = {
        "candidate": cand.to_dict(),
        "candidate_id": cand.id,
        "results": results,
        "status": status,
        "reason": "loss is nan" if status == "failed" else "",
        "cost": {
            "params": params,
            "macs": macs,
            "block_params": params - 270_000,
            "block_macs": macs - 40_000_000,
        },
        "fidelity": {"epochs": epochs, "max_epochs": 4, "rung": 0},
        "env": env,
    }
    if duplicate_of is not None:
        attrs["duplicate_of"] = duplicate_of
    if weights is not None:
        attrs["weights"] = weights
    complete = status == "complete"
    values = [float(np.mean(top1s)), macs, params] if complete else None
    study.add_trial(create_trial(state=_STATES[status], values=values, user_attrs=attrs))


def new_study(path: Path, name: str = "quick") -> optuna.Study:
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{path}",
        directions=["maximize", "minimize", "minimize"],
    )
    study.set_user_attr("objectives", ["top1:max", "macs:min", "params:min"])
    for key, value in (
        ("task", "synthetic"),
        ("backbone", "resnet20"),
        ("input_shape", [3, 32, 32]),
        ("budget", {"epochs": 4}),
    ):
        study.set_user_attr(key, value)
    return study


ABLATION_ROWS = [
    ("att-r16ln-add", 84.0),
    ("avg-r16ln-add", 82.0),
    ("avgmax-r16ln-add", 82.5),
    ("att-r4ln-add", 84.5),
    ("att-1x1-add", 83.0),
    ("att-r16-add", 83.2),
    ("att-r16ln-mul", 83.7),
    ("att-r16ln-both", 84.2),
    ("att-r16ln-add@after_add:c3c4c5", 83.8),
    ("att-r16ln-add@after_1x1:c4", 83.0),
    ("att-r16ln-add@after_1x1:c3c4c5:last", 82.8),
    ("avg-r4-mul@after_add:c4", 81.0),  # differs in several axes: in no ablation table
]


def build_demo_study(path: Path) -> optuna.Study:
    """Presets, an ablation grid around gc, and failed / pruned / duplicate / running trials."""
    study = new_study(path)
    rng = random.Random(0)

    def seeds(mean: float) -> list[float]:
        return [mean + rng.gauss(0, 0.5) for _ in range(3)]

    add_trial(study, "none", seeds(80), macs=40_000_000, params=270_000)
    for preset, mean in (("gc", 84), ("se", 82), ("snl", 83), ("nl-embedded", 83.5)):
        add_trial(study, f"{preset}@after_1x1:c3c4c5", seeds(mean))
    for cid, mean in ABLATION_ROWS:
        add_trial(study, cid, seeds(mean))
    add_trial(study, "att-r8ln-add", [float("nan")], status="failed")
    add_trial(study, "avg-r32-add", [70.0], status="pruned", epochs=1)
    add_trial(study, "att-r16ln-add@after_1x1:c3", [60.0], status="pruned", epochs=2)
    add_trial(study, "att-r16ln-add@after_1x1:c4", [61.0], status="pruned", epochs=2)  # rerun
    add_trial(study, "att-r16ln-add", [50.0, 51.0, 52.0], duplicate_of=5)
    add_trial(study, "att-r32ln-add", [], status="running")
    return study


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    build_demo_study(run / "study.db")
    return run


# ----------------------------------------------------------------------------- Pareto / HV


def brute_front(points: list[tuple[float, ...]], senses: list[str]) -> list[int]:
    sign = [-1 if s == "max" else 1 for s in senses]
    mins = [tuple(v * s for v, s in zip(p, sign, strict=True)) for p in points]
    return [
        i
        for i, p in enumerate(mins)
        if not any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in mins)
    ]


def brute_hv(points: list[tuple[float, ...]], senses: list[str], ref: tuple[float, ...]) -> float:
    """Volume of the union of boxes [p, ref], summed over the cells of the coordinate grid."""
    sign = [-1 if s == "max" else 1 for s in senses]
    pts = [tuple(v * s for v, s in zip(p, sign, strict=True)) for p in points]
    r = tuple(v * s for v, s in zip(ref, sign, strict=True))
    pts = [p for p in pts if all(a < b for a, b in zip(p, r, strict=True))]
    if not pts:
        return 0.0
    grids = [sorted({p[k] for p in pts} | {r[k]}) for k in range(len(r))]
    volume = 0.0
    for cell in itertools.product(*(range(len(g) - 1) for g in grids)):
        low = [grids[k][i] for k, i in enumerate(cell)]
        if any(all(p[k] <= low[k] for k in range(len(r))) for p in pts):
            volume += math.prod(grids[k][i + 1] - grids[k][i] for k, i in enumerate(cell))
    return volume


def point_sets(dims: int) -> st.SearchStrategy[list[tuple[float, ...]]]:
    coord = st.integers(0, 6).map(float)  # a small range forces ties and duplicates
    return st.lists(st.tuples(*[coord] * dims), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dims=st.sampled_from([2, 3]))
def test_pareto_front_matches_brute_force(data: st.DataObject, dims: int) -> None:
    points = data.draw(point_sets(dims))
    senses = data.draw(st.lists(st.sampled_from(["max", "min"]), min_size=dims, max_size=dims))
    assert list(report.pareto_front(points, senses)) == brute_front(points, senses)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dims=st.sampled_from([2, 3]))
def test_hypervolume_matches_brute_force(data: st.DataObject, dims: int) -> None:
    points = data.draw(point_sets(dims))
    senses = data.draw(st.lists(st.sampled_from(["max", "min"]), min_size=dims, max_size=dims))
    ref = tuple(-0.5 if s == "max" else 5.5 for s in senses)  # some points fall outside
    assert report.hypervolume(points, senses, ref) == pytest.approx(brute_hv(points, senses, ref))


def test_duplicates_are_all_on_the_front_and_count_once_in_hypervolume() -> None:
    pts = [(1.0, 3.0), (1.0, 3.0), (2.0, 2.0), (2.0, 5.0)]
    assert list(report.pareto_front(pts, ["max", "min"])) == [2]
    assert list(report.pareto_front(pts, ["min", "min"])) == [0, 1, 2]
    once = report.hypervolume(pts[1:], ["min", "min"], (4.0, 6.0))
    assert report.hypervolume(pts, ["min", "min"], (4.0, 6.0)) == once


def test_pareto_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="sense"):
        report.pareto_front([(1.0, 2.0)], ["max", "up"])
    with pytest.raises(ValueError, match="finite"):
        report.pareto_front([(1.0, math.nan)], ["max", "min"])


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("values", [[80.1, 81.3, 79.8], [1.0, 2.0], [5.0, 5.5, 6.0, 4.0, 5.2]])
def test_mean_ci_is_the_t_interval(values: list[float]) -> None:
    from scipy import stats

    mean, half, n = report.mean_ci(values)
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)
    )
    assert (mean, n) == (pytest.approx(np.mean(values)), len(values))
    assert half == pytest.approx((high - low) / 2)


def test_mean_ci_of_one_seed_has_no_interval() -> None:
    mean, half, n = report.mean_ci([80.0])
    assert (mean, n) == (80.0, 1) and math.isnan(half)


@pytest.mark.parametrize(
    ("a", "b"), [([84.0, 84.6, 83.9], [80.0, 80.9, 79.5, 80.2]), ([1.0, 1.5], [0.2, 0.1, 0.4])]
)
def test_welch_diff_matches_scipy(a: list[float], b: list[float]) -> None:
    from scipy import stats

    diff, half = report.welch_diff(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert half == pytest.approx((ci.high - ci.low) / 2)


# ----------------------------------------------------------------------------- frame


def test_results_frame_has_one_row_per_trial(demo_run: Path) -> None:
    frame = report.results_frame(demo_run)
    assert len(frame) == 5 + len(ABLATION_ROWS) + 6
    assert frame["trial"].tolist() == sorted(frame["trial"])
    assert set(frame["status"]) == {"complete", "failed", "pruned", "running"}
    for col in (
        "spec.pooling",
        "spec.transform",
        "spec.ratio",
        "spec.norm",
        "spec.fusion",
        "spec.position",
        "spec.stages",
        "spec.density",
        "spec.preset",
        "spec.id",
        "metric.top1_mean",
        "metric.top1_std",
        "metric.top1_n",
        "metric.top1.s0",
        "cost.params",
        "cost.macs",
        "cost.block_params",
        "cost.block_macs",
        "fidelity.epochs",
        "env.node",
        "env.device",
        "env.torch",
        "env.time",
        "reason",
    ):
        assert col in frame, col
    gc = frame[frame["spec.id"] == "att-r16ln-add@after_1x1:c3c4c5"].iloc[0]
    seeds = [gc[f"metric.top1.s{i}"] for i in range(3)]
    assert gc["metric.top1_mean"] == pytest.approx(np.mean(seeds))
    assert gc["metric.top1_std"] == pytest.approx(np.std(seeds, ddof=1))
    assert gc["metric.top1_n"] == 3
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert failed["reason"] == "loss is nan" and failed["metric.top1_n"] == 0
    assert frame.loc[frame["spec.id"] == "none", "spec.kind"].item() == "baseline"


def test_frame_round_trips_through_csv_and_parquet(demo_run: Path, tmp_path: Path) -> None:
    frame = report.results_frame(demo_run)
    for kind in ("csv", "parquet"):
        path = report.write_frame(frame, tmp_path / f"f.{kind}", kind)
        back = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
        assert list(back.columns) == list(frame.columns)
        assert back["spec.id"].tolist() == frame["spec.id"].tolist()
        assert np.allclose(
            back["metric.top1_mean"].astype(float),
            frame["metric.top1_mean"].astype(float),
            equal_nan=True,
        )


def test_candidate_rows_collapse_duplicates_to_the_original(demo_run: Path) -> None:
    frame = report.results_frame(demo_run)
    rows = report.candidate_rows(frame, report.frame_objectives(frame))
    assert rows["spec.id"].is_unique
    assert set(rows["status"]) == {"complete"}
    gc = rows[rows["spec.id"] == "att-r16ln-add@after_1x1:c3c4c5"]
    assert gc["duplicate_of"].isna().all() and gc["metric.top1_mean"].item() > 80


def test_front_is_non_dominated_and_ranked_by_top1(demo_run: Path) -> None:
    frame = report.results_frame(demo_run)
    objectives = report.frame_objectives(frame)
    rows = report.candidate_rows(frame, objectives)
    front = report.front_table(rows, objectives)
    pts = [tuple(r) for r in rows[["metric.top1_mean", "cost.macs", "cost.params"]].to_numpy()]
    expected = {rows.iloc[i]["spec.id"] for i in brute_front(pts, ["max", "min", "min"])}
    assert set(front["spec.id"]) == expected
    assert front["metric.top1_mean"].is_monotonic_decreasing
    assert front["rank"].tolist() == list(range(1, len(front) + 1))


# ----------------------------------------------------------------------------- ablations


def test_ablation_rows_differ_from_the_reference_in_one_axis(demo_run: Path) -> None:
    rep = report.build_report(demo_run)
    assert rep.reference is not None
    assert rep.reference["spec.id"] == "att-r16ln-add@after_1x1:c3c4c5"
    assert set(rep.ablations) == set(report.AXES)
    ref = Candidate.parse(rep.reference["spec.id"])
    shown = set()
    for axis, table in rep.ablations.items():
        assert table.iloc[0]["spec.id"] == ref.id and bool(table.iloc[0]["is_reference"])
        for cid in table["spec.id"].iloc[1:]:
            shown.add(cid)
            c = Candidate.parse(cid)
            assert c.block is not None and ref.block is not None
            fields = {**c.block.to_dict(), **c.placement.to_dict()}
            ref_fields = {**ref.block.to_dict(), **ref.placement.to_dict()}
            changed = {k for k in fields if fields[k] != ref_fields[k]}
            allowed = set(report.AXES[axis]) | ({"norm"} if axis == "transform" else set())
            assert changed and changed <= allowed, (axis, cid, changed)
    assert "avg-r4-mul@after_add:c4" not in shown
    # all but the reference and the off-axis row, plus the pruned c3 row
    assert len(shown) == len(ABLATION_ROWS) - 2 + 1


def test_pruned_candidates_are_listed_without_a_difference(demo_run: Path) -> None:
    rep = report.build_report(demo_run)
    stages = rep.ablations["stages"].set_index("spec.id")
    pruned = stages.loc["att-r16ln-add@after_1x1:c3"]
    assert not pruned["complete"] and math.isnan(pruned["delta.mean"])
    assert pruned["top1.mean"] == 60.0
    # a candidate that also completed appears once, with its complete row
    c4 = stages.loc["att-r16ln-add@after_1x1:c4"]
    assert c4["complete"] and c4["top1.mean"] > 80
    assert "pruned, epoch 2/4" in _display_ablation(rep.ablations["stages"], "stages").to_string()


def test_ablation_delta_is_paired_against_the_reference(demo_run: Path) -> None:
    """Rows trained under the reference's seeds get the paired t-interval (scipy's ttest_rel)."""
    from scipy import stats

    rep = report.build_report(demo_run)
    table = rep.ablations["pooling"]
    seeds = lambda r: [r[f"metric.top1.s{i}"] for i in range(3)]  # noqa: E731
    ref, row = table.iloc[0], table.iloc[1]
    ci = stats.ttest_rel(seeds(row), seeds(ref)).confidence_interval(0.95)
    assert row["delta.method"] == "paired"
    assert row["delta.mean"] == pytest.approx((ci.high + ci.low) / 2)
    assert row["delta.ci95"] == pytest.approx((ci.high - ci.low) / 2)
    assert math.isnan(ref["delta.mean"])
    assert "paired t" in rep.interval_note and "Holm" in rep.interval_note


def test_reference_can_be_any_candidate(demo_run: Path) -> None:
    rep = report.build_report(demo_run, reference="att-r16ln-mul@after_1x1:c3c4c5")
    assert rep.reference is not None and rep.reference["spec.fusion"] == "mul"
    assert set(rep.ablations["fusion"]["value"]) == {"add", "mul", "both"}


def test_preset_table_lists_presets_against_the_baseline(demo_run: Path) -> None:
    rep = report.build_report(demo_run)
    assert rep.presets["spec.block"].tolist() == ["none", "nl-embedded", "snl", "se", "gc"]
    assert rep.presets["delta.mean"].iloc[1:].notna().all()


def test_preset_blocks_match_the_library_presets() -> None:
    from gcsearch.blocks import ContextBlock, build_block

    for name, block_id in report.PRESET_BLOCKS.items():
        block = build_block(name, 64)
        assert isinstance(block, ContextBlock) and block.spec.id == block_id


def test_reference_point_is_recorded_or_derived(demo_run: Path) -> None:
    frame = report.results_frame(demo_run)
    objectives = report.frame_objectives(frame)
    ref = report.reference_point(objectives, frame)
    assert ref["top1"] == 0.0
    assert ref["macs"] == pytest.approx(1.1 * frame["cost.macs"].max())
    frame.attrs["study"]["hv_reference"] = {"macs": 5e7}
    assert report.reference_point(objectives, frame)["macs"] == 5e7


# ----------------------------------------------------------------------------- CLI, rendering


def test_report_cli_writes_markdown_with_plots(
    demo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md, html_path = tmp_path / "out" / "r.md", tmp_path / "out" / "r.html"
    code = main(
        [
            "report",
            str(demo_run),
            "--md",
            str(md),
            "--html",
            str(html_path),
            "--csv",
            str(tmp_path / "r.csv"),
            "--parquet",
            str(tmp_path / "r.parquet"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Pareto front" in out and "Ablation: pooling" in out and "Presets" in out
    assert out.index("Pareto front") < out.index("Ablation") < out.index("Presets")
    text = md.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert "r-pareto.png" in images and "r-pooling.png" in images
    for name in images:
        assert (md.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "failed" in text and "pruned" in text and "loss is nan" in text
    assert '<img src="data:image/png;base64,' in html_path.read_text()  # self-contained
    assert (tmp_path / "r.csv").is_file() and (tmp_path / "r.parquet").is_file()


def test_study_without_complete_trials_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = new_study(tmp_path / "study.db")
    add_trial(study, "gc", [float("nan")], status="failed")
    add_trial(study, "se", [40.0], status="pruned", epochs=1)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no complete trial" in err


@pytest.mark.parametrize("case", ["missing", "unknown-study", "empty-dir"])
def test_bad_targets_exit_2_with_one_line(
    case: str, demo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "missing": ["report", str(tmp_path / "nope")],
        "unknown-study": ["report", str(demo_run), "--study", "other"],
        "empty-dir": ["report", str(tmp_path)],
    }[case]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gcsearch report: error:")


def test_storage_with_two_studies_needs_a_name(tmp_path: Path) -> None:
    db = tmp_path / "two.db"
    for name in ("a", "b"):
        add_trial(new_study(db, name), "gc", [80.0])
    with pytest.raises(report.UserError, match="--study"):
        report.results_frame(db)
    assert len(report.results_frame(f"sqlite:///{db}", "b")) == 1


def test_journal_storage_is_read(tmp_path: Path) -> None:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "study.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(
        study_name="j", storage=storage, directions=["maximize", "minimize", "minimize"]
    )
    study.set_user_attr("objectives", ["top1:max", "macs:min", "params:min"])
    add_trial(study, "gc", [81.0, 82.0])
    frame = report.results_frame(tmp_path)
    assert frame["spec.id"].tolist() == ["gc@after_1x1:c3c4c5"]


def test_preset_rows_name_their_deviations(demo_run: Path) -> None:
    from gcsearch.report.render import _display_presets
    from gcsearch.spec import PRESETS

    shown = _display_presets(report.build_report(demo_run))
    row = shown[shown["preset"] == "nl-embedded"].iloc[0]
    assert row["deviations"] == "; ".join(PRESETS["nl-embedded"].deviations) != ""


def test_normalised_hypervolume_is_a_fraction_of_the_recorded_box() -> None:
    from gcsearch.report.pareto import normalised_hypervolume

    senses, ref, ideal = ["max", "min"], [50.0, 110.0], [100.0, 0.0]
    assert normalised_hypervolume([[100.0, 0.0]], senses, ref, ideal) == pytest.approx(1.0)
    assert normalised_hypervolume([[50.0, 110.0]], senses, ref, ideal) == 0.0
    assert normalised_hypervolume([[75.0, 55.0]], senses, ref, ideal) == pytest.approx(0.25)
    # a study's costs shifted by a backbone's cost score alike once the box moves with them
    shifted = normalised_hypervolume([[75.0, 1055.0]], senses, [50.0, 1110.0], [100.0, 1000.0])
    assert shifted == pytest.approx(0.25)
    assert normalised_hypervolume([], senses, ref, ideal) == 0.0
