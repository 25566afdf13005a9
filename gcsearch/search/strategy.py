"""The default strategy: expected hypervolume improvement over the enumerated networks.

A small space can be listed: every distinct network (``sampling.network_key``) and its exact
cost (fvcore, counted before anything trains). Only what training measures is unknown (top-1,
loss, latency: the registry's ``trained`` metrics, ``spec.METRICS``), so the strategy models
each of those objectives alone: a Gaussian process on a one-hot encoding of the candidate's
axes (RBF kernel, length scale and noise by marginal likelihood over a small grid), fitted to
its mean over seeds for the networks trained so far. The top-1 model's prior mean carries
what the project's exhaustive tables measured of each axis value (``search.prior``: one main
effect per ``axis=value``, averaged over four tasks), weighed by marginal likelihood against
the results (``[search] prior = "off"`` removes it). It proposes the untrained network with the
largest expected increase of the searched front's hypervolume (exact costs, the modelled
objectives integrated over their normals by Gauss-Hermite quadrature, a product rule when
several are modelled), after a few uniform random networks (``EHVISettings.starts``); with
costs alone it needs no model. Parallel trials (``EHVISettings.batch_rule``): networks in
flight join the models at their predicted means, the hyperparameters fitted to real results
kept (the "kriging believer" batch rule), so the next proposal looks elsewhere; a proposal
made before two results are back while others are in flight maximises the same expectation
under a prior over the box instead of drawing
uniformly. A network already answered or in flight is never proposed. Above ``SCREEN_ABOVE``
untrained networks an ask is screened (an upper bound for all, the exact expectation where
it can win), so it stays under a second at 10^5 candidates (``gcsearch bench asks``).
Hypervolume is taken in the study's fixed box (``hv_box``), the same one the report and
``gcsearch bench search`` score in; an objective with no bound before training (latency) is
bounded by the values measured (``open_box``). The model is ``search.gp``, the expectations
``search.gains``; this module chooses what they are asked.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from gcsearch.search.gains import Gains
from gcsearch.search.gp import ADDITIVE_WEIGHTS, CHUNK, GP, Mixture, sq_distances
from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import axis_values, grid_values, network_key
from gcsearch.search.space import Space, objective
from gcsearch.spec import METRICS, Candidate

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(12)
_GH_W = _GH_W / _GH_W.sum()
COST_KEYS = ("params", "macs", "block_params", "block_macs")
#: Pools larger than this are screened: an upper bound of every candidate's expected
#: improvement (vectorised), the exact expectation only where the bound can still win. Smaller
#: pools are evaluated exactly, candidate by candidate.
SCREEN_ABOVE = 512
#: How networks in flight join the model: "kb" (kriging believer: at the predicted mean, the
#: model refitted), "kb-fixed" (at the mean, hyperparameters kept), "cl" (a constant liar at
#: the worst value measured, hyperparameters kept); "+fill": starts made while others are in
#: flight go as far from them as the space allows instead of uniformly; "+prior": such starts
#: maximise the expected improvement under a prior over the box (mean mid-box, sd a quarter of
#: it), the networks in flight at its mean. With nothing in flight every rule proposes the same.
BATCH_RULES = tuple(f"{r}{s}" for r in ("kb", "kb-fixed", "cl") for s in ("", "+fill", "+prior"))


@dataclass(frozen=True)
class EHVISettings:
    """What ``ehvi`` was tuned over (``gcsearch bench select``: chosen on some exhaustive
    tables, scored on one it was not tuned on; docs/search-benchmark.md).

    ``starts``: uniform random networks before the model proposes. ``sd_scale``: the model's
    standard deviation is widened by this factor in the expectation (exploration).
    ``batch_rule``: one of ``BATCH_RULES``."""

    sd_scale: float = 1.5
    starts: int = 2
    batch_rule: str = "kb-fixed+prior"
    #: every n-th model proposal (0: never) looks only one axis away from the best networks
    #: measured (a trust region in Hamming distance, as CASMOPOLITAN; Wan et al., 2021): a
    #: needle next to a good network is tried even where the model's smooth guess misses it
    local_every: int = 0
    #: add an additive part to the kernel: one-hot features' dot product over the number of
    #: axes is a sum of one kernel per axis (main effects, as in Kandasamy et al., 2015), so
    #: "avgmax helps" learned on one network carries to untried ones; the squared-exponential
    #: kernel on one-hot distance alone is a product over axes (every interaction)
    additive: bool = False
    #: start the top-1 model from the axis-value effects measured on the committed exhaustive
    #: tables (``gcsearch.search.prior``), weighed by marginal likelihood against the results
    prior: bool = False
    #: average the top-1 model over the prior's weights by their evidence (``gp.Mixture``)
    #: instead of believing the likelier one: with few results the evidence cannot tell
    #: whether the tables' effects hold, and a wrong prior believed in full leads a small
    #: budget astray
    average: bool = False
    #: pseudo-results (0: none) that pool a quarter of the box into each model's signal
    #: spread (``gp._amplitude``): the spread of a few results says little, and where they all
    #: sit at chance the plain estimate makes every network look alike
    amplitude: int = 0
    #: tables left out of that prior (a benchmark replaying a table leaves it out); not a
    #: tuning knob, so not in ``label``
    prior_without: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, base: EHVISettings | None = None) -> EHVISettings:
        """``"sd_scale=2,starts=4"`` over ``base`` (default: the class's defaults, never the
        shipped settings, so a label that leaves a field at its default cannot inherit another
        setting's value and keeps its meaning when ``SHIPPED`` changes); raises ValueError
        naming the allowed keys and values."""
        out = base or cls()
        for item in (i.strip() for i in text.split(",") if i.strip()):
            key, eq, value = item.partition("=")
            if not eq or key not in {f.name for f in fields(cls)}:
                raise ValueError(
                    f"{item} (allowed: sd_scale=X, starts=N, batch_rule=RULE, "
                    "local_every=N, additive=on|off, prior=on|off, average=on|off, amplitude=N)"
                )
            if key == "batch_rule":
                if value not in BATCH_RULES:
                    raise ValueError(f"batch_rule={value} (allowed: {', '.join(BATCH_RULES)})")
                out = replace(out, batch_rule=value)
            elif key in ("additive", "prior", "average"):
                if value not in ("on", "off"):
                    raise ValueError(f"{key}={value} (allowed: on, off)")
                out = replace(out, **{key: value == "on"})
            elif key in ("starts", "local_every", "amplitude"):
                low = 1 if key == "starts" else 0
                if not value.isdigit() or int(value) < low:
                    raise ValueError(f"{key}={value} (allowed: integers >= {low})")
                out = replace(out, **{key: int(value)})
            else:
                try:
                    scale = float(value)
                except ValueError:
                    scale = -1.0
                if not scale > 0:
                    raise ValueError(f"sd_scale={value} (allowed: numbers > 0)")
                out = replace(out, sd_scale=scale)
        return out

    def label(self) -> str:
        """``sd_scale=1.5,starts=2,batch_rule=kb-fixed+prior,prior=on``: what ``parse`` reads
        back (``prior`` always said: a label means the same whatever the defaults become)."""
        out = f"sd_scale={self.sd_scale:g},starts={self.starts},batch_rule={self.batch_rule}"
        out += f",local_every={self.local_every}" if self.local_every else ""
        out += ",additive=on" if self.additive else ""
        out += ",average=on" if self.average and self.prior else ""
        out += f",amplitude={self.amplitude}" if self.amplitude else ""
        return out + (",prior=on" if self.prior else ",prior=off")


def space_costs(
    space: Space,
    input_shape: Sequence[int],
    num_classes: int,
    stop: Callable[[], bool] | None = None,
) -> dict[str, dict[str, int]]:
    """Network key -> exact cost of every distinct network of the space and its reference rows,
    counted once before training.

    A block adds the same cost at every residual block of a stage, so a network's cost is the
    backbone's plus, per stage, (blocks it holds) x (one block's cost, counted alone by fvcore
    as ``gcsearch.cost.block_analysis`` counts it inside a model). That is one small count per
    (block, stage) instead of one whole-model trace per network (full.toml: 1,102 networks);
    ``tests/search/test_strategy.py`` checks it equals ``count_cost`` network by network.
    Networks this cannot split (non-block presets such as NL) are counted whole.
    ``stop`` is asked before each network: where it answers true the count ends there and
    returns what it has (a search stopped while its costs were counted on a thread).
    """
    from gcsearch.cost import count_cost

    counter = _BlockCounter(space, tuple(input_shape), num_classes)
    out: dict[str, dict[str, int]] = {}
    for cand in [*space.references(), *space.candidates()]:
        if stop is not None and stop():
            break
        key = network_key(cand, space.backbone, space.min_hidden)
        if key in out:
            continue
        cost = counter.cost(cand)
        if cost is None:
            whole = count_cost(
                cand,
                space.backbone,
                tuple(input_shape),
                num_classes=num_classes,
                min_hidden=space.min_hidden,
            )
            cost = {k: int(v) for k, v in whole.to_dict().items() if k in COST_KEYS}
        out[key] = cost
    return out


class _BlockCounter:
    """Backbone cost plus per-(block, stage) block costs (see ``space_costs``)."""

    def __init__(self, space: Space, input_shape: tuple[int, ...], num_classes: int) -> None:
        import torch

        from gcsearch.backbones import build_model, get_backbone
        from gcsearch.cost import count_cost

        self.space = space
        base = count_cost(
            Candidate.none(),
            space.backbone,
            input_shape,
            num_classes=num_classes,
            min_hidden=space.min_hidden,
        )
        self.base = (base.params, base.macs)
        spec = get_backbone(space.backbone)
        model = build_model(
            Candidate.none(), space.backbone, num_classes=num_classes, in_chans=input_shape[0]
        ).eval()
        shapes: dict[str, tuple[int, ...]] = {}
        hooks = []
        for stage, attr in spec.stages.items():
            layer = getattr(model, attr)
            self_counts = len(list(layer))
            shapes[f"n:{stage}"] = (self_counts,)
            hooks.append(
                layer.register_forward_hook(
                    lambda _m, _i, out, st=stage: shapes.__setitem__(st, tuple(out.shape[1:]))
                )
            )
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        for h in hooks:
            h.remove()
        self.shapes = shapes
        self.units: dict[tuple[str, str], tuple[int, int]] = {}

    def _unit(self, cand: Candidate, stage: str) -> tuple[int, int]:
        import torch

        from gcsearch.blocks import build_block
        from gcsearch.cost import block_analysis

        block_key = cand.block.id if cand.block is not None else str(cand.preset)
        if (block_key, stage) not in self.units:
            shape = self.shapes[stage]
            block = build_block(cand, shape[0], min_hidden=self.space.min_hidden)
            with torch.no_grad():
                macs = int(block_analysis(block, shape).total())
            params = sum(p.numel() for p in block.parameters())
            self.units[(block_key, stage)] = (params, macs)
        return self.units[(block_key, stage)]

    def cost(self, cand: Candidate) -> dict[str, int] | None:
        if cand.is_baseline:
            params, macs = self.base
            return {"params": params, "macs": macs, "block_params": 0, "block_macs": 0}
        if cand.block is None:
            return None  # a preset other than a plain spec: counted whole
        bp = bm = 0
        for stage in cand.placement.stages:
            n = 1 if cand.placement.density == "last" else self.shapes[f"n:{stage}"][0]
            p, m = self._unit(cand, stage)
            bp, bm = bp + n * p, bm + n * m
        params, macs = self.base
        return {"params": params + bp, "macs": macs + bm, "block_params": bp, "block_macs": bm}


def hv_box(
    objectives: Sequence[str],
    costs: Mapping[str, Mapping[str, float]],
    num_classes: int,
    searched: Collection[str] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """The study's fixed hypervolume box: (reference point, ideal point) per objective.

    Each objective's side is its registry entry's ``box`` (``spec.METRICS``): top-1 spans
    chance (``100 / classes``) to 100; loss spans ``ln(classes)`` to 0; a counted cost spans the
    cheapest of the ``searched`` networks and the plain backbone (``none``, when
    counted: no block is the zero of an added cost) to that plus 1.1 x the searched networks'
    cost range. Reference rows never stretch the box: one NL row would otherwise lengthen the
    block-MACs axis five-fold and shrink every searched network's share of it. The search and
    ``gcsearch bench search``'s scorer both take their box from here. ``searched``: the
    network keys of the space's candidates (default: every key in ``costs``).
    """
    keys = list(costs) if searched is None else [k for k in searched if k in costs]
    reference, ideal = {}, {}
    for obj in objectives:
        metric = METRICS[objective(obj)[0]]
        name = metric.name
        if metric.box == "accuracy":
            reference[name], ideal[name] = 100.0 / max(1, num_classes), 100.0
        elif metric.box == "loss":
            reference[name], ideal[name] = math.log(max(2, num_classes)), 0.0
        elif metric.source == "counted":
            values = [float(costs[k][name]) for k in keys if costs[k].get(name) is not None]
            base = costs.get("none", {}).get(name)
            lo = min(values + ([float(base)] if base is not None else []), default=0.0)
            hi = max(values) if values else lo + 1.0
            ideal[name] = lo
            reference[name] = lo + 1.1 * ((hi - lo) or max(1.0, abs(lo)))
        # a trained metric without a natural range (latency) has no bound before training:
        # the strategy and the report bound it by the values measured (see ``open_box``)
    return reference, ideal


def open_box(
    reference: Mapping[str, float],
    ideal: Mapping[str, float],
    measured: Mapping[str, Sequence[float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """The box with every axis it left open (a trained metric such as latency) bounded by the
    values measured so far: 0 to 1.1 x the largest."""
    ref, ide = dict(reference), dict(ideal)
    for name, values in measured.items():
        if name not in ref and values:
            ide[name], ref[name] = 0.0, 1.1 * max(values) or 1.0
    return ref, ide


def searched_networks(space: Space) -> list[str]:
    """The network keys the space's candidates build (reference rows aside): what a box spans."""
    return list(
        dict.fromkeys(network_key(c, space.backbone, space.min_hidden) for c in space.candidates())
    )


