"""bench proxy: mode detection, MDD per pair, split-seed τ on hand-made results; a smoke run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gcsearch.bench.proxy import (
    chance_line,
    modes,
    parse_budget,
    render,
    split_tau,
    summarise,
)
from gcsearch.cli import main
from gcsearch.errors import UserError
from gcsearch.report.stats import min_detectable_difference


def test_modes_split_solved_from_unsolved_seeds() -> None:
    m = modes([92.1, 50.3, 93.0, 49.8, 91.7])
    assert m is not None and m["low"]["n"] == 2 and m["high"]["n"] == 3
    assert m["low"]["mean"] == pytest.approx(50.05)
    assert modes([90.1, 90.9, 89.7, 91.2, 90.4]) is None  # one mode
    assert modes([60.0, 70.0, 80.0, 90.0]) is None  # evenly spread: no gap stands out
    assert modes([90.0]) is None


def _results(values: dict[str, list[float]]) -> list[dict[str, object]]:
    return [
        {
            "candidate_id": c,
            "seed": s,
            "top1": v,
            "status": "complete",
            "wall_s": 2.0,
            "params": 100 + len(c.rstrip("2")),
        }  # "b2" is "b" under another name
        for c, vs in values.items()
        for s, v in enumerate(vs)
    ]


def test_summary_pairs_share_seeds() -> None:
    """b = a + 1 + wobble: the pair's sd is the wobble's, not a's large seed spread."""
    a = [60.0, 80.0, 70.0, 90.0]
    b = [x + 1 + w for x, w in zip(a, [0.5, -0.5, 0.5, -0.5], strict=True)]
    s = summarise(_results({"a": a, "b": b}))
    [pair] = s["pairs"]
    assert pair["sd_diff"] == pytest.approx(math.sqrt(1 / 3))
    assert pair["mdd_n3"] == pytest.approx(min_detectable_difference(math.sqrt(1 / 3), 3))
    assert s["candidates"]["a"]["std"] > 10  # each alone is noisy ...
    assert s["candidates"]["a"]["mdd_n3_median"] < 3  # ... the paired difference is not
    assert s["candidates"]["b"]["seconds_per_trial"] == 2.0


def test_seeds_at_chance_are_counted_even_when_modes_miss_them() -> None:
    """SE on synthetic-graded (measured): two seeds never left chance, four spread over 64-77;
    the gap (14.7) is under 3x the upper group's std, so ``modes`` calls it one mode, but the
    at-chance count says what happened."""
    se = [64.62, 68.14, 49.9, 70.12, 77.06, 49.6]
    line = chance_line(2, 5000)
    assert line == pytest.approx(50 + 300 * math.sqrt(0.25 / 5000))  # 52.12
    assert chance_line(10, 1000) == pytest.approx(10 + 300 * math.sqrt(0.09 / 1000))
    s = summarise(_results({"se": se, "gc": [93.0, 94.0, 93.5, 93.1, 92.5, 94.3]}), line)
    assert modes(se) is None and s["candidates"]["se"]["at_chance"] == 2
    assert s["candidates"]["gc"]["at_chance"] == 0
    lines = render(s)
    assert any(row.startswith("se ") and "2 at chance" in row for row in lines)
    assert summarise(_results({"se": se}))["candidates"]["se"]["at_chance"] is None


def test_recorded_command_leaves_out_where_output_went() -> None:
    from gcsearch.bench.proxy import _command

    argv = ["bench", "proxy", "--task", "digits", "--out", "/tmp/x.json", "--resume", "--quiet"]
    assert _command([*argv, "--out=/tmp/y.json", "--seeds", "0-2"]) == (
        "gcsearch bench proxy --task digits --seeds 0-2"
    )


def test_split_tau_ranks_halves() -> None:
    cands = summarise(
        _results({"a": [90, 91, 90, 91], "b": [80, 81, 80, 81], "c": [70, 71, 72, 73]})
    )["candidates"]
    res = split_tau(cands, [0, 1], [2, 3])
    assert res["kendall_tau"] == pytest.approx(1.0) and res["n_candidates"] == 3
    swapped = summarise(
        _results({"a": [90, 91, 70, 71], "b": [80, 81, 80, 81], "c": [70, 71, 90, 91]})
    )["candidates"]
    assert split_tau(swapped, [0, 1], [2, 3])["kendall_tau"] == pytest.approx(-1.0)
    twins = summarise(
        _results(
            {
                "a": [90, 91, 90, 91],
                "b": [80, 81, 80, 81],
                "b2": [80, 81, 80, 81],
                "c": [70, 71, 72, 73],
            }
        )
    )["candidates"]
    res = split_tau(twins, [0, 1], [2, 3])
    assert res["n_candidates"] == 3 and res["left_out_as_duplicates"] == ["b2"]
    # equal results but another cost: two networks that both failed the same way, kept
    twins["b2"]["params"] = 7
    assert split_tau(twins, [0, 1], [2, 3])["n_candidates"] == 4


def test_budget_overrides_are_typed_and_checked() -> None:
    assert parse_budget("train_images=4000,lr=0.1,augment=flip") == {
        "train_images": 4000,
        "lr": 0.1,
        "augment": "flip",
    }
    with pytest.raises(UserError, match="key=value"):
        parse_budget("images=3")


def test_smoke_run_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"
    code = main(
        [
            "bench",
            "proxy",
            "--smoke",
            "--candidates",
            "none,gc,se",
            "--split-tau",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "MDD n=3" in text and "split-seed ranking" in text
    data = json.loads(out.read_text())
    assert set(data["candidates"]) == {"none", "gc@after_1x1:c3c4c5", "se@after_1x1:c3c4c5"}
    assert data["seeds"] == [0, 1] and data["smoke"] and data["alpha"] == 0.05
    log = out.with_suffix(".trials.jsonl")
    assert len(log.read_text().splitlines()) == 6  # every trial logged as it finished
    args = ["bench", "proxy", "--smoke", "--candidates", "none,gc,se", "--out", str(out)]
    assert main([*args, "--resume"]) == 0  # all six logged: nothing is trained again
    assert len(log.read_text().splitlines()) == 6
    assert json.loads(out.read_text())["candidates"]["none"]["n"] == 2
    assert main(["bench", "proxy", "--smoke", "--record", "--out", str(out)]) == 2


def test_space_candidates_on_another_task(tmp_path: Path) -> None:
    """--space with --task: the space's candidates and budget, trained on --task."""
    out = tmp_path / "p.json"
    args = ["bench", "proxy", "--space", "quick", "--smoke", "--quiet", "--out", str(out)]
    assert main([*args, "--task", "synthetic-distinct"]) == 0
    data = json.loads(out.read_text())
    assert data["task"] == "synthetic-distinct" and data["space"] == "quick"
    assert "none" in data["candidates"]
    out.unlink()
    out.with_suffix(".trials.jsonl").unlink()
    assert main(args) == 0
    assert json.loads(out.read_text())["task"] == "synthetic"  # the space's own task
