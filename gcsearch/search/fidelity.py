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

from gcsearch.pareto import nsga_order
from gcsearch.search.space import objective

Vector = tuple[float, ...]


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


__all__ = ["rank_rung", "rung_vector"]