def normalise(
    values: Sequence[float],
    objectives: Sequence[str],
    reference: Mapping[str, float],
    ideal: Mapping[str, float],
) -> list[float]:
    """An objective vector in the box as minimisation in [0, 1] (ideal 0, reference 1)."""
    out = []
    for v, obj in zip(values, objectives, strict=True):
        name = objective(obj)[0]
        out.append((float(v) - ideal[name]) / (reference[name] - ideal[name]))
    return out


#: What a search runs with unless told otherwise: the setting ``gcsearch bench select`` chose
#: on all four exhaustive tables, the local step with the tables' prior
#: (benchmarks/bench-select.json), with the prior's weight averaged and one pseudo-result in the
#: signal's spread, which ``bench.select.choose_small_budget`` chose over it on tuning seeds for
#: small budgets (benchmarks/small-budget/tune-*.json; tests/bench/test_select.py checks both
#: agree). The class's own defaults (nothing turned on) are what a label is read over, so a
#: label keeps its meaning when the shipped settings change.
SHIPPED = EHVISettings(local_every=3, prior=True, average=True, amplitude=1)


def _box_sd(lo: float, hi: float) -> float:
    """The spread a model assumes before results say otherwise: a quarter of the box (the
    prior over the box, and the pseudo-results ``amplitude`` pools in)."""
    return abs(hi - lo) / 4


