"""GCNet's Table 1 over trained models: is Non-local attention query-independent, with intervals?

``gcsearch analyze nl`` writes one row per (trained model, NL block) with the paper's distances
(``gcsearch.analysis.nl``: (1 - cos) / 2 averaged over all N² position pairs, all-zero vectors
left out and counted). This module pools those rows per instantiation (candidate and block) over
the models, i.e. over seeds, and tests the paper's reading of Table 1 without thresholds: the
attention maps of different queries, and the block's outputs, are *closer* than the block's
inputs at different positions. Per model the differences ``input - attention`` and ``input -
output`` are taken; over at least ``MIN_MODELS`` models a one-sided t-test asks whether they are
above 0 (agree) or below 0 (disagree). Across instantiations ``stats.decide("better", ...)``
is used: agree needs every tested difference above 0 (intersection-union), disagree any below 0
(Bonferroni). An *inert* block (its output z - x does not depend on the input, so the distances
say nothing about attention) is reported as such and left out of the evidence. The models were
trained on a proxy task with the block at fixed positions: a finding holds "on this proxy".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gcsearch.errors import UserError
from gcsearch.report.stats import mean_ci

#: fewest trained models per instantiation for an interval and a verdict
MIN_MODELS = 3
#: the distance definition ``gcsearch analyze nl`` writes; older JSON is not comparable
DEFINITION = "gcnet-table1"


def _key(r: Mapping[str, Any]) -> tuple[str, str]:
    return str(r.get("candidate", "?")), str(r.get("block", "?"))


def _ci(xs: Sequence[float]) -> dict[str, float]:
    m, h, n = mean_ci([x for x in xs if x is not None and math.isfinite(x)])
    return {"mean": m, "ci95": h, "n": n}


def summarize(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per instantiation (candidate, block): its models, how many are inert, the
    mean ± 95 % t-interval over live models of each distance, and the per-model differences
    ``input - attention`` and ``input - output`` with their mean, standard error and df."""
    groups: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        # one row per model: a seed's checkpoint kept twice (the run's best beside its seed
        # folder) counts once
        seed = r.get("seed")
        model = f"seed {seed}" if seed is not None else str(r.get("weights", id(r)))
        groups.setdefault(_key(r), {})[model] = r
    out = []
    for (cand, block), models in groups.items():
        ms = list(models.values())
        live = [m for m in ms if not m.get("inert", False)]
        rec: dict[str, Any] = {
            "candidate": cand,
            "block": block,
            "mode": ms[0].get("mode", "?"),
            "task": ms[0].get("task", ""),
            "models": len(ms),
            "inert": len(ms) - len(live),
            "live": len(live),
            "images": min(int(m.get("images", 0)) for m in ms),
            "zero_rows": max(float(m.get("attention_zero_rows", 0.0)) for m in ms),
        }
        for key in ("input", "output", "attention", "jsd"):
            rec[key] = _ci([float(m[key]) for m in live])
        for key in ("attention", "output"):
            d = np.asarray([float(m["input"]) - float(m[key]) for m in live], dtype=float)
            d = d[np.isfinite(d)]
            n = len(d)
            sd = float(d.std(ddof=1)) if n >= 2 else math.nan
            rec[f"gap.{key}"] = {
                "mean": float(d.mean()) if n else math.nan,
                "se": sd / math.sqrt(n) if n >= 2 else math.nan,
                "df": n - 1,
                "n": n,
            }
        out.append(rec)
    return out


def _pm(c: Mapping[str, float]) -> str:
    return f"{c['mean']:.3f}" + (f" ± {c['ci95']:.3f}" if math.isfinite(c["ci95"]) else "")


