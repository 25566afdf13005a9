"""``gcsearch analyze fidelity``: how far a cheap budget's ranking can be trusted.

Compares the ranking of the same candidates at a low budget (fewer epochs, or a run with fewer
images) with their ranking at a high budget: Kendall's τ-b and Spearman's ρ between the
candidates' mean top-1 over seeds, each with a 95 % bootstrap interval, and how many of the
high-budget Pareto front's members the low-budget front also holds.

The bootstrap resamples **seeds** (with replacement, the same draw for every candidate, since
the candidates share their seeds): it answers "how much would the agreement move with other
seeds", the noise a search actually faces. Only candidates with a value at both budgets for
every seed are compared; pruned candidates have no high-budget value, so a run with early
stopping measures the fidelity among the survivors (stated in the output).

Input is a long table with columns ``candidate, seed, budget, top1`` (``budget`` 'low' or
'high') plus ``macs`` / ``params`` for the fronts; ``from_run`` builds it from one run's
per-epoch histories (low = an early epoch, high = the last) and ``from_runs`` from two runs.

Example:
    gcsearch analyze fidelity runs/quick --low-epoch 3
    gcsearch analyze fidelity runs/cheap runs/full
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gcsearch.errors import UserError

BOOTSTRAP = 2000
LEVEL = 0.95


def _means(table: pd.DataFrame, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-candidate mean top-1 over ``seeds`` (repeats allowed) at low and high budget."""
    out = []
    for level in ("low", "high"):
        wide = table[table["budget"] == level].pivot(
            index="candidate", columns="seed", values="top1"
        )
        out.append(wide[list(seeds)].to_numpy(float).mean(axis=1))
    return out[0], out[1]


def _front(top1: np.ndarray, costs: np.ndarray) -> set[int]:
    from gcsearch.pareto import pareto_front

    pts = np.column_stack([top1, costs]) if costs.size else top1.reshape(-1, 1)
    senses = ["max"] + ["min"] * (pts.shape[1] - 1)
    return {int(i) for i in pareto_front(pts, senses)}


def fidelity(
    table: pd.DataFrame, bootstrap: int = BOOTSTRAP, seed: int = 0, level: float = LEVEL
) -> dict[str, Any]:
    """Rank agreement and front overlap between the low and the high budget of ``table``."""
    from scipy.stats import kendalltau, spearmanr

    need = {"candidate", "seed", "budget", "top1"}
    if not need <= set(table.columns):
        raise UserError(f"fidelity: the table needs columns {sorted(need)}")
    t = table.dropna(subset=["top1"])
    seeds_low = t[t["budget"] == "low"].groupby("candidate")["seed"].apply(set)
    seeds_high = t[t["budget"] == "high"].groupby("candidate")["seed"].apply(set)
    shared = sorted(set(seeds_low.index) & set(seeds_high.index))
    both = {c: seeds_low[c] & seeds_high[c] for c in shared}
    seeds = sorted(set().union(*both.values())) if both else []
    keep = [c for c in shared if both[c] >= set(seeds)]  # every seed at both budgets
    if len(keep) < 3 and both:  # fall back to the seeds most candidates completed
        counts = pd.Series([s for v in both.values() for s in v]).value_counts()
        seeds = sorted(int(s) for s in counts.index if counts[s] >= 3)
        keep = [c for c in shared if seeds and both[c] >= set(seeds)]
    if len(keep) < 3:
        raise UserError(
            f"fidelity: {len(keep)} candidates have both budgets under common seeds; need >= 3"
        )
    t = t[t["candidate"].isin(keep) & t["seed"].isin(seeds)]
    t = t.groupby(["candidate", "seed", "budget"], as_index=False)["top1"].mean()
    low, high = _means(t, seeds)
    per_cand = table.groupby("candidate").first()
    cost_cols = [  # a cost enters the fronts only where every compared candidate has it
        c
        for c in ("macs", "params")
        if c in table.columns
        and pd.to_numeric(per_cand.loc[keep, c], errors="coerce").notna().all()
    ]
    costs = per_cand.loc[keep, cost_cols].to_numpy(float) if cost_cols else np.empty((len(keep), 0))
    tau, rho = float(kendalltau(low, high).statistic), float(spearmanr(low, high).statistic)
    rng = np.random.default_rng(seed)
    taus, rhos = [], []
    with warnings.catch_warnings():  # a draw where all means tie gives NaN: left out
        warnings.simplefilter("ignore")
        for _ in range(bootstrap if len(seeds) > 1 else 0):
            draw = rng.choice(seeds, size=len(seeds), replace=True)
            lo, hi = _means(t, draw)
            taus.append(kendalltau(lo, hi).statistic)
            rhos.append(spearmanr(lo, hi).statistic)

    def interval(xs: list[float]) -> list[float]:
        xs = [x for x in xs if math.isfinite(x)]
        if not xs:
            return [math.nan, math.nan]
        q = (1 - level) / 2
        return [float(np.quantile(xs, q)), float(np.quantile(xs, 1 - q))]

    front_high, front_low = _front(high, costs), _front(low, costs)
    return {
        "candidates": keep,
        "seeds": seeds,
        "n_candidates": len(keep),
        "kendall_tau": tau,
        "kendall_tau_ci": interval(taus),
        "spearman_rho": rho,
        "spearman_rho_ci": interval(rhos),
        "bootstrap": len(taus),
        "level": level,
        "front_high": [keep[i] for i in sorted(front_high)],
        "front_low": [keep[i] for i in sorted(front_low)],
        "front_kept": len(front_high & front_low),
        "front_objectives": ["top1:max", *(f"{c}:min" for c in cost_cols)],
        "low_mean": dict(zip(keep, low.tolist(), strict=True)),
        "high_mean": dict(zip(keep, high.tolist(), strict=True)),
    }


