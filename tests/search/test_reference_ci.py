"""Reference rows narrowed to ``[search] reference_ci``: more seeds where the interval is wide,
none where it is already narrow, never past ``reference_max_seeds``."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _bench_helpers import fake_table
from _search_helpers import tiny_space
from scipy import stats as sps

from gcsearch.bench.table import TableExecutor
from gcsearch.errors import UserError
from gcsearch.report.frame import frame_from_study
from gcsearch.report.stats import mean_ci
from gcsearch.result import TrialResult
from gcsearch.search.precision import seeds_for_width
from gcsearch.search.record import TrialRecord
from gcsearch.search.run import SearchConfig, run_study
from gcsearch.search.space import load_space, parse_space
from gcsearch.search.trial import Job
from gcsearch.tasks.train import validates


@pytest.mark.parametrize("values", [[50.0, 51.0, 49.0], [80.0, 90.0, 85.0, 70.0], [60.0, 60.5]])
@pytest.mark.parametrize("width", [0.5, 2.0, 5.0])
def test_seeds_for_width_is_the_smallest_count_whose_interval_is_that_narrow(
    values: list[float], width: float
) -> None:
    sd = float(sps.tstd(values))

    def half(n: int) -> float:
        return float(sps.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)

    n = seeds_for_width(values, width, most=10_000)
    assert n >= len(values) and half(n) <= width
    assert n == len(values) or half(n - 1) > width


def test_seeds_for_width_floors_the_sd_and_stops_at_the_cap() -> None:
    assert seeds_for_width([70.0, 70.0, 70.0], 0.01, floor=0.05) > 3  # sd 0 is not certainty
    assert seeds_for_width([50.0, 90.0, 60.0], 0.1, most=12) == 12
    assert seeds_for_width([50.0], 2.0) == 2  # an interval needs two


class _AsTrained(TableExecutor):
    """A table replay that validates as the trainer does: an epoch outside a job's
    ``validate_at`` (and not its last) holds no validation; keeps every job it was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jobs: list[Job] = []

    def submit(self, job: Job) -> None:
        self.jobs += job.parts()
        super().submit(job)

    def wait(self, timeout: float) -> list[tuple[Job, TrialResult]]:
        out = super().wait(timeout)
        for job, result in out:
            for h in result.history:
                if not validates(int(h["epoch"]), job.validate_at, int(job.budget["epochs"])):
                    h.pop("val_top1", None), h.pop("val_loss", None)
        return out


def _run(
    space_text: str,
    tmp_path: Path,
    tops: dict[str, list[float]],
    fidelity: bool = False,
    executor: type[TableExecutor] = TableExecutor,
) -> tuple[dict[str, list[float]], Any, TableExecutor]:
    """A search answered from a made-up table of 40 seeds whose reference rows' top-1 per
    seed are ``tops``; returns each trained candidate -> per-seed top-1, the study and the
    executor."""
    path = tiny_space(tmp_path, fidelity=fidelity, extra="")
    path.write_text(path.read_text().replace("[search]\n", f"[search]\n{space_text}\n"))
    space = load_space(path).with_overrides(seeds=3)
    table = fake_table(space, seeds=40)
    by_id = table.by_candidate()
    for cid, values in tops.items():
        for seed in range(40):
            row = by_id[cid][seed]
            row["top1"] = values[seed % len(values)]
            row["history"][-1]["val_top1"] = row["top1"]
    ex = executor(by_id, parallel=2)
    with tempfile.TemporaryDirectory() as tmp:
        out = run_study(
            space,
            SearchConfig(
                run_dir=Path(tmp),
                storage="memory",
                executor=ex,
                progress=False,
                weights=False,
                network_costs=table.costs(),
            ),
        )
    got = {}
    for t in out.study.get_trials(deepcopy=False):
        rec = TrialRecord.read(t)
        if rec.trained:
            got[rec.candidate_id] = [float(r["top1"]) for r in rec.results]
    return got, out.study, ex


NARROW = [50.0, 51.0, 49.0, 50.5]  # sd ~0.85: +-2 reached at 4 seeds (3 give +-2.1)
WIDE = [60.0, 70.0, 80.0, 65.0, 75.0]  # sd ~7.9: +-2 needs ~63 seeds


def test_reference_rows_train_seeds_until_their_interval_is_as_narrow_as_asked(
    tmp_path: Path,
) -> None:
    se = "se@after_1x1:c4"
    got, study, _ = _run(
        "reference_ci = 2.0\nreference_max_seeds = 11",
        tmp_path,
        {"none": NARROW, se: WIDE},
    )
    _, none_half, n_none = mean_ci(got["none"])
    assert none_half <= 2.0 and n_none == seeds_for_width(NARROW[:3], 2.0)  # 4: no more
    assert len(got[se]) == 11  # the cap: its interval is still wider than asked
    assert mean_ci(got[se])[1] > 2.0
    searched = [v for k, v in got.items() if k not in ("none", se)]
    assert searched and all(len(v) == 3 for v in searched)  # searched rows keep their seeds
    assert got[se] == [WIDE[s % len(WIDE)] for s in range(11)]  # seeds 0..10, each once
    # the report's summary says the reference rows' seeds followed their intervals
    assert frame_from_study(study).attrs["study"]["reference_ci"] == {"ci": 2.0, "max_seeds": 11}


