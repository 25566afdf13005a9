"""``gcsearch bench search``: the exhaustive table, the score, the controls, shuffling, replays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _bench_helpers import fake_table
from _search_helpers import ROOT

from gcsearch.bench.search import (
    BENCH_SPACE,
    THRESHOLD,
    Scorer,
    _mean_top1,
    found_networks,
    needles,
    replay,
    shuffled_table,
)
from gcsearch.bench.table import Table, load_table
from gcsearch.errors import UserError
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space


def _write(table: Table, path: Path, drop: int = 0) -> Path:
    rows = [
        {"key": k, "seed": s, "result": r}
        for k, seeds in table.results.items()
        for s, r in seeds.items()
    ]
    lines = [json.dumps(table.header)] + [json.dumps(r) for r in rows[: len(rows) - drop]]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_table_is_refused_when_incomplete_or_built_for_something_else(tmp_path: Path) -> None:
    space = load_space(BENCH_SPACE)
    table = fake_table(space)
    assert len(table.networks) == 49  # 54 candidates + gc build 49 networks, baseline included
    full = load_table(_write(table, tmp_path / "t.jsonl"), space)
    assert full.seeds == [0, 1, 2]
    with pytest.raises(UserError, match=r"incomplete table \(1 of 147"):
        load_table(_write(table, tmp_path / "cut.jsonl", drop=1), space)
    longer = space.with_overrides(budget={"epochs": 7})
    with pytest.raises(UserError, match=r"budget\.epochs \(table 6, asked 7\)"):
        load_table(tmp_path / "t.jsonl", longer)
    with pytest.raises(UserError, match="no exhaustive table"):
        load_table(tmp_path / "missing.jsonl", space)


def test_the_committed_table_loads_and_an_older_header_keeps_loading(tmp_path: Path) -> None:
    """The published figures' table loads with the shipped space (it was refused once its
    header predated the ``optimizer`` field and the task's default budget changed); a header
    without a field added later reads as that field's value before it existed, and a field
    that really differs names itself."""
    space = load_space(BENCH_SPACE)
    committed = ROOT / "benchmarks" / "tables" / "bench-small.jsonl"
    assert len(load_table(committed, space).networks) == 49
    table = fake_table(space)
    del table.header["budget"]["optimizer"]
    path = _write(table, tmp_path / "old.jsonl")
    assert load_table(path, space).seeds == [0, 1, 2]
    with pytest.raises(UserError, match=r"budget\.optimizer \(table 'sgd', asked 'adamw'\)"):
        load_table(path, space.with_overrides(budget={"optimizer": "adamw"}))
    with pytest.raises(UserError, match=r"seeds \(table \[0, 1, 2\], asked \[0, 1\]\)"):
        load_table(path, space, seeds=[0, 1])


def test_score_excludes_reference_rows_and_uses_block_costs() -> None:
    space = load_space(BENCH_SPACE)
    table = fake_table(space)
    scorer = Scorer(table, space)
    # 48 searched networks, less att-r16ln-add@c3c4c5, which the gc reference row trains
    assert "none" not in scorer.searched and len(scorer.searched) == 47
    assert scorer.ideal["block_macs"] == 0  # the box starts at no block
    truth = {k: _mean_top1(table.results[k]) for k in scorer.searched}
    assert 0 < scorer.hv(truth) < 1
    assert scorer.hv({"none": _mean_top1(table.results["none"])}) == 0.0


def test_needles_are_the_fewest_networks_that_reach_the_threshold() -> None:
    """``needles`` searches the front only; checked here against every set of searched
    networks one smaller (none reaches the threshold) and by rescoring each set it lists."""
    import itertools

    space = load_space(BENCH_SPACE)
    table = fake_table(space)
    scorer = Scorer(table, space)
    truth = {k: _mean_top1(table.results[k]) for k in scorer.searched}
    full = scorer.hv(truth)
    out = needles(table, space)
    assert out["searched"] == 47 and 1 <= out["fewest"] <= out["front"]
    key = {ids[0]: k for k, ids in table.networks.items()}
    for group in out["sets"]:
        keys = [key[x["id"]] for x in group["networks"]]
        assert len(keys) == out["fewest"]
        assert scorer.hv({k: truth[k] for k in keys}) / full == pytest.approx(group["share"])
        assert group["share"] >= THRESHOLD
        for x, k in zip(group["networks"], keys, strict=True):
            assert x["accuracy_rank"] == 1 + sum(v > truth[k] for v in truth.values())
    smaller = itertools.combinations(scorer.searched, out["fewest"] - 1)
    assert all(scorer.hv({k: truth[k] for k in g}) / full < THRESHOLD for g in smaller)


def test_shuffled_table_keeps_costs_and_moves_accuracy() -> None:
    space = load_space(BENCH_SPACE)
    table = fake_table(space)
    shuffled = shuffled_table(table, space, seed=1)
    moved = 0
    for key, seeds in shuffled.results.items():
        assert seeds[0]["block_macs"] == table.results[key][0]["block_macs"]
        moved += seeds[0]["top1"] != table.results[key][0]["top1"]
    assert moved > 10
    # the accuracies are the same multiset: only who has which changed
    assert sorted(_mean_top1(s) for s in shuffled.results.values()) == pytest.approx(
        sorted(_mean_top1(s) for s in table.results.values())
    )


def test_exhaustive_replay_recovers_the_whole_table() -> None:
    space = load_space(BENCH_SPACE)
    table = fake_table(space)
    study, ex = replay(space, table, sampler="grid", n_trials=None, seed=0)
    scorer = Scorer(table, space)
    assert set(found_networks(study)) == set(scorer.searched)
    dups = [TrialRecord.read(t) for t in study.trials if TrialRecord.read(t).is_duplicate]
    assert len(dups) == 7  # gc = att-r16ln-add at c3c4c5; r4 = r16 at c4 (8 wide) x 6
    assert ex.epochs_trained == 6 * 3 * 49


@pytest.mark.parametrize("sampler", ["ehvi", "tpe", "nsga2", "random"])
def test_replay_trains_the_budget_in_distinct_networks(sampler: str) -> None:
    space = load_space(BENCH_SPACE)
    study, _ = replay(space, fake_table(space), sampler=sampler, n_trials=14, seed=0)
    recs = [TrialRecord.read(t) for t in study.trials]
    trained = [r for r in recs if r.trained and r.role == "search"]
    assert len(trained) == 14 and len({r.network for r in trained}) == 14
    if sampler == "ehvi":  # never proposes a network already answered
        assert not any(r.is_duplicate for r in recs)


def test_cli_smoke_writes_figures(tmp_path: Path) -> None:
    from gcsearch.cli import main

    space = load_space(BENCH_SPACE)
    path = _write(fake_table(space), tmp_path / "t.jsonl")
    out = tmp_path / "figures.json"
    assert (
        main(
            [
                "bench",
                "search",
                "--smoke",
                "--table",
                str(path),
                "--strategies",
                "random",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    figures = json.loads(out.read_text())
    for name in ("original", "shuffled"):
        scores = figures["strategies"][name]["scores"]
        assert set(scores) == {"random", "cheapest-first", "random-networks"}
        assert all(v["n"] == 3 for v in scores.values())
    assert figures["table"]["fingerprint"] and figures["fidelity"]
    with pytest.raises(SystemExit):
        main(["bench", "search", "--no-such-flag"])
    assert main(["bench", "search", "--replays", "0", "--table", str(path)]) == 2


@pytest.mark.parametrize("in_flight", [1, 3])
def test_replay_proposes_with_the_given_number_in_flight(
    in_flight: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gcsearch.search import strategy

    counts: list[int] = []
    propose = strategy.EHVIStrategy.propose

    def spy(self: strategy.EHVIStrategy, driver: Any) -> Any:
        counts.append(sum(1 for r in driver.running.values() if r.role == "search"))
        return propose(self, driver)

    monkeypatch.setattr(strategy.EHVIStrategy, "propose", spy)
    space = load_space(BENCH_SPACE)
    study, _ = replay(
        space, fake_table(space), sampler="ehvi", n_trials=14, seed=0, in_flight=in_flight
    )
    assert max(counts) == in_flight and counts.count(in_flight) >= 14 - 2 * in_flight
    trained = [r for t in study.trials if (r := TrialRecord.read(t)).trained and r.role == "search"]
    assert len({r.network for r in trained}) == 14


@pytest.mark.parametrize("rule", ["kb", "kb-fixed", "cl", "kb+fill", "cl+prior"])
def test_every_batch_rule_trains_the_budget_in_distinct_networks(
    rule: str,
) -> None:
    from gcsearch.search import strategy

    space = load_space(BENCH_SPACE)
    study, _ = replay(
        space,
        fake_table(space),
        sampler="ehvi",
        n_trials=14,
        seed=1,
        in_flight=3,
        ehvi=strategy.EHVISettings(batch_rule=rule),
    )
    recs = [TrialRecord.read(t) for t in study.trials]
    trained = [r for r in recs if r.trained and r.role == "search"]
    assert len(trained) == 14 and len({r.network for r in trained}) == 14
    assert not any(r.is_duplicate for r in recs)