def nl_evidence(
    rows: Sequence[Mapping[str, Any]] | None,
) -> tuple[str, str, dict[str, Any], float, int]:
    """(verdict when untested, evidence, numbers, p, direction) for the query-independence
    conclusion. An empty first item means: the verdict is ``direction`` (+1 agree, -1
    disagree) if ``p`` (two-sided scale, Holm-adjusted by the caller) is below alpha."""
    from gcsearch.report.stats import CANT_TELL, NOT_IN_RUN, decide

    if not rows:
        return (
            NOT_IN_RUN,
            "no NL analysis given (gcsearch analyze nl RUN --json FILE)",
            {},
            math.nan,
            0,
        )
    need = ("candidate", "input", "output", "attention")
    if not isinstance(rows, Sequence) or not all(
        isinstance(r, Mapping) and all(k in r for k in need) for r in rows
    ):
        raise UserError(
            f"--nl: not the JSON of gcsearch analyze nl (a list of rows with {', '.join(need)})"
        )
    rows = list(rows)
    if any(r.get("definition") != DEFINITION for r in rows):
        return (
            f"{CANT_TELL} (earlier distance definition)",
            f"{len(rows)} NL rows computed with an earlier definition (1 - cos over i ≠ j, "
            "one model each), not the paper's; rerun gcsearch analyze nl",
            {},
            math.nan,
            0,
        )
    recs = summarize(rows)
    task = ", ".join(sorted({str(r["task"]) for r in recs if r["task"]})) or "the run's task"
    parts, nums_inst = [], []
    tested, short, inert = [], [], []
    for r in recs:
        name = f"{r['candidate']} {r['block']}"
        if r["live"] == 0:
            inert.append(r)
            parts.append(
                f"{name}: inert (output does not depend on the input) in all "
                f"{r['models']} models, no evidence"
            )
            continue
        note = f", {r['inert']} inert left out" if r["inert"] else ""
        zero = (
            f", {r['zero_rows']:.0%} all-zero attention rows left out" if r["zero_rows"] > 0 else ""
        )
        if r["live"] < MIN_MODELS:
            short.append(r)
            parts.append(
                f"{name}: {r['live']} model(s){note}, fewer than {MIN_MODELS}: no "
                f"interval (inputs {_pm(r['input'])}, outputs {_pm(r['output'])}, "
                f"attention {_pm(r['attention'])}{zero})"
            )
            continue
        tested.append(r)
        parts.append(
            f"{name} over {r['live']} models{note}: inputs {_pm(r['input'])}, "
            f"outputs {_pm(r['output'])}, attention {_pm(r['attention'])}"
            + (f", JSD {_pm(r['jsd'])} nats" if math.isfinite(r["jsd"]["mean"]) else "")
            + zero
        )
        nums_inst.append(r)
    nums: dict[str, Any] = {
        "instantiations": recs,
        "tested": len(tested),
        "fewer_than_min": len(short),
        "inert": len(inert),
        "min_models": MIN_MODELS,
        "task": task,
    }
    head = (
        f"on this proxy ({task}, fixed block positions): paper's distance (1 - cos)/2 "
        f"over all N² pairs, mean ± 95 % over models; "
    )
    text = head + "; ".join(parts)
    if short or not tested:
        why = (
            f"fewer than {MIN_MODELS} trained models per instantiation: no verdict"
            if short
            else "every NL block is inert: no evidence"
        )
        label = (
            f"{CANT_TELL} (fewer than {MIN_MODELS} models per instantiation)"
            if short
            else f"{CANT_TELL} (inert blocks)"
        )
        return label, f"{text}; {why}", nums, math.nan, 0
    gaps = [r[f"gap.{k}"] for r in tested for k in ("attention", "output")]
    p, direction = decide(
        "better", [g["mean"] for g in gaps], [g["se"] for g in gaps], [g["df"] for g in gaps]
    )
    nums.update({"p": float(p), "direction": int(direction)})
    test = (
        f"; test: inputs farther apart than attention maps and than outputs in every "
        f"instantiation ({len(gaps)} one-sided t-tests over models, intersection-union "
        f"for agree, Bonferroni for disagree)"
    )
    return "", text + test, nums, float(p), int(direction)


__all__ = ["DEFINITION", "MIN_MODELS", "nl_evidence", "summarize"]
