"""A made-up exhaustive table for the bench space (structure in accuracy, costs by axis)."""

from __future__ import annotations

import random

from gcsearch.bench.table import Table, _header
from gcsearch.search.space import Space

EPOCHS = 6


def fake_table(space: Space, seed: int = 0, seeds: int = 3) -> Table:
    """Every network of ``space`` under ``seeds`` seeds: top-1 = additive effects of the
    representative candidate's axes + seed noise, learning curves rising from chance."""
    rng = random.Random(seed)
    header = _header(space, list(range(seeds)), "made up by tests/search/_bench_helpers.py")
    effect: dict[str, float] = {}
    results = {}
    for i, (key, ids) in enumerate(header["networks"].items()):
        cid = ids[-1]
        base = 60.0
        for token in cid.replace("@", "-").replace(":", "-").split("-"):
            base += effect.setdefault(token, rng.uniform(-8, 8))
        block = 0 if cid == "none" else 50 + 37 * (i % 11) + 5 * len(cid)
        per_seed = {}
        for s in range(seeds):
            final = min(99.0, max(50.0, base + rng.gauss(0, 1.5)))
            history = [
                {
                    "epoch": e,
                    "val_top1": 50 + (final - 50) * (e / EPOCHS) ** 1.5,
                    "val_loss": 1.0,
                    "seconds": 2.0,
                }
                for e in range(1, EPOCHS + 1)
            ]
            per_seed[s] = {
                "candidate_id": cid,
                "seed": s,
                "status": "complete",
                "top1": final,
                "loss": 1.0,
                "epochs": EPOCHS,
                "history": history,
                "params": 1000 + block // 3,
                "macs": 50_000 + block,
                "block_params": block // 3,
                "block_macs": block,
                "env": {},
            }
        results[key] = per_seed
    return Table(header, results)
