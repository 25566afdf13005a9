"""``gcsearch analyze fidelity``: how far a cheap budget's ranking can be trusted.

Compares the ranking of the same candidates at a low budget (fewer epochs, or a run with fewer
images) with their ranking at a high budget: Kendall's τ-b and Spearman's ρ between the
candidates' mean top-1 over seeds, each with a 95 % interval, and how many of the high-budget
Pareto front's members the low-budget front also holds.

The interval is a **jackknife over seeds** (leave one seed out of every candidate's mean, the
seeds being shared; standard error from the n leave-one-out values, Student t with n - 1
degrees of freedom, clipped to [-1, 1]). It covers the τ that another draw of as many seeds would
give on average (noise lowers τ at few seeds, so this is not the τ of infinitely many seeds).
Its coverage was checked by simulation (25 candidates, seed noise 0.25-2 × their spread):
0.95-0.96 at 3 seeds, 0.97-0.98 at 6, 0.99 at 12 (``tests/analysis/test_fidelity_coverage.py``);
below ``MIN_SEEDS`` it is not given ("too few seeds for an interval"). The percentile bootstrap
over seeds used before covered 0.76-0.87 at 3 seeds (3 seeds have 10 distinct resamples); it is
kept for comparison from ``BOOTSTRAP_MIN_SEEDS`` seeds, where it covered 0.93-0.96.
Only candidates with a value at both budgets for every seed are compared; pruned candidates have
no high-budget value, so a run with early stopping measures the fidelity among the survivors.

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
#: fewest seeds for the jackknife interval (its coverage is checked from here on)
MIN_SEEDS = 3
#: fewest seeds for the comparison bootstrap interval
BOOTSTRAP_MIN_SEEDS = 6
TOO_FEW = f"too few seeds for an interval (< {MIN_SEEDS})"


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b between the last axes of ``x`` and ``y`` (..., K), ties allowed; NaN
    where either side is constant (as scipy.stats.kendalltau)."""
    i, j = np.triu_indices(x.shape[-1], 1)
    sx, sy = np.sign(x[..., i] - x[..., j]), np.sign(y[..., i] - y[..., j])
    with np.errstate(divide="ignore", invalid="ignore"):
        return (sx * sy).sum(-1) / np.sqrt((sx**2).sum(-1) * (sy**2).sum(-1))


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's ρ between the last axes (average ranks for ties); NaN for a constant side."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(-1) / np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))


