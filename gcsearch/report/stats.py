"""Intervals a reader can trust: means over seeds, paired or Welch differences, Holm, power.

Every mean gets a 95 % Student-t interval over seeds (n - 1 degrees of freedom). A difference
between two candidates uses the **paired** t-interval on per-seed differences when both were
trained under the same seeds (the search shares seeds across candidates, and a seed fixes the
initialisation and the batch order, so the pairing removes the seed-to-seed variance the two
share), and **Welch**'s interval (unequal variances, Welch-Satterthwaite degrees of freedom)
otherwise. With one seed there is no interval ("n = 1: no interval") and no test.

Many Δ rows in one report are many tests: ``holm`` adjusts their p-values (Holm, 1979, "A
simple sequentially rejective multiple test procedure"), which controls the family-wise error
rate at α without assuming independence. ``min_detectable_difference`` is the smallest true
difference a two-sided paired t-test at α detects with the given power, from the standard
deviation of paired differences (exact, with the noncentral t distribution).

Top-1 is quantised (one image of 5,000 is 0.02 points), so a per-seed difference that happens to
be constant has a zero sample sd, and a t-test on it would claim certainty (p = 0, a zero-width
interval) from as few as two seeds. ``floor`` (the measurement resolution, ``resolution``) puts a
lower bound on the sd of the differences (paired) or of each group (Welch) to prevent that.
``one_sided_p`` and ``paired_arrays`` are the same tests on arrays, for simulations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: how a difference's interval was computed
PAIRED, WELCH, NO_INTERVAL = "paired", "welch", "n = 1: no interval"


def _t_quantile(df: float, level: float) -> float:
    from scipy.special import stdtrit  # much lighter to import than scipy.stats

    return float(stdtrit(df, 0.5 + level / 2))


def _t_two_sided_p(t: float, df: float) -> float:
    from scipy.special import stdtr

    return float(2 * stdtr(df, -abs(t)))


def resolution(val_images: int | None) -> float:
    """The step of top-1 in points on ``val_images`` held-out images (100 / images); NaN when
    the count is unknown."""
    return 100.0 / val_images if val_images else math.nan


def one_sided_p(mean: Any, se: Any, df: Any, bound: float, above: bool) -> np.ndarray:
    """One-sided t-test p-values (arrays broadcast) of the claim "the true difference lies
    above ``bound``" (``above``) or below it; ``se`` 0 gives 0 or 1 (the sign decides), a NaN
    ``se`` (no interval) NaN."""
    from scipy.special import stdtr

    mean, se, df = (np.asarray(x, dtype=float) for x in (mean, se, df))
    gap = (mean - bound) if above else (bound - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = stdtr(df, -gap / se)
    return np.where(se > 0, p, np.where(se == 0, np.where(gap > 0, 0.0, 1.0), np.nan))


def paired_arrays(d: np.ndarray, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean, standard error and degrees of freedom of paired differences ``d`` (..., n), the
    sd floored at ``floor``: ``paired_test`` on many data sets at once."""
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    sd = np.maximum(d.std(axis=-1, ddof=1), floor)
    return d.mean(axis=-1), sd / math.sqrt(n), n - 1


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of its t-interval and n; the half-width is NaN below two values."""
    vals = _finite(values)
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(vals[0]), math.nan, 1
    sem = float(np.std(vals, ddof=1)) / math.sqrt(n)
    return float(vals.mean()), _t_quantile(n - 1, level) * sem, n


def welch_diff(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the half-width of its Welch t-interval (NaN if n < 2)."""
    d = welch_test(a, b, level)
    return d.mean, d.half


@dataclass(frozen=True)
class Diff:
    """A difference of means with its interval: ``mean ± half`` (NaN half: no interval)."""

    mean: float
    half: float
    n: int  # pairs (paired) or the smaller group (Welch)
    method: str  # PAIRED, WELCH or NO_INTERVAL
    p: float  # two-sided p-value of "no difference" (NaN without an interval)
    se: float = math.nan  # standard error of ``mean`` (0: every pair differs by the same)
    df: float = math.nan  # degrees of freedom of its t distribution

    @property
    def excludes_zero(self) -> bool:
        return math.isfinite(self.half) and abs(self.mean) > self.half

    def p_beyond(self, bound: float, above: bool) -> float:
        """One-sided p-value of the claim "the true difference lies above ``bound``" (``above``)
        or below it: the t-test of H0 "it does not" (NaN without an interval). The two
        one-sided tests of an equivalence claim (TOST) and a non-inferiority test are these."""
        if not (math.isfinite(self.se) and math.isfinite(self.df)):
            return math.nan
        return float(one_sided_p(self.mean, self.se, self.df, bound, above))


def welch_test(
    a: Sequence[float], b: Sequence[float], level: float = 0.95, floor: float = 0.0
) -> Diff:
    """Welch's t-interval and test of ``mean(a) - mean(b)``; each group's sd is at least
    ``floor``."""
    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return Diff(math.nan, math.nan, 0, NO_INTERVAL, math.nan)
    diff = float(x.mean() - y.mean())
    n = min(len(x), len(y))
    if n < 2:
        return Diff(diff, math.nan, n, NO_INTERVAL, math.nan)
    vx = max(x.var(ddof=1), floor**2) / len(x)
    vy = max(y.var(ddof=1), floor**2) / len(y)
    se2 = vx + vy
    if se2 == 0:
        return Diff(diff, 0.0, n, WELCH, 1.0 if diff == 0 else 0.0, 0.0, len(x) + len(y) - 2)
    df = se2**2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    se = math.sqrt(se2)
    p = _t_two_sided_p(diff / se, df)
    return Diff(diff, _t_quantile(df, level) * se, n, WELCH, p, se, df)


