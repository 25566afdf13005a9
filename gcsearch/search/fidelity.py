"""Multi-objective successive halving over candidates: promotion by non-dominated sorting.

Optuna's pruners are single-objective and Ray's ASHA takes one metric, so the rule is written
here. Rungs sit at ``min_epochs * eta**k`` epochs below the full budget (Successive Halving,
Jamieson & Talwalkar 2016, https://arxiv.org/abs/1502.07943), decided synchronously: the
driver ranks every candidate of the search at a rung once all have reported there, on the
mean over each candidate's seeds, as NSGA-II ranks a population (Deb et al. 2002):
non-dominated front first, then crowding distance, then accuracy, then candidate id; the top
``max(1, n // eta)`` go on. Costs are known before training, so the rung vector is the
objective vector with the rung's mean validation accuracy in it. Asynchronous promotion (ASHA)
was dropped: its outcome depended on the order trials finished in.

Reference rows (the baseline and presets) shape the fronts (a candidate a preset dominates
ranks behind it) but take no promotion slot and are never stopped. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gcsearch.search.space import objective

Vector = tuple[float, ...]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def nondominated_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Front index of every point (0 = non-dominated), by repeated peeling (minimisation)."""
    n = len(points)
    beaten_by = [[j for j in range(n) if dominates(points[j], points[i])] for i in range(n)]
    ranks = [-1] * n
    level, left = 0, set(range(n))
    while left:
        front = [i for i in left if not any(j in left for j in beaten_by[i])]
        for i in front:
            ranks[i] = level
        left -= set(front)
        level += 1
    return ranks


def crowding_distances(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II crowding distance of each point within ``points`` (boundaries are infinite)."""
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    dist = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][m])
        lo, hi = points[order[0]][m], points[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            dist[i] += (points[b][m] - points[a][m]) / (hi - lo)
    return dist


def nsga_order(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices best first: front, then crowding distance (desc), then the first objective."""
    ranks = nondominated_ranks(points)
    crowd = [0.0] * len(points)
    for level in set(ranks):
        members = [i for i, r in enumerate(ranks) if r == level]
        for i, d in zip(members, crowding_distances([points[i] for i in members]), strict=True):
            crowd[i] = d
    return sorted(range(len(points)), key=lambda i: (ranks[i], -crowd[i], points[i][0], i))


def rung_vector(objectives: Sequence[str], metrics: Mapping[str, float]) -> Vector:
    """The objective vector as minimisation (``top1:max`` enters as ``-top1``)."""
    out = []
    for obj in objectives:
        name, sense = objective(obj)
        value = float(metrics[name])
        out.append(-value if sense == "max" else value)
    return tuple(out)


def rank_rung(
    members: Mapping[str, Sequence[float]], anchors: Mapping[str, Sequence[float]], eta: int
) -> tuple[list[str], int]:
    """Candidate ids best first at one rung, and how many go on (``max(1, n // eta)``).

    Deterministic: ties fall to the id, so the outcome depends only on the figures.
    """
    vec = {
        k: tuple(float(x) for x in v)
        for k, v in members.items()
        if all(math.isfinite(float(x)) for x in v)
    }
    ids = sorted(vec) + sorted(a for a in anchors if a not in vec)
    points = [vec[i] if i in vec else tuple(anchors[i]) for i in ids]
    ranked = [ids[i] for i in nsga_order(points) if ids[i] in vec]
    return ranked, max(1, len(ranked) // eta)


__all__ = [
    "crowding_distances",
    "dominates",
    "nondominated_ranks",
    "nsga_order",
    "rank_rung",
    "rung_vector",
]
