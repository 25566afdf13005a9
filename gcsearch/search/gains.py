"""Expected hypervolume improvements of one ehvi ask (``search.strategy``).

Given the searched front (normalised to the unit box, smaller is better on every axis), each
modelled objective's normal per candidate (``search.gp.GP``) and each candidate's exact costs,
the expectation is integrated by Gauss-Hermite quadrature: exactly, candidate by candidate
(each node's improvement by ``pareto.hypervolume``), or screened for large pools (a vectorised
upper bound first, exact only where the bound can still win), with a sliced closed form where
one objective is modelled and at most two are costs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gcsearch.search.gp import CHUNK, GP, Mixture
from gcsearch.search.space import objective

#: A bound at or below this is no improvement; an exact gain must beat the best by more.
SCREEN_TOL = 1e-10
#: Candidates whose exact expectation is taken at once where the sliced form does not apply.
SCREEN_BATCH = 32


def unit_hv(points: np.ndarray) -> float:
    """Hypervolume of normalised points (all minimised) in the unit box."""
    from gcsearch.pareto import hypervolume

    if len(points) == 0:
        return 0.0
    return hypervolume(points, ["min"] * points.shape[1], [1.0] * points.shape[1])


class Gains:
    """Expected hypervolume improvements of one ask: exact (the model's normal integrated by
    quadrature, each node's improvement by ``pareto.hypervolume``) or screened: an upper
    bound for every candidate first, exact only where the bound can still win."""

    def __init__(
        self,
        strategy: Any,  # the asking EHVIStrategy (features, costs, objectives)
        pts: np.ndarray,
        ref: Mapping[str, float],
        ideal: Mapping[str, float],
        models: Mapping[str, GP | Mixture],
    ) -> None:
        from gcsearch.pareto import pareto_front

        self.s, self.ref, self.ideal, self.models = strategy, ref, ideal, models
        self.sd_scale = strategy.settings.sd_scale
        self.pts = pts
        inside = pts[(pts < 1.0).all(axis=1)] if len(pts) else pts
        # hypervolume() keeps the front of what it is given: the front alone gives the same
        self.front = inside[pareto_front(inside, ["min"] * pts.shape[1])] if len(inside) else inside
        self.base = unit_hv(self.front)
        self.grid = list(itertools.product(strategy.nodes, repeat=len(strategy.trained)))
        self.evaluated = 0

    def exact(self, key: str, pred: Mapping[str, tuple[float, float]]) -> float:
        """One candidate's expected improvement (``pred``: mean and sd per modelled metric)."""
        self.evaluated += 1
        gain = 0.0
        pts = self.front
        for combo in self.grid:
            weight = math.prod(w for _, w in combo)
            measured = {
                m.name: float(pred[m.name][0] + self.sd_scale * pred[m.name][1] * node)
                for m, (node, _) in zip(self.s.trained, combo, strict=True)
            }
            v = np.array(self.s._vector(key, measured, self.ref, self.ideal))
            if (v >= 1.0).any() or (len(pts) and (pts <= v).all(axis=1).any()):
                continue  # outside the box or dominated: no improvement
            gain += weight * (unit_hv(np.vstack([pts, v])) - self.base)
        return gain

    def _bounds(self, rows: np.ndarray) -> np.ndarray:
        """Upper bounds of the expected improvement at pool rows: the model's sd replaced by
        an upper bound (the improvement is convex in each modelled value, so its symmetric
        quadrature grows with the sd) and each node's improvement by its box's volume less
        the largest part of it one front point dominates."""
        s = self.s
        names = [objective(o)[0] for o in s.objectives]
        cost_at = {n: j for j, n in enumerate(s._cost_names)}
        out = np.zeros(len(rows))
        front = self.front
        for lo in range(0, len(rows), CHUNK):
            r = rows[lo : lo + CHUNK]
            xs = s._feat[r].astype(float)
            screened = {n: gp.screen(xs) for n, gp in self.models.items()}
            # cost axes: fixed per candidate; their share of each front point's box
            share = np.ones((len(r), len(front)))
            cost_box = np.ones(len(r))
            modelled = []
            for j, name in enumerate(names):
                lo_, hi_ = self.ideal[name], self.ref[name]
                if name in cost_at:
                    c = (s._cost[r, cost_at[name]] - lo_) / (hi_ - lo_)
                    cost_box *= np.clip(1.0 - c, 0.0, None)
                    if len(front):
                        share *= np.clip(1.0 - np.maximum(front[None, :, j], c[:, None]), 0, None)
                else:
                    modelled.append((j, name))
            total = np.zeros(len(r))
            for combo in self.grid:
                weight = math.prod(w for _, w in combo)
                box = cost_box.copy()
                part = share.copy()
                for (j, name), (node, _) in zip(modelled, combo, strict=True):
                    mu, sd = screened[name]
                    val = mu + self.sd_scale * sd * node
                    v = (val - self.ideal[name]) / (self.ref[name] - self.ideal[name])
                    box *= np.clip(1.0 - v, 0.0, None)
                    if len(front):
                        part *= np.clip(1.0 - np.maximum(front[None, :, j], v[:, None]), 0, None)
                best_part = part.max(axis=1) if len(front) else 0.0
                total += weight * np.clip(box - best_part, 0.0, None)
            out[lo : lo + len(r)] = total
        return out

    def _sliced(self, rows: np.ndarray, pred: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Exact expected improvements of many candidates at once, for one modelled objective
        and at most two costs: sliced along the modelled axis, the region a candidate adds
        is, between two front points' levels, its cost box less the front's staircase there
        (``pareto.hypervolume``'s figures to rounding)."""
        s = self.s
        names = [objective(o)[0] for o in s.objectives]
        cost_at = {n: j for j, n in enumerate(s._cost_names)}
        (jm,) = [j for j, n in enumerate(names) if n not in cost_at]
        jc = [j for j, n in enumerate(names) if n in cost_at]
        b = len(rows)
        c = np.zeros((b, 2))
        for col, j in enumerate(jc):
            lo, hi = self.ideal[names[j]], self.ref[names[j]]
            c[:, col] = (s._cost[rows, cost_at[names[j]]] - lo) / (hi - lo)
        f = self.front
        m = len(f)
        p = np.zeros((m, 2))
        for col, j in enumerate(jc):
            p[:, col] = f[:, j]
        levels = np.sort(f[:, jm]) if m else np.zeros(0)
        # staircase of the front points at or below each level, sorted by the first cost
        by_x = np.argsort(p[:, 0], kind="stable")
        x = np.append(p[by_x, 0], 1.0)
        inc = f[by_x, jm][None, :] <= levels[:, None]  # level k x point i
        ymin = np.minimum.accumulate(np.where(inc, p[by_x, 1][None, :], 1.0), axis=1)
        box = np.prod(np.clip(1.0 - c, 0.0, None), axis=1)  # (b,)
        xc = np.maximum(x[None, :], c[:, :1])  # (b, m + 1)
        width = xc[:, 1:] - xc[:, :-1]  # (b, m)
        height = 1.0 - np.maximum(ymin[None, :, :], c[:, None, 1:2])  # (b, levels, m)
        area = np.einsum("bi,bki->bk", width, height) if m else np.zeros((b, 0))
        free = np.concatenate([box[:, None], box[:, None] - area], axis=1)  # (b, levels + 1)
        free = np.clip(free, 0.0, None)
        lower = np.concatenate([[-np.inf], levels])
        upper = np.append(levels, 1.0)
        name = names[jm]
        mu, sd = pred
        out = np.zeros(b)
        for node, w in s.nodes:
            a = (mu + self.sd_scale * sd * node - self.ideal[name]) / (
                self.ref[name] - self.ideal[name]
            )
            span = np.clip(upper[None, :] - np.maximum(lower[None, :], a[:, None]), 0.0, None)
            out += w * (free * span).sum(axis=1)
        return out

    def screened(self, keys: Sequence[str], rows: np.ndarray) -> list[float]:
        """Gains in key order: exact where a candidate's bound reaches the best exact gain
        found (less ``SCREEN_TOL``), its bound elsewhere (it cannot be chosen)."""
        bound = self._bounds(rows)
        values = np.clip(bound, 0.0, None)
        values[bound <= SCREEN_TOL] = 0.0  # no improvement to speak of
        order = np.argsort(-bound, kind="stable")
        sliced = len(self.s.trained) == 1 and len(self.s._cost_names) <= 2
        batch_size = CHUNK if sliced else SCREEN_BATCH
        best = 0.0
        for lo in range(0, len(order), batch_size):
            batch = order[lo : lo + batch_size]
            batch = batch[(bound[batch] >= best - SCREEN_TOL) & (bound[batch] > SCREEN_TOL)]
            if not len(batch):
                break
            xs = self.s._feat[rows[batch]].astype(float)
            predicted = {n: gp.predict_fast(xs) for n, gp in self.models.items()}
            if sliced:
                (pred,) = predicted.values()
                g = self._sliced(rows[batch], pred)
                self.evaluated += len(batch)
                values[batch] = g
                best = max(best, float(g.max()))
                continue
            for j, i in enumerate(batch.tolist()):
                g1 = self.exact(keys[i], {n: (p[0][j], p[1][j]) for n, p in predicted.items()})
                values[i] = g1
                best = max(best, g1)
        return values.tolist()


__all__ = ["SCREEN_BATCH", "SCREEN_TOL", "Gains", "unit_hv"]
