"""``gcsearch bench search``: do the strategies earn their compute? And scaling/overhead.

* **strategies** - every distinct network of ``spaces/bench-small.toml`` is trained once per
  seed (``--table-seeds``, at least 3) into an exhaustive table (``table.py``; built or
  finished with ``--build-table``, refused when incomplete or built for another task, budget,
  backbone or space). Each strategy is then replayed through the real driver against the table
  (in-memory study, no Ray) with a budget of ``--budget-fraction`` of the candidates, over
  ``--replays`` sampler seeds, and scored by the hypervolume of the searched front it found
  (mean top-1 over seeds; reference rows excluded) as a fraction of the exhaustive searched
  front's. The score is taken on the block's own costs (``block_macs``, ``block_params``) in
  the box of ``strategy.hv_box``: top-1 from chance to 100, each cost from 0 to 1.1 x the
  space's largest, so accuracy and cost both matter. Two controls run every time:
  **cheapest-first** (the n cheapest networks, no accuracy used) and **random** (n distinct
  networks uniformly). Everything is repeated on **label-shuffled tables**: each axis's value
  labels are permuted (seeded per replay) and a network takes the accuracy of the network its
  shuffled labels name while keeping its own cost, so accuracy keeps its structure over the
  axes but cost no longer predicts it. Replay ``i`` of every strategy uses seed ``i`` and
  shuffle ``i`` (paired).
* **fidelity** - synchronous successive halving over every candidate, replayed from the same
  table for several first rungs and eta: epochs charged against full training of every
  network, and the hypervolume fraction of the front it keeps.
* **scaling** (``--only scaling``) - the same candidates searched with 1 and with 2 parallel
  single-thread trials on local Ray; trials per hour and driver overhead per trial.

Figures print as tables and go to ``--out`` (JSON, with the command and the table's
fingerprint).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import TrialState

from gcsearch.bench.table import Table, TableExecutor, build_table, load_table
from gcsearch.errors import UserError
from gcsearch.search.record import TrialRecord
from gcsearch.search.run import SearchConfig, run_study
from gcsearch.search.space import Space, load_space, objective, parse_space
from gcsearch.search.strategy import hv_box
from gcsearch.spaces import SPACES_DIR

ROOT = Path(__file__).resolve().parents[2]
BENCH_SPACE = SPACES_DIR / "bench-small.toml"
STRATEGIES = ("ehvi", "tpe", "nsga2", "random")
CONTROLS = ("cheapest-first", "random-networks")
SCORE_OBJECTIVES = ("top1:max", "block_macs:min", "block_params:min")
THRESHOLD = 0.97

#: The scaling/overhead space: 8 candidates + the baseline and SE (an even 10 trainings, so 2
#: parallel slots are never left with one straggler), one thread each.
SCALING_SPACE = """
name = "bench-scaling"
objectives = ["top1:max", "macs:min", "params:min"]
[task]
name = "synthetic"
backbone = "resnet8"
[budget]
epochs = {epochs}
[axes]
pooling = ["att", "avg"]
transform = ["1x1"]
fusion = ["add", "mul"]
stages = ["c4", "c5"]
[references]
include = ["se"]
[search]
sampler = "grid"
cpus_per_trial = 1
[fidelity]
enabled = false
"""


# ----------------------------------------------------------------------------- scoring
class Scorer:
    """Normalised hypervolume of searched networks on top-1 and the block's own costs."""

    def __init__(self, table: Table, space: Space) -> None:
        costs = table.costs()
        cands = {c.id for c in space.candidates()}
        # the search's box: the space's candidates span it, reference rows never stretch it
        spanned = [k for k, ids in table.networks.items() if cands & set(ids)]
        self.reference, self.ideal = hv_box(
            SCORE_OBJECTIVES, costs, int(table.header["num_classes"]), spanned
        )
        refs = {c.id for c in space.references()}
        # networks a reference row builds are trained by every search at no cost: not scored
        self.searched = [k for k, ids in table.networks.items() if not refs & set(ids)]
        self.costs = costs

    def point(self, key: str, top1: float) -> list[float]:
        c = self.costs[key]
        return [top1, float(c["block_macs"]), float(c["block_params"])]

    def hv(self, found: Mapping[str, float]) -> float:
        """Hypervolume fraction of the box for ``{network key: mean top-1}`` (searched
        networks only: reference rows score nothing)."""
        from gcsearch.pareto import normalised_hypervolume

        keep = set(self.searched)
        pts = [self.point(k, v) for k, v in found.items() if k in keep]
        names = [objective(o)[0] for o in SCORE_OBJECTIVES]
        return (
            normalised_hypervolume(
                pts,
                [objective(o)[1] for o in SCORE_OBJECTIVES],
                [self.reference[n] for n in names],
                [self.ideal[n] for n in names],
            )
            if pts
            else 0.0
        )


