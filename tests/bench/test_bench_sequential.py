"""``gcsearch bench sequential``: the smoke run writes every figure, each at its nominal level
within simulation error, and the plain t conversion's overshoot beside it; the fixed-n rules'
rates likewise, with the earlier best-of stages rule's overshoot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gcsearch.bench.sequential import PLANS
from gcsearch.cli import main


def test_cli_smoke_writes_the_false_verdict_rates(tmp_path: Path) -> None:
    out = tmp_path / "seq.json"
    assert main(["bench", "sequential", "--smoke", "--out", str(out)]) == 0
    fig = json.loads(out.read_text())
    assert fig["studies"] == 20_000 and [p["looks"] for p in fig["plans"]] == list(map(list, PLANS))
    for p in fig["plans"]:
        assert p["type1"]["rate"] <= p["alpha"] + 4 * p["type1"]["se"], p["looks"]
    ten = next(p for p in fig["plans"] if len(p["looks"]) == 10)
    assert ten["type1_plain_t"]["rate"] > ten["type1"]["rate"]  # what the factor corrects
    for name, r in fig["rules"].items():
        assert r["rate"] <= r["nominal"] + 4 * r["se"], name
    assert math.isfinite(fig["family_of_8"]["rate"]) and "O'Brien–Fleming" in fig["method"]
    fixed = fig["fixed_n"]
    assert fixed["sims"] == 20_000 and fixed["n"] == 3
    for name, r in fixed["rules"].items():
        if not name.endswith("_best_of"):
            assert r["rate"] <= fixed["nominal"] + 4 * r["se"], name
    best_of = fixed["rules"]["stages_all_equal_disagree_best_of"]
    assert best_of["rate"] > fixed["nominal"] + 4 * best_of["se"]  # what Bonferroni corrects
