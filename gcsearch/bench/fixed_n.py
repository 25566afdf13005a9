"""False-verdict rates of the fixed-n verdict rules (``gcsearch.report.verdicts``), simulated at
the run's seed count (n = 3): the ``fixed_n`` part of ``gcsearch bench sequential``, and the
simulations ``tests/test_verdicts_simulation.py`` asserts on.

Every rule is a one-sided test at 2.5 % per direction, so with equal true means (or a true Δ on a
margin) a wrong verdict in a given direction should come up at most 2.5 % of the time. The data
are top-1 values quantised at ``STEP`` (0.02 points: 5,000 held-out images), the seed-to-seed sd
1 point; the production code (``stats.paired_arrays`` with the resolution floor, then
``verdicts.decide``) runs on all simulated runs at once. A family of one conclusion: Holm leaves a
single p as it is. ``best_of_rates`` is the earlier stages rule (c3–c5 against the alternative
with the highest mean only), simulated beside the current one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gcsearch.report import verdicts as vd
from gcsearch.report.stats import paired_arrays

NOMINAL = 0.025  # per direction
STEP = 0.02  # top-1 resolution at 5,000 images
N = 3  # seeds per candidate
K_STAGES = 4  # alternatives to c3–c5

Runs = tuple[np.ndarray, list[np.ndarray]]


def top1(rng: np.random.Generator, mean: float, sd: float, shape: tuple[int, ...]) -> np.ndarray:
    """Simulated top-1 values ~ N(mean, sd), quantised at ``STEP``."""
    return np.round((mean + rng.normal(0.0, sd, shape)) / STEP) * STEP


def _decide(kind: str, a: np.ndarray, bs: list[np.ndarray], margin: float) -> tuple[Any, Any]:
    """``verdicts.decide`` on simulated runs a (sims, n) against each of ``bs``."""
    stats = [paired_arrays(a - b, floor=STEP) for b in bs]
    mean = np.stack([s[0] for s in stats], axis=-1)
    se = np.stack([s[1] for s in stats], axis=-1)
    return vd.decide(kind, mean, se, np.full_like(mean, stats[0][2]), margin)


def verdict_rates(
    kind: str, a: np.ndarray, bs: list[np.ndarray], margin: float = vd.MARGIN
) -> tuple[float, float]:
    """(agree rate, disagree rate) of rule ``kind`` on simulated runs a (sims, n) vs bs."""
    p, direction = _decide(kind, a, bs, margin)
    sig = p < 0.05
    return float(np.mean(sig & (direction > 0))), float(np.mean(sig & (direction < 0)))


def best_of_rates(a: np.ndarray, bs: list[np.ndarray]) -> tuple[float, float]:
    """(agree, disagree) of the earlier stages rule: a against the alternative with the highest
    mean only, by the two-sided paired t-test at 5 %."""
    means = np.stack([b.mean(axis=-1) for b in bs], axis=-1)
    best = np.take_along_axis(np.stack(bs, axis=1), means.argmax(axis=-1)[:, None, None], 1)
    return verdict_rates("better", a, [best[:, 0]])


def directional_runs(rng: np.random.Generator, sims: int, n: int = N) -> Runs:
    """a and b equal in truth, with a seed effect both share (the pairing removes it)."""
    seed = rng.normal(0.0, 2.0, (sims, n))
    return top1(rng, 80.0, 1.0, (sims, n)) + seed, [top1(rng, 80.0, 1.0, (sims, n)) + seed]


def stages_all_equal(rng: np.random.Generator, sims: int, k: int = K_STAGES) -> Runs:
    """c3–c5 and its ``k`` alternatives all equal in truth."""
    return top1(rng, 80.0, 1.0, (sims, N)), [top1(rng, 80.0, 1.0, (sims, N)) for _ in range(k)]


def stages_one_noisy_equal(rng: np.random.Generator, sims: int, k: int = K_STAGES) -> Runs:
    """The least favourable case for 'agree': one alternative equal to c3–c5 (sd 3), the other
    ``k - 1`` ten points behind."""
    a = top1(rng, 80.0, 1.0, (sims, N))
    return a, [top1(rng, 80.0, 3.0, (sims, N))] + [
        top1(rng, 70.0, 1.0, (sims, N)) for _ in range(k - 1)
    ]


def figures(sims: int, seed: int = 1) -> dict[str, Any]:
    """Every fixed-n rate at n = ``N``, with ``sims`` simulated runs and its standard error."""

    def rate(r: float) -> dict[str, float]:
        return {"rate": r, "se": math.sqrt(max(r * (1 - r), 1e-12) / sims)}

    rng = np.random.default_rng(seed)
    m = vd.MARGIN
    out: dict[str, dict[str, float]] = {}
    agree, disagree = verdict_rates("better", *directional_runs(rng, sims))
    out["directional_agree"], out["directional_disagree"] = rate(agree), rate(disagree)
    a, bs = stages_all_equal(rng, sims)
    agree, disagree = verdict_rates("better", a, bs)
    out["stages_all_equal_agree"], out["stages_all_equal_disagree"] = rate(agree), rate(disagree)
    out["stages_all_equal_disagree_best_of"] = rate(best_of_rates(a, bs)[1])
    a, bs = stages_one_noisy_equal(rng, sims)
    out["stages_one_equal_agree"] = rate(verdict_rates("better", a, bs)[0])
    out["stages_one_equal_agree_best_of"] = rate(best_of_rates(a, bs)[0])
    b = top1(rng, 80.0, 1.0, (sims, N))
    out["non_inferior_disagree_equal"] = rate(
        verdict_rates("non_inferior", top1(rng, 80.0, 1.0, (sims, N)), [b], m)[1]
    )
    agree, disagree = verdict_rates("non_inferior", top1(rng, 80.0 - m, 1.0, (sims, N)), [b], m)
    out["non_inferior_agree_at_margin"] = rate(agree)
    out["non_inferior_disagree_at_margin"] = rate(disagree)
    b = top1(rng, 80.0, 0.3, (sims, N))
    out["equivalent_disagree_equal"] = rate(
        verdict_rates("equivalent", top1(rng, 80.0, 0.3, (sims, N)), [b], m)[1]
    )
    out["equivalent_agree_at_margin"] = rate(
        verdict_rates("equivalent", top1(rng, 80.0 + m, 0.3, (sims, N)), [b], m)[0]
    )
    return {
        "n": N,
        "sims": sims,
        "seed": seed,
        "step": STEP,
        "nominal": NOMINAL,
        "margin": m,
        "stage_alternatives": K_STAGES,
        "rules": out,
    }


__all__ = [
    "K_STAGES",
    "NOMINAL",
    "STEP",
    "N",
    "best_of_rates",
    "directional_runs",
    "figures",
    "stages_all_equal",
    "stages_one_noisy_equal",
    "top1",
    "verdict_rates",
]
