"""Successive-halving ranking: non-dominated sorting, crowding, promotion, references."""

from __future__ import annotations

import math
import random

import pytest

from gcsearch.pareto import crowding_distances, dominates, nondominated_ranks, nsga_order
from gcsearch.search.rungs import RungPolicy, rank_rung, rung_vector
from gcsearch.search.space import Fidelity


def test_dominance_and_ranks_by_brute_force() -> None:
    rng = random.Random(0)
    pts = [(rng.randint(0, 5), rng.randint(0, 5)) for _ in range(30)]
    ranks = nondominated_ranks(pts)
    for i, p in enumerate(pts):
        # rank 0 <=> nobody dominates; rank k <=> someone of rank k-1 dominates it
        beaters = [ranks[j] for j, q in enumerate(pts) if dominates(q, p)]
        assert ranks[i] == (max(beaters) + 1 if beaters else 0)
    assert not dominates((1, 1), (1, 1))


def test_crowding_boundaries_infinite_and_order_prefers_front() -> None:
    pts = [(0.0, 4.0), (1.0, 2.0), (2.0, 1.5), (4.0, 0.0), (3.0, 3.0)]
    dist = crowding_distances(pts[:4])
    assert math.isinf(dist[0]) and math.isinf(dist[3])
    assert 0 < dist[1] < math.inf and 0 < dist[2] < math.inf
    order = nsga_order(pts)
    assert order[-1] == 4  # the only dominated point comes last


def test_rung_vector_turns_max_into_min() -> None:
    vec = rung_vector(["top1:max", "macs:min"], {"top1": 80.0, "macs": 5.0})
    assert vec == (-80.0, 5.0)


@pytest.mark.parametrize(
    ("epochs", "eta", "first", "rungs"),
    [(9, 3, 1, (1, 3)), (4, 2, 1, (1, 2)), (8, 2, 2, (2, 4)), (1, 3, 1, ())],
)
def test_rung_epochs(epochs: int, eta: int, first: int, rungs: tuple[int, ...]) -> None:
    assert Fidelity(True, eta, first).rungs(epochs) == rungs
    assert Fidelity(False, eta, first).rungs(epochs) == ()


def test_dominated_candidate_stops_and_front_members_go_on() -> None:
    ranked, keep = rank_rung(
        {"a": (-90.0, 10.0), "b": (-95.0, 5.0), "c": (-50.0, 20.0), "d": (-80.0, 1.0)}, {}, eta=2
    )
    assert keep == 2 and set(ranked[:2]) == {"b", "d"}  # the front
    assert ranked[-1] == "c"  # dominated by everyone


def test_ranking_does_not_depend_on_arrival_order() -> None:
    rng = random.Random(0)
    members = {
        f"c{i}": (-rng.choice([60.0, 70.0, 80.0]), rng.choice([1.0, 2.0])) for i in range(12)
    }  # many ties
    first = rank_rung(members, {}, eta=3)
    for _ in range(5):
        keys = list(members)
        rng.shuffle(keys)
        assert rank_rung({k: members[k] for k in keys}, {}, eta=3) == first


def test_references_anchor_but_take_no_slot() -> None:
    anchors = {"ref-good": (-99.0, 1.0), "ref-bad": (0.0, 50.0)}
    ranked, keep = rank_rung({"x": (-50.0, 10.0), "y": (-40.0, 20.0)}, anchors, eta=2)
    assert ranked == ["x", "y"] and keep == 1  # the anchors shape the fronts, take no slot


def test_non_finite_member_is_left_out() -> None:
    ranked, keep = rank_rung({"n": (math.nan, 1.0), "a": (-1.0, 1.0)}, {}, eta=2)
    assert ranked == ["a"] and keep == 1


def _seeds(top1: float, macs: int, epoch: int = 2) -> list[dict[str, object]]:
    """Two seeds' results that validated at ``epoch`` with a mean top-1 of ``top1``."""
    return [
        {"history": [{"epoch": epoch, "val_top1": top1 + d}], "params": 10, "macs": macs}
        for d in (-1.0, 1.0)
    ]


def test_policy_decides_the_lowest_rung_once_every_candidate_reached_it() -> None:
    policy = RungPolicy((2, 6), eta=3, objectives=("top1:max", "macs:min"))
    assert policy.first("search") == 2 and policy.first("reference") is None
    assert policy.due([(2, True), (2, True), (6, False)]) == 2
    assert policy.due([(2, True), (2, False)]) is None  # a candidate still trains to it
    assert policy.due([(6, True), (None, False)]) == 6
    assert not RungPolicy((), eta=3, objectives=("top1:max",))


def test_policy_continues_the_top_third_to_the_next_rung_and_stops_the_rest() -> None:
    policy = RungPolicy((2, 6), eta=3, objectives=("top1:max", "macs:min"))
    members = {"a": _seeds(90.0, 100), "b": _seeds(60.0, 100), "c": _seeds(50.0, 100)}
    members["none"] = [{"history": [], "params": 10, "macs": 100}]  # no figures at the rung
    decided = policy.decide(2, members, {"ref": _seeds(95.0, 50)})
    assert [cid for cid, d in decided.items() if not d.stop] == ["a"]  # max(1, 3 // 3)
    assert decided["a"].next_at == 6 and decided["a"].record["top1_mean"] == 90.0
    assert decided["a"].record["top1_seeds"] == [89.0, 91.0]
    assert decided["none"].stop and decided["none"].record["anchors"] == ["ref"]
    assert decided["c"].reason == "stopped at rung epoch 2 (candidate ranked 3 of 3, kept 1)"
    last = policy.decide(6, {"a": _seeds(90.0, 100, epoch=6)}, {})
    assert not last["a"].stop and last["a"].next_at is None  # on to the full budget