def _features(cand: Candidate, choices: Mapping[str, Sequence[Any]]) -> list[float]:
    values = axis_values(cand)
    return [1.0 if values[axis] == v else 0.0 for axis, vs in choices.items() for v in vs]


class EHVIStrategy:
    """Proposes the network with the largest expected hypervolume improvement (see module)."""

    def __init__(
        self,
        space: Space,
        costs: Mapping[str, Mapping[str, float]],
        reference: Mapping[str, float],
        ideal: Mapping[str, float],
        settings: EHVISettings | None = None,
    ) -> None:
        self.space = space
        self.settings = settings or SHIPPED
        self.objectives = list(space.objectives)
        self.reference, self.ideal = dict(reference), dict(ideal)
        self.costs = costs
        self.seed = space.search.sampler_seed
        self._weights = ADDITIVE_WEIGHTS if self.settings.additive else (0.0,)
        union: dict[str, list[Any]] = {}
        for grid in space.grids:  # one-hot over every value any grid gives an axis
            for axis, values in grid_values(grid).items():
                union.setdefault(axis, [])
                union[axis] += [v for v in values if v not in union[axis]]
        self.choices = {k: v for k, v in union.items() if len(v) > 1}
        # the objectives training measures (one model each); the others are counted costs
        self.trained = [
            METRICS[objective(o)[0]]
            for o in self.objectives
            if METRICS[objective(o)[0]].source == "trained"
        ]
        if len(self.trained) == 1:
            self.nodes = [(float(x), float(w)) for x, w in zip(_GH_X, _GH_W, strict=True)]
        else:  # a product rule over the modelled objectives, smaller per axis
            x, w = np.polynomial.hermite_e.hermegauss(5 if len(self.trained) == 2 else 3)
            self.nodes = [(float(a), float(b)) for a, b in zip(x, w / w.sum(), strict=True)]
        # caches across asks: told records by key, features and costs of pool networks by key
        self._cost_names = [
            METRICS[objective(o)[0]].name
            for o in self.objectives
            if METRICS[objective(o)[0]].source != "trained"
        ]
        self._told_cache: dict[str, tuple[Any, Any]] = {}
        self._row: dict[str, tuple[Any, int]] = {}
        self._feat: np.ndarray | None = None
        self._cost: np.ndarray | None = None
        self._n_rows = 0
        # the tables' axis-value effects on top-1 (search.prior), for the top-1 model only
        self._beta: np.ndarray | None = None
        if self.settings.prior and any(m.name == "top1" for m in self.trained):
            from gcsearch.search.prior import effects, prior_vector

            self._beta = prior_vector(self.choices, effects(self.settings.prior_without))

    def _beta_of(self, name: str) -> np.ndarray | None:
        return self._beta if name == "top1" else None

    def _fit(
        self, x: np.ndarray, y: np.ndarray, name: str, box: tuple[float, float]
    ) -> GP | Mixture:
        """The model of metric ``name`` on ``(x, y)``: averaged over the prior's weights
        where the settings ask for it and the metric has the tables' prior; ``box`` (its
        ideal and reference) gives the spread ``amplitude`` pools in."""
        beta = self._beta_of(name)
        n0 = self.settings.amplitude
        amp = (_box_sd(*box), float(n0)) if n0 else None
        if beta is not None and self.settings.average:
            return Mixture.fit(x, y, self._weights, beta, amplitude=amp)
        return GP(x, y, self._weights, beta, amplitude=amp)

    def _vector(
        self,
        key: str,
        measured: Mapping[str, float],
        ref: Mapping[str, float],
        ideal: Mapping[str, float],
    ) -> list[float]:
        out = []
        for obj in self.objectives:
            metric = METRICS[objective(obj)[0]]
            out.append(
                measured[metric.name]
                if metric.source == "trained"
                else float(self.costs[key][metric.name])
            )
        return normalise(out, self.objectives, ref, ideal)

    # ------------------------------------------------------------------ caches across asks
    def encode(self, cand: Any) -> list[float]:
        """The model's features of a candidate: one-hot over every axis's values."""
        return _features(cand, self.choices)

    def _record(self, trial: Any) -> TrialRecord:
        return TrialRecord.read(trial)

    def _told(self, driver: Any) -> list[tuple[str, Any, dict[str, float]]]:
        """(key, candidate, modelled values) of the searched networks finished so far; a
        finished trial is read once (cached by key and trial number)."""
        seen = []
        for key, t in driver.answered().items():
            number = getattr(t, "number", None)
            hit = self._told_cache.get(key)
            if hit is None or hit[0] != number or number is None:
                rec = self._record(t)
                entry = None
                if rec.role == "search" and rec.status == "complete" and rec.candidate is not None:
                    values = {m.name: m.over(rec.results) for m in self.trained}
                    if all(math.isfinite(v) for v in values.values()):
                        entry = (rec.candidate, values)
                hit = (number, entry)
                self._told_cache[key] = hit
            if hit[1] is not None:
                seen.append((key, hit[1][0], hit[1][1]))
        return seen

    def _rows_of(self, keys: Sequence[str], cands: Sequence[Any]) -> np.ndarray:
        """Row numbers (features and costs, cached) of the pool's networks."""
        rows = np.empty(len(keys), dtype=np.int64)
        new_f: list[list[float]] = []
        new_c: list[list[float]] = []
        for i, (key, cand) in enumerate(zip(keys, cands, strict=True)):
            hit = self._row.get(key)
            if hit is None or hit[0] is not cand:
                feat = self.encode(cand)
                hit = (cand, self._n_rows + len(new_f))
                new_f.append(feat)
                new_c.append([float(self.costs[key][n]) for n in self._cost_names])
                self._row[key] = hit
            rows[i] = hit[1]
        if new_f:
            f = np.asarray(new_f, dtype=np.uint8)
            c = np.asarray(new_c, dtype=float).reshape(len(new_c), len(self._cost_names))
            self._feat = f if self._feat is None else np.vstack([self._feat, f])
            self._cost = c if self._cost is None else np.vstack([self._cost, c])
            self._n_rows += len(new_f)
        return rows

    def _sense(self, name: str) -> str:
        return next(objective(o)[1] for o in self.objectives if objective(o)[0] == name)

    def _far(
        self, keys: Sequence[str], pool: Mapping[str, Any], near: Sequence[Any], rng: random.Random
    ) -> str:
        """A start as far (one-hot distance) from the told and in-flight networks as any."""
        xs = np.array([self.encode(pool[k]) for k in keys], dtype=float)
        xn = np.array([self.encode(c) for c in near], dtype=float)
        d = sq_distances(xs, xn).min(axis=1)
        far = [k for k, di in zip(keys, d, strict=True) if di == d.max()]
        return rng.choice(far)

    def _local(self, rows: np.ndarray, seen: Sequence[tuple[str, Any, Any]]) -> np.ndarray:
        """Which of the pool's ``rows`` are at most one axis away from the best measured
        networks (the two best on each modelled objective): one-hot rows one axis apart are at
        squared distance 2 (vectorised over the pool: the same set as comparing axis values)."""
        best: list[Any] = []
        for m in self.trained:
            sign = -1.0 if self._sense(m.name) == "max" else 1.0
            ranked = sorted(seen, key=lambda e: (sign * e[2][m.name], e[0]))
            best += [c for _, c, _ in ranked[:2]]
        near = np.array([self.encode(c) for c in best], dtype=float)
        assert self._feat is not None
        out = np.zeros(len(rows), dtype=bool)
        for lo in range(0, len(rows), CHUNK):
            x = self._feat[rows[lo : lo + CHUNK]].astype(float)
            out[lo : lo + CHUNK] = (sq_distances(x, near) <= 2.5).any(axis=1)
        return out

    # ------------------------------------------------------------------ asking
    def propose(self, driver: Any) -> Candidate:
        """The next candidate: an untrained network, chosen as the module docstring says.
        ``driver`` is what the driver knows of the study's networks (``ledger.Ledger``)."""
        taken = set(driver.answered()) | set(driver.in_flight_keys())  # == driver.known
        pool: dict[str, Any] = {}
        for cand in driver.unseen():
            k = driver.key(cand)
            if k not in taken:
                pool.setdefault(k, cand)
        if not pool:
            raise RuntimeError("ehvi: no untrained network left to propose")
        keys = sorted(pool)
        seen = self._told(driver)
        rng = random.Random(f"{self.seed}:{len(seen)}:{len(driver.in_flight_keys())}")
        running = [
            (k, r.cand)
            for k, n in driver.by_key.items()
            if (r := driver.running.get(n)) is not None and r.role == "search"
        ]
        settings = self.settings
        rule, _, start = settings.batch_rule.partition("+")
        prior = (
            start == "prior"
            and bool(running)
            and len(seen) < settings.starts
            and all(n in self.reference for n in (m.name for m in self.trained))
        )
        if self.trained and len(seen) < settings.starts and not prior:
            if start == "fill" and running:
                near = [c for _, c, _ in seen] + [c for _, c in running]
                return pool[self._far(keys, pool, near, rng)]
            return pool[rng.choice(keys)]
        measured = {m.name: [v[m.name] for *_, v in seen] for m in self.trained}
        ref, ideal = open_box(self.reference, self.ideal, measured)
        x = np.array([self.encode(c) for _, c, _ in seen], dtype=float)
        front = [self._vector(k, v, ref, ideal) for k, _, v in seen]
        models: dict[str, GP | Mixture] = {}
        if prior:  # no model yet: a prior over the box, in-flight networks at its mean
            xr = np.array([self.encode(c) for _, c in running], dtype=float)
            xn = np.vstack([x.reshape(len(x), xr.shape[1]), xr])
            for m in self.trained:
                lo, hi = self.ideal[m.name], self.reference[m.name]
                models[m.name] = GP.prior(xn, (lo + hi) / 2, _box_sd(lo, hi), self._beta_of(m.name))
            believed = {n: gp.predict(xr)[0] for n, gp in models.items()}  # the prior mean
            front += [
                self._vector(k, {n: float(b[i]) for n, b in believed.items()}, ref, ideal)
                for i, (k, _) in enumerate(running)
            ]
            running = []
        for m in self.trained:
            if prior:
                break
            y = np.array([v[m.name] for *_, v in seen])
            models[m.name] = self._fit(x, y, m.name, (ideal[m.name], ref[m.name]))
        if running and self.trained and rule == "kb":  # kriging believer, refitted
            xr = np.array([self.encode(c) for _, c in running], dtype=float)
            believed = {n: gp.predict(xr)[0] for n, gp in models.items()}
            xa = np.vstack([x, xr])
            for m in self.trained:
                y = np.array([v[m.name] for *_, v in seen])
                models[m.name] = self._fit(
                    xa, np.concatenate([y, believed[m.name]]), m.name, (ideal[m.name], ref[m.name])
                )
            front += [
                self._vector(k, {n: float(b[i]) for n, b in believed.items()}, ref, ideal)
                for i, (k, _) in enumerate(running)
            ]
        elif running and self.trained:  # the model's hyperparameters kept; a lie conditioned on
            xr = np.array([self.encode(c) for _, c in running], dtype=float)
            lies = {}
            for m in self.trained:
                gp = models[m.name]
                if rule == "kb-fixed":
                    lies[m.name] = gp.predict(xr)[0]
                else:  # "cl": the worst value measured so far (a pessimistic constant liar)
                    worse = min if self._sense(m.name) == "max" else max
                    lies[m.name] = np.full(len(xr), worse(measured[m.name]))
                models[m.name] = gp.conditioned(xr, lies[m.name])
            front += [
                self._vector(k, {n: float(b[i]) for n, b in lies.items()}, ref, ideal)
                for i, (k, _) in enumerate(running)
            ]
        elif running:
            front += [self._vector(k, {}, ref, ideal) for k, _ in running]
        pts = np.clip(np.array(front).reshape(len(front), len(self.objectives)), None, 1.0)
        rows = self._rows_of(keys, [pool[k] for k in keys])
        every = settings.local_every
        if (
            every
            and not prior
            and (len(seen) + len(running) - settings.starts) % every == every - 1
        ):
            local = self._local(rows, seen)
            if local.any():
                keys, rows = [k for k, m in zip(keys, local, strict=True) if m], rows[local]
        gains = Gains(self, pts, ref, ideal, models)
        if len(keys) <= SCREEN_ABOVE:  # every candidate's expectation, exactly
            xs = self._feat[rows].astype(float)
            predicted = {n: gp.predict(xs) for n, gp in models.items()}
            values = [
                gains.exact(key, {n: (p[0][i], p[1][i]) for n, p in predicted.items()})
                for i, key in enumerate(keys)
            ]
        else:
            values = gains.screened(keys, rows)
        best, best_key = -1.0, keys[0]
        for key, gain in zip(keys, values, strict=True):
            if gain > best + 1e-12:
                best, best_key = gain, key
        return pool[best_key]


def make_strategy(
    space: Space,
    costs: Mapping[str, Mapping[str, float]],
    attrs: Mapping[str, Any],
    settings: EHVISettings | None = None,
) -> EHVIStrategy | None:
    """The driver-side strategy a space asks for (``ehvi``, with ``settings``: default the
    shipped ones, which a benchmark replays others against), or None for Optuna's and grid.
    A space's ``[search] prior = "off"`` turns the tables' prior off whatever the settings."""
    if space.search.sampler != "ehvi":
        return None
    settings = settings or SHIPPED
    if space.search.prior == "off":
        settings = replace(settings, prior=False)
    return EHVIStrategy(space, costs, attrs["hv_reference"], attrs["hv_ideal"], settings)


__all__ = [
    "SHIPPED",
    "EHVISettings",
    "EHVIStrategy",
    "hv_box",
    "make_strategy",
    "normalise",
    "space_costs",
]