def jackknife_interval(
    low: np.ndarray, high: np.ndarray, stat: Any = kendall_tau_b, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, lower, upper) of ``stat`` between the seed means of ``low`` and ``high``
    (..., n seeds, K candidates): the jackknife over seeds with a t_{n-1} quantile, clipped to
    [-1, 1]; NaN bounds below ``MIN_SEEDS`` seeds."""
    from scipy.special import stdtrit

    n = low.shape[-2]
    est = stat(low.mean(-2), high.mean(-2))
    if n < MIN_SEEDS:
        nan = np.full_like(est, np.nan)
        return est, nan, nan
    keep = ~np.eye(n, dtype=bool)
    loo = np.stack([stat(low[..., k, :].mean(-2), high[..., k, :].mean(-2)) for k in keep], axis=-1)
    se = np.sqrt((n - 1) / n * ((loo - loo.mean(-1, keepdims=True)) ** 2).sum(-1))
    half = stdtrit(n - 1, 0.5 + level / 2) * se
    return est, np.clip(est - half, -1, 1), np.clip(est + half, -1, 1)


def _wide(table: pd.DataFrame, seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 as (seeds, candidates) arrays at low and high budget."""
    out = []
    for level in ("low", "high"):
        wide = table[table["budget"] == level].pivot(
            index="candidate", columns="seed", values="top1"
        )
        out.append(wide[list(seeds)].to_numpy(float).T)
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
    common = set.intersection(*both.values()) if both else set()
    if len(common) >= MIN_SEEDS:  # every candidate, on the seeds all of them share (a run
        # resolved with more seeds for some candidates is ranked on its first pass's seeds)
        seeds, keep = sorted(common), shared
    else:  # every seed any candidate has, and the candidates that have them all
        seeds = sorted(set().union(*both.values())) if both else []
        keep = [c for c in shared if both[c] >= set(seeds)]
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
    low_w, high_w = _wide(t, seeds)
    low, high = low_w.mean(axis=0), high_w.mean(axis=0)
    per_cand = table.groupby("candidate").first()
    cost_cols = [  # a cost enters the fronts only where every compared candidate has it
        c
        for c in ("macs", "params")
        if c in table.columns
        and pd.to_numeric(per_cand.loc[keep, c], errors="coerce").notna().all()
    ]
    costs = per_cand.loc[keep, cost_cols].to_numpy(float) if cost_cols else np.empty((len(keep), 0))
    tau, rho = float(kendalltau(low, high).statistic), float(spearmanr(low, high).statistic)
    with warnings.catch_warnings():  # all means tied in a leave-one-out: NaN, no interval
        warnings.simplefilter("ignore")
        _, tlo, thi = jackknife_interval(low_w, high_w, kendall_tau_b, level)
        _, rlo, rhi = jackknife_interval(low_w, high_w, spearman_rho, level)
    extra: dict[str, Any] = {}
    if len(seeds) >= BOOTSTRAP_MIN_SEEDS and bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = rng.choice(len(seeds), size=(bootstrap, len(seeds)), replace=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            taus = kendall_tau_b(low_w[draws].mean(1), high_w[draws].mean(1))
        ok = taus[np.isfinite(taus)]
        q = (1 - level) / 2
        extra["kendall_tau_bootstrap_ci"] = (
            [float(np.quantile(ok, q)), float(np.quantile(ok, 1 - q))]
            if ok.size
            else [math.nan, math.nan]
        )
        extra["bootstrap"] = int(ok.size)

    def interval(lo: Any, hi: Any) -> list[float]:
        return [float(lo), float(hi)]

    front_high, front_low = _front(high, costs), _front(low, costs)
    return {
        "candidates": keep,
        "seeds": seeds,
        "n_candidates": len(keep),
        "kendall_tau": tau,
        "kendall_tau_ci": interval(tlo, thi),
        "spearman_rho": rho,
        "spearman_rho_ci": interval(rlo, rhi),
        "interval": f"jackknife over {len(seeds)} seeds, t with {len(seeds) - 1} df",
        **({"no_interval": TOO_FEW} if len(seeds) < MIN_SEEDS else {}),
        **extra,
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
    trials = st.get_trials(deepcopy=False)
    # a duplicate (the same network under another id) and the seeds resolve added to it are
    # its source's results again: counted once, under the source
    twins = {t.number for t in trials if "duplicate_of" in t.user_attrs}
    out = []
    for trial in trials:
        attrs = trial.user_attrs
        if "duplicate_of" in attrs or attrs.get("extends") in twins:
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
        if not math.isfinite(v[0]):
            return res.get("no_interval", "no interval")
        return f"[{v[0]:.3f}, {v[1]:.3f}]"

    pct = int(res["level"] * 100)
    lines = [
        f"fidelity: {what}",
        f"{res['n_candidates']} candidates with both budgets under seeds {res['seeds']}",
        f"Kendall τ-b {res['kendall_tau']:.3f}  {pct} % jackknife over seeds "
        f"{ci(res['kendall_tau_ci'])}",
        f"Spearman ρ  {res['spearman_rho']:.3f}  {pct} % jackknife over seeds "
        f"{ci(res['spearman_rho_ci'])}",
        *(
            [
                f"(for comparison: {pct} % percentile bootstrap over seeds "
                f"{ci(res['kendall_tau_bootstrap_ci'])} for τ)"
            ]
            if "kendall_tau_bootstrap_ci" in res
            else []
        ),
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
