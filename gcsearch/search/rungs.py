"""The rung policy: multi-objective successive halving over candidates, decided synchronously.

Optuna's pruners are single-objective and Ray's ASHA takes one metric, so the rule is written
here. Rungs sit at ``min_epochs * eta**k`` epochs below the full budget (Successive Halving,
Jamieson & Talwalkar 2016, https://arxiv.org/abs/1502.07943). Every searched candidate first
trains all its seeds to the first rung; once every candidate of the search has reported there
the driver asks ``RungPolicy.decide``, which ranks them on the mean over each candidate's seeds
as NSGA-II ranks a population (Deb et al. 2002): non-dominated front first, then crowding
distance, then accuracy, then candidate id; the top ``max(1, n // eta)`` go on to the next
rung, continuing the training state their rung run kept (a rung run is the prefix of the full
run under the same schedule, so the promotion ends where the full run ends). Costs are known
before training, so the rung vector is the objective vector with the rung's mean validation
accuracy in it.

The interface is Ray Tune's ``on_trial_result -> CONTINUE/STOP`` taken a rung at a time:
``decide(epoch, members, anchors)`` answers continue or stop for each candidate of the rung,
because a synchronous rule needs the whole rung to rank one candidate. So the outcome depends
neither on the order trials finish in nor on an interrupt and resume. Asynchronous promotion
(ASHA) was dropped: its outcome depended on that order.

While a rung waits on its last members, a slot with nothing else to do may start the next
segment of a waiting candidate that ``RungPolicy.likely`` finds sure to go on
(``Driver.start_early``, ``[fidelity] speculate``): the same job it would run once promoted, so
the decision and every result stay as they are; a candidate the decision stops loses that work.

Reference rows (the baseline and presets) shape the fronts (a candidate a preset dominates
ranks behind it) but take no promotion slot and are never stopped. Pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gcsearch.pareto import nsga_order
from gcsearch.search.space import objective
from gcsearch.spec import METRICS

Vector = tuple[float, ...]
Results = Sequence[Mapping[str, Any]]


def rung_vector(objectives: Sequence[str], metrics: Mapping[str, float]) -> Vector:
    """The objective vector as minimisation (``top1:max`` enters as ``-top1``)."""
    out = []
    for obj in objectives:
        name, sense = objective(obj)
        value = float(metrics[name])
        out.append(-value if sense == "max" else value)
    return tuple(out)


def rank_rung(
    members: Mapping[str, Sequence[float]], anchors: Mapping[str, Sequence[float]], eta: int
) -> tuple[list[str], int]:
    """Candidate ids best first at one rung, and how many go on (``max(1, n // eta)``).

    Deterministic: ties fall to the id, so the outcome depends only on the figures.
    """
    vec = {
        k: tuple(float(x) for x in v)
        for k, v in members.items()
        if all(math.isfinite(float(x)) for x in v)
    }
    ids = sorted(vec) + sorted(a for a in anchors if a not in vec)
    points = [vec[i] if i in vec else tuple(anchors[i]) for i in ids]
    ranked = [ids[i] for i in nsga_order(points) if ids[i] in vec]
    return ranked, max(1, len(ranked) // eta)


def result_cost(results: Results) -> dict[str, int]:
    """The counted cost a candidate's seed results carry (every seed counts the same)."""
    for r in results:
        if r.get("params") is not None and r.get("macs") is not None:
            return {
                k: int(r[k])
                for k in ("params", "macs", "block_params", "block_macs")
                if r.get(k) is not None
            }
    return {}


def _validation(result: Mapping[str, Any], epoch: int) -> Mapping[str, Any] | None:
    """One seed's history record of ``epoch`` if it validated there, else None."""
    rec = next((h for h in result.get("history") or [] if int(h.get("epoch", 0)) == epoch), None)
    return rec if rec is not None and rec.get("val_top1") is not None else None


def validated_at(results: Results, epoch: int) -> Results:
    """The seed results that validated at ``epoch``."""
    return [r for r in results if _validation(r, epoch) is not None]


def rung_metrics(results: Results, epoch: int) -> dict[str, Any] | None:
    """Every registered metric of a candidate at ``epoch``: trained metrics measured per epoch
    from the seeds' histories (None unless every seed validated there), the others from the
    results, costs as counted; ``top1_seeds`` lists each seed's top-1."""
    rows = []
    for r in results:
        rec = _validation(r, epoch)
        if rec is None:
            return None
        rows.append(rec)
    if not rows:
        return None
    out: dict[str, Any] = {k: float(v) for k, v in result_cost(results).items()}
    for metric in METRICS.values():
        if metric.source == "counted":
            continue
        if metric.at_epoch:
            seen = [float(h[metric.at_epoch]) for h in rows if h.get(metric.at_epoch) is not None]
            out[metric.name] = metric.average_of(seen)
        else:
            out[metric.name] = metric.over(results)
    out["top1_seeds"] = [float(h["val_top1"]) for h in rows]
    return out


@dataclass(frozen=True)
class Decision:
    """One candidate's fate at a rung: ``stop``, or go on to ``next_at`` (None: the full
    budget); ``record`` is what the trial record and ``run.json`` keep of it."""

    stop: bool
    next_at: int | None
    record: dict[str, Any]

    @property
    def reason(self) -> str:
        """The pruned seed results' reason."""
        r = self.record
        return (
            f"stopped at rung epoch {r['epoch']} "
            f"(candidate ranked {r['position']} of {r['of']}, kept {r['keep']})"
        )


class RungPolicy:
    """Synchronous successive halving at the epochs ``rungs`` (empty: every candidate trains
    the full budget)."""

    def __init__(self, rungs: Sequence[int], eta: int, objectives: Sequence[str]) -> None:
        self.rungs, self.eta, self.objectives = tuple(rungs), eta, tuple(objectives)

    def __bool__(self) -> bool:
        return bool(self.rungs)

    def first(self, role: str) -> int | None:
        """The epoch a new candidate trains to first: reference rows train the full budget."""
        return self.rungs[0] if self.rungs and role == "search" else None

    def due(self, searched: Iterable[tuple[int | None, bool]]) -> int | None:
        """The rung to decide now, given each searched candidate in flight as ``(epoch its
        segment stops at, whether it reached it)``: the lowest rung with candidates, once all
        of them reached it and none trains towards a lower one; else None."""
        searched = list(searched)
        for epoch in self.rungs:
            reached = [done for stop, done in searched if stop == epoch]
            if not reached:
                continue
            if not all(reached) or any(s is not None and s < epoch for s, _ in searched):
                return None
            return epoch
        return None

    def next_at(self, epoch: int) -> int | None:
        """Where a candidate promoted at rung ``epoch`` trains to (None: the full budget)."""
        k = self.rungs.index(epoch)
        return self.rungs[k + 1] if k + 1 < len(self.rungs) else None

    def _ranked(
        self, epoch: int, members: Mapping[str, Results], anchors: Mapping[str, Results]
    ) -> tuple[list[str], int, dict[str, dict[str, Any]], list[str]]:
        """``rank_rung`` of ``members`` at ``epoch`` against ``anchors``, each member's rung
        figures and the anchors that had figures there."""
        vectors, figures = {}, {}
        for cid, results in members.items():
            m = rung_metrics(results, epoch)
            if m is not None:
                vectors[cid], figures[cid] = rung_vector(self.objectives, m), m
        points = {}
        for cid, results in anchors.items():  # the seeds that validated here: a reference
            m = rung_metrics(validated_at(results, epoch), epoch)  # row's added seeds did not
            if m is not None:
                points[cid] = rung_vector(self.objectives, m)
        ranked, keep = rank_rung(vectors, points, self.eta)
        return ranked, keep, figures, sorted(points)

    def likely(
        self,
        epoch: int,
        reported: Mapping[str, Results],
        anchors: Mapping[str, Results],
        members: int,
    ) -> list[str]:
        """The candidates of ``reported`` (some of the rung's ``members``) that go on even if
        every member still training ranks above them, best first: those ranked within the
        rung's keep less the members still out. A heuristic for starting work early, never
        a decision: a newcomer can also reorder a front's crowding distances."""
        ranked, _, _, _ = self._ranked(epoch, reported, anchors)
        sure = max(1, members // self.eta) - (members - len(reported))
        return ranked[: max(0, sure)]

    def decide(
        self, epoch: int, members: Mapping[str, Results], anchors: Mapping[str, Results]
    ) -> dict[str, Decision]:
        """Continue or stop for each candidate id of the rung at ``epoch`` (``members``: its
        seed results); ``anchors``, the complete reference rows, shape the ranking only. A
        candidate with no figures at the rung ranks last and stops."""
        ranked, keep, figures, points = self._ranked(epoch, members, anchors)
        nxt = self.next_at(epoch)
        out = {}
        for cid in members:
            position = ranked.index(cid) + 1 if cid in ranked else len(ranked)
            stop = cid not in ranked or position > keep
            record = {
                "epoch": epoch,
                "position": position,
                "of": len(ranked),
                "keep": keep,
                "stop": stop,
                "top1_mean": figures.get(cid, {}).get("top1"),
                "top1_seeds": figures.get(cid, {}).get("top1_seeds"),
                "anchors": points,
            }
            out[cid] = Decision(stop, None if stop else nxt, record)
        return out


__all__ = [
    "Decision",
    "RungPolicy",
    "rank_rung",
    "result_cost",
    "rung_metrics",
    "rung_vector",
    "validated_at",
]