def needles(table: Table, space: Space, most: int = 4) -> dict[str, Any]:
    """What ``P(HV >= THRESHOLD)`` asks of a search on ``table``: the fewest searched networks
    whose front reaches ``THRESHOLD`` of the table's hypervolume, and every such set (at most
    ``most`` listed), each network with its rank by mean top-1 and by block cost (1 = most
    accurate, cheapest). Exhaustive over subsets of the Pareto set (any best subset lies in it:
    a dominated network adds no volume)."""
    scorer = Scorer(table, space)
    truth = {k: _mean_top1(table.results[k]) for k in scorer.searched}
    full = scorer.hv(truth)
    front = sorted(
        k for k in truth if scorer.hv({j: v for j, v in truth.items() if j != k}) < full - 1e-12
    )
    accurate = sorted(truth, key=lambda k: (-truth[k], k))
    cheap = sorted(
        truth,
        key=lambda k: (scorer.costs[k]["block_macs"], scorer.costs[k]["block_params"], k),
    )
    sets: list[dict[str, Any]] = []
    for size in range(1, len(front) + 1):
        for group in itertools.combinations(front, size):
            share = scorer.hv({k: truth[k] for k in group}) / full
            if share >= THRESHOLD:
                sets.append(
                    {
                        "share": share,
                        "networks": [
                            {
                                "id": table.networks[k][0],
                                "top1": truth[k],
                                "accuracy_rank": accurate.index(k) + 1,
                                "cost_rank": cheap.index(k) + 1,
                            }
                            for k in group
                        ],
                    }
                )
        if sets:
            break
    return {
        "searched": len(truth),
        "front": len(front),
        "fewest": len(sets[0]["networks"]) if sets else None,
        "sets_of_fewest": len(sets),
        "sets": sorted(sets, key=lambda x: -x["share"])[:most],
    }


def _mean_top1(seeds: Mapping[int, Mapping[str, Any]]) -> float:
    return statistics.mean(float(r["top1"]) for r in seeds.values())


# ----------------------------------------------------------------------------- shuffling
def shuffled_table(table: Table, space: Space, seed: int) -> Table:
    """The table with each axis's value labels permuted (see the module docstring)."""
    from gcsearch.search.sampling import (
        axis_values,
        block_from_token,
        grid_choices,
        network_key,
    )
    from gcsearch.spec import Candidate, Placement

    rng = random.Random(seed)
    maps: dict[str, dict[Any, Any]] = {}
    for grid in space.grids:
        for axis, values in grid_choices(grid).items():
            perm = list(values)
            rng.shuffle(perm)
            maps[axis] = dict(zip(values, perm, strict=True))
    by_id = {c.id: c for c in space.candidates()}
    out: dict[str, dict[int, dict[str, Any]]] = {}
    costs = table.costs()
    for key, ids in table.networks.items():
        rep = next((by_id[i] for i in ids if i in by_id), None)
        if rep is None or rep.block is None:  # reference rows keep their own results
            out[key] = table.results[key]
            continue
        labels = axis_values(rep)
        new = {a: maps.get(a, {}).get(v, v) for a, v in labels.items()}
        src = Candidate(
            block=block_from_token(new["pooling"], new["transform"], new["fusion"]),
            placement=Placement(new["position"], new["stages"], new["density"]),
        )
        src_key = network_key(src, space.backbone, space.min_hidden)
        own = costs[key]
        out[key] = {s: {**copy.deepcopy(r), **own} for s, r in table.results[src_key].items()}
    return Table(table.header, out)


