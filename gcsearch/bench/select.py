"""``gcsearch bench select``: choose ehvi's settings on some exhaustive tables, score them on
the one left out.

A strategy tuned on one table can fit that table's accidents (the issue that asked for this
measured ehvi's P(HV >= 0.97) fall from 0.99 on its tuning table to 0.67 on another). Here every
setting of a grid (``EHVISettings``: exploration, random starts, local steps, batch rule) is
replayed on every table with the **tuning seeds**, original and label-shuffled, at each number
of candidates in flight. For each table in turn, the setting with the best worst case over the
*other* tables (the smallest P(HV >= 0.97) over those tables and numbers in flight; ties by
the mean, then by the mean on label-shuffled tables: ``rank_of``) is replayed on the held-out
table with the **test seeds**, which took no part in any choice, next to the shipped settings
and the two controls. The best setting replaces the
shipped one only when its worst case beats theirs by more than 1/sqrt(tuning replays) (about
two binomial standard errors of a P near 0.5); otherwise the shipped settings are kept, and the
best is still scored (``best_on_tuning``). The setting chosen on all tables together is what a
search should ship; its held-out figures are the folds'.

Every replay batch is cached under ``--run-root`` (one JSON per table, setting, shuffling,
number in flight and seed range), so a stopped selection resumes where it stopped.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from gcsearch.errors import UserError

#: The grid replayed by default: the local step and the kernel's additive part (the best on
#: tuning before the prior), each with and without the tables' axis-value prior
#: (``search.prior``); benchmarks/tuning/bench-select-prior-25.json is this grid at 25 tuning
#: seeds, and the committed benchmarks/bench-select.json its best against the incumbent at 100
#: (``--grid "local_every=3;prior=on"``), where the margin is half as wide.
DEFAULT_GRID = "sd_scale=1.5;starts=2;local_every=0,3;additive=off,on;prior=off,on"


def parse_grid(text: str) -> list[Any]:
    """``"sd_scale=1,2;starts=2,4"`` -> every combination as ``EHVISettings`` (labels, read
    over the class's defaults; none: the shipped ones); ValueError names the allowed keys."""
    from gcsearch.search.strategy import SHIPPED, EHVISettings

    axes = []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        key, eq, values = part.partition("=")
        if not eq or not values:
            raise ValueError(
                f"{part} (allowed: KEY=V1,V2;... with sd_scale, starts, batch_rule, "
                "local_every, additive, prior, average, amplitude)"
            )
        axes.append([f"{key.strip()}={v.strip()}" for v in values.split(",") if v.strip()])
    out = []
    for combo in itertools.product(*axes):
        s = EHVISettings.parse(",".join(combo))
        if s not in out:
            out.append(s)
    return out or [SHIPPED]


def rank_of(tuning: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], lab: str) -> Any:
    """How a setting ranks on some tables (larger is better): its worst P(HV >= 0.97) over
    the tables' original forms and numbers in flight (the acceptance is per table), then its
    mean there, then its mean on the label-shuffled forms (where cost says nothing)."""
    orig = [p for t in tuning.values() for p in t[lab]["original"]]
    shuf = [p for t in tuning.values() for p in t[lab]["shuffled"]]
    return (min(orig), statistics.mean(orig), statistics.mean(shuf))


def choose_setting(
    tuning: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], shipped: str, margin: float
) -> tuple[str, str]:
    """(chosen, best) on some tables: the best by ``rank_of``, chosen only when its worst
    case beats the shipped settings' by more than ``margin``; else the shipped ones."""
    labels = list(next(iter(tuning.values())))
    best = max(labels, key=lambda lab: rank_of(tuning, lab))
    if rank_of(tuning, best)[0] - rank_of(tuning, shipped)[0] <= margin:
        return shipped, best
    return best, best


def by_in_flight(figures: Mapping[str, Any]) -> Mapping[str, Any]:
    """A ``bench search --only search`` figure file's strategies per number in flight (``"0"``
    alone where it ran with one: such files keep them under ``strategies``)."""
    return figures.get("in_flight") or {"0": figures["strategies"]}


