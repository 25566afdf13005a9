"""``gcsearch bench coverage``: how often the fidelity interval (``gcsearch analyze fidelity``)
covers its target, by simulation, at the seed counts runs use (3, 6, 12); and the percentile
bootstrap over seeds it replaced, at 3 seeds. docs/trusting-results.md cites the JSON.

25 candidates with true top-1 at the high budget spread ``spread`` points, the low budget's true
means correlated 0.8 with them; each (seed, candidate) draws noise ``noise`` at the low budget
and noise correlated 0.5 with it at the high budget (an early and the last epoch of one training
run). The target is the τ that another draw of as many seeds gives on average (20,000 extra
draws); a 95 % interval should cover it in ~95 % of simulated runs. The production code
(``jackknife_interval``) runs on all simulated runs at once.

Example:
    gcsearch bench coverage --out benchmarks/fidelity-coverage.json
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from gcsearch.analysis.fidelity import jackknife_interval, kendall_tau_b
from gcsearch.bench import write_figures

K = 25  # candidates
SIMS = 2000  # simulated runs per cell (simulation sd of a 0.95 coverage: 0.005)
SEEDS = (3, 6, 12)
#: (candidate spread, seed noise), in points
SETTINGS = ((2.0, 1.0), (1.0, 1.0), (3.0, 0.5), (0.5, 1.0))


def _runs(
    rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...], noise: float
) -> tuple[np.ndarray, np.ndarray]:
    e = rng.normal(0.0, noise, (*shape, K))
    return lo + e, hi + 0.5 * e + math.sqrt(0.75) * rng.normal(0.0, noise, (*shape, K))


def simulate(
    n: int, spread: float, noise: float, seed: int, sims: int = SIMS
) -> tuple[np.ndarray, np.ndarray, float]:
    """``sims`` simulated runs of ``n`` seeds (low- and high-budget top-1, shape
    ``(sims, n, K)``) and the τ they estimate."""
    rng = np.random.default_rng(seed)
    hi_true = rng.normal(0.0, spread, K)
    lo_true = 0.8 * hi_true + 0.6 * rng.normal(0.0, spread, K)
    big_lo, big_hi = _runs(rng, lo_true, hi_true, (20_000, n), noise)
    target = float(kendall_tau_b(big_lo.mean(1), big_hi.mean(1)).mean())
    low, high = _runs(rng, lo_true, hi_true, (sims, n), noise)
    return low, high, target


def jackknife_coverage(low: np.ndarray, high: np.ndarray, target: float) -> float:
    """Share of simulated runs whose jackknife interval holds ``target``."""
    _, a, b = jackknife_interval(low, high)
    return float(np.mean((a <= target) & (target <= b)))


def bootstrap_coverage(low: np.ndarray, high: np.ndarray, target: float, draws: int = 200) -> float:
    """The same for the percentile bootstrap over seeds (what the jackknife replaced)."""
    n = low.shape[1]
    idx = np.random.default_rng(0).integers(0, n, (draws, n))
    taus = np.stack([kendall_tau_b(low[:, d].mean(1), high[:, d].mean(1)) for d in idx], 1)
    a, b = np.quantile(taus, 0.025, axis=1), np.quantile(taus, 0.975, axis=1)
    return float(np.mean((a <= target) & (target <= b)))


def figures(sims: int = SIMS) -> dict[str, Any]:
    """Coverage per seed count and setting (jackknife), and the bootstrap's at 3 seeds."""
    cells = []
    for n in SEEDS:
        for spread, noise in SETTINGS:
            low, high, target = simulate(n, spread, noise, seed=n, sims=sims)
            cell = {"seeds": n, "spread": spread, "noise": noise, "target": target}
            cell["jackknife"] = jackknife_coverage(low, high, target)
            if n == 3:
                cell["bootstrap"] = bootstrap_coverage(low, high, target)
            cells.append(cell)
    by_n = {
        str(n): {
            "lowest": min(c["jackknife"] for c in cells if c["seeds"] == n),
            "highest": max(c["jackknife"] for c in cells if c["seeds"] == n),
        }
        for n in SEEDS
    }
    boot = [c["bootstrap"] for c in cells if "bootstrap" in c]
    return {
        "candidates": K,
        "sims": sims,
        "cells": cells,
        "jackknife": by_n,
        "bootstrap_3": {"lowest": min(boot), "highest": max(boot)},
    }


def run_bench_coverage(args: argparse.Namespace) -> int:
    """Simulate, print one line per seed count and write the JSON (``--out``)."""
    sims = 200 if args.smoke else SIMS
    start = time.perf_counter()
    data = figures(sims)
    data["seconds"] = round(time.perf_counter() - start, 1)
    for n, r in data["jackknife"].items():
        low, high = r["lowest"], r["highest"]
        print(f"{n} seeds: jackknife coverage {low:.3f}-{high:.3f} over {sims} runs")
    b = data["bootstrap_3"]
    print(f"3 seeds: percentile bootstrap coverage {b['lowest']:.3f}-{b['highest']:.3f}")
    write_figures(data, args.out, "runs/bench-coverage.json")
    return 0


__all__ = [
    "SETTINGS",
    "bootstrap_coverage",
    "figures",
    "jackknife_coverage",
    "run_bench_coverage",
    "simulate",
]
