"""Early segments at a rung's barrier (``Driver.start_early``): an idle slot continues a
waiting candidate before the rung is decided, and nothing the search records changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _bench_helpers import fake_table

from gcsearch.bench.search import BENCH_SPACE
from gcsearch.bench.table import TableExecutor
from gcsearch.launch import search
from gcsearch.result import TrialResult
from gcsearch.search.record import TrialRecord
from gcsearch.search.rungs import RungPolicy
from gcsearch.search.space import load_space
from gcsearch.search.trial import Job


class _EarlyFirst(TableExecutor):
    """Answers a job that continues a rung run (``resume_state``) before the others: an
    early segment ends while its rung still waits on its last members."""

    def wait(self, timeout: float) -> list[tuple[Job, TrialResult]]:
        resumed = [j for j in self._queue if j.resume_state]
        if resumed:
            self._queue.remove(resumed[0])
            self._queue.appendleft(resumed[0])
        return super().wait(timeout)


def _records(out: Any) -> dict[str, Any]:
    """What a search recorded of each candidate: status, rung decisions, each seed's result."""
    got = {}
    for t in out.study.trials:
        rec = TrialRecord.read(t)
        seeds = [
            (r["seed"], r["status"], r["epochs"], r["top1"], len(r["history"]))
            for r in sorted(rec.results, key=lambda r: r["seed"])
        ]
        got[rec.candidate_id] = (t.state, rec.status, rec.rungs, seeds)
    return got


def _worst_first(
    self: RungPolicy, epoch: int, reported: Any, anchors: Any, members: int
) -> list[str]:
    """``RungPolicy.likely`` guessing wrong: the reported candidates ranked last first."""
    ranked, _, _, _ = self._ranked(epoch, reported, anchors)
    return ranked[::-1]


@pytest.mark.parametrize("executor", [TableExecutor, _EarlyFirst])
@pytest.mark.parametrize("guess", ["likely", "wrong"])
def test_early_segments_leave_every_record_as_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: type, guess: str
) -> None:
    space = load_space(BENCH_SPACE).with_overrides(
        sampler="grid", enabled=True, min_epochs=1, eta=2, seeds=2, parallel=2, n_trials=None
    )  # rungs at epochs 1, 2 and 4 of 6 (fake_table's budget): three barriers
    table = fake_table(space, seed=7, seeds=2)
    kw = {"progress": False, "export": False, "weights": False, "storage": "memory"}
    kw["network_costs"] = table.costs()
    plain = search(
        space.with_overrides(speculate=False),
        tmp_path / "plain",
        executor=executor(table.by_candidate(), parallel=2),
        **kw,
    )
    if guess == "wrong":
        monkeypatch.setattr(RungPolicy, "likely", _worst_first)
    ex = executor(table.by_candidate(), parallel=2)
    early = search(space, tmp_path / "early", executor=ex, **kw)
    assert plain.record["early_segments"] == {"started": 0, "used": 0, "wasted": 0}
    segments = early.record["early_segments"]
    assert segments["started"] >= 2
    assert segments["used"] + segments["wasted"] == segments["started"]
    if guess == "wrong":
        assert segments["wasted"] >= 1  # a stopped candidate's segment is dropped
    else:
        assert segments["used"] >= 1
    assert _records(early) == _records(plain)
    assert early.counts == plain.counts
    assert not ex._queue  # every early segment came back before the search ended


def test_likely_keeps_room_for_the_members_still_out() -> None:
    policy = RungPolicy((2,), eta=2, objectives=("top1:max",))

    def results(top1: float) -> list[dict[str, Any]]:
        return [{"seed": 0, "history": [{"epoch": 2, "val_top1": top1}], "top1": top1}]

    reported = {"a": results(60.0), "b": results(90.0), "c": results(75.0), "d": results(50.0)}
    # 5 members keep 2; with 1 still out only the best reported is sure to go on
    assert policy.likely(2, reported, {}, members=5) == ["b"]
    # 6 members keep 3; with 2 out, again one
    assert policy.likely(2, reported, {}, members=6) == ["b"]
    # 7 members keep 3; with 3 out, none is sure
    assert policy.likely(2, reported, {}, members=7) == []


def test_speculate_comes_from_the_space_file_and_no_speculate_turns_it_off(
    tmp_path: Path,
) -> None:
    from gcsearch.cli import build_parser
    from gcsearch.launch import _space_from_args

    path = tmp_path / "s.toml"
    path.write_text("[fidelity]\nenabled = true\nspeculate = false\n")
    assert load_space(path).fidelity.speculate is False
    assert "speculate = false" in load_space(path).to_toml()
    args = build_parser().parse_args(["search", "--space", str(BENCH_SPACE)])
    assert _space_from_args(args).fidelity.speculate is True  # the default
    args = build_parser().parse_args(["search", "--space", str(BENCH_SPACE), "--no-speculate"])
    assert _space_from_args(args).fidelity.speculate is False
