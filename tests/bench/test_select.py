"""``gcsearch bench select``: leave-one-table-out choice of ehvi's settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gcsearch.bench.select import choose_setting, parse_grid, rank_of, select
from gcsearch.search.strategy import EHVISettings


def test_settings_parse_and_label_round_trip() -> None:
    s = EHVISettings.parse("sd_scale=2.5,starts=4,batch_rule=kb")
    assert (s.sd_scale, s.starts, s.batch_rule) == (2.5, 4, "kb")
    assert EHVISettings.parse(s.label()) == s
    assert EHVISettings.parse("") == EHVISettings()
    for bad in ("sd_scale=0", "starts=0", "batch_rule=nope", "explore=1", "sd_scale"):
        with pytest.raises(ValueError, match="allowed"):
            EHVISettings.parse(bad)


def test_rank_is_the_worst_original_table_first() -> None:
    tuning = {
        "a": {
            "x": {"original": [1.0, 0.95], "shuffled": [0.2]},
            "y": {"original": [0.9, 0.9], "shuffled": [0.9]},
        },
        "b": {
            "x": {"original": [0.8, 1.0], "shuffled": [0.2]},
            "y": {"original": [0.9, 0.9], "shuffled": [0.9]},
        },
    }
    assert rank_of(tuning, "x") < rank_of(tuning, "y")  # y's worst table beats x's
    assert rank_of({"a": tuning["a"]}, "x") > rank_of({"a": tuning["a"]}, "y")


def test_the_shipped_settings_stay_unless_beaten_by_the_margin() -> None:
    def table(x: float, y: float) -> dict[str, dict[str, list[float]]]:
        return {
            "ship": {"original": [x], "shuffled": [0.5]},
            "new": {"original": [y], "shuffled": [0.5]},
        }

    assert choose_setting({"a": table(0.8, 0.9)}, "ship", 0.2) == ("ship", "new")
    assert choose_setting({"a": table(0.6, 0.9)}, "ship", 0.2) == ("new", "new")
    assert choose_setting({"a": table(0.9, 0.6)}, "ship", 0.2) == ("ship", "ship")


def test_grid_is_every_combination_once() -> None:
    grid = parse_grid("sd_scale=1,2;starts=2,4")
    assert len(grid) == 4 and len(set(grid)) == 4
    assert {(g.sd_scale, g.starts) for g in grid} == {(1, 2), (1, 4), (2, 2), (2, 4)}
    with pytest.raises(ValueError, match="allowed"):
        parse_grid("sd_scale")


def _one_seed(root: Path, **over: Any) -> dict[str, Any]:
    """``select``'s arguments for one tuning and one test replay, nothing in flight."""
    return {
        "tune_seeds": [500],
        "test_seeds": [0],
        "tune_flights": [0],
        "test_flights": [0],
        "fraction": 0.25,
        "root": root,
        "workers": 1,
        "log": lambda _: None,
        **over,
    }


def test_selection_holds_out_each_table_and_caches(tmp_path: Path) -> None:
    """Two committed tables, two settings, one seed each: each fold's choice is made on the
    other table's tuning replays only, the held-out scores use the test seeds, and a rerun
    reads every batch from the cache."""
    spaces = ["bench-small", "bench-small-digits"]
    grid = parse_grid("sd_scale=1,1.5")
    kwargs = _one_seed(tmp_path, fractions=[0.4])
    fig = select(spaces, grid, **kwargs)
    assert [f["held_out"] for f in fig["folds"]] == ["bench-small", "bench-small-digits"]
    for f, other in zip(fig["folds"], reversed(spaces), strict=True):

        def rank(lab: str, other: str = other) -> tuple[float, ...]:
            return rank_of({other: fig["tuning"][other]}, lab)

        best = max(fig["grid"], key=rank)
        assert f["best_on_tuning"] == best
        # the shipped settings are kept unless the best beats them by the margin (1 replay: 1)
        won = rank(best)[0] - rank(fig["shipped"])[0] > fig["switch_margin"]
        assert f["chosen"] == (best if won else fig["shipped"])
        assert fig["switch_margin"] == 1.0
        scores = f["held_out_scores"]["chosen"]["original"]["0"]
        assert scores["ehvi"]["n"] == 1 and {"cheapest-first", "random-networks"} <= set(scores)
    budget = fig["budgets"]["0.4"]["bench-small"]["shuffled"]
    assert budget["ehvi"]["n"] == 1 and "cheapest-first" in budget
    assert fig["budgets"]["0.4"]["bench-small"]["original"]["ehvi"]["n"] == 1
    cached = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json"))
    again = select(spaces, grid, **kwargs)
    assert again == fig
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json")) == cached
    json.dumps(fig)


def test_select_refuses_overlapping_seeds_and_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcsearch.cli import main

    base = ["bench", "select", "--run-root", str(tmp_path)]
    assert main([*base, "--tables", "bench-small"]) != 0
    assert "two or more bench spaces" in capsys.readouterr().err
    two = ["--tables", "bench-small,bench-small-digits"]
    assert main([*base, *two, "--tune-seeds", "0-9", "--test-seeds", "5-20"]) != 0
    err = capsys.readouterr().err
    assert "overlap" in err and len(err.strip().splitlines()) == 1
    assert main([*base, *two, "--grid", "sd_scale=-1"]) != 0
    assert "allowed" in capsys.readouterr().err
    assert main([*base, *two, "--tune-seeds", "524-500"]) != 0
    err = capsys.readouterr().err
    assert "--tune-seeds" in err and "empty range" in err and len(err.strip().splitlines()) == 1
    assert main([*base, *two, "--fractions", "0.2,x"]) != 0
    assert "--fractions" in capsys.readouterr().err
    assert main([*base, "--tables", "bench-small,nope"]) != 0
    assert "nope" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))


