"""``gcsearch resolve``: seeds go only to open comparisons, under the recorded plan, and a
resumed resolve trains nothing twice (a fake executor for the logic, one real tiny run)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report import add_trial, new_study

from gcsearch.analysis.resolve import Caps, resolve
from gcsearch.cli import main
from gcsearch.report import build_report
from gcsearch.report import sequential as sq
from gcsearch.report.frame import load_study
from gcsearch.result import TrialResult
from gcsearch.search.record import SEED, TrialRecord

GC = "att-r16ln-add@after_1x1:c3c4c5"
AVG = "avg-r16ln-add@after_1x1:c3c4c5"  # pooling: far below GC, decided early
MUL = "att-r16ln-mul@after_1x1:c3c4c5"  # fusion: equal to GC, open to the cap
OTHER = "avg-r16ln-mul@after_1x1:c3c4c5"  # in no comparison
MEANS = {GC: 85.0, AVG: 80.0, MUL: 85.0, OTHER: 84.0, "none": 82.0}


def _top1(cid: str, seed: int) -> float:
    """A seed's result: the candidate's mean + a seed effect shared by all + its own noise."""
    shared = np.random.default_rng(seed).normal(0, 1.0)
    own = np.random.default_rng([seed, len(cid), sum(map(ord, cid))]).normal(0, 0.5)
    return round(MEANS[cid] + shared + own, 2)


class FakeExecutor:
    """The executor protocol, answering each job with ``_top1`` (no training)."""

    parallel = 1

    def __init__(self) -> None:
        self.queue: list[Any] = []
        self.trained: list[tuple[str, int]] = []

    def submit(self, job: Any) -> None:
        self.queue.append(job)

    def wait(self, timeout: float) -> list[tuple[Any, TrialResult]]:
        out = []
        for job in self.queue:
            self.trained.append((job.candidate_id, job.seed))
            top1 = _top1(job.candidate_id, job.seed)
            out.append((job, TrialResult(job.candidate_id, job.seed, top1=top1, epochs=4)))
        self.queue = []
        return out

    def in_flight(self) -> list[Any]:
        return list(self.queue)

    def cancel_all(self) -> None:
        self.queue = []

    def shutdown(self) -> None:
        self.queue = []


def _first_pass(tmp_path: Path, seeds: int = 3) -> Path:
    study = new_study(tmp_path / "study.db", "gcnet-paper")
    for cid in MEANS:
        add_trial(study, cid, [_top1(cid, s) for s in range(seeds)])
    return tmp_path


def test_seeds_go_only_to_open_comparisons_until_decided_or_the_cap(tmp_path: Path) -> None:
    run = _first_pass(tmp_path)
    ex = FakeExecutor()
    out = resolve(run, Caps(max_seeds=12, step=3), executor=ex, progress=False)
    assert out.plan.looks == (3, 6, 9, 12)
    by_id = {s.id: s for s in out.outcome}
    assert by_id["pooling"].decided_at >= 0 and by_id["pooling"].direction == 1
    assert by_id["fusion"].open and by_id["fusion"].reached == 3  # equal means: to the cap
    trained = Counter(cid for cid, _ in ex.trained)
    assert OTHER not in trained and "none" not in trained  # in no comparison
    assert trained[MUL] == 9 and trained[GC] == 9  # fusion stayed open to 12 seeds
    # AVG got seeds only up to the look that decided pooling
    assert trained[AVG] == sq.Plan((3, 6, 9, 12)).looks[by_id["pooling"].decided_at] - 3
    assert len(set(ex.trained)) == len(ex.trained)  # no seed twice
    assert out.seeds[OTHER] == 3 and out.seeds[MUL] == 12
    assert "fusion" in {s.id for s in out.outcome if s.open}
    assert by_id["fusion"].needed is None or by_id["fusion"].needed > 12
    # nothing left to do: a second resolve trains nothing and keeps the plan
    again = FakeExecutor()
    out2 = resolve(run, Caps(), executor=again, progress=False)
    assert again.trained == [] and out2.plan == out.plan and out2.trained_total == out.trained


def test_the_report_names_method_looks_and_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _first_pass(tmp_path)
    resolve(run, Caps(max_seeds=9, step=3), executor=FakeExecutor(), progress=False)
    md = tmp_path / "r.md"
    assert main(["report", str(run), "--md", str(md)]) == 0
    text = md.read_text()
    assert "Adaptive seeds (gcsearch resolve)" in text
    assert "O'Brien–Fleming" in text and "looks at n = 3, 6, 9 seeds per candidate" in text
    assert "group-sequential: agree at look" in text  # pooling, decided
    assert "open at the cap (n = 9, look 3 of 3); " in text  # fusion, with what it would take
    assert "it would take about" in text or "no seed count up to" in text
    assert "Failed, pruned and unfinished" not in text  # the seed rows are in their candidates'
    assert "seeds added by resolve" in text
    rows = build_report(run).rows.set_index("spec.id")
    assert rows.loc[MUL, "metric.top1_n"] == 9 and rows.loc[OTHER, "metric.top1_n"] == 3


def test_caps_on_trainings_and_a_recorded_plan(tmp_path: Path) -> None:
    run = _first_pass(tmp_path)
    ex = FakeExecutor()
    out = resolve(run, Caps(max_seeds=12, step=3, max_trainings=4), executor=ex, progress=False)
    assert len(ex.trained) == 4 and out.trained_total == 4 and "4 added trainings" in out.stopped
    out = resolve(run, Caps(max_trainings=7), executor=FakeExecutor(), progress=False)
    assert out.trained_total == 7 and out.plan.looks == (3, 6, 9, 12)
    rc = main(["resolve", str(run), "--max-seeds", "20"])
    assert rc == 2  # the plan is fixed at the first resolve


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-seeds", "2"], "--max-seeds: 2 is out of range (allowed: integers >= 3)"),
        (["--step", "0"], "--step: 0 is out of range (allowed: integers >= 1)"),
        (["--hours", "-1"], "--hours: -1.0 is out of range (allowed: numbers > 0)"),
        (["--max-trainings", "0"], "--max-trainings: 0 is out of range"),
    ],
)
def test_bad_caps_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    run = _first_pass(tmp_path)
    assert main(["resolve", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_no_run_and_no_verdict_pairs_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resolve", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "no such run" in err and "allowed:" in err
    study = new_study(tmp_path / "study.db", "quick")
    add_trial(study, "none", [80.0, 81.0, 82.0])
    add_trial(study, OTHER, [80.0, 81.0, 82.0])
    assert main(["resolve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no verdict pairs" in err and "allowed:" in err and len(err.strip().splitlines()) == 1
    assert main(["resolve", str(tmp_path / "study.db"), "--max-seeds", "9"]) == 2


PAIR_SPACE = """
name = "gcnet-paper-tiny"
objectives = ["top1:max", "macs:min", "params:min"]
[task]
name = "synthetic"
backbone = "resnet8"
[axes]
pooling = ["att", "avg"]
transform = ["bottleneck"]
ratio = [16]
norm = ["ln"]
fusion = ["add", "mul"]
stages = ["c3c4c5"]
position = ["after_1x1"]
[search]
sampler = "grid"
n_trials = "all"
seeds = 3
parallel = 1
"""


def test_resolve_on_a_real_tiny_run_resumes_without_retraining(tmp_path: Path) -> None:
    from gcsearch.launch import search
    from gcsearch.search.local import InlineExecutor
    from gcsearch.search.space import load_space

    path = tmp_path / "tiny.toml"
    path.write_text(PAIR_SPACE)
    run = tmp_path / "run"
    kw: dict[str, Any] = {"smoke": True, "progress": False, "export": False, "weights": False}
    search(load_space(path), run, executor=InlineExecutor(), **kw)
    before = {
        t.number: TrialRecord.read(t).results for t in load_study(run).get_trials(deepcopy=False)
    }
    # the first resolve stops after one training (as a killed one would), the second resumes
    first = resolve(
        run, Caps(max_seeds=5, step=1, max_trainings=1), executor=InlineExecutor(), progress=False
    )
    assert first.trained == 1
    second = resolve(run, Caps(), executor=InlineExecutor(), progress=False)
    study = load_study(run)
    seeds = [TrialRecord.read(t) for t in study.get_trials(deepcopy=False)]
    added = [(r.candidate_id, r.results[0]["seed"]) for r in seeds if r.role == SEED]
    assert second.trained >= 1 and first.plan.looks == second.plan.looks == (3, 4, 5)
    assert len(added) == len(set(added)) == second.trained_total == 1 + second.trained
    assert all(seed >= 3 for _, seed in added)  # the first pass's seeds are reused
    family = {c for s in second.outcome for c in s.candidates}
    assert {cid for cid, _ in added} <= family  # only candidates of the comparisons
    assert not any(c.startswith("avg-r16ln-mul") for c, _ in added)  # in none of them
    for t in study.get_trials(deepcopy=False):  # the first pass's rows are untouched
        if t.number in before:
            assert TrialRecord.read(t).results == before[t.number]
    rows = build_report(run).rows.set_index("spec.id")
    for cid, n in second.seeds.items():
        assert rows.loc[cid, "metric.top1_n"] == n
    from gcsearch.report.curves import curve_frame

    numbers = {
        t.number for t in study.get_trials(deepcopy=False) if TrialRecord.read(t).role == SEED
    }
    curves = curve_frame(study)
    assert not set(curves["trial"]) & numbers  # a seed's curve is its candidate trial's
    assert set(curves["seed"]) >= {seed for _, seed in added}
    third = resolve(run, Caps(), executor=InlineExecutor(), progress=False)
    assert third.trained == 0 and third.trained_total == second.trained_total


def test_ids_of_one_network_share_each_added_seed(tmp_path: Path) -> None:
    """The GC preset and GCNet's spec id build one network (the run trains it once and
    answers the other id as a duplicate): resolve trains each added seed once and tells it
    under both ids, and a twin's copy is not counted as a training."""
    gc_preset, se = "gc@after_1x1:c3c4c5", "se@after_1x1:c3c4c5"
    study = new_study(tmp_path / "study.db", "gcnet-paper")
    MEANS.update({gc_preset: MEANS[GC], se: MEANS[GC]})
    try:
        for cid in (GC, MUL, se):
            add_trial(study, cid, [_top1(cid, s) for s in range(3)])
        add_trial(study, gc_preset, [_top1(GC, s) for s in range(3)], duplicate_of=0)
        ex = FakeExecutor()
        out = resolve(tmp_path, Caps(max_seeds=9, step=3), executor=ex, progress=False)
    finally:
        for cid in (gc_preset, se):
            MEANS.pop(cid)
    trained = Counter(cid for cid, _ in ex.trained)
    assert trained[GC] + trained[gc_preset] == 6 and len(set(ex.trained)) == len(ex.trained)
    assert out.seeds[GC] == out.seeds[gc_preset] == 9 and out.trained_total == len(ex.trained)
    rows = build_report(tmp_path).rows.set_index("spec.id")
    assert rows.loc[GC, "metric.seeds"] == rows.loc[gc_preset, "metric.seeds"]
