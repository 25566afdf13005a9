"""Seeds where the answer is open: how many seeds a reference row trains so its top-1 interval
is as narrow as ``[search] reference_ci`` asks.

The rule is the fixed-width sequential interval (Chow and Robbins, 1965, "On the asymptotic
theory of fixed-width sequential confidence intervals for the mean"): after each look, stop once
the 95 % Student-t interval's half-width is at most the target, else train the seeds the observed
sd projects. Its coverage at small n is a little under the nominal 95 %; the report shows each
row's n. The intervals themselves are ``gcsearch.report.stats.mean_ci``'s (same t quantile).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def seeds_for_width(
    values: Sequence[float | None],
    width: float,
    level: float = 0.95,
    floor: float = 0.0,
    most: int = 1000,
) -> int:
    """Seeds a mean needs for its t-interval's half-width to reach ``width`` if the observed
    sd (floored at ``floor``, the measurement step, so a constant run is not certainty) held:
    the smallest n >= len(values) with t(n - 1) * sd / sqrt(n) <= width, at most ``most``.
    Fewer than two values ask for two (an interval needs two)."""
    from scipy.special import stdtrit  # light, unlike scipy.stats

    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(vals)
    if n < 2:
        return min(most, 2)
    sd = max(statistics.stdev(vals), floor)
    for m in range(n, most + 1):
        if float(stdtrit(m - 1, 0.5 + level / 2)) * sd / math.sqrt(m) <= width:
            return m
    return most


__all__ = ["seeds_for_width"]
