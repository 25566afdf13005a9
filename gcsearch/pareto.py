"""The Pareto math, in one place below both the search and the report: dominance, fronts,
NSGA-II's non-dominated sorting and crowding, and the exact hypervolume (2, 3 or more
objectives).

Written here because Optuna's hypervolume helper is private and Ray has no Pareto API. Points
are rows; ``pareto_front`` and ``hypervolume`` take ``senses`` (``max`` or ``min`` per column)
and work in minimisation form internally; the sorting helpers take minimisation vectors. The
hypervolume slices along the last objective down to an exact 2-D sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


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


def _as_min(points: Any, senses: Sequence[str]) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != len(senses):
        raise ValueError(f"points must be (n, {len(senses)}), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points must be finite")
    signs = np.array([_sign(s) for s in senses])
    return pts * signs


def _sign(sense: str) -> float:
    if sense in ("max", "maximize"):
        return -1.0
    if sense in ("min", "minimize"):
        return 1.0
    raise ValueError(f"sense {sense!r} (allowed: max, min)")


def pareto_front(points: Any, senses: Sequence[str]) -> np.ndarray:
    """Indices (ascending) of the points no other point dominates.

    ``q`` dominates ``p`` when it is at least as good in every objective and better in one;
    identical points do not dominate each other, so duplicates are all on the front.
    """
    pts = _as_min(points, senses)
    if len(pts) == 0:
        return np.zeros(0, dtype=int)
    le = (pts[:, None, :] <= pts[None, :, :]).all(axis=2)  # le[q, p]: q <= p everywhere
    lt = (pts[:, None, :] < pts[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    return np.flatnonzero(~dominated)


def _hv_min(pts: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by ``pts`` inside the box below ``ref`` (minimisation, pts < ref)."""
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 1:
        return float(ref[0] - pts[:, 0].min())
    if pts.shape[1] == 2:
        order = np.lexsort((pts[:, 1], pts[:, 0]))
        area, best_y = 0.0, ref[1]
        xs = np.append(pts[order, 0], ref[0])
        for i, idx in enumerate(order):
            best_y = min(best_y, pts[idx, 1])
            area += (xs[i + 1] - xs[i]) * (ref[1] - best_y)
        return float(area)
    # slice along the last objective: between consecutive levels, the dominated region is the
    # (k-1)-dimensional hypervolume of every point at or below that level
    order = np.argsort(pts[:, -1], kind="stable")
    levels = np.append(pts[order, -1], ref[-1])
    volume = 0.0
    for i in range(len(order)):
        depth = levels[i + 1] - levels[i]
        if depth > 0:
            volume += depth * _hv_min(pts[order[: i + 1], :-1], ref[:-1])
    return float(volume)


def hypervolume(points: Any, senses: Sequence[str], reference: Sequence[float]) -> float:
    """Hypervolume of ``points`` w.r.t. ``reference`` (exact; slicing for 3 objectives).

    Points that do not strictly beat the reference in every objective add nothing.
    """
    pts = _as_min(points, senses)
    ref = _as_min([list(reference)], senses)[0]
    pts = pts[(pts < ref).all(axis=1)] if len(pts) else pts.reshape(0, len(senses))
    if len(pts):
        pts = pts[pareto_front(pts, ["min"] * len(senses))]
    return _hv_min(pts, ref)


def normalised_hypervolume(
    points: Any, senses: Sequence[str], reference: Sequence[float], ideal: Sequence[float]
) -> float:
    """Hypervolume as a fraction of the box from ``ideal`` to ``reference`` (1 = a point at
    the ideal corner). Each objective is scaled to [0, 1] first, so a fraction compares
    across studies that share the box."""
    pts = np.asarray(points, dtype=float).reshape(-1, len(senses))
    ref, ide = np.asarray(reference, dtype=float), np.asarray(ideal, dtype=float)
    if len(pts) == 0:
        return 0.0
    scaled = (pts - ide) / (ref - ide)  # 0 at the ideal, 1 at the reference, any sense
    return hypervolume(scaled, ["min"] * len(senses), [1.0] * len(senses))


__all__ = [
    "crowding_distances",
    "dominates",
    "hypervolume",
    "nondominated_ranks",
    "normalised_hypervolume",
    "nsga_order",
    "pareto_front",
]
