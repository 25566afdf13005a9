"""``gcsearch bench proxy``: how much a proxy task can resolve, measured.

Trains each candidate under N seeds (the same seeds for every candidate, so differences pair)
with the task's budget, one torch thread per trial and ``--jobs`` trials in parallel processes,
and reports per candidate: the mean top-1, the seed standard deviation, whether the seeds split
into a solved and an unsolved mode, the seconds per trial, and the **minimum detectable
difference** (MDD) at n = 3 seeds: the smallest true difference between two candidates that a
two-sided paired t-test over 3 shared seeds at α = 0.05 detects with power 0.8, from the
standard deviation of their per-seed differences (``gcsearch.report.stats``).

Modes: the sorted seed results split into two modes where the largest gap between neighbours is
at least ``MODE_GAP`` points and at least ``MODE_RATIO`` times the larger standard deviation
inside the two groups — a seed that solves the task and one that does not, rather than noise.

At chance: a seed whose top-1 is within 3 binomial standard deviations of chance (100 / classes)
on the fixed ``val_images`` never learned the task; ``chance_line`` gives that bound. A block
whose seeds sit partly at chance and partly well above it is bimodal even where the spread
above chance hides the gap from the mode test.

With ``--split-tau`` it ranks the candidates by their mean over the first half of the seeds and
over the second half and reports Kendall's τ (τ-b, ties allowed) and Spearman's ρ between the two
rankings: whether the proxy *ranks*, not only whether it is quiet.

Example:
    gcsearch bench proxy --task synthetic --seeds 0,1,2,3,4 --jobs 2
    gcsearch bench proxy --space spaces/quick.toml --seeds 0,1,2,3,4,5 --split-tau --jobs 2
    gcsearch bench proxy --space quick --task synthetic-distinct --seeds 0-5 --split-tau
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import math
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gcsearch.errors import UserError
from gcsearch.pool import process_pool

if TYPE_CHECKING:
    from gcsearch.tasks import Budget

#: default candidates: the baseline, three lineage presets and two searched blocks
DEFAULT_CANDIDATES = (
    "none",
    "se",
    "snl",
    "gc",
    "avg-r16ln-add@after_1x1:c3c4c5",
    "att-r16ln-mul@after_1x1:c3c4c5",
)
MODE_GAP = 5.0  # points of top-1
MODE_RATIO = 3.0
ALPHA, POWER, MDD_N = 0.05, 0.8, 3


def modes(values: Sequence[float]) -> dict[str, Any] | None:
    """The solved/unsolved split of ``values`` (see the module docstring), or None."""
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if len(vals) < 2:
        return None
    gaps = [b - a for a, b in itertools.pairwise(vals)]
    k = max(range(len(gaps)), key=gaps.__getitem__)
    low, high = vals[: k + 1], vals[k + 1 :]
    inside = max(statistics.stdev(g) if len(g) > 1 else 0.0 for g in (low, high))
    if gaps[k] < MODE_GAP or gaps[k] < MODE_RATIO * inside:
        return None
    return {
        "low": {"n": len(low), "mean": statistics.mean(low)},
        "high": {"n": len(high), "mean": statistics.mean(high)},
        "gap": gaps[k],
    }


def chance_line(num_classes: int, val_images: int) -> float:
    """Top-1 (points) below which a seed counts as at chance: chance plus 3 binomial standard
    deviations of a ``val_images`` evaluation set."""
    p = 1 / num_classes
    return 100 * (p + 3 * math.sqrt(p * (1 - p) / val_images))


def summarise(results: Iterable[Mapping[str, Any]], chance: float | None = None) -> dict[str, Any]:
    """Per-candidate figures and per-pair MDDs from trial dicts (``TrialResult.to_dict``);
    with ``chance`` (``chance_line``), how many seeds of each candidate are at chance."""
    from gcsearch.report.stats import min_detectable_difference

    by: dict[str, dict[int, Mapping[str, Any]]] = {}
    for r in results:
        by.setdefault(str(r["candidate_id"]), {})[int(r["seed"])] = r
    cands: dict[str, dict[str, Any]] = {}
    for cid, runs in by.items():
        ok = {s: float(r["top1"]) for s, r in sorted(runs.items()) if _complete(r)}
        vals = list(ok.values())
        cands[cid] = {
            "top1": {str(s): v for s, v in ok.items()},
            "n": len(vals),
            "mean": statistics.mean(vals) if vals else math.nan,
            "std": statistics.stdev(vals) if len(vals) > 1 else math.nan,
            "modes": modes(vals),
            "at_chance": None if chance is None else sum(v <= chance for v in vals),
            "seconds_per_trial": statistics.mean(float(r["wall_s"]) for r in runs.values()),
            "failed": sorted(s for s, r in runs.items() if not _complete(r)),
            "params": next(iter(runs.values())).get("params"),
            "macs": next(iter(runs.values())).get("macs"),
        }
    pairs = []
    ids = list(cands)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            shared = sorted(set(cands[a]["top1"]) & set(cands[b]["top1"]))
            diffs = [cands[a]["top1"][s] - cands[b]["top1"][s] for s in shared]
            sd = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
            pairs.append(
                {
                    "a": a,
                    "b": b,
                    "n": len(diffs),
                    "mean_diff": statistics.mean(diffs) if diffs else math.nan,
                    "sd_diff": sd,
                    "mdd_n3": min_detectable_difference(sd, MDD_N, ALPHA, POWER),
                }
            )
    for cid, c in cands.items():
        mine = [
            p["mdd_n3"] for p in pairs if cid in (p["a"], p["b"]) and math.isfinite(p["mdd_n3"])
        ]
        c["mdd_n3_median"] = statistics.median(mine) if mine else math.nan
        c["mdd_n3_max"] = max(mine) if mine else math.nan
    return {"candidates": cands, "pairs": pairs}


def _complete(r: Mapping[str, Any]) -> bool:
    return r.get("status") == "complete" and r.get("top1") is not None


def split_tau(
    candidates: Mapping[str, Mapping[str, Any]], first: Sequence[int], second: Sequence[int]
) -> dict[str, Any]:
    """Kendall τ-b and Spearman ρ between the candidates' rankings by mean top-1 over the
    ``first`` seeds and over the ``second`` seeds."""
    from scipy.stats import kendalltau, spearmanr

    a, b, ids = [], [], []
    seen: set[tuple[Any, ...]] = set()
    duplicates = []
    for cid, c in candidates.items():
        xs = [c["top1"].get(str(s)) for s in first]
        ys = [c["top1"].get(str(s)) for s in second]
        if None in xs or None in ys:
            continue
        # the same network under another name (gc and its block id): same cost, same result
        # under every seed; one row, or the tie would count twice
        key = (c.get("params"), c.get("macs"), *xs, *ys)
        if key in seen:
            duplicates.append(cid)
            continue
        seen.add(key)
        ids.append(cid)
        a.append(statistics.mean(xs))
        b.append(statistics.mean(ys))
    if len(ids) < 3:
        raise UserError(f"--split-tau: {len(ids)} candidates have every seed; need at least 3")
    with warnings.catch_warnings():  # constant input (all tied): NaN, reported as such
        warnings.simplefilter("ignore")
        tau, rho = float(kendalltau(a, b).statistic), float(spearmanr(a, b).statistic)
    return {
        "first": list(first),
        "second": list(second),
        "n_candidates": len(ids),
        "left_out_as_duplicates": duplicates,
        "kendall_tau": tau,
        "spearman_rho": rho,
        "means_first": dict(zip(ids, a, strict=True)),
        "means_second": dict(zip(ids, b, strict=True)),
    }


def _trial(job: tuple[str, str, str | None, dict[str, Any], str, int, int]) -> dict[str, Any]:
    """One trial in a worker process (picklable arguments in, a plain dict out)."""
    from gcsearch.tasks import Budget, get_task
    from gcsearch.tasks.train import read_candidate, train

    cid, task_name, data, budget, backbone, seed, threads = job
    task = get_task(task_name, data)
    r = train(
        read_candidate(cid, backbone),
        task,
        Budget.from_dict(budget),
        seed,
        "cpu",
        backbone=backbone,
        threads=threads,
    )
    return r.to_dict()


def run_trials(
    candidates: Sequence[str],
    seeds: Sequence[int],
    task: str,
    data: str | None,
    budget: Mapping[str, Any],
    backbone: str,
    jobs: int = 1,
    threads: int = 1,
    progress: Callable[[dict[str, Any], int, int], None] | None = None,
    skip: set[tuple[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Every candidate x seed (but ``skip``), ``jobs`` at a time in spawned processes (1: in
    this process), seed by seed so that a stopped run still holds whole seeds."""
    work = [
        (c, task, data, dict(budget), backbone, s, threads)
        for s in seeds
        for c in candidates
        if (c, s) not in (skip or set())
    ]
    out: list[dict[str, Any]] = []
    if jobs <= 1:
        for job in work:
            out.append(_trial(job))
            if progress:
                progress(out[-1], len(out), len(work))
        return out
    with process_pool(jobs) as pool:
        futures = [pool.submit(_trial, job) for job in work]
        for fut in as_completed(futures):
            out.append(fut.result())
            if progress:
                progress(out[-1], len(out), len(work))
    return out


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``0,1,2`` or ``0-5`` -> seeds; a one-line UserError naming ``flag`` otherwise."""
    try:
        if "-" in text and "," not in text:
            lo, hi = (int(x) for x in text.split("-"))
            if hi < lo:
                raise UserError(
                    f"{flag}: {text!r} is an empty range (allowed: a list like "
                    f"0,1,2 or a range FIRST-LAST with FIRST <= LAST, e.g. {hi}-{lo})"
                )
            return list(range(lo, hi + 1))
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise UserError(f"{flag}: {text!r} is not a list like 0,1,2 or a range like 0-5") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{flag}: {text!r} repeats a seed")
    return seeds


def parse_budget(text: str | None) -> dict[str, Any]:
    """``key=value,...`` budget overrides, typed like ``Budget``'s defaults."""
    import dataclasses

    from gcsearch.tasks import Budget

    if not text:
        return {}
    types = {f.name: type(f.default) for f in dataclasses.fields(Budget)}
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in types or not value:
            raise UserError(
                f"--budget: {item!r} is not key=value with a key among {', '.join(types)}"
            )
        kind = int if types[key] is type(None) else types[key]
        try:
            out[key] = None if value == "none" else (kind(value) if kind in (int, float) else value)
        except ValueError:
            raise UserError(f"--budget: {key}={value!r} is not a {kind.__name__}") from None
    return out