# ----------------------------------------------------------------------------- replays
def replay(
    space: Space,
    table: Table,
    *,
    sampler: str,
    n_trials: int | None,
    seed: int,
    fidelity: bool = False,
    min_epochs: int | None = None,
    eta: int | None = None,
    interrupt_after: int | None = None,
    resume_from: Any = None,
    in_flight: int = 0,
    ehvi: Any = None,
) -> tuple[Any, TableExecutor]:
    """One search answered from ``table`` through the real driver (in-memory, no Ray);
    ``ehvi``: the ``EHVISettings`` an ehvi search replays with (default: the shipped ones).

    ``in_flight``: candidates unanswered when each new one is proposed, as a search with
    parallel slots runs (``parallel = 2`` seed jobs: 1). The executor takes ``in_flight x
    seeds + 1`` jobs and answers them oldest first, so the driver asks again as soon as the
    oldest candidate's last seed is answered, with ``in_flight`` others still running.
    ehvi's prior (``EHVISettings.prior``) leaves the replayed table out."""
    slots = in_flight * len(table.seeds) + 1
    over: dict[str, Any] = {
        "sampler": sampler,
        "n_trials": n_trials,
        "sampler_seed": seed,
        "enabled": fidelity,
        "parallel": slots,
        "seeds": len(table.seeds),
    }
    if min_epochs is not None:
        over["min_epochs"] = min_epochs
    if eta is not None:
        over["eta"] = eta
    sp = space.with_overrides(**over)
    if sampler == "ehvi":  # a table never informs its own replay's prior (search.prior)
        from gcsearch.search.strategy import SHIPPED

        base = ehvi or SHIPPED
        left_out = {*base.prior_without, str(table.header["space_name"])}
        ehvi = dataclasses.replace(base, prior_without=tuple(sorted(left_out)))
    ex = TableExecutor(table.by_candidate(), parallel=slots, interrupt_after=interrupt_after)
    costs = table.costs()
    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig(
            run_dir=Path(tmp),
            storage="memory",
            executor=ex,
            progress=False,
            weights=False,
            network_costs=costs,
            ehvi=ehvi,
        )
        out = run_study(sp, config)  # the study is all a replay reads
    return out.study, ex


def found_networks(study: Any) -> dict[str, float]:
    """Network key -> mean top-1 of the searched networks a replay trained to the end."""
    out = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = TrialRecord.read(t)
        if rec.role == "search" and not rec.is_duplicate and rec.network and t.values:
            tops = [float(r["top1"]) for r in rec.results if r.get("top1") is not None]
            out[rec.network] = statistics.mean(tops)
    return out


def _summary(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "p_ge": float((arr >= THRESHOLD).mean()),
        "n": len(arr),
        "values": [float(v) for v in arr],
    }


