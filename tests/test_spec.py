"""The candidate spec: validation, canonical ids, JSON round trip, the size of the full space."""

from __future__ import annotations

import json

import pytest

from gcsearch.spec import (
    PRESETS,
    BlockSpec,
    Candidate,
    Placement,
    SpecError,
    block_specs,
    enumerate_candidates,
    stage_sets,
)


def test_full_space_has_unique_round_tripping_candidates() -> None:
    cands = list(enumerate_candidates())
    assert len(cands) == 3 * 9 * 3 * 3 * 7 == 1701  # three positions (GCNet's two + NL's)
    assert len(list(enumerate_candidates(positions=("after_1x1", "after_add")))) == 1134
    ids = [c.id for c in cands]
    assert len(set(ids)) == len(ids)
    for c in cands:
        assert Candidate.parse(c.id) == c
        assert Candidate.from_json(c.to_json()) == c


def test_nine_transforms_and_seven_stage_sets() -> None:
    transforms = {b.transform_id for b in block_specs(poolings=("att",), fusions=("add",))}
    assert transforms == {"1x1"} | {f"r{r}{n}" for r in (4, 8, 16, 32) for n in ("", "ln")}
    assert len(stage_sets()) == 7


def test_gc_id_matches_the_documented_form() -> None:
    c = Candidate(block=BlockSpec("att", "bottleneck", 16, "ln", "add"))
    assert c.id == "att-r16ln-add@after_1x1:c3c4c5"
    assert Candidate.parse("avg-1x1-mul@after_add:c4:last").placement.density == "last"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name: str) -> None:
    c = Candidate(preset=name, placement=Placement("after_add", ("c4",), "last"))
    assert Candidate.parse(c.id) == c
    assert Candidate.from_dict(json.loads(c.to_json())) == c


def test_baseline() -> None:
    none = Candidate.none()
    assert none.is_baseline and none.id == "none"
    assert Candidate.parse("none") == none == Candidate.from_json(none.to_json())


@pytest.mark.parametrize(
    ("make", "field", "allowed"),
    [
        (lambda: BlockSpec("att", "1x1", 16, "none", "add"), "ratio", "bottleneck"),
        (lambda: BlockSpec("att", "1x1", None, "ln", "add"), "norm", "bottleneck"),
        (lambda: BlockSpec("max", "1x1", None, "none", "add"), "pooling", "avg, att, avgmax"),
        (lambda: BlockSpec("att", "bottleneck", 12, "ln", "add"), "ratio", "4, 8, 16, 32"),
        (lambda: BlockSpec("att", "bottleneck", 16, "ln", "concat"), "fusion", "add, mul, both"),
        (lambda: Placement("after_add", ()), "stages", "c3"),
        (lambda: Placement("after_conv2", ("c4",)), "position", "after_1x1, after_add"),
        (lambda: Placement("after_add", ("c6",)), "stages", "c2, c3, c4, c5"),
        (lambda: Placement("after_add", ("c4",), "first"), "density", "all, last"),
        (lambda: Candidate(preset="nl-softmax"), "preset", "nl-embedded"),
        (lambda: Candidate.parse("att-r16ln-add@after_1x1:c3x"), "stages", "c3c4c5"),
        (
            lambda: Candidate.from_json('{"block": null, "preset": "gc", "colour": 1}'),
            "candidate",
            "placement",
        ),
    ],
)
def test_invalid_specs_name_field_and_allowed_values(make, field: str, allowed: str) -> None:
    with pytest.raises(SpecError) as info:
        make()
    message = str(info.value)
    assert message.startswith(field) and allowed in message and "\n" not in message


def test_ratio_larger_than_channels_is_rejected() -> None:
    spec = BlockSpec("att", "bottleneck", 32, "ln", "add")
    with pytest.raises(SpecError, match="ratio: 32 is larger than the 16 channels"):
        spec.hidden(16)
    assert spec.hidden(64) == 8  # min_hidden binds at proxy widths
    assert spec.hidden(2048) == 64  # never at ResNet-50 widths


def test_id_in_json_must_match_fields() -> None:
    data = Candidate.parse("gc@after_add:c4").to_dict()
    data["id"] = "se@after_add:c4"
    with pytest.raises(SpecError, match="does not match"):
        Candidate.from_dict(data)


@pytest.mark.parametrize(
    "text", ["nl-embedded@after_block:c4:penultimate", "att-r16ln-add@after_block:c3c4:last"]
)
def test_after_block_and_penultimate_are_in_the_id_grammar(text: str) -> None:
    cand = Candidate.parse(text)
    assert cand.id == text and Candidate.from_json(cand.to_json()) == cand


def test_axes_registry_backs_the_old_tuples() -> None:
    from gcsearch.spec import AXES, POOLINGS, POSITIONS, SEARCH_STAGES

    assert AXES["pooling"].values == POOLINGS and AXES["position"].values == POSITIONS
    assert SEARCH_STAGES == AXES["stages"].default == ("c3", "c4", "c5")
    defaults = {name: axis.default for name, axis in AXES.items()}
    block = BlockSpec(*(defaults[f] for f in ("pooling", "transform", "ratio", "norm", "fusion")))
    assert block.id == "att-r16ln-add"  # the axis defaults are the GC block
    assert Placement(defaults["position"], defaults["stages"], defaults["density"]) == Placement()


def test_objective_parses_once_with_allowed_values() -> None:
    from gcsearch.spec import Objective

    assert Objective.parse("top1:max") == Objective("top1", "max") == Objective.parse("top1")
    assert str(Objective.parse("macs")) == "macs:min"
    for bad, needle in [("top1:min", "top1:max"), ("speed:max", "top1:max, loss:min")]:
        with pytest.raises(SpecError, match=needle) as info:
            Objective.parse(bad)
        assert str(info.value).startswith("objective")


def test_preset_registry_records_and_paper_placements() -> None:
    from gcsearch.spec import paper_placement

    assert PRESETS["gc"].equivalent_spec == BlockSpec.parse("att-r16ln-add")
    assert PRESETS["snl"].equivalent_spec == BlockSpec.parse("att-1x1-add")
    for name in ("se", "cbam-channel", "nl-embedded", "cbam"):  # init (or module) differs
        assert PRESETS[name].equivalent_spec is None
    assert paper_placement("se").id == "after_1x1:c2c3c4c5"
    assert paper_placement("cbam", ("c3", "c4", "c5")).id == "after_1x1:c3c4c5"
    assert paper_placement("nl-embedded").id == "after_block:c4:penultimate"
    with pytest.raises(SpecError, match="stages"):
        paper_placement("nl-dot", ("c2", "c3"))
    assert {"pool": "input", "scale": True}.items() <= PRESETS["nl-embedded"].kwargs.items()
    assert all(p.paper and p.url and p.follows and p.init for p in PRESETS.values())
