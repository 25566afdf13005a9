"""Multi-objective successive halving: rungs by epochs, promotion by non-dominated sorting.

Optuna's pruners are single-objective and Ray's ASHA takes one metric, so the rule is written
here. Rungs sit at ``min_epochs * eta**k`` epochs below the full budget (Successive Halving,
Jamieson & Talwalkar 2016, https://arxiv.org/abs/1502.07943), applied asynchronously as in ASHA
(Li et al. 2020, https://arxiv.org/abs/1810.05934): a trial reaching a rung is compared with
every trial that reached it before, and goes on only if it ranks in the top ``max(1, n // eta)``
of the ``n`` searched entries, ranked as NSGA-II ranks a population (Deb et al. 2002):
non-dominated front first, then crowding distance, then accuracy. Costs are known before
training, so the rung vector is the objective vector with the rung's validation accuracy in it.

Reference rows (the baseline and presets) report to the rungs and shape the fronts (a
candidate a preset dominates ranks behind it), but take no promotion slot and are never
stopped. This module is pure Python; the executor hosts one ``RungTable`` in a Ray actor that
every trial's per-epoch callback consults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Vector = tuple[float, ...]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True))


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
        name, _, sense = obj.partition(":")
        value = float(metrics[name])
        out.append(-value if sense == "max" else value)
    return tuple(out)


@dataclass
class RungTable:
    """Asynchronous successive-halving decisions over objective vectors.

    ``report`` is called after every epoch; it returns True when the trial must stop here.
    Entries are keyed by trial key (candidate id and seed), so a retried trial replaces its
    earlier report instead of counting twice.
    """

    rungs: tuple[int, ...]
    eta: int
    entries: dict[int, dict[str, Vector]] = field(default_factory=dict)
    anchors: set[str] = field(default_factory=set)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def report(self, key: str, epoch: int, vector: Sequence[float],
               protected: bool = False) -> bool:
        """Record ``vector`` at ``epoch``; True means stop (not in the rung's top 1/eta)."""
        if epoch not in self.rungs:
            return False
        vec = tuple(float(v) for v in vector)
        if not all(math.isfinite(v) for v in vec):
            return False  # a NaN trial fails on its own; it must not poison the rung
        rung = self.entries.setdefault(epoch, {})
        rung[key] = vec
        if protected:
            self.anchors.add(key)
        keys = list(rung)
        # references shape the fronts but take no promotion slot
        ranked = [keys[i] for i in nsga_order([rung[k] for k in keys])
                  if keys[i] not in self.anchors]
        keep = max(1, len(ranked) // self.eta)
        position = ranked.index(key) if key in ranked else 0
        stop = position >= keep and not protected
        self.decisions.append({"key": key, "epoch": epoch, "position": position + 1,
                               "of": len(ranked), "keep": keep, "stop": stop})
        return stop

    def rung_index(self, epochs: int) -> int:
        """How many rungs a trial that trained ``epochs`` epochs has passed."""
        return sum(1 for r in self.rungs if r <= epochs)


__all__ = ["RungTable", "crowding_distances", "dominates", "nondominated_ranks", "nsga_order",
           "rung_vector"]
