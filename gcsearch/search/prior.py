"""What the committed exhaustive tables say about each axis value, as a prior for ehvi.

On every exhaustive table the project has built (``benchmarks/tables/``: four tasks, one
47-network space of blocks at ResNet-8), a few networks carry the front, and they share axis
values: ``avgmax`` pooling at c4 with ``add`` fusion ranks near the top by top-1 on three of
the four. A search that knows this before its first result proposes those networks early,
which matters most when many candidates are in flight (8 in flight at a budget of 14: 9
proposals before any result). Here each table's top-1 is standardised (z over its searched
networks) and fitted by ridge regression on one-hot axis values: one main effect per
``axis=value``, in standard deviations of that table's top-1. ``effects`` averages them over
the tables a search may use.

The effects are a prior mean, not a verdict: ehvi's model (``search.gp.GP``) weighs them by
marginal likelihood against its own measurements (weight 0 or 1 of the measured spread), so a
task where they point the wrong way turns them off once a few results are back; label-shuffled
tables, where they always point the wrong way, measure what that costs
(docs/search-benchmark.md). Axis values no table holds (a stage the tables never tried, another
backbone's stages) get no effect. ``gcsearch bench prior`` writes ``prior.json`` from the
committed tables; benchmark replays of a table leave that table out of its own prior.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: The packaged effects (written by ``gcsearch bench prior``)
PRIOR_PATH = Path(__file__).with_name("prior.json")

#: Ridge penalty of the per-table fit (on centred one-hot rows of z-scored top-1): enough to
#: keep an axis value seen on few networks near zero, small beside 47 networks' evidence
RIDGE = 1.0


def feature(axis: str, value: Any) -> str:
    """The name of one one-hot feature: ``pooling=avgmax``."""
    return f"{axis}={value}"


def fit_effects(rows: Sequence[tuple[Mapping[str, Any], float]], ridge: float = RIDGE) -> dict:
    """Main effects (z units) of each ``axis=value`` on top-1, by ridge regression over
    ``rows`` of (axis values, mean top-1); axes with one value carry nothing and are left out."""
    axes: dict[str, set[Any]] = {}
    for values, _ in rows:
        for a, v in values.items():
            axes.setdefault(a, set()).add(v)
    names = sorted(feature(a, v) for a, vs in axes.items() if len(vs) > 1 for v in vs)
    if not names or len(rows) < 2:
        return {}
    index = {n: i for i, n in enumerate(names)}
    x = np.zeros((len(rows), len(names)))
    for i, (values, _) in enumerate(rows):
        for a, v in values.items():
            j = index.get(feature(a, v))
            if j is not None:
                x[i, j] = 1.0
    y = np.array([t for _, t in rows], dtype=float)
    z = (y - y.mean()) / (y.std() or 1.0)
    xc = x - x.mean(0)
    beta = np.linalg.solve(xc.T @ xc + ridge * np.eye(len(names)), xc.T @ z)
    return {n: round(float(b), 6) for n, b in zip(names, beta, strict=True)}


@cache
def _packaged() -> dict[str, Any]:
    return json.loads(PRIOR_PATH.read_text())  # packaged: missing means a broken install


def effects(without: Collection[str] = (), data: Mapping[str, Any] | None = None) -> dict:
    """``axis=value`` -> mean effect over the tables of ``data`` (default: the packaged
    ``prior.json``) other than ``without``; an effect a table lacks counts as 0 there."""
    tables = {
        name: t["effects"]
        for name, t in (data or _packaged())["tables"].items()
        if name not in set(without)
    }
    if not tables:
        return {}
    names = sorted({n for e in tables.values() for n in e})
    return {n: sum(e.get(n, 0.0) for e in tables.values()) / len(tables) for n in names}


def prior_vector(
    choices: Mapping[str, Sequence[Any]], table_effects: Mapping[str, float]
) -> np.ndarray | None:
    """The effects in the order of ehvi's one-hot features over ``choices`` (None where no
    feature of the space has an effect: the prior would say nothing)."""
    vec = np.array(
        [table_effects.get(feature(a, v), 0.0) for a, vs in choices.items() for v in vs],
        dtype=float,
    )
    return vec if vec.any() else None


__all__ = ["PRIOR_PATH", "RIDGE", "effects", "feature", "fit_effects", "prior_vector"]
