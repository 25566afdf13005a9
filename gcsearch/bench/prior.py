"""``gcsearch bench prior``: fit ehvi's axis-value prior on the committed exhaustive tables.

Per table: every searched network's mean top-1 over the table's seeds, z-scored, fitted by
``gcsearch.search.prior.fit_effects``. The JSON (default ``gcsearch/search/prior.json``, the
packaged prior) keeps each table's effects apart, so a benchmark replay of one table can leave
that table out of its own prior (``EHVISettings.prior_without``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import numpy as np

from gcsearch.errors import UserError

#: the tables the packaged prior is fitted on
DEFAULT_TABLES = "bench-small,bench-small-graded,bench-small-pairs,bench-small-digits"


def table_rows(name: str) -> tuple[list[tuple[dict[str, Any], float]], dict[str, Any]]:
    """(axis values, mean top-1) of every searched network of the bench space ``name``'s
    committed table, and what the JSON says about the table."""
    from gcsearch.bench.search import Scorer, _mean_top1
    from gcsearch.bench.select import committed_table
    from gcsearch.bench.table import load_table
    from gcsearch.search.sampling import axis_values

    space, path = committed_table(name)
    table = load_table(path, space)
    by_id = {c.id: c for c in space.candidates()}
    rows = []
    for key in Scorer(table, space).searched:
        cand = next(by_id[i] for i in table.networks[key] if i in by_id)
        rows.append((axis_values(cand), _mean_top1(table.results[key])))
    about = {
        "task": table.header["task"],
        "backbone": table.header["backbone"],
        "seeds": table.seeds,
        "networks": len(rows),
        "table": str(path.relative_to(path.parents[2])),
    }
    return rows, about


def fitted(rows: list[tuple[dict[str, Any], float]], effects: dict[str, float]) -> float:
    """Correlation of the fitted effects' sum with the table's top-1 (how much they explain)."""
    from gcsearch.search.prior import feature

    pred = [sum(effects.get(feature(a, v), 0.0) for a, v in values.items()) for values, _ in rows]
    return float(np.corrcoef(pred, [t for _, t in rows])[0, 1])


def run_bench_prior(args: argparse.Namespace) -> int:
    """Fit every table's effects, print how well each fits, write the JSON."""
    from gcsearch.bench import write_figures
    from gcsearch.search.prior import PRIOR_PATH, RIDGE, fit_effects

    names = [s for s in (args.tables or DEFAULT_TABLES).split(",") if s]
    if not names:
        raise UserError(f"--tables: {args.tables!r} (allowed: bench spaces, comma-separated)")
    tables = {}
    for name in names:
        rows, about = table_rows(name)
        eff = fit_effects(rows)
        about["fit_r"] = round(fitted(rows, eff), 3)
        tables[name] = {**about, "effects": eff}
        top = sorted(eff.items(), key=lambda kv: -kv[1])[:3]
        print(
            f"{name} ({about['task']}, {about['networks']} networks): fit r {about['fit_r']:.3f}; "
            "largest effects " + ", ".join(f"{n} {v:+.2f}" for n, v in top)
        )
    data = {
        "command": "gcsearch " + shlex.join(sys.argv[1:]),
        "ridge": RIDGE,
        "units": "standard deviations of the table's top-1 over its searched networks",
        "tables": tables,
    }
    write_figures(data, args.out, str(PRIOR_PATH))
    return 0


__all__ = ["DEFAULT_TABLES", "fitted", "run_bench_prior", "table_rows"]