def choose_small_budget(runs: Sequence[Mapping[str, Any]], incumbent: str) -> dict[str, Any]:
    """The settings for small budgets, from ``gcsearch bench search`` figures on tuning seeds
    (benchmarks/small-budget/tune-*.json): ``incumbent`` (what ``bench select`` chose) unless
    a challenger was replayed everywhere the incumbent was (same tables, budgets and seeds),
    loses no P(HV >= 0.97) on any table's original form, budget and number in flight by more
    than 1/sqrt(replays) (about two binomial standard errors: ``choose_setting``'s margin),
    and gains on average over the label-shuffled forms at the smallest budget (the mean over
    those tables of the paired mean HV difference, where a misleading prior costs most).
    Returns ``chosen`` and, per challenger, ``eligible`` (or why not) and ``score``."""
    figs: dict[str, dict[tuple[str, int, str], Mapping[str, Any]]] = {}
    for run in runs:
        table = Path(run["table"]["path"]).name.removesuffix(".jsonl")
        for k, kinds in by_in_flight(run).items():
            trials = int(kinds["original"]["budget_trials"])
            figs.setdefault(run["ehvi"], {})[table, trials, k] = kinds
    if incumbent not in figs:
        return {"chosen": incumbent, "challengers": {}}
    base = figs[incumbent]
    least = min(p for _, p, _ in base)
    out: dict[str, Any] = {}
    for label, mine in figs.items():
        if label == incumbent:
            continue
        why = ""
        for key, theirs in base.items():
            if key not in mine:
                why = why or f"not replayed on {key[0]} at {key[1]} trials, {key[2]} in flight"
                continue
            e, b = mine[key]["original"]["scores"]["ehvi"], theirs["original"]["scores"]["ehvi"]
            if len(e["values"]) != len(b["values"]):
                why = why or f"other seeds on {key[0]} at {key[1]} trials"
            elif b["p_ge"] - e["p_ge"] > 1 / math.sqrt(len(b["values"])):
                why = why or (
                    f"P(HV >= 0.97) {e['p_ge']:.2f} against {b['p_ge']:.2f} on {key[0]} at "
                    f"{key[1]} trials, {key[2]} in flight"
                )
        gains = [
            statistics.mean(
                x - y
                for x, y in zip(
                    mine[key]["shuffled"]["scores"]["ehvi"]["values"],
                    base[key]["shuffled"]["scores"]["ehvi"]["values"],
                    strict=True,
                )
            )
            for key in base
            if key[1] == least and key in mine
        ]
        out[label] = {
            "eligible": why or True,
            "score": statistics.mean(gains) if gains else None,
        }
    best = max(
        (lab for lab, o in out.items() if o["eligible"] is True),
        key=lambda lab: out[lab]["score"],
        default=None,
    )
    chosen = best if best is not None and out[best]["score"] > 0 else incumbent
    return {"chosen": chosen, "smallest_budget_trials": least, "challengers": out}


def _fractions(text: str | None) -> list[float]:
    try:
        out = [float(x) for x in (text or "").split(",") if x.strip()]
    except ValueError:
        out = [-1.0]
    if any(not 0 < f <= 1 for f in out):
        raise UserError(f"--fractions: {text} (allowed: numbers in (0, 1], e.g. 0.15,0.25,0.4)")
    return out


