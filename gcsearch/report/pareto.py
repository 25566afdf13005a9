"""The Pareto front and the exact hypervolume of a point set (2, 3 or more objectives).

Written here because Optuna's hypervolume helper is private and Ray has no Pareto API. Points
are rows, ``senses`` say ``max`` or ``min`` per column; both functions work in minimisation
form internally. The hypervolume slices along the last objective down to an exact 2-D sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gcsearch.report.frame import Objective


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


def ideal_point(objectives: Sequence[Objective], frame: pd.DataFrame) -> dict[str, float] | None:
    """The ideal corner of the box the search recorded (``hv_ideal``), or None."""
    fixed = frame.attrs.get("study", {}).get("hv_ideal") or {}
    if not all(o.name in fixed for o in objectives):
        return None
    return {o.name: float(fixed[o.name]) for o in objectives}


def reference_point(objectives: Sequence[Objective], frame: pd.DataFrame) -> dict[str, float]:
    """The hypervolume reference point the search fixed and recorded before training
    (``study.user_attrs['hv_reference']``: chance top-1, costs past the space's largest; see
    ``gcsearch.search.strategy.hv_box``), so hypervolumes of runs over one space compare.

    For a study without one: 0 for top-1, 1.1 x the largest cost recorded in the study.
    """
    fixed = frame.attrs.get("study", {}).get("hv_reference") or {}
    ref: dict[str, float] = {}
    for obj in objectives:
        if obj.name in fixed:
            ref[obj.name] = float(fixed[obj.name])
        elif obj.name == "top1":
            ref[obj.name] = 0.0
        else:
            values = pd.to_numeric(frame.get(obj.column), errors="coerce").dropna()
            if values.empty:
                ref[obj.name] = math.nan
            elif obj.sense == "min":
                ref[obj.name] = float(values.max()) * 1.1
            else:
                ref[obj.name] = float(values.min()) * 0.9
    return ref
