"""The default strategy's inputs: exact costs of every network, and the hypervolume box."""

from __future__ import annotations

import math

import pytest
from _search_helpers import ROOT

from gcsearch.cost import count_cost
from gcsearch.search.sampling import network_key
from gcsearch.search.space import load_space, parse_space
from gcsearch.search.strategy import hv_box, normalise, searched_networks, space_costs
from gcsearch.search.trial import resolve_budget

MIXED = """
name = "mixed"
[task]
name = "synthetic"
backbone = "resnet8"
[axes]
pooling = ["att", "avgmax"]
transform = ["1x1", "bottleneck"]
ratio = [4]
norm = ["ln", "none"]
fusion = ["add", "both"]
position = ["after_1x1", "after_add"]
stages = ["c3", "c4c5"]
density = ["all", "last"]
[references]
include = ["gc", "nl-embedded"]
"""


@pytest.mark.parametrize("text", ["quick", MIXED])
def test_costs_by_blocks_equal_whole_model_counts(text: str) -> None:
    space = (
        load_space(ROOT / "spaces" / "quick.toml")
        if text == "quick"
        else parse_space(text, "mixed.toml")
    )
    _, shape, classes = resolve_budget(space)
    fast = space_costs(space, shape, classes)
    cands = [*space.references(), *space.candidates()]
    if text != "quick":
        cands = cands[::7] + space.references()  # a spread of them: whole counts are slow
    for cand in cands:
        whole = count_cost(
            cand, space.backbone, shape, num_classes=classes, min_hidden=space.min_hidden
        ).to_dict()
        assert fast[network_key(cand, space.backbone, space.min_hidden)] == whole, cand.id


def test_box_spans_chance_to_perfect_and_the_space_costs() -> None:
    costs = {
        "none": {"macs": 100, "block_macs": 0},
        "a": {"macs": 120, "block_macs": 20},
        "b": {"macs": 110, "block_macs": 10},
    }
    ref, ideal = hv_box(["top1:max", "macs:min", "block_macs:min", "loss:min"], costs, 4)
    assert ref == {"top1": 25.0, "macs": 122.0, "block_macs": 22.0, "loss": math.log(4)}
    assert ideal == {"top1": 100.0, "macs": 100.0, "block_macs": 0.0, "loss": 0.0}
    objectives = ["top1:max", "macs:min"]
    assert normalise([100.0, 100.0], objectives, ref, ideal) == [0.0, 0.0]
    assert normalise([25.0, 122.0], objectives, ref, ideal) == [1.0, 1.0]


def test_reference_rows_never_stretch_the_box() -> None:
    """One costly reference row (an NL block) left the block-MACs axis five times longer and
    every searched network's share of it smaller; the box spans the searched networks and the
    plain backbone only."""
    costs = {
        "none": {"block_macs": 0},
        "a": {"block_macs": 20},
        "b": {"block_macs": 10},
        "nl": {"block_macs": 500},
    }
    ref, ideal = hv_box(["top1:max", "block_macs:min"], costs, 4, searched=["a", "b"])
    assert ref["block_macs"] == 22.0 and ideal["block_macs"] == 0.0
    assert hv_box(["block_macs:min"], costs, 4)[0]["block_macs"] == 550.0  # every row
    boxes = []
    for refs in ('["se"]', '["se", "nl-embedded"]'):
        text = MIXED.split("[references]")[0] + f"[references]\ninclude = {refs}\n"
        space = parse_space(text, "refs.toml")
        _, shape, classes = resolve_budget(space)
        costs = space_costs(space, shape, classes)
        boxes.append(hv_box(space.objectives, costs, classes, searched_networks(space)))
    assert boxes[0] == boxes[1]  # the NL row was counted, and moved nothing
