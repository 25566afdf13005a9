"""``gcsearch bench asks``: what one ``ehvi`` ask costs as the space grows.

No shipped space reaches 10^5 networks (``full.toml`` builds 1,102), so the space here is
generated: ``--axes`` axes of ``--values`` values each (default 5 x 10: 10^5 networks; one-hot
features, 50 columns as a large real space would have), and a space of n candidates is the first
n of that product in a seeded shuffle. Each candidate is its own network; its block MACs and
parameters are a seeded sum of per-value costs, and its top-1 a seeded additive function of its
values plus pairwise interactions and noise (60-95 %). The strategy is the real
``EHVIStrategy`` (objectives top-1, block MACs and block params, as ``gcsearch bench search``
scores) with only the candidate encoding replaced (one-hot of the synthetic values), asked
through a stand-in driver with the driver's interface (``unseen``, ``key``, ``answered``,
``by_key``, ``running``, ``in_flight_keys``).

For each size: ``--told`` random networks are told first; then ``--asks`` asks, each answered
before the next (timed with ``time.process_time``, CPU seconds), then one more ask under
``tracemalloc`` for its peak Python/numpy memory. The first ask (cold caches: features and
costs of the whole pool) is reported apart. ``--exact-up-to`` also times the unscreened ask
(every candidate's expectation) and checks that both propose the same network.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from gcsearch.search import strategy as strat
from gcsearch.search.record import TrialRecord

OBJECTIVES = ("top1:max", "block_macs:min", "block_params:min")
SIZES = (1_000, 10_000, 100_000)


@dataclass(frozen=True)
class SynthCandidate:
    """A generated candidate: its id and the index of its value on each axis."""

    id: str
    values: tuple[int, ...]


@dataclass
class _Trial:
    number: int
    record: TrialRecord


@dataclass
class _Run:
    cand: SynthCandidate
    role: str = "search"


@dataclass
class SynthDriver:
    """The part of the search driver a strategy reads, over generated candidates."""

    candidates: list[SynthCandidate]
    finished: dict[str, _Trial] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    running: dict[int, _Run] = field(default_factory=dict)
    by_key: dict[str, int] = field(default_factory=dict)

    def key(self, cand: SynthCandidate) -> str:
        return cand.id

    def known(self, cand: SynthCandidate) -> bool:
        return cand.id in self.finished or cand.id in self.by_key

    def unseen(self) -> list[SynthCandidate]:
        return [c for c in self.candidates if c.id not in self.asked]

    def answered(self) -> dict[str, _Trial]:
        return dict(self.finished)

    def in_flight_keys(self) -> list[str]:
        return list(self.by_key)

    def tell(self, cand: SynthCandidate, top1: float) -> None:
        rec = TrialRecord(candidate=cand, status="complete", results=[{"top1": top1}])  # type: ignore[arg-type]
        self.asked.add(cand.id)
        self.finished[cand.id] = _Trial(len(self.finished), rec)


class SynthEHVI(strat.EHVIStrategy):
    """``EHVIStrategy`` with a one-hot encoding of the generated values."""

    def __init__(
        self, axes: int, values: int, costs: dict[str, dict[str, float]], seed: int = 0
    ) -> None:
        space = SimpleNamespace(
            objectives=list(OBJECTIVES), grids=[], search=SimpleNamespace(sampler_seed=seed)
        )
        spanned = list(costs)
        reference, ideal = strat.hv_box(OBJECTIVES, costs, 10, spanned)
        super().__init__(space, costs, reference, ideal)  # type: ignore[arg-type]
        self.axes, self.values = axes, values
        if self.settings.prior:  # the generated values have no measured effects: seeded
            # ones of the features' size, so the ask pays what the tables' prior costs
            self._beta = np.random.default_rng(seed).normal(0.0, 0.3, axes * values)

    def encode(self, cand: Any) -> list[float]:
        out = [0.0] * (self.axes * self.values)
        for a, v in enumerate(cand.values):
            out[a * self.values + v] = 1.0
        return out

    def _record(self, trial: Any) -> TrialRecord:
        return trial.record


def synthetic_space(
    n: int, axes: int = 5, values: int = 10, seed: int = 0
) -> tuple[list[SynthCandidate], dict[str, dict[str, float]], dict[str, float]]:
    """``n`` generated candidates, their costs and their (hidden) top-1 (see module)."""
    rng = np.random.default_rng(seed)
    total = values**axes
    if n > total:
        raise ValueError(f"{n} candidates: the product holds {total}")
    picks = rng.permutation(total)[:n]
    digits = np.stack([(picks // values**a) % values for a in range(axes)], axis=1)
    macs = rng.uniform(0, 1e6, size=(axes, values))
    params = rng.uniform(0, 1e4, size=(axes, values))
    effect = rng.normal(0, 3, size=(axes, values))
    pair = rng.normal(0, 1, size=(axes, axes, values, values))
    cands, costs, top1 = [], {}, {}
    noise = rng.normal(0, 0.5, size=n)
    for i, row in enumerate(digits.tolist()):
        cid = "s" + "".join(map(str, row))
        cands.append(SynthCandidate(cid, tuple(row)))
        bm = float(sum(macs[a, v] for a, v in enumerate(row)))
        bp = float(sum(params[a, v] for a, v in enumerate(row)))
        costs[cid] = {"block_macs": bm, "block_params": bp}
        acc = 80 + sum(effect[a, v] for a, v in enumerate(row)) + noise[i]
        acc += sum(pair[a, b, row[a], row[b]] for a in range(axes) for b in range(a + 1, axes))
        acc += 4e-6 * bm  # accuracy grows with cost: a front to trade along
        top1[cid] = float(min(95.0, max(60.0, acc)))
    return cands, costs, top1


def bench_size(
    n: int, *, told: int, asks: int, axes: int, values: int, seed: int, exact: bool
) -> dict[str, Any]:
    """Ask times and memory at one pool size."""
    cands, costs, top1 = synthetic_space(n, axes, values, seed)
    drv = SynthDriver(cands)
    rng = random.Random(seed)
    for c in rng.sample(cands, min(told, n - asks - 2)):
        drv.tell(c, top1[c.id])
    s = SynthEHVI(axes, values, costs, seed)
    by_id = {c.id: c for c in cands}

    def ask() -> tuple[str, float, float]:
        t0, w0 = time.process_time(), time.perf_counter()
        c = s.propose(drv)
        return c.id, time.process_time() - t0, time.perf_counter() - w0

    first_id, first_s, _ = ask()
    drv.tell(by_id[first_id], top1[first_id])
    times, walls = [], []
    for _ in range(asks):
        cid, dt, wall = ask()
        times.append(dt)
        walls.append(wall)
        drv.tell(by_id[cid], top1[cid])
    tracemalloc.start()
    cid, *_ = ask()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out: dict[str, Any] = {
        "candidates": n,
        "told": len(drv.finished),
        "first_ask_s": first_s,
        "ask_s": times,
        "ask_s_median": statistics.median(times),
        "ask_s_max": max(times),
        "ask_wall_s_median": statistics.median(walls),
        "peak_mib": peak / 2**20,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if exact:
        old = strat.SCREEN_ABOVE
        strat.SCREEN_ABOVE = 10**12
        try:
            t0 = time.process_time()
            exact_id = s.propose(drv).id
            out["exact_ask_s"] = time.process_time() - t0
        finally:
            strat.SCREEN_ABOVE = old
        out["same_as_exact"] = exact_id == cid
    return out


def _has_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


def _one_thread() -> Any:
    """BLAS on one thread (the driver shares its cores with trainings), when threadpoolctl is
    installed; else as numpy starts."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def run_bench_asks(args: argparse.Namespace) -> int:
    """Entry point for ``gcsearch bench asks``."""
    sizes = [int(x) for x in (args.sizes or ",".join(map(str, SIZES))).split(",") if x]
    if args.smoke:
        sizes, told, asks = [min(sizes[0], 600)], 20, 2
    else:
        told, asks = args.told, args.asks
    figures: dict[str, Any] = {
        "command": "gcsearch " + shlex.join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "space": {
            "axes": args.axes,
            "values": args.values,
            "seed": args.seed,
            "objectives": list(OBJECTIVES),
        },
        "screen_above": strat.SCREEN_ABOVE,
        "blas_threads": 1 if _has_threadpoolctl() else None,
        "sizes": {},
    }
    for n in sizes:
        with _one_thread():
            row = bench_size(
                n,
                told=told,
                asks=asks,
                axes=args.axes,
                values=args.values,
                seed=args.seed,
                exact=n <= args.exact_up_to,
            )
        figures["sizes"][str(n)] = row
        extra = (
            f", exact {row['exact_ask_s']:.2f} s, same proposal: {row['same_as_exact']}"
            if "exact_ask_s" in row
            else ""
        )
        print(
            f"{n:>7} candidates, {row['told']} told: ask {row['ask_s_median']:.3f} s CPU "
            f"median ({row['ask_wall_s_median']:.3f} s wall), {row['ask_s_max']:.3f} s max "
            f"(first ask {row['first_ask_s']:.2f} s); "
            f"peak {row['peak_mib']:.1f} MiB traced, max RSS {row['maxrss_mib']:.0f} MiB" + extra,
            flush=True,
        )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"figures: {out}")
    return 0


__all__ = ["SynthCandidate", "SynthDriver", "SynthEHVI", "run_bench_asks", "synthetic_space"]
