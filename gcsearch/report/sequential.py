"""Group-sequential tests for the verdicts when seeds are added adaptively (``gcsearch resolve``).

Adding seeds until a comparison is decided and testing each time at a fixed level inflates the
false-verdict rate. Here the looks are planned (``Plan``: seeds per candidate at each look, the
last one the cap) and each one-sided test spends its level over them with the Lan–DeMets
O'Brien–Fleming-type function ``a(t) = 2 - 2 Φ(z_{1-a/2} / √t)`` (Lan & DeMets, 1983,
Biometrika 70:659), t = n / n_max the information fraction. The z boundaries come from
numerical integration of the score process's density over the looks (Armitage, McPherson &
Rowe, 1969); a paired t statistic with n - 1 degrees of freedom is then compared with the same
*nominal* one-sided p (the "significance level approach", Jennison & Turnbull, 2000, §11.4),
which ``simulate`` checks (tests/report/test_sequential.py), never assumes, at n = 3 upwards.

The verdict rules map onto looks as ``Hypothesis`` records of one-sided components: agree needs
every ``agree`` component to cross (intersection-union: the stages rule, TOST's two sides),
disagree any ``disagree`` component, at the level split by ``split`` (Bonferroni over the
stages' alternatives). The conclusions are one family: Holm's step-down becomes alpha
recycling between group-sequential tests (Maurer & Bretz, 2013, Stat Biopharm Res 5:311): each
open hypothesis has level α / (open hypotheses), and when one is decided the others are tested
again, at every look so far, at the larger level. ``replay`` does this for many studies at once
(the simulations) or for one (the report).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gcsearch.report.stats import one_sided_p

#: what a report names as the method
METHOD = (
    "group-sequential paired t: Lan–DeMets O'Brien–Fleming-type alpha spending over the planned "
    "looks (boundaries by numerical integration, used at the same nominal p for the t "
    "statistic, tightened by a seeded small-sample factor), Holm across conclusions by alpha "
    "recycling (Maurer & Bretz 2013)"
)
SPENDING = "obrien-fleming"
#: the study attribute ``gcsearch resolve`` records its plan under
PLAN_ATTR = "resolve_plan"


@dataclass(frozen=True)
class Plan:
    """The looks (seeds per candidate at each, increasing; the last is the cap) and the
    family-wise level of the verdicts (two-sided scale: α / 2 per direction)."""

    looks: tuple[int, ...]
    alpha: float = 0.05
    spending: str = SPENDING

    def __post_init__(self) -> None:
        looks = tuple(int(n) for n in self.looks)
        if not looks or looks[0] < 2 or any(b <= a for a, b in itertools.pairwise(looks)):
            raise ValueError(f"looks must increase from at least 2 seeds, got {looks}")
        if not 0 < self.alpha < 1 or self.spending != SPENDING:
            raise ValueError(f"alpha in (0, 1) and spending {SPENDING!r} only")
        object.__setattr__(self, "looks", looks)

    @classmethod
    def schedule(cls, first: int, step: int, cap: int, alpha: float = 0.05) -> Plan:
        """Looks at ``first``, ``first + step``, ... and ``cap`` (seeds per candidate)."""
        return cls((*range(first, cap, step), cap), alpha)

    def to_dict(self) -> dict[str, Any]:
        return {"looks": list(self.looks), "alpha": self.alpha, "spending": self.spending}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        return cls(tuple(data["looks"]), float(data["alpha"]), str(data["spending"]))

    def describe(self) -> str:
        looks = ", ".join(str(n) for n in self.looks)
        return f"looks at n = {looks} seeds per candidate (the last is the cap), α {self.alpha:g}"


def spent(fraction: Any, level: float) -> np.ndarray:
    """Level spent by information ``fraction`` (O'Brien–Fleming type, one-sided ``level``)."""
    from scipy.special import ndtr, ndtri

    t = np.asarray(fraction, dtype=float)
    return 2.0 * ndtr(ndtri(level / 2.0) / np.sqrt(t))


@functools.lru_cache(maxsize=512)
def z_bounds(fractions: tuple[float, ...], level: float, grid: int = 801) -> tuple[float, ...]:
    """One-sided upper z boundaries at the looks so that P(cross by look k | H0) = ``spent``.

    The score S_k = Z_k √t_k is Brownian motion in t; its density over the region not yet
    crossed is carried from look to look on a grid (trapezoid rule), and each boundary solved
    for the level that look spends."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    t = np.asarray(fractions, dtype=float)
    inc = np.diff(np.concatenate([[0.0], spent(t, level)]))
    bounds = [min(float(norm.isf(inc[0])), 40.0)]  # 40: a look that spends nothing
    root = math.sqrt(t[0])
    s = np.linspace(-10 * root, bounds[0] * root, grid)
    f = norm.pdf(s / root) / root
    for k in range(1, len(t)):
        w = np.full(grid, s[1] - s[0])
        w[[0, -1]] /= 2
        mass, dt, rk = w * f, t[k] - t[k - 1], math.sqrt(t[k])
        sd = math.sqrt(dt)

        def excess(c: float, mass: np.ndarray = mass, s: np.ndarray = s, sd: float = sd) -> float:
            return float(mass @ norm.sf((c * rk - s) / sd)) - inc[k]  # noqa: B023

        c = brentq(excess, -10.0, 40.0, xtol=1e-10) if excess(40.0) < 0 else 40.0
        bounds.append(float(c))
        s_new = np.linspace(-10 * rk, c * rk, grid)
        f = norm.pdf((s_new[:, None] - s[None, :]) / sd) @ mass / sd
        s = s_new
    return tuple(bounds)


#: null paths behind the small-sample correction, and the seed that draws them
CALIBRATION_STUDIES, CALIBRATION_SEED = 200_000, 20_240_521


@functools.lru_cache(maxsize=16)
def _null_paths(looks: tuple[int, ...]) -> np.ndarray:
    """One-sided p (upper side) of a paired t at each look, for ``CALIBRATION_STUDIES``
    simulated studies with no true difference: (studies, looks)."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    d = rng.standard_normal((CALIBRATION_STUDIES, looks[-1]), dtype=np.float32)
    return _t_p(d, np.asarray(looks), 0.0)[0]


def _t_p(d: np.ndarray, looks: np.ndarray, floor: float) -> tuple[np.ndarray, ...]:
    """(upper one-sided p, mean, se, df) of the paired t over the first n of ``d``'s last axis
    for each n in ``looks`` (arrays (..., K))."""
    csum = np.cumsum(d, axis=-1, dtype=float)[..., looks - 1]
    csq = np.cumsum(np.square(d, dtype=float), axis=-1)[..., looks - 1]
    mean = csum / looks
    var = np.maximum((csq - looks * mean**2) / (looks - 1), 0.0)
    se = np.maximum(np.sqrt(var), floor) / np.sqrt(looks)
    df = np.broadcast_to(looks - 1.0, mean.shape)
    return one_sided_p(mean, se, df, 0.0, above=True), mean, se, df


@functools.lru_cache(maxsize=512)
def nominal_p(looks: tuple[int, ...], level: float, calibrated: bool = True) -> np.ndarray:
    """The nominal one-sided p each look's paired t must reach: the z boundaries' p
    (``z_bounds``), scaled down by the small-sample factor λ ≤ 1 that makes the t statistic's
    crossing rate on ``CALIBRATION_STUDIES`` seeded null studies (each used for both sides)
    equal ``level`` (at 3-4 seeds per look the plain conversion overshoots: 5.6 % for 5 %
    over ten looks; ``calibrated=False`` gives the plain conversion)."""
    from scipy.special import ndtr

    fractions = tuple(n / looks[-1] for n in looks)
    plain = ndtr(-np.asarray(z_bounds(fractions, level)))
    if not calibrated:  # the plain conversion, for the simulations that show its overshoot
        return plain
    null = _null_paths(looks)  # each path and its mirror image: the two sides' crossings
    ratio = np.sort(np.concatenate([null / plain, (1.0 - null) / plain]).min(axis=1))
    j = int(level * len(ratio))
    lam = (ratio[j - 1] + ratio[j]) / 2 if j > 0 else ratio[0] / 2
    return plain * min(1.0, float(lam))


@dataclass(frozen=True)
class Component:
    """One one-sided t-test of a verdict: "the difference of pair ``pair`` lies above
    ``shift``" (``sign`` +1) or below it (-1)."""

    pair: int
    shift: float
    sign: int


@dataclass(frozen=True)
class Hypothesis:
    """A conclusion as sequential tests: agree when every ``agree`` component crosses, disagree
    when any ``disagree`` one does at level / ``split``."""

    id: str
    agree: tuple[Component, ...]
    disagree: tuple[Component, ...]
    split: int = 1


def hypothesis(cid: str, kind: str, pairs: int, margin: float) -> Hypothesis:
    """The verdict rule ``kind`` (``better``, ``equivalent``, ``non_inferior``; see
    ``report.stats.decide``) over ``pairs`` alternatives as one-sided components."""
    if kind == "better":
        up = tuple(Component(i, 0.0, 1) for i in range(pairs))
        return Hypothesis(cid, up, tuple(Component(i, 0.0, -1) for i in range(pairs)), pairs)
    if kind == "equivalent":
        inside = (Component(0, -margin, 1), Component(0, margin, -1))
        return Hypothesis(cid, inside, (Component(0, margin, 1), Component(0, -margin, -1)))
    if kind == "non_inferior":
        return Hypothesis(cid, (Component(0, -margin, 1),), (Component(0, -margin, -1),))
    raise ValueError(f"no sequential test for kind {kind!r}")


def component_p(c: Component, mean: Any, se: Any, df: Any) -> np.ndarray:
    """Nominal one-sided p of ``c`` from the pair's mean, standard error and df arrays."""
    return one_sided_p(mean, se, df, c.shift, above=c.sign > 0)


def hypothesis_p(h: Hypothesis, mean: Any, se: Any, df: Any) -> tuple[np.ndarray, np.ndarray]:
    """(p of agree, p of disagree) of ``h`` from per-pair arrays (..., pairs): the largest
    agree p (all must cross) and the smallest disagree p (any may)."""
    mean, se, df = (np.asarray(x, dtype=float) for x in (mean, se, df))

    def p(c: Component) -> np.ndarray:
        return component_p(c, mean[..., c.pair], se[..., c.pair], df[..., c.pair])

    agree = np.max([p(c) for c in h.agree], axis=0)
    disagree = np.min([p(c) for c in h.disagree], axis=0)
    return agree, disagree


@dataclass
class Outcome:
    """``replay``'s answer for S studies and m hypotheses: ``look`` (S, m) the index of the look
    a hypothesis was decided at (-1: open), ``direction`` +1 agree, -1 disagree, 0 open."""

    look: np.ndarray
    direction: np.ndarray

    @property
    def decided(self) -> np.ndarray:
        return self.look >= 0


def replay(
    plan: Plan,
    p_agree: np.ndarray,
    p_disagree: np.ndarray,
    splits: Sequence[int],
    calibrated: bool = True,
) -> Outcome:
    """Decide m hypotheses look by look for S studies at once.

    ``p_agree`` and ``p_disagree``: (S, m, K) nominal one-sided p at each of the plan's K looks
    (NaN where a look was not reached). Holm by alpha recycling: with r decided, each open
    hypothesis is tested at α / (m - r) (α / 2 per direction), at every look so far.
    """
    pa, pd_ = np.asarray(p_agree, dtype=float), np.asarray(p_disagree, dtype=float)
    if pa.ndim == 2:
        pa, pd_ = pa[None], pd_[None]
    studies, m, k_max = pa.shape
    look = np.full((studies, m), -1)
    direction = np.zeros((studies, m), dtype=int)
    if m == 0:
        return Outcome(look, direction)
    # thresholds[r, j, k]: nominal p at look k for hypothesis j with r hypotheses decided
    agree_at = np.array(
        [
            [nominal_p(plan.looks, plan.alpha / max(1, m - r) / 2, calibrated)] * m
            for r in range(m + 1)
        ]
    )
    dis_at = np.array(
        [
            [
                nominal_p(plan.looks, plan.alpha / max(1, m - r) / 2 / max(1, s), calibrated)
                for s in splits
            ]
            for r in range(m + 1)
        ]
    )
    with np.errstate(invalid="ignore"):
        for k in range(min(k_max, len(plan.looks))):
            while True:
                r = (look >= 0).sum(axis=1)
                a_thr, d_thr = agree_at[r][:, :, : k + 1], dis_at[r][:, :, : k + 1]
                up = (pa[:, :, : k + 1] <= a_thr).any(axis=2)
                down = (pd_[:, :, : k + 1] <= d_thr).any(axis=2)
                new = (up | down) & (look < 0)
                if not new.any():
                    break
                look[new] = k
                direction[new] = np.where(up[new], 1, -1)
    return Outcome(look, direction)


def simulate(
    plan: Plan,
    hypotheses: Sequence[Hypothesis],
    studies: int,
    *,
    effects: Sequence[Sequence[float]] | None = None,
    sd: float = 1.0,
    floor: float = 0.0,
    seed: int = 0,
    calibrated: bool = True,
) -> Outcome:
    """``replay`` on simulated studies: per-seed paired differences ~ N(effect, sd) for every
    pair of every hypothesis (``effects[j][i]``, default 0: equal true means), every look
    reached. The false-verdict rate of a rule is how often it decides when it should not."""
    rng = np.random.default_rng(seed)
    n_max, looks = plan.looks[-1], np.asarray(plan.looks)
    if seed == CALIBRATION_SEED:
        raise ValueError("simulate with another seed than the calibration's")
    pa, pd_ = [], []
    for j, h in enumerate(hypotheses):
        pairs = 1 + max(c.pair for c in (*h.agree, *h.disagree))
        mu = np.asarray(effects[j] if effects is not None else [0.0] * pairs, dtype=float)
        d = rng.normal(mu[None, :, None], sd, size=(studies, pairs, n_max))
        _, mean, se, df = _t_p(d, looks, floor)
        # (S, pairs, K) -> components read pairs from the last axis
        a, b = hypothesis_p(h, *(np.moveaxis(x, 1, -1) for x in (mean, se, df)))
        pa.append(a)
        pd_.append(b)
    splits = [h.split for h in hypotheses]
    return replay(plan, np.stack(pa, axis=1), np.stack(pd_, axis=1), splits, calibrated)


def seeds_needed(
    effect: float, sd: float, level: float, power: float = 0.8, start: int = 2, most: int = 1000
) -> int | None:
    """Seeds per candidate a one-sided paired t-test at ``level`` needs to detect ``effect``
    (towards its boundary, > 0) with ``power``, if the observed sd held (fixed-sample; the
    group-sequential plan needs a few percent more). None when no count up to ``most`` does."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect <= 0:
        return None
    if sd <= 0:
        return max(start, 2)
    from scipy.special import stdtrit
    from scipy.stats import nct

    for n in range(max(start, 2), most + 1):
        crit = float(stdtrit(n - 1, 1 - level))
        if float(nct.sf(crit, n - 1, effect * math.sqrt(n) / sd)) >= power:
            return n
    return None


__all__ = [
    "METHOD",
    "PLAN_ATTR",
    "Component",
    "Hypothesis",
    "Outcome",
    "Plan",
    "hypothesis",
    "hypothesis_p",
    "nominal_p",
    "replay",
    "seeds_needed",
    "simulate",
    "spent",
    "z_bounds",
]