def _fmt(v: float, spec: str = ".2f") -> str:
    return "–" if v is None or not math.isfinite(v) else format(v, spec)


def render(summary: Mapping[str, Any]) -> list[str]:
    """The table (and the split-seed τ) as text lines."""
    lines = [
        f"{'candidate':34s} {'n':>2s} {'mean':>7s} {'std':>6s} {'MDD n=3':>8s} {'(worst)':>8s}"
        f" {'s/trial':>7s}  modes  per seed"
    ]
    for cid, c in summary["candidates"].items():
        m = c["modes"]
        mode = "one"
        if m:
            lo, hi = m["low"], m["high"]
            mode = f"split {lo['n']}@{lo['mean']:.1f} / {hi['n']}@{hi['mean']:.1f}"
        if c.get("at_chance") and c["at_chance"] < c["n"]:
            mode += f", {c['at_chance']} at chance"
        per = " ".join(f"{v:.1f}" for v in c["top1"].values())
        fail = f"  failed seeds {c['failed']}" if c["failed"] else ""
        lines.append(
            f"{cid:34s} {c['n']:2d} {_fmt(c['mean']):>7s} {_fmt(c['std']):>6s} "
            f"{_fmt(c['mdd_n3_median']):>8s} {_fmt(c['mdd_n3_max']):>8s} "
            f"{_fmt(c['seconds_per_trial'], '.1f'):>7s}  {mode:5s}  {per}{fail}"
        )
    stds = [c["std"] for c in summary["candidates"].values() if math.isfinite(c["std"])]
    if stds:
        lines.append(f"largest seed std: {max(stds):.2f} points (target <= 1.0)")
    lines.append(
        f"MDD n=3: median (worst) over the pairs with each other candidate of the smallest true "
        f"difference a paired t-test over {MDD_N} shared seeds detects at α = {ALPHA}, "
        f"power {POWER}, from the std of per-seed differences."
    )
    tau = summary.get("split_tau")
    if tau:
        lines.append(
            f"split-seed ranking of {tau['n_candidates']} candidates, seeds {tau['first']} vs "
            f"{tau['second']}: Kendall τ-b {tau['kendall_tau']:.3f}, Spearman ρ "
            f"{tau['spearman_rho']:.3f} (target τ >= 0.8)"
        )
    return lines