def test_added_reference_seeds_skip_the_rungs_and_the_rungs_still_rank_against_the_row(
    tmp_path: Path,
) -> None:
    """No rung reads an added seed's rung epoch: it validates at the last epoch only, and a
    rung ranks against the row's first seeds (those that validated there)."""
    se = "se@after_1x1:c4"
    got, study, ex = _run(
        "reference_ci = 2.0\nreference_max_seeds = 8",
        tmp_path,
        {"none": NARROW, se: WIDE},
        fidelity=True,
        executor=_AsTrained,
    )
    assert len(got[se]) == 8
    rec = next(r for t in study.trials if (r := TrialRecord.read(t)).rungs)
    rung = rec.rungs[0]["epoch"]
    assert isinstance(ex, _AsTrained)
    ref = {j.seed: j.validate_at for j in ex.jobs if j.candidate_id == se}
    assert all(rung in ref[s] for s in range(3))
    assert all(rung not in ref[s] and ref[s] for s in range(3, 8))
    assert set(rec.rungs[0]["anchors"]) == {"none", se}


def test_without_reference_ci_every_row_keeps_the_space_seeds(tmp_path: Path) -> None:
    got, study, _ = _run("", tmp_path, {"none": NARROW, "se@after_1x1:c4": WIDE})
    assert got and all(len(v) == 3 for v in got.values())
    assert "reference_ci" not in frame_from_study(study).attrs["study"]


def test_a_cap_below_the_seeds_is_a_one_line_error() -> None:
    text = (
        'name = "x"\n[task]\nname = "synthetic"\nbackbone = "resnet8"\n[axes]\n'
        'pooling = ["att"]\n[search]\nseeds = 3\nreference_ci = 2\nreference_max_seeds = 2\n'
    )
    with pytest.raises(UserError, match=r"reference_max_seeds: 2 is fewer than search.seeds"):
        parse_space(text, "x.toml")


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--reference-ci", "-1"], "--reference-ci: -1.0 is out of range (allowed: numbers >= 0)"),
        (
            ["--reference-max-seeds", "1"],
            "--reference-max-seeds: 1 is out of range (allowed: integers >= 2)",
        ),
    ],
)
def test_reference_flags_out_of_range_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], line: str
) -> None:
    from gcsearch.cli import main

    space = tiny_space(tmp_path)
    assert main(["search", "--space", str(space), "--run-dir", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and line in err
    assert not (tmp_path / "r").exists()


def test_a_search_stopped_while_a_reference_row_adds_seeds_resumes_to_the_same_rows(
    tmp_path: Path,
) -> None:
    """Interrupted while the reference rows are still adding seeds, then resumed: every row
    ends with the seeds (and values) of an uninterrupted run; nothing is lost or doubled."""
    from gcsearch.launch import search
    from gcsearch.report.frame import load_study as search_study

    path = tiny_space(tmp_path, fidelity=False)
    path.write_text(
        path.read_text().replace(
            "[search]\n", "[search]\nreference_ci = 2.0\nreference_max_seeds = 9\n"
        )
    )
    space = load_space(path).with_overrides(seeds=3, parallel=1)
    table = fake_table(space, seeds=12)
    runs = table.by_candidate()
    for seed in range(12):  # `none` stops at 4 seeds; the preset row needs the cap (9)
        runs["none"][seed]["top1"] = NARROW[seed % len(NARROW)]
        runs["se@after_1x1:c4"][seed]["top1"] = WIDE[seed % len(WIDE)]
    kw = {"progress": False, "export": False, "weights": False, "network_costs": table.costs()}

    def rows(study: Any) -> dict[str, list[tuple[int, float]]]:
        out = {}
        for t in study.get_trials(deepcopy=False):
            rec = TrialRecord.read(t)
            if rec.trained:
                out[rec.candidate_id] = [(int(r["seed"]), float(r["top1"])) for r in rec.results]
        return out

    whole = search(space, tmp_path / "a", executor=TableExecutor(runs), **kw)
    assert len(rows(whole.study)["se@after_1x1:c4"]) == 9
    # one job at a time: none's 3 seeds + 1 added (jobs 1-4), se's 3 (5-7), then se's added
    # seeds one by one: stopped after job 9, with se at 5 of its 9 seeds
    with pytest.raises(KeyboardInterrupt):
        search(space, tmp_path / "b", executor=TableExecutor(runs, interrupt_after=9), **kw)
    cut = rows(search_study(tmp_path / "b"))
    assert len(cut["none"]) == 4 and "se@after_1x1:c4" not in cut  # se was mid-extension
    again = search(space, tmp_path / "b", resume=True, executor=TableExecutor(runs), **kw)
    assert rows(again.study) == rows(whole.study)
