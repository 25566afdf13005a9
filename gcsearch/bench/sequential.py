"""``gcsearch bench sequential``: the false-verdict rates of the group-sequential verdicts
(``gcsearch.report.sequential``) and, under ``fixed_n``, of the fixed-n verdicts at n = 3
(``gcsearch.report.verdicts``, simulated by ``gcsearch.bench.fixed_n``), with equal true means
(or a true Δ on a rule's boundary), written as JSON for the docs: every verdict-rule simulation
from one command.

Each figure is the share of simulated studies (per-seed paired differences ~ N(Δ, 1), every
look reached) in which the rule gave the wrong verdict; the plain conversion of the z
boundaries to t (no small-sample factor) is simulated beside it to show what the factor fixes.

Example:
    gcsearch bench sequential --studies 200000 --out benchmarks/bench-sequential.json
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from gcsearch.bench import write_figures

#: the plans simulated: the default (3 seeds, step 3, cap 12), one seed a look, doubling
PLANS = ((3, 6, 9, 12), tuple(range(3, 13)), (3, 6, 12, 24), (2, 4, 6))


def figures(studies: int, seed: int = 1) -> dict[str, Any]:
    """Every simulated rate, with its studies and simulation standard error."""
    from gcsearch.bench import fixed_n
    from gcsearch.report import sequential as sq

    def rate(hits: Any) -> dict[str, float]:
        p = float(hits.mean())
        return {"rate": p, "se": math.sqrt(max(p * (1 - p), 1e-12) / studies)}

    better = sq.hypothesis("better", "better", 1, 1.0)
    plans = []
    for looks in PLANS:
        plan = sq.Plan(looks)
        out = sq.simulate(plan, [better], studies, seed=seed)
        plain = sq.simulate(plan, [better], studies, seed=seed, calibrated=False)
        plans.append(
            {
                "looks": list(looks),
                "alpha": plan.alpha,
                "type1": rate(out.decided[:, 0]),
                "type1_plain_t": rate(plain.decided[:, 0]),
                "agree": rate(out.direction[:, 0] == 1),
            }
        )
    plan, m = sq.Plan(PLANS[0]), 1.0
    rules = {}
    for name, h, effects, wrong in (
        # one alternative as good as a, the others far behind: "beats every one" is wrong
        ("stages_agree_one_equal", sq.hypothesis("s", "better", 4, m), [0.0, 5.0, 5.0, 5.0], 1),
        ("stages_disagree", sq.hypothesis("s", "better", 4, m), [0.0] * 4, -1),
        ("equivalent_agree_at_margin", sq.hypothesis("e", "equivalent", 1, m), [m], 1),
        ("non_inferior_agree_at_margin", sq.hypothesis("n", "non_inferior", 1, m), [-m], 1),
        ("non_inferior_disagree_at_margin", sq.hypothesis("n", "non_inferior", 1, m), [-m], -1),
    ):
        out = sq.simulate(plan, [h], studies, effects=[effects], seed=seed)
        rules[name] = {**rate(out.direction[:, 0] == wrong), "nominal": plan.alpha / 2}
    family = sq.simulate(plan, [better] * 8, max(2000, studies // 10), seed=seed)
    return {
        "method": sq.METHOD,
        "studies": studies,
        "seed": seed,
        "calibration_studies": 2 * sq.CALIBRATION_STUDIES,
        "plans": plans,
        "rules_on_plan": list(PLANS[0]),
        "rules": rules,
        "family_of_8": {
            **rate(family.decided.any(axis=1)),
            "studies": int(family.decided.shape[0]),
        },
        "fixed_n": fixed_n.figures(studies, seed=seed),
    }


def run_bench_sequential(args: argparse.Namespace) -> int:
    """Simulate, print one line per figure and write the JSON (``--out``)."""
    studies = 20_000 if args.smoke else int(args.studies)
    start = time.perf_counter()
    data = figures(studies)
    data["seconds"] = round(time.perf_counter() - start, 1)
    for p in data["plans"]:
        print(
            f"looks {p['looks']}: type-I {p['type1']['rate']:.4f} ± {p['type1']['se']:.4f} "
            f"(plain t conversion {p['type1_plain_t']['rate']:.4f}) over {studies} studies"
        )
    for name, r in data["rules"].items():
        print(f"{name}: {r['rate']:.4f} ± {r['se']:.4f} (nominal {r['nominal']:g})")
    fam = data["family_of_8"]
    print(f"8 conclusions, familywise: {fam['rate']:.4f} over {fam['studies']} studies")
    fixed = data["fixed_n"]
    for name, r in fixed["rules"].items():
        print(f"fixed n = {fixed['n']}, {name}: {r['rate']:.4f} ± {r['se']:.4f}")
    write_figures(data, args.out, "runs/bench-sequential.json")
    return 0


__all__ = ["PLANS", "figures", "run_bench_sequential"]