def bench_strategies(
    space: Space,
    table: Table,
    *,
    replays: int,
    fraction: float,
    strategies: Sequence[str],
    shuffle: bool,
    first_seed: int = 0,
    in_flight: int = 0,
    ehvi: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Replays of each strategy and the two controls; ``shuffle`` uses shuffled tables.
    Replay ``i`` uses sampler seed and shuffle ``first_seed + i``; ``in_flight`` and ``ehvi``
    as ``replay``."""
    n = max(1, round(fraction * len(space.candidates())))
    out: dict[str, Any] = {
        "budget_trials": n,
        "candidates": len(space.candidates()),
        "in_flight": in_flight,
    }
    scores: dict[str, list[float]] = {s: [] for s in (*strategies, *CONTROLS)}
    seconds: dict[str, float] = dict.fromkeys(strategies, 0.0)
    cheapest_once: float | None = None
    for i in range(first_seed, first_seed + replays):
        t = shuffled_table(table, space, seed=i) if shuffle else table
        scorer = Scorer(t, space)
        truth = {k: _mean_top1(t.results[k]) for k in scorer.searched}
        full = scorer.hv(truth)
        order = sorted(
            scorer.searched,
            key=lambda k: (scorer.costs[k]["block_macs"], scorer.costs[k]["block_params"], k),
        )
        if not shuffle and cheapest_once is not None:
            scores["cheapest-first"].append(cheapest_once)
        else:
            cheap = scorer.hv({k: truth[k] for k in order[:n]}) / full
            scores["cheapest-first"].append(cheap)
            cheapest_once = cheap
        rng = random.Random(i)
        pick = rng.sample(scorer.searched, min(n, len(scorer.searched)))
        scores["random-networks"].append(scorer.hv({k: truth[k] for k in pick}) / full)
        for s in strategies:
            tick = time.perf_counter()
            study, _ = replay(
                space, t, sampler=s, n_trials=n, seed=i, in_flight=in_flight, ehvi=ehvi
            )
            seconds[s] += time.perf_counter() - tick
            scores[s].append(scorer.hv(found_networks(study)) / full)
        if (i + 1 - first_seed) % 10 == 0 or i + 1 - first_seed == replays:
            log(
                f"  {'shuffled' if shuffle else 'original'} tables: {i + 1 - first_seed}/{replays} "
                "replays; "
                + ", ".join(
                    f"{s} median {statistics.median(v):.3f}" for s, v in scores.items() if v
                )
            )
    out["scores"] = {s: _summary(v) for s, v in scores.items()}
    out["seconds_per_replay"] = {s: seconds[s] / max(1, replays) for s in strategies}
    return out


def bench_fidelity(
    space: Space, table: Table, settings: Sequence[tuple[int, int]], shuffles: int
) -> list[dict[str, Any]]:
    """Synchronous successive halving over every candidate, replayed (deterministic)."""
    rows = []
    epochs = int(table.header["budget"]["epochs"])
    for min_epochs, eta in settings:
        for which in range(shuffles + 1):
            t = table if which == 0 else shuffled_table(table, space, seed=1000 + which)
            scorer = Scorer(t, space)
            truth = {k: _mean_top1(t.results[k]) for k in scorer.searched}
            study, ex = replay(
                space,
                t,
                sampler="grid",
                n_trials=None,
                seed=0,
                fidelity=True,
                min_epochs=min_epochs,
                eta=eta,
            )
            full_epochs = epochs * len(t.seeds) * len(t.networks)
            # each trained seed's furthest epoch, once: what promotions that resume from their
            # rung charge (the driver's and the replay's own ``saving`` since they resume)
            furthest = sum(
                int(r.get("epochs") or 0)
                for tr in study.trials
                if (rec := TrialRecord.read(tr)).trained
                for r in rec.results
            )
            rows.append(
                {
                    "min_epochs": min_epochs,
                    "eta": eta,
                    "rungs": list(
                        space.with_overrides(
                            min_epochs=min_epochs, eta=eta, enabled=True
                        ).fidelity.rungs(epochs)
                    ),
                    "table": "original" if which == 0 else f"shuffled {which}",
                    "saving": full_epochs / max(1, ex.epochs_trained),
                    "saving_if_resumed": full_epochs / max(1, furthest),
                    "hv_fraction": scorer.hv(found_networks(study)) / scorer.hv(truth),
                }
            )
    return rows


def rank_spearman(table: Table, space: Space) -> dict[int, float]:
    """Spearman correlation of each epoch's mean top-1 with the final one, over the searched
    networks (where a first rung may sit: not where candidates are still at chance)."""
    from scipy.stats import spearmanr

    scorer = Scorer(table, space)
    epochs = int(table.header["budget"]["epochs"])
    final = [_mean_top1(table.results[k]) for k in scorer.searched]
    out = {}
    for e in range(1, epochs):
        at = [
            statistics.mean(
                float(h["val_top1"])
                for r in table.results[k].values()
                for h in r["history"]
                if int(h["epoch"]) == e
            )
            for k in scorer.searched
        ]
        out[e] = float(spearmanr(at, final).statistic)
    return out


# ----------------------------------------------------------------------------- scaling
def bench_scaling(epochs: int, run_root: Path) -> dict[str, Any]:
    """1 vs 2 parallel single-thread trials on local Ray, same 10 trainings."""
    space = parse_space(SCALING_SPACE.format(epochs=epochs), "bench-scaling.toml")
    out: dict[str, Any] = {}
    for parallel in (1, 2):
        run = run_root / f"bench-scaling-p{parallel}"
        if run.exists():
            import shutil

            shutil.rmtree(run)
        t0 = time.perf_counter()
        res = run_study(space.with_overrides(parallel=parallel), SearchConfig(run, progress=False))
        n = res.counts["complete"] + res.counts["pruned"] + res.counts["failed"]
        out[f"p{parallel}"] = {
            "trials": n,
            "loop_s": res.loop_s,
            "total_s": time.perf_counter() - t0,
            "job_s": res.job_seconds,
            "trials_per_hour": 3600 * n / res.loop_s,
            "overhead_per_trial_s": (res.loop_s - res.job_seconds) / n if parallel == 1 else None,
            "driver_per_trial_s": res.driver_s / n,
            "load_average": os.getloadavg(),
            "mean_trial_s": res.job_seconds / n,
        }
    out["speedup"] = out["p2"]["trials_per_hour"] / out["p1"]["trials_per_hour"]
    out["overhead_share_of_20s_trial"] = out["p1"]["overhead_per_trial_s"] / 20.0
    return out


# ----------------------------------------------------------------------------- CLI
def _settings(args: argparse.Namespace) -> Any:
    """The ehvi settings ``--ehvi`` and ``--ehvi-batch`` ask for (the shipped ones,
    ``strategy.SHIPPED``, if neither): a label, read over the class's defaults."""
    from gcsearch.search.strategy import SHIPPED, EHVISettings

    text = getattr(args, "ehvi", None) or ""
    if args.ehvi_batch is not None:
        text += f",batch_rule={args.ehvi_batch}"
    if not text:
        return SHIPPED
    try:
        return EHVISettings.parse(text)
    except ValueError as exc:
        raise UserError(f"--ehvi: {exc}") from None


def _check(args: argparse.Namespace) -> None:
    from gcsearch.search.strategy import BATCH_RULES

    if args.ehvi_batch is not None and args.ehvi_batch not in BATCH_RULES:
        raise UserError(f"--ehvi-batch: {args.ehvi_batch} (allowed: {', '.join(BATCH_RULES)})")
    _settings(args)
    try:
        flights = _in_flight(args.in_flight)
    except ValueError:
        flights = [-1]
    if not flights or min(flights) < 0:
        raise UserError(f"--in-flight: {args.in_flight} (allowed: integers >= 0, e.g. 0,1,8)")
    if args.replays < 1:
        raise UserError(f"--replays: {args.replays} (allowed: integers >= 1)")
    if args.table_seeds < 3 and not args.smoke:
        raise UserError(
            f"--table-seeds: {args.table_seeds} (allowed: integers >= 3; one seed "
            "makes a replay 'found the lucky seed or not')"
        )
    if not 0 < args.budget_fraction <= 1:
        raise UserError(f"--budget-fraction: {args.budget_fraction} (allowed: 0 < f <= 1)")
    bad = [s for s in args.strategies.split(",") if s not in (*STRATEGIES, "grid")]
    if bad:
        raise UserError(f"--strategies: {', '.join(bad)} (allowed: {', '.join(STRATEGIES)})")


def _in_flight(text: str | int) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def _print(figures: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(width=140)
    if "needles" in figures:
        n = figures["needles"]
        console.print(
            f"{n['searched']} searched networks, {n['front']} on the front; the fewest that "
            f"reach {THRESHOLD} of its hypervolume: {n['fewest']} ({n['sets_of_fewest']} "
            "such set(s)); rank by top-1 / by block cost:",
            highlight=False,
        )
        for group in n["sets"]:
            names = ", ".join(
                f"{x['id']} ({x['accuracy_rank']} / {x['cost_rank']})" for x in group["networks"]
            )
            console.print(f"  {group['share']:.3f}: {names}", highlight=False)
    sections = [figures.get("strategies", {}), *figures.get("in_flight", {}).values()]
    for name, sec in ((n, s.get(n)) for s in sections for n in ("original", "shuffled")):
        if not sec:
            continue
        t = RichTable(
            title=f"strategies at {sec['budget_trials']}/{sec['candidates']} trials, "
            f"{sec.get('in_flight', 0)} in flight, "
            f"{name} tables (HV fraction of the exhaustive searched front)",
            title_justify="left",
        )
        for col in ("strategy", "median", "IQR", f"P(HV >= {THRESHOLD})", "replays"):
            t.add_column(col, justify="left" if col == "strategy" else "right")
        for s, v in sec["scores"].items():
            t.add_row(
                s,
                f"{v['median']:.3f}",
                f"{v['q1']:.3f}-{v['q3']:.3f}",
                f"{v['p_ge']:.2f}",
                str(v["n"]),
            )
        console.print(t)
    if figures.get("fidelity"):
        t = RichTable(
            title="successive halving over every candidate (replayed)", title_justify="left"
        )
        for col in ("rungs", "eta", "table", "saving (x)", "if resumed (x)", "HV fraction"):
            t.add_column(col, justify="right")
        for r in figures["fidelity"]:
            t.add_row(
                str(r["rungs"]),
                str(r["eta"]),
                r["table"],
                f"{r['saving']:.2f}",
                f"{r.get('saving_if_resumed', float('nan')):.2f}",
                f"{r['hv_fraction']:.3f}",
            )
        console.print(t)
    if figures.get("scaling"):
        sc = figures["scaling"]
        console.print(
            f"scaling: {sc['p1']['trials_per_hour']:.0f} trials/h with 1 parallel, "
            f"{sc['p2']['trials_per_hour']:.0f} with 2 ({sc['speedup']:.2f}x); driver + Ray "
            f"overhead {sc['p1']['overhead_per_trial_s']:.3f} s per trial "
            f"({100 * sc['overhead_share_of_20s_trial']:.2f} % of a 20 s trial); load average "
            f"{sc['p1']['load_average'][0]:.1f}",
            highlight=False,
        )
    if figures.get("spearman"):
        console.print(
            "Spearman(top-1 at epoch e, final top-1) over searched networks: "
            + ", ".join(f"e{e} {v:.2f}" for e, v in figures["spearman"].items()),
            highlight=False,
        )


def run_bench_search(args: argparse.Namespace) -> int:
    """Entry point for ``gcsearch bench search``."""
    _check(args)
    ehvi = _settings(args)  # what ehvi replays with (tuning; default: shipped)
    space = load_space(args.space or BENCH_SPACE)
    path = Path(args.table or ROOT / "benchmarks" / "tables" / f"{space.name}.jsonl")
    seeds = list(range(args.table_seeds))
    run_root = Path(args.run_root)
    figures: dict[str, Any] = {
        "command": "gcsearch " + shlex.join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average": os.getloadavg(),
        "ehvi_batch": ehvi.batch_rule,
        "ehvi": ehvi.label(),
    }
    if args.only == "scaling":
        figures["scaling"] = bench_scaling(2 if args.smoke else 6, run_root)
    elif args.only == "needles":
        figures["needles"] = needles(load_table(path, space, seeds), space)
    else:
        if args.build_table:
            build_table(space, path, seeds, parallel=args.table_parallel)
        table = load_table(path, space, seeds)
        figures["table"] = {
            "path": str(path),
            "fingerprint": table.header["fingerprint"],
            "command": table.header["command"],
            "seeds": table.seeds,
            "networks": len(table.networks),
        }
        strategies = [s for s in args.strategies.split(",") if s]
        replays = min(args.replays, 3) if args.smoke else args.replays
        flights = _in_flight(args.in_flight)
        if args.only in (None, "search"):
            runs = {
                k: {
                    name: bench_strategies(
                        space,
                        table,
                        replays=replays,
                        fraction=args.budget_fraction,
                        strategies=strategies,
                        shuffle=name == "shuffled",
                        first_seed=args.first_seed,
                        in_flight=k,
                        ehvi=ehvi,
                    )
                    for name in ("original", "shuffled")
                }
                for k in flights
            }
            if len(flights) == 1:
                figures["strategies"] = runs[flights[0]]
            else:  # one section per number in flight
                figures["in_flight"] = {str(k): v for k, v in runs.items()}
        if args.only in (None, "fidelity"):
            figures["spearman"] = rank_spearman(table, space)
            settings = [(1, 2), (2, 3)] if args.smoke else [(1, 2), (1, 3), (2, 2), (2, 3), (3, 2)]
            figures["fidelity"] = bench_fidelity(
                space, table, settings, shuffles=1 if args.smoke else 3
            )
    out = Path(args.out or run_root / "bench-search.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1, default=float) + "\n")
    _print(figures)
    print(f"figures: {out}")
    return 0


__all__ = [
    "STRATEGIES",
    "Scorer",
    "bench_fidelity",
    "bench_scaling",
    "bench_strategies",
    "found_networks",
    "needles",
    "replay",
    "run_bench_search",
    "shuffled_table",
]
