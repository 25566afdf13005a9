"""GCNet's verdicts under adaptive seeds: the conclusions as one group-sequential family.

When ``gcsearch resolve`` has added seeds (the study records its ``sequential.Plan``), a
fixed-sample test on all the seeds is no longer valid: the seeds went where the answer was
open. ``evaluate`` replays the plan's looks instead: at look k every comparison whose
candidates all hold the plan's first n_k (shared) seeds is tested on those seeds with the
sequential boundaries (``report.sequential``), the conclusions forming one Holm family by
alpha recycling. A conclusion decided at a look keeps that verdict; an open one states how
many seeds per candidate it would take at the observed effect. The NL conclusion (not a
comparison of seeds) joins the family as one test at the last look's boundary. ``resolve``
reads the same ``evaluate`` to choose which candidates get seeds, so the report and the
command agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gcsearch.report import sequential as sq
from gcsearch.report.stats import AGREE, CANT_TELL, DISAGREE
from gcsearch.report.tables import Report, seed_map


@dataclass(frozen=True)
class Sequential:
    """One conclusion under the plan: its candidates, the last look all of them reached
    (index, -1 none), the look it was decided at (-1 open), the direction (+1 agree, -1
    disagree), seeds per candidate it would take at the observed effect (open ones)."""

    id: str
    candidates: tuple[str, ...]
    reached: int
    decided_at: int = -1
    direction: int = 0
    needed: int | None = None
    cost_ok: bool | None = True  # False: a costs no less than b; None: cost not recorded
    numbers: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cost_decides(self) -> bool:
        """a costs no less than b: disagree, whatever the seeds say (no seeds go to it)."""
        return self.cost_ok is False

    @property
    def open(self) -> bool:
        return self.decided_at < 0 and not self.cost_decides


def _pair_stats(
    a: Mapping[int, float], b: Mapping[int, float], n: int, floor: float
) -> tuple[float, float, float, float] | None:
    """(mean, sd, se, df) of a - b over their first ``n`` shared seeds (None: fewer)."""
    seeds = sorted(s for s in set(a) & set(b) if math.isfinite(a[s] - b[s]))
    if len(seeds) < n or n < 2:
        return None
    d = np.array([a[s] - b[s] for s in seeds[:n]])
    sd = max(float(d.std(ddof=1)), floor)
    return float(d.mean()), sd, sd / math.sqrt(n), n - 1.0


def plan_of(report: Report) -> sq.Plan | None:
    """The plan ``gcsearch resolve`` recorded on the study, if any."""
    data = report.study.get(sq.PLAN_ATTR)
    return sq.Plan.from_dict(data) if isinstance(data, Mapping) else None


def evaluate(
    report: Report,
    plan: sq.Plan,
    found: Sequence[tuple[Any, Sequence[str], bool | None]],
    step: float,
    nl_p: tuple[float, int] | None = None,
) -> list[Sequential]:
    """The family's sequential outcome. ``found``: per comparison conclusion (``Conclusion``,
    candidate ids a then the alternatives, whether a's cost is lower: None unknown, True when
    the claim has none); ``step``: the sd floor; ``nl_p``: the NL test's (two-sided p,
    direction), one more member of the family."""
    rows = {str(r["spec.id"]): seed_map(r) for _, r in report.rows.iterrows()}
    k_max = len(plan.looks)
    hyps, pa, pd_, reached = [], [], [], []
    for c, ids, _ in found:
        h = sq.hypothesis(c.id, c.kind, len(ids) - 1, c.margin)
        a_seeds = rows[ids[0]]
        last = -1
        pa_j, pd_j = np.full(k_max, np.nan), np.full(k_max, np.nan)
        for k, n in enumerate(plan.looks):
            stats = [_pair_stats(a_seeds, rows[b], n, step) for b in ids[1:]]
            if any(s is None for s in stats):
                break
            mean, _, se, df = (np.array(x) for x in zip(*stats, strict=True))  # type: ignore[arg-type]
            pa_j[k], pd_j[k] = (float(x) for x in sq.hypothesis_p(h, mean, se, df))
            last = k
        hyps.append(h)
        pa.append(pa_j)
        pd_.append(pd_j)
        reached.append(last)
    if nl_p is not None and math.isfinite(nl_p[0]):  # one test, at the last look's boundary
        p1 = nl_p[0] / 2
        hyps.append(sq.Hypothesis("nl", (), (), 1))
        pa.append(np.r_[np.full(k_max - 1, np.nan), p1 if nl_p[1] > 0 else 1.0])
        pd_.append(np.r_[np.full(k_max - 1, np.nan), p1 if nl_p[1] < 0 else 1.0])
        reached.append(k_max - 1)
    if not hyps:
        return []
    out = sq.replay(plan, np.array(pa)[None], np.array(pd_)[None], [h.split for h in hyps])
    m = len(hyps)
    decided = int((out.look[0] >= 0).sum())
    result = []
    for j, (c, ids, cost_ok) in enumerate(found):
        look, direction = int(out.look[0, j]), int(out.direction[0, j])
        needed = None
        level = plan.alpha / max(1, m - decided) / 2
        if look < 0 and reached[j] >= 0:
            needed = _needed(hyps[j], rows, ids, step, level)
        nums = {
            "looks_reached": reached[j] + 1,
            "n": plan.looks[reached[j]] if reached[j] >= 0 else 0,
            "p_agree": _plain(pa[j][reached[j]]) if reached[j] >= 0 else None,
            "p_disagree": _plain(pd_[j][reached[j]]) if reached[j] >= 0 else None,
        }
        result.append(
            Sequential(
                c.id,
                tuple(ids),
                reached[j],
                look,
                direction,
                needed,
                cost_ok=cost_ok,
                numbers=nums,
            )
        )
    if nl_p is not None and math.isfinite(nl_p[0]):
        j = len(found)
        result.append(
            Sequential(
                "nl_query_independent", (), k_max - 1, int(out.look[0, j]), int(out.direction[0, j])
            )
        )
    return result


def _plain(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _needed(
    h: sq.Hypothesis,
    rows: Mapping[str, Mapping[int, float]],
    ids: Sequence[str],
    step: float,
    level: float,
) -> int | None:
    """Seeds per candidate ``h`` would take at its observed effects over every shared seed:
    agree's (all components) when every one points there, else disagree's (any one)."""
    stats = []
    for b in ids[1:]:
        shared = len(set(rows[ids[0]]) & set(rows[b]))
        stats.append(_pair_stats(rows[ids[0]], rows[b], shared, step))
    if any(s is None for s in stats):
        return None

    def need(c: sq.Component, at: float) -> int | None:
        mean, sd, _, df = stats[c.pair]  # type: ignore[misc]
        return sq.seeds_needed(c.sign * (mean - c.shift), sd, at, start=int(df) + 1)

    toward = [c.sign * (stats[c.pair][0] - c.shift) > 0 for c in h.agree]  # type: ignore[index]
    if all(toward):
        counts = [need(c, level) for c in h.agree]
        return None if any(n is None for n in counts) else max(counts)  # type: ignore[type-var]
    counts = [n for c in h.disagree if (n := need(c, level / h.split)) is not None]
    return min(counts) if counts else None


def verdict_of(s: Sequential, plan: sq.Plan) -> tuple[str, str]:
    """(verdict, the sequential sentence) of one conclusion."""
    k, cost_ok = len(plan.looks), s.cost_ok
    if s.reached < 0:
        return CANT_TELL, f"no look reached (fewer than {plan.looks[0]} shared seeds)"
    if s.decided_at >= 0:
        word = AGREE if s.direction > 0 else DISAGREE
        where = (
            f"group-sequential: {word} at look {s.decided_at + 1} of {k} "
            f"(n = {plan.looks[s.decided_at]} seeds per candidate)"
        )
        if cost_ok is False:
            return DISAGREE, f"{where}; but a costs no less than b"
        if cost_ok is None and word == AGREE:
            return CANT_TELL, f"{where}; but the cost is not recorded"
        return word, where
    if s.cost_decides:
        return DISAGREE, "a costs no less than b (decided by the cost; no seeds added)"
    n = plan.looks[s.reached]
    more = (
        f"it would take about {s.needed} seeds per candidate ({max(0, s.needed - n)} more) at "
        "the observed effect and sd (power 0.8, fixed-sample estimate)"
        if s.needed is not None
        else "no seed count up to 1,000 decides it at the observed effect"
    )
    if s.reached == k - 1:
        return CANT_TELL, f"open at the cap (n = {n}, look {k} of {k}); {more}"
    return CANT_TELL, f"open after look {s.reached + 1} of {k} (n = {n}); {more}"


def seeds_table(report: Report) -> pd.DataFrame:
    """Seeds each complete candidate holds (with the ones ``resolve`` added)."""
    rows = report.rows
    if rows.empty:
        return pd.DataFrame(columns=["candidate", "seeds"])
    return pd.DataFrame(
        {
            "candidate": rows["spec.id"].tolist(),
            "seeds": [len(seed_map(r)) for _, r in rows.iterrows()],
        }
    ).sort_values(["seeds", "candidate"], ascending=[False, True])


def note(plan: sq.Plan, report: Report) -> str:
    """What the section says of the method, the looks and the seeds."""
    counts = seeds_table(report)["seeds"]
    spread = f"{counts.min()}–{counts.max()}" if len(counts) else "–"
    return (
        f"Seeds were added adaptively (gcsearch resolve): {sq.METHOD}; {plan.describe()}. "
        f"Candidates hold {spread} seeds (the table). The verdicts are the sequential "
        "ones; the intervals in the tables are descriptive (fixed-sample intervals on "
        "adaptively added seeds are not tests)."
    )


__all__ = ["Sequential", "evaluate", "note", "plan_of", "seeds_table", "verdict_of"]