def run_bench_proxy(args: argparse.Namespace) -> int:
    """``gcsearch bench proxy``: train, summarise, print the table, write the JSON."""
    import torch

    from gcsearch.tasks import DEFAULT_TASK, get_task

    task_name, data = args.task or DEFAULT_TASK, getattr(args, "data", None)
    backbone = args.backbone
    overrides: dict[str, Any] = {}
    names: list[str]
    if args.space:
        from gcsearch.search.space import load_space

        space = load_space(args.space)
        if args.task is None:  # else the space's candidates and budget on --task
            task_name, data = space.task, space.data or data
        backbone = backbone or space.backbone
        overrides = dict(space.budget)
        names = [c.id for c in space.references()] + [c.id for c in space.candidates()]
    else:
        names = args.candidates.split(",") if args.candidates else list(DEFAULT_CANDIDATES)
    task = get_task(task_name, data)
    budget = task.budget.replace(**overrides).replace(epochs=args.epochs)
    budget = budget.replace(**parse_budget(getattr(args, "budget", None)))
    seeds = parse_seeds(args.seeds)
    if args.smoke:
        budget = budget.replace(train_images=128, val_images=64, epochs=1, batch_size=32)
        seeds, names = seeds[:2] if len(seeds) >= 2 else [0, 1], names[:3]
    if args.record and args.smoke:
        raise UserError("--record: a --smoke run is not a measurement; drop one of them")
    if args.split_tau and len(seeds) < 2:
        raise UserError("--split-tau: needs at least 2 seeds (the halves are compared)")
    if args.jobs < 1 or args.threads < 1:
        raise UserError("--jobs and --threads: must be positive integers")
    backbone = backbone or task.backbone
    from gcsearch.tasks.train import read_candidate

    ids = [read_candidate(n, backbone).id for n in names]  # validates names before training
    print(
        f"bench proxy: {len(ids)} candidates x {len(seeds)} seeds on {task.name} ({backbone}), "
        f"{budget.train_images} images x {budget.epochs} epochs, {args.jobs} parallel trial(s) "
        f"of {args.threads} thread(s), torch {torch.__version__}",
        flush=True,
    )
    start = time.perf_counter()
    out = Path(args.out or f"runs/bench/proxy-{task.name}{'-smoke' if args.smoke else ''}.json")
    log = out.with_suffix(".trials.jsonl")  # every finished trial at once: nothing lost
    # only what this run asked for (the log may hold other candidates and seeds)
    earlier = _earlier(log, budget, backbone, ids, seeds) if args.resume else []
    done_keys = {(r["candidate_id"], int(r["seed"])) for r in earlier}
    log.parent.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        log.write_text("")

    def tick(r: dict[str, Any], done: int, total: int) -> None:
        with log.open("a") as f:
            f.write(json.dumps(r) + "\n")
        if not args.quiet:
            top1 = "-" if r["top1"] is None else f"{r['top1']:.2f}"
            print(
                f"  [{done}/{total}] {r['candidate_id']} seed {r['seed']}: {r['status']} "
                f"{top1} ({r['wall_s']:.1f} s)",
                flush=True,
            )

    results = earlier + run_trials(
        ids,
        seeds,
        task.name,
        data,
        budget.to_dict(),
        backbone,
        args.jobs,
        args.threads,
        tick,
        skip=done_keys,
    )
    summary = summarise(results, chance_line(task.num_classes, budget.val_images))
    # keep the requested candidate order
    summary["candidates"] = {i: summary["candidates"][i] for i in ids if i in summary["candidates"]}
    if args.split_tau:
        half = len(seeds) // 2
        summary["split_tau"] = split_tau(summary["candidates"], seeds[:half], seeds[half:])
        summary["split_tau"].update(
            {"space": args.space, "budget": budget.to_dict(), "command": _command()}
        )
    wall = time.perf_counter() - start
    summary.update(
        {
            "task": task.name,
            "backbone": backbone,
            "budget": budget.to_dict(),
            "seeds": seeds,
            "space": args.space,
            "jobs": args.jobs,
            "threads": args.threads,
            "alpha": ALPHA,
            "power": POWER,
            "mode_rule": f"largest gap >= {MODE_GAP} points and >= {MODE_RATIO} x inner std",
            "host": platform.node(),
            "cpu_count": _cpu_count(),
            "torch": torch.__version__,
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "wall_s": wall,  # this invocation only; resumed trials ran earlier
            "resumed_trials": len(earlier),
            "trial_seconds": sum(float(r["wall_s"]) for r in results),
            "command": _command(),
            "smoke": bool(args.smoke),
        }
    )
    for line in render(summary):
        print(line)
    again = f" ({len(earlier)} of them from the earlier run)" if earlier else ""
    print(f"{len(results)} trials in {wall:.0f} s{again}")
    _write(out, summary)
    print(f"wrote {out}")
    if args.record:
        from gcsearch.tasks import MEASURED_DIR

        rec = MEASURED_DIR / f"{task.name}.json"
        keep = bool(args.space) and budget != task.budget
        _write(rec, _merge(rec, summary, keep_spread=keep))
        print(f"recorded in {rec} (read by `gcsearch tasks list`)")
    return 0


