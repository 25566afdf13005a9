"""Successive-halving rungs: non-dominated sorting, crowding, promotion, references."""

from __future__ import annotations

import math
import random

import pytest

from gcsearch.search.fidelity import (
    RungTable,
    crowding_distances,
    dominates,
    nondominated_ranks,
    nsga_order,
    rung_vector,
)
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


@pytest.mark.parametrize(("epochs", "eta", "first", "rungs"),
                         [(9, 3, 1, (1, 3)), (4, 2, 1, (1, 2)), (8, 2, 2, (2, 4)), (1, 3, 1, ())])
def test_rung_epochs(epochs: int, eta: int, first: int, rungs: tuple[int, ...]) -> None:
    assert Fidelity(True, eta, first).rungs(epochs) == rungs
    assert Fidelity(False, eta, first).rungs(epochs) == ()


def test_dominated_trial_stops_and_front_member_goes_on() -> None:
    table = RungTable((1,), eta=2)
    assert not table.report("a", 1, (-90.0, 10.0))
    assert not table.report("b", 1, (-95.0, 5.0))  # dominates a
    assert table.report("c", 1, (-50.0, 20.0))     # dominated by both: stop
    assert not table.report("d", 2, (-1.0, 99.0))  # not a rung epoch: never stops


def test_top_fraction_is_kept_as_rung_fills() -> None:
    table = RungTable((1,), eta=3)
    stops = [table.report(f"t{i}", 1, (-float(i), 1.0)) for i in range(9)]
    # each newcomer is the most accurate so far at equal cost: always on the front, kept
    assert stops == [False] * 9
    worse = [table.report(f"w{i}", 1, (0.0, 2.0)) for i in range(3)]
    assert all(worse)


def test_references_anchor_but_take_no_slot_and_never_stop() -> None:
    table = RungTable((1,), eta=2)
    assert not table.report("ref-good", 1, (-99.0, 1.0), protected=True)
    assert not table.report("ref-bad", 1, (0.0, 50.0), protected=True)  # protected: goes on
    # a candidate the reference dominates is behind it, but alone among searched ones: kept
    assert not table.report("x", 1, (-50.0, 10.0))
    assert table.report("y", 1, (-40.0, 20.0))  # dominated by x and the reference
    assert table.decisions[-1]["of"] == 2


def test_retried_trial_replaces_its_entry() -> None:
    table = RungTable((1,), eta=2)
    table.report("a", 1, (-10.0, 1.0))
    table.report("a", 1, (-10.0, 1.0))
    assert len(table.entries[1]) == 1


def test_nan_report_is_ignored() -> None:
    table = RungTable((1,), eta=2)
    assert not table.report("n", 1, (math.nan, 1.0))
    assert table.entries == {}