def _job(
    space_path: str,
    settings_label: str,
    shuffle: bool,
    in_flight: int,
    seeds: Sequence[int],
    fraction: float,
    cache: str,
    without: Sequence[str] = (),
) -> dict[str, Any]:
    """One batch of replays with the settings ``settings_label`` names, parsed over the shipped
    defaults (a label leaves local_every=0 and additive=off unsaid) and handed to the replays:
    a pool process runs many batches, and none leaves its settings to the next. ``without``:
    tables left out of ehvi's prior besides the replayed one (a fold's held-out table)."""
    path = Path(cache)
    if path.exists():
        return json.loads(path.read_text())
    from gcsearch.bench.search import bench_strategies
    from gcsearch.bench.table import load_table
    from gcsearch.search import strategy
    from gcsearch.search.space import load_space

    ehvi = strategy.EHVISettings.parse(settings_label)
    ehvi = replace(ehvi, prior_without=tuple(without))
    space = load_space(space_path)
    table = load_table(table_path(space), space, [0, 1, 2])
    tick = time.perf_counter()
    out = bench_strategies(
        space,
        table,
        replays=len(seeds),
        fraction=fraction,
        strategies=["ehvi"],
        shuffle=shuffle,
        first_seed=seeds[0],
        in_flight=in_flight,
        ehvi=ehvi,
        log=lambda _: None,
    )
    out["settings"] = settings_label
    out["seconds"] = time.perf_counter() - tick
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out) + "\n")
    tmp.replace(path)
    return out


def table_path(space: Any) -> Path:
    """The committed exhaustive table of a bench space (``benchmarks/tables/<name>.jsonl``)."""
    from gcsearch.bench.search import ROOT

    return ROOT / "benchmarks" / "tables" / f"{space.name}.jsonl"


def committed_table(name: str) -> tuple[Any, Path]:
    """The bench space ``name`` and its committed table's path; a one-line ``UserError`` for
    an unknown space or a table not built yet (naming the command that builds it)."""
    from gcsearch.search.space import load_space

    space = load_space(name)
    path = table_path(space)
    if not path.exists():
        raise UserError(
            f"{space.name}: no exhaustive table at {path} (build it with gcsearch bench search "
            f"--space {name} --build-table)"
        )
    return space, path


def _key(
    space: str,
    settings: str,
    shuffle: bool,
    k: int,
    seeds: Sequence[int],
    frac: float,
    without: Sequence[str] = (),
) -> str:
    name = Path(space).stem
    safe = settings.replace("=", "").replace(",", "_").replace("+", "p")
    kind = "shuffled" if shuffle else "original"
    wo = "".join(f"-wo-{Path(w).stem}" for w in without)
    return f"{name}/{safe}/{kind}-f{k}-s{seeds[0]}-{seeds[-1]}-b{frac:g}{wo}.json"


def _without(label: str, held: str | None) -> tuple[str, ...]:
    """Tables a replay's prior leaves out besides its own: in the fold that holds ``held``
    out, that table too, so no figure of the held-out table informs the choice made for it
    (settings without the prior read no table: nothing)."""
    from gcsearch.search.strategy import EHVISettings

    if held is None or not EHVISettings.parse(label).prior:
        return ()
    return (Path(held).stem,)