# ----------------------------------------------------------------------------- inputs
def _records(target: str, study: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per (candidate, seed): its history and cost, from a run's study (complete and pruned)."""
    from gcsearch.report.frame import load_study

    st = load_study(target, study)
    out = []
    for trial in st.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if "duplicate_of" in attrs:
            continue
        cid = attrs.get("candidate_id") or (attrs.get("candidate") or {}).get("id")
        cost = attrs.get("cost") or {}
        for res in attrs.get("results") or []:
            if not isinstance(res, Mapping) or cid is None:
                continue
            out.append(
                {
                    "candidate": cid,
                    "seed": res.get("seed"),
                    "history": res.get("history") or [],
                    "top1": res.get("top1"),
                    "status": res.get("status"),
                    "macs": cost.get("macs", res.get("macs")),
                    "params": cost.get("params", res.get("params")),
                }
            )
    return out, dict(st.user_attrs)


def _at_epoch(history: Sequence[Mapping[str, Any]], epoch: int) -> float | None:
    for rec in history:
        if rec.get("epoch") == epoch:
            return rec.get("val_top1")
    return None


def from_run(target: str, low_epoch: int | None = None, study: str | None = None) -> pd.DataFrame:
    """Low = top-1 at ``low_epoch`` (default: the run's first rung, else half the epochs),
    high = top-1 at the last epoch of the budget, from each seed's per-epoch history."""
    recs, attrs = _records(target, study)
    last = max((int(h["epoch"]) for r in recs for h in r["history"] if "epoch" in h), default=0)
    if last < 2:
        raise UserError(f"{target}: no per-epoch history with 2 or more epochs to compare")
    if low_epoch is None:
        rungs = (attrs.get("fidelity") or {}).get("rungs") or []
        low_epoch = int(rungs[0]) if rungs and int(rungs[0]) < last else max(1, last // 2)
    if not 1 <= low_epoch < last:
        raise UserError(f"--low-epoch: {low_epoch} (choose from 1 to {last - 1})")
    rows = []
    for r in recs:
        for level, epoch in (("low", low_epoch), ("high", last)):
            v = _at_epoch(r["history"], epoch)
            if v is not None:
                rows.append({**_base(r), "budget": level, "epoch": epoch, "top1": float(v)})
    return pd.DataFrame(rows)


def _base(r: Mapping[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("candidate", "seed", "macs", "params")}


def from_runs(low: str, high: str, study: str | None = None) -> pd.DataFrame:
    """Low = the final top-1 of each complete seed in run ``low``, high = the same in ``high``."""
    rows = []
    for level, target in (("low", low), ("high", high)):
        recs, _ = _records(target, study)
        for r in recs:
            if r["status"] == "complete" and r["top1"] is not None:
                rows.append({**_base(r), "budget": level, "top1": float(r["top1"])})
    return pd.DataFrame(rows)


def from_csv(path: str) -> pd.DataFrame:
    """A long table written by hand or by another tool (columns as ``fidelity`` needs)."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read a CSV table ({type(exc).__name__})") from None


def render(res: Mapping[str, Any], what: str) -> list[str]:
    def ci(v: Sequence[float]) -> str:
        return "no interval (1 seed)" if not math.isfinite(v[0]) else f"[{v[0]:.3f}, {v[1]:.3f}]"

    pct = int(res["level"] * 100)
    lines = [
        f"fidelity: {what}",
        f"{res['n_candidates']} candidates with both budgets under seeds {res['seeds']}",
        f"Kendall τ-b {res['kendall_tau']:.3f}  {pct} % bootstrap over seeds "
        f"{ci(res['kendall_tau_ci'])}",
        f"Spearman ρ  {res['spearman_rho']:.3f}  {pct} % bootstrap over seeds "
        f"{ci(res['spearman_rho_ci'])}",
        f"high-budget front ({', '.join(res['front_objectives'])}): {len(res['front_high'])} "
        f"members, {res['front_kept']} of them on the low-budget front "
        f"(low-budget front: {len(res['front_low'])})",
        f"{'candidate':36s} {'low':>7s} {'high':>7s}",
    ]
    order = sorted(res["high_mean"], key=lambda c: -res["high_mean"][c])
    for c in order:
        mark = " *" if c in res["front_high"] else ""
        lines.append(f"{c:36s} {res['low_mean'][c]:7.2f} {res['high_mean'][c]:7.2f}{mark}")
    lines.append(
        "* on the high-budget front. Pruned candidates (no high-budget value) are left out."
    )
    return lines


def run_analyze_fidelity(args: argparse.Namespace) -> int:
    targets = list(args.targets)
    if args.csv:
        table, what = from_csv(args.csv), f"table {args.csv}"
    elif len(targets) == 1:
        table = from_run(targets[0], args.low_epoch, args.study)
        what = (
            f"{targets[0]}: epoch {int(table[table.budget == 'low'].epoch.iloc[0])} vs "
            f"{int(table[table.budget == 'high'].epoch.iloc[0])}"
            if len(table)
            else targets[0]
        )
    elif len(targets) == 2:
        table, what = from_runs(targets[0], targets[1], args.study), f"{targets[0]} vs {targets[1]}"
    else:
        raise UserError("analyze fidelity: give one run (epochs), two runs (low high) or --csv")
    res = fidelity(table, bootstrap=args.bootstrap)
    for line in render(res, what):
        print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"input": what, **res}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
