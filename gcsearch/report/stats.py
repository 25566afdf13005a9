"""Means over seeds with t-intervals, and Welch intervals for differences of means.

The ablation tables report a 95 % interval for every mean (Student t, n-1 degrees of freedom)
and for every difference to a reference (Welch: unequal variances, Welch-Satterthwaite degrees
of freedom), so a reader can tell seed noise from a real effect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _t_quantile(df: float, level: float) -> float:
    from scipy.special import stdtrit  # much lighter to import than scipy.stats

    return float(stdtrit(df, 0.5 + level / 2))


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of its t-interval and n; the half-width is NaN below two values."""
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(vals[0]), math.nan, 1
    sem = float(np.std(vals, ddof=1)) / math.sqrt(n)
    return float(vals.mean()), _t_quantile(n - 1, level) * sem, n


def welch_diff(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the half-width of its Welch t-interval (NaN if n < 2)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = vx + vy
    if se2 == 0:
        return diff, 0.0
    df = se2**2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return diff, _t_quantile(df, level) * math.sqrt(se2)
