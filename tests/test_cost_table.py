"""The fast ``flops`` table (one backbone trace, blocks traced alone at their sites) equals the
full per-model fvcore count, row by row, and ``gcsearch bench flops`` prints its figures."""

from __future__ import annotations

import pytest
import torch

from gcsearch.cli import main
from gcsearch.cost import count_cost, flops_candidates, table_costs
from gcsearch.spec import Candidate, Placement

torch.set_num_threads(1)


def _check(
    candidates: list[Candidate], backbone: str, shape: tuple[int, int, int], **kw: object
) -> None:
    fast = table_costs(candidates, backbone, shape, **kw)
    for cand, cost in zip(candidates, fast, strict=True):
        assert cost == count_cost(cand, backbone, shape, **kw), cand.id


def test_every_preset_on_a_cifar_resnet_matches_the_full_count() -> None:
    cands = [Candidate.none(), *flops_candidates([], None, "resnet20")]
    _check(cands, "resnet20", (3, 32, 32), num_classes=10)


def test_searched_blocks_and_placements_match_on_a_cifar_resnet() -> None:
    ids = [
        "att-r16ln-add@after_add:c4:last",
        "avg-1x1-mul@after_1x1:c3c5",
        "avgmax-r4-both@after_add:c3c4c5",
        "att-r32ln-add@after_1x1:c5",
    ]
    _check([Candidate.parse(i) for i in ids], "resnet20", (3, 32, 32), num_classes=10, min_hidden=2)


@pytest.mark.parametrize(
    ("layout", "picks"), [("pytorch", ("gc", "nl-embedded", "cbam")), ("caffe", ("gc",))]
)
def test_presets_on_resnet50_match_the_full_count(layout: str, picks: tuple[str, ...]) -> None:
    cands = [c for c in flops_candidates([], None, "resnet50") if c.preset in picks]
    assert len(cands) == len(picks)
    if layout == "pytorch":  # every stage, density all; and one block after the add
        cands += [
            Candidate.parse("avg-r16-mul@after_1x1:c2c3c4c5"),
            Candidate.parse("att-1x1-add@after_add:c3:last"),
        ]
    _check(cands, "resnet50", (3, 64, 64), num_classes=1000, layout=layout)


def test_a_placement_flag_applies_to_the_fast_table_too() -> None:
    cands = flops_candidates(["gc", "se"], Placement.parse("after_add:c5:last"), "resnet20")
    _check(cands, "resnet20", (3, 32, 32), num_classes=10)


def test_bench_flops_prints_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "flops", "--backbone", "resnet20", "--smoke"]) == 0
    out = capsys.readouterr().out
    assert "one baseline trace" in out and "baseline traces (target <= 2)" in out