def _run_all(
    jobs: list[tuple[Any, ...]], root: Path, workers: int, log: Any
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Runs (or reads from the cache) every batch; returns them keyed by the job tuple."""
    todo = {j: str(root / _key(*j)) for j in jobs}
    done = {j: json.loads(Path(c).read_text()) for j, c in todo.items() if Path(c).exists()}
    left = [j for j in jobs if j not in done]
    log(f"  {len(done)} of {len(jobs)} replay batches cached; {len(left)} to run")
    if not left:
        return done
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_job, *j[:6], todo[j], *j[6:]): j for j in left}
        for n, fut in enumerate(futures, 1):
            j = futures[fut]
            done[j] = fut.result()
            p = done[j]["scores"]["ehvi"]
            log(
                f"  [{n}/{len(left)}] {Path(j[0]).stem} {j[1]} "
                f"{'shuffled' if j[2] else 'original'} {j[3]} in flight: "
                f"P {p['p_ge']:.2f} median {p['median']:.3f}"
            )
    return done


def select(
    spaces: Sequence[str],
    grid: Sequence[Any],
    *,
    tune_seeds: Sequence[int],
    test_seeds: Sequence[int],
    tune_flights: Sequence[int],
    test_flights: Sequence[int],
    fraction: float,
    root: Path,
    workers: int,
    fractions: Sequence[float] = (),
    log: Any = print,
) -> dict[str, Any]:
    """Leave-one-table-out selection over ``grid`` (see the module docstring)."""
    from gcsearch.search.space import load_space
    from gcsearch.search.strategy import SHIPPED

    shipped = SHIPPED.label()  # what a search runs with today
    labels = [s.label() for s in grid]
    labels += [] if shipped in labels else [shipped]  # the incumbent is always a candidate
    log(f"tuning: {len(labels)} settings x {len(spaces)} tables, seeds {tune_seeds[0]}-...")
    # every table with every setting; for a fold, the prior leaves its held-out table out too
    folds_of: list[str | None] = [None, *spaces]
    tune_jobs = sorted(
        {
            (sp, lab, sh, k, tuple(tune_seeds), fraction, _without(lab, held))
            for held in folds_of
            for sp in spaces
            if sp != held
            for lab in labels
            for sh in (False, True)
            for k in tune_flights
        }
    )
    tuned = _run_all(tune_jobs, root, workers, log)

    def p_of(sp: str, lab: str, shuffled: bool, held: str | None) -> list[float]:
        wo = _without(lab, held)
        return [
            tuned[(sp, lab, shuffled, k, tuple(tune_seeds), fraction, wo)]["scores"]["ehvi"]["p_ge"]
            for k in tune_flights
        ]

    # per table and setting: P(HV >= 0.97) on original and shuffled tables, per number in
    # flight, as the fold holding ``held`` out replayed them (None: every table in the prior
    # but the replayed one)
    def tuning_of(held: str | None) -> dict[str, Any]:
        return {
            Path(sp).stem: {
                lab: {
                    "original": p_of(sp, lab, False, held),
                    "shuffled": p_of(sp, lab, True, held),
                }
                for lab in labels
            }
            for sp in spaces
            if sp != held
        }

    tuning = tuning_of(None)
    fold_tuning = {Path(h).stem: tuning_of(h) for h in spaces}

    # a challenger replaces the shipped settings only when its worst case beats theirs by more
    # than about two binomial standard errors of a P(HV >= 0.97) over the tuning replays
    margin = 1.0 / math.sqrt(len(tune_seeds))

    folds = []
    for held in spaces:
        seen = fold_tuning[Path(held).stem]
        chosen, best = choose_setting(seen, shipped, margin)
        folds.append(
            {
                "held_out": held,
                "chosen": chosen,
                "best_on_tuning": best,
                "tuning_rank": rank_of(seen, chosen),
                "best_rank": rank_of(seen, best),
            }
        )
    overall, overall_best = choose_setting(tuning, shipped, margin)
    log(f"chosen on all tables: {overall}; folds: " + ", ".join(f["chosen"] for f in folds))
    test_jobs = sorted(
        {
            (f["held_out"], lab, sh, k, tuple(test_seeds), fraction)
            for f in folds
            for lab in {f["chosen"], f["best_on_tuning"], shipped}
            for sh in (False, True)
            for k in test_flights
        }
    )
    tested = _run_all(test_jobs, root, workers, log)
    for f in folds:
        f["held_out_scores"] = {
            which: {
                ("shuffled" if sh else "original"): {
                    str(k): tested[(f["held_out"], lab, sh, k, tuple(test_seeds), fraction)][
                        "scores"
                    ]
                    for k in test_flights
                }
                for sh in (False, True)
            }
            for which, lab in (
                ("chosen", f["chosen"]),
                ("best_on_tuning", f["best_on_tuning"]),
                ("shipped", shipped),
            )
        }
        f["held_out"] = Path(f["held_out"]).stem
    # the setting chosen on all tables at other budgets (nothing in flight), every table: is
    # it ahead of the controls where cost says nothing (label-shuffled) at each budget?
    frac_jobs = [
        (sp, overall, sh, 0, tuple(test_seeds), fr)
        for sp in spaces
        for fr in fractions
        for sh in (False, True)
    ]
    by_fraction = _run_all(frac_jobs, root, workers, log) if frac_jobs else {}
    budgets = {
        f"{fr:g}": {
            Path(sp).stem: {
                ("shuffled" if sh else "original"): by_fraction[
                    (sp, overall, sh, 0, tuple(test_seeds), fr)
                ]["scores"]
                for sh in (False, True)
            }
            for sp in spaces
        }
        for fr in fractions
    }
    return {
        "grid": labels,
        "shipped": shipped,
        "chosen_on_all": overall,
        "best_on_all": overall_best,
        "switch_margin": margin,
        "tune_seeds": [tune_seeds[0], tune_seeds[-1]],
        "test_seeds": [test_seeds[0], test_seeds[-1]],
        "tune_in_flight": list(tune_flights),
        "test_in_flight": list(test_flights),
        "budget_fraction": fraction,
        "tables": {Path(sp).stem: str(table_path(load_space(sp))) for sp in spaces},
        "tuning": tuning,
        "fold_tuning": fold_tuning,
        "folds": folds,
        "budgets": budgets,
    }


def _print(fig: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    t = RichTable(
        title=f"leave-one-table-out: chosen on the others (tuning seeds {fig['tune_seeds']}), "
        f"scored on the held-out table (test seeds {fig['test_seeds']}), P(HV >= 0.97)",
        title_justify="left",
    )
    for col in (
        "held out",
        "settings",
        "table",
        *(f"{k} in flight" for k in fig["test_in_flight"]),
    ):
        t.add_column(col)
    for f in fig["folds"]:
        names = {"chosen": f["chosen"], "best_on_tuning": f["best_on_tuning"]}
        for which in ("chosen", "best_on_tuning", "shipped"):
            for kind, by_k in f["held_out_scores"][which].items():
                t.add_row(
                    f["held_out"],
                    f"{which}: {names.get(which, fig['shipped'])}",
                    kind,
                    *(
                        f"{by_k[str(k)]['ehvi']['p_ge']:.2f} ({by_k[str(k)]['ehvi']['median']:.3f})"
                        for k in fig["test_in_flight"]
                    ),
                )
    Console(width=160).print(t)
    print(f"chosen on all tables: {fig['chosen_on_all']} (shipped: {fig['shipped']})")


def run_bench_select(args: argparse.Namespace) -> int:
    """Entry point for ``gcsearch bench select``."""
    from gcsearch.bench.proxy import parse_seeds

    spaces = [s for s in (args.tables or "").split(",") if s]
    if len(spaces) < 2:
        raise UserError(
            f"--tables: {args.tables!r} (allowed: two or more bench spaces, comma-separated, "
            "e.g. bench-small,bench-small-graded,bench-small-pairs)"
        )
    for name in spaces:
        committed_table(name)  # one-line errors for unknown spaces and unbuilt tables
    try:
        grid = parse_grid(args.grid or DEFAULT_GRID)
    except ValueError as exc:
        raise UserError(f"bench select: {exc}") from None
    tune = parse_seeds(args.tune_seeds, "--tune-seeds")
    test = parse_seeds(args.test_seeds, "--test-seeds")
    tune_k = parse_seeds(args.in_flight_tune, "--in-flight-tune")
    test_k = parse_seeds(args.in_flight, "--in-flight")
    if set(tune) & set(test):
        raise UserError(
            f"--tune-seeds {args.tune_seeds} and --test-seeds {args.test_seeds} overlap "
            "(allowed: disjoint ranges, so the held-out score is not tuned on)"
        )
    root = Path(args.run_root) / "select"
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    fig = select(
        spaces,
        grid,
        tune_seeds=tune,
        test_seeds=test,
        tune_flights=tune_k,
        test_flights=test_k,
        fraction=args.budget_fraction,
        root=root,
        workers=args.jobs,
        fractions=_fractions(args.fractions),
    )
    fig = {
        "command": "gcsearch " + shlex.join(sys.argv[1:]),
        "started": started,
        "load_average": os.getloadavg(),
        **fig,
    }
    out = Path(args.out or Path(args.run_root) / "bench-select.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fig, indent=1) + "\n")
    _print(fig)
    print(f"figures: {out}")
    return 0


__all__ = [
    "DEFAULT_GRID",
    "by_in_flight",
    "choose_setting",
    "choose_small_budget",
    "committed_table",
    "parse_grid",
    "rank_of",
    "run_bench_select",
    "select",
]
