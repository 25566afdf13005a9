"""The hypervolume box of a report (the math itself: ``gcsearch.pareto``, re-exported here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from gcsearch.pareto import hypervolume, normalised_hypervolume, pareto_front
from gcsearch.report.frame import Objective


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


__all__ = [
    "hypervolume",
    "ideal_point",
    "normalised_hypervolume",
    "pareto_front",
    "reference_point",
]