def paired_test(
    a: Sequence[float], b: Sequence[float], level: float = 0.95, floor: float = 0.0
) -> Diff:
    """The paired t-interval and test of ``mean(a - b)`` (``a[i]`` and ``b[i]`` share seed i);
    the sd of the differences is at least ``floor``."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths ({len(a)} vs {len(b)})")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return Diff(math.nan, math.nan, 0, NO_INTERVAL, math.nan)
    if n == 1:
        return Diff(float(d[0]), math.nan, 1, NO_INTERVAL, math.nan)
    mean, sd = float(d.mean()), max(float(d.std(ddof=1)), floor)
    if sd == 0:
        return Diff(mean, 0.0, n, PAIRED, 1.0 if mean == 0 else 0.0, 0.0, n - 1)
    se = sd / math.sqrt(n)
    p = _t_two_sided_p(mean / se, n - 1)
    return Diff(mean, _t_quantile(n - 1, level) * se, n, PAIRED, p, se, n - 1)


def compare(
    a: Mapping[int, float], b: Mapping[int, float], level: float = 0.95, floor: float = 0.0
) -> Diff:
    """``a - b`` for per-seed results ``{seed: top1}``: paired when both hold the same seeds
    (at least two), Welch otherwise; ``floor``: the least sd (see the module's note)."""
    a = {s: v for s, v in a.items() if v is not None and math.isfinite(v)}
    b = {s: v for s, v in b.items() if v is not None and math.isfinite(v)}
    if len(a) >= 2 and set(a) == set(b):
        seeds = sorted(a)
        return paired_test([a[s] for s in seeds], [b[s] for s in seeds], level, floor)
    return welch_test(list(a.values()), list(b.values()), level, floor)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    idx = [i for i in np.argsort(p, kind="stable") if math.isfinite(p[i])]
    m, running = len(idx), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def min_detectable_difference(
    sd_diff: float, n: int = 3, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true mean difference that a two-sided paired t-test over ``n`` pairs at level
    ``alpha`` detects with probability ``power``, given the per-seed difference's std."""
    if n < 2 or not math.isfinite(sd_diff):
        return math.nan
    if sd_diff == 0:
        return 0.0
    from scipy.optimize import brentq
    from scipy.stats import nct

    df = n - 1
    crit = _t_quantile(df, 1 - alpha)

    def gap(ncp: float) -> float:
        # the far tail can come back NaN for a large ncp; it is ~0 there
        lower = float(np.nan_to_num(nct.cdf(-crit, df, ncp)))
        return float(np.nan_to_num(nct.sf(crit, df, ncp), nan=1.0)) + lower - power

    hi = 1.0
    while gap(hi) < 0:  # power grows with the noncentrality; bracket it before solving
        hi *= 2
    ncp = brentq(gap, 0.0, hi)
    return ncp * sd_diff / math.sqrt(n)


#: The words of a verdict (``report.verdicts`` and the NL summary say them).
AGREE, DISAGREE, CANT_TELL, NOT_IN_RUN = (
    "agree",
    "disagree",
    "can't tell at this noise level",
    "not in this run",
)
#: equivalence / non-inferiority margin, in top-1 points
MARGIN = 1.0


def decide(
    kind: str, mean: Any, se: Any, df: Any, margin: float = MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """(p, direction) of the test that decides a verdict, on arrays: ``mean``, ``se`` and
    ``df`` have shape (..., k) for k alternatives (k > 1 only for ``better``). ``direction`` is
    +1 (the test would say agree) or -1 (disagree); ``p`` is on the two-sided scale (twice the
    one-sided p, at most 1), so p < alpha is a one-sided test at alpha / 2. Holm adjusts it.

    ``better``: agree needs every Δ > 0 (intersection-union: the largest one-sided p), disagree
    some Δ < 0 (the smallest one-sided p times k). ``equivalent``: TOST within ± margin (the
    larger one-sided p) when |Δ| < margin, else the one-sided test beyond it on Δ's side.
    ``non_inferior``: Δ > -margin when the estimate is above it, else Δ < -margin.
    """
    mean, se, df = (np.asarray(x, dtype=float) for x in (mean, se, df))
    k = mean.shape[-1]
    if kind == "better":
        ahead = (mean > 0).all(axis=-1)
        p_agree = one_sided_p(mean, se, df, 0.0, above=True).max(axis=-1)
        p_dis = k * one_sided_p(mean, se, df, 0.0, above=False).min(axis=-1)
        p, direction = np.where(ahead, p_agree, p_dis), np.where(ahead, 1, -1)
    elif kind == "equivalent":
        mean, se, df = mean[..., 0], se[..., 0], df[..., 0]
        inside = np.abs(mean) < margin
        tost = np.maximum(
            one_sided_p(mean, se, df, -margin, True), one_sided_p(mean, se, df, margin, False)
        )
        beyond = np.where(
            mean > 0,
            one_sided_p(mean, se, df, margin, True),
            one_sided_p(mean, se, df, -margin, False),
        )
        p, direction = np.where(inside, tost, beyond), np.where(inside, 1, -1)
    elif kind == "non_inferior":
        mean, se, df = mean[..., 0], se[..., 0], df[..., 0]
        above = mean > -margin
        p = np.where(
            above,
            one_sided_p(mean, se, df, -margin, True),
            one_sided_p(mean, se, df, -margin, False),
        )
        direction = np.where(above, 1, -1)
    else:
        raise ValueError(f"no test for kind {kind!r}")
    return np.minimum(1.0, 2 * p), direction