def test_a_folds_prior_never_reads_its_held_out_table(tmp_path: Path) -> None:
    """With the tables' prior on, a fold's tuning replays leave the held-out table out of the
    prior as well as the replayed one (its own cache entries say so); the choice for all
    tables leaves out the replayed one only; settings without the prior share one entry."""
    spaces = ["bench-small", "bench-small-graded", "bench-small-digits"]
    grid = parse_grid("prior=off,on")
    fig = select(spaces, grid, **_one_seed(tmp_path))
    on, off = (next(g.label() for g in grid if g.prior is p) for p in (True, False))
    for held in spaces:
        assert held not in fig["fold_tuning"][held]
        assert set(fig["fold_tuning"][held]) == set(spaces) - {held}
    names = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json")}
    safe = on.replace("=", "").replace(",", "_").replace("+", "p")
    assert "bench-small-digits/" + safe + "/original-f0-s500-500-b0.25-wo-bench-small.json" in names
    assert "bench-small-digits/" + safe + "/original-f0-s500-500-b0.25.json" in names
    off_safe = off.replace("=", "").replace(",", "_").replace("+", "p")
    assert not [n for n in names if off_safe in n and "-wo-" in n]
    # the held-out replays themselves leave only the held-out table out (replay does that)
    assert not [n for n in names if "-s0-0-" in n and "-wo-" in n]


def test_the_shipped_settings_are_what_the_committed_selection_chose() -> None:
    """One source: the shipped settings are what the small-budget rule chose
    (benchmarks/small-budget/tune-*.json) over the setting benchmarks/bench-select.json chose
    on all tables (a new selection or replay that chooses otherwise fails here until they
    follow)."""
    from gcsearch.bench.select import choose_small_budget
    from gcsearch.search.strategy import SHIPPED

    root = Path(__file__).resolve().parents[2]
    data = json.loads((root / "benchmarks" / "bench-select.json").read_text())
    runs = [
        json.loads(p.read_text())
        for p in sorted((root / "benchmarks" / "small-budget").glob("tune-*.json"))
    ]
    chosen = choose_small_budget(runs, data["chosen_on_all"])["chosen"]
    assert SHIPPED.label() == chosen
    assert EHVISettings.parse(chosen) == SHIPPED


def _run(label: str, table: str, trials: int, by_k: dict[str, tuple[list, list]]) -> dict:
    """A ``bench search`` figure file as choose_small_budget reads it."""

    def kind(values: list[float]) -> dict:
        return {
            "budget_trials": trials,
            "candidates": 54,
            "scores": {"ehvi": {"values": values, "p_ge": sum(v >= 0.97 for v in values) / 4}},
        }

    flights = {k: {"original": kind(o), "shuffled": kind(sh)} for k, (o, sh) in by_k.items()}
    return {
        "ehvi": label,
        "table": {"path": f"benchmarks/tables/{table}.jsonl"},
        "in_flight": flights,
    }


def test_the_small_budget_rule_keeps_p_and_asks_for_a_gain_on_the_shuffled_tables() -> None:
    """A challenger must be replayed wherever the incumbent was, lose no P(HV >= 0.97) on an
    original table beyond 1/sqrt(replays) (here 4 replays: 0.5), and gain on the shuffled forms
    at the smallest budget on average; the best such challenger wins, else the incumbent."""
    from gcsearch.bench.select import choose_small_budget

    hi, lo = [0.99, 0.99, 0.99, 0.99], [0.9, 0.9, 0.9, 0.99]
    sh = [0.5, 0.6, 0.7, 0.8]

    def plus(v: list[float], d: float) -> list[float]:
        return [x + d for x in v]

    inc = [
        _run("inc", "a", 8, {"0": (hi, sh)}),
        _run("inc", "a", 14, {"0": (hi, sh), "2": (hi, sh)}),
    ]
    good = [
        _run("good", "a", 8, {"0": (hi, plus(sh, 0.02))}),
        _run("good", "a", 14, {"0": (hi, sh), "2": (hi, sh)}),
    ]
    better_but_loses_p = [
        _run("lossy", "a", 8, {"0": (hi, plus(sh, 0.1))}),
        _run("lossy", "a", 14, {"0": (hi, sh), "2": (lo, sh)}),
    ]
    missing = [_run("partial", "a", 8, {"0": (hi, plus(sh, 0.2))})]
    out = choose_small_budget(inc + good + better_but_loses_p + missing, "inc")
    assert out["chosen"] == "good" and out["smallest_budget_trials"] == 8
    assert out["challengers"]["good"]["score"] == pytest.approx(0.02)
    assert (
        "0.25 against 1.00 on a at 14 trials, 2 in flight"
        in out["challengers"]["lossy"]["eligible"]
    )
    assert "not replayed on a at 14 trials" in out["challengers"]["partial"]["eligible"]
    worse = [
        _run("worse", "a", 8, {"0": (hi, plus(sh, -0.01))}),
        _run("worse", "a", 14, {"0": (hi, sh), "2": (hi, sh)}),
    ]
    assert choose_small_budget(inc + worse, "inc")["chosen"] == "inc"
    assert choose_small_budget(good, "inc")["chosen"] == "inc"  # no incumbent figures: kept