def _earlier(
    log: Path, budget: Budget, backbone: str, ids: Sequence[str], seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """Trials of candidates ``ids`` under ``seeds`` that a stopped run of the same budget and
    backbone finished (``--resume``)."""
    from gcsearch.tasks import Budget

    if not log.is_file():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short when the run was stopped
        if (
            r.get("env", {}).get("backbone") == backbone
            and r.get("candidate_id") in ids
            and int(r.get("seed", -1)) in seeds
            and Budget.from_dict(r.get("budget") or {}) == budget
        ):
            out.append(r)
    return out


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def _command(argv: Sequence[str] | None = None) -> str:
    """The command that reproduces the figures: ``argv`` without the options that change only
    where output goes or whether a stopped run is continued (``--out``, ``--resume``,
    ``--quiet``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    keep: list[str] = []
    while args:
        arg = args.pop(0)
        if arg == "--out":
            args = args[1:]
        elif arg not in ("--resume", "--quiet") and not arg.startswith("--out="):
            keep.append(arg)
    return "gcsearch " + " ".join(keep)


def _merge(path: Path, summary: Mapping[str, Any], keep_spread: bool) -> dict[str, Any]:
    """The recorded file. A run with ``--split-tau`` on a space adds its τ (which carries its
    own budget and command) and, with ``keep_spread``, leaves the recorded spread alone; a
    spread run keeps an earlier τ."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    if keep_spread and old:
        return {**old, "split_tau": summary["split_tau"]}
    new = dict(summary)
    if "split_tau" not in new and old.get("split_tau"):
        new["split_tau"] = old["split_tau"]
    return new


def _write(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, allow_nan=True, default=str) + "\n")
