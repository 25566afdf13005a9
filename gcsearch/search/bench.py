"""``gcsearch bench search``: scaling, driver overhead, sampler efficiency, multi-fidelity.

* **scaling** - the same candidates searched with 1 and with 2 parallel single-thread trials on
  local Ray; trials per hour of the search loop (Ray start excluded, reported apart).
* **overhead** - from the 1-parallel run: search-loop time minus the time the trials spent
  inside their workers (cost counting + training), per trial; as a share of a 20 s trial.
* **efficiency** - ``spaces/bench-small.toml`` (54 candidates) is trained exhaustively once
  (kept in ``runs/bench-exhaustive``); ``nsga2``, ``tpe`` and ``random`` are then replayed
  against that table with a budget of 25 % of the candidates, over many sampler seeds, and
  scored by the hypervolume of the front they found as a fraction of the exhaustive front's
  (objectives normalised to the exhaustive ideal and nadir points, reference 1.1).
* **fidelity** - the same table replayed with successive halving (every candidate sampled, in
  random orders): epochs and seconds saved against full-budget training of every candidate, and
  the hypervolume of both fronts.

Replays answer trials from recorded per-epoch histories (as tabular NAS benchmarks do), so
their figures are exact functions of the exhaustive run. Figures print as a table and are
written to ``<out>/bench-search.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from gcsearch.search.local import TableExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.run import search
from gcsearch.search.space import Space, load_space, parse_space

ROOT = Path(__file__).resolve().parents[2]
BENCH_SPACE = ROOT / "spaces" / "bench-small.toml"

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


def _front_hv(points: Sequence[Sequence[float]], senses: Sequence[str],
              reference: Sequence[float]) -> float:
    from gcsearch.report import hypervolume

    return float(hypervolume(points, senses, reference)) if points else 0.0


def _points(study: Any, searched_only: bool = False) -> list[list[float]]:
    """Objective vectors of trained complete trials (optionally without reference rows)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rec = TrialRecord.read(t)
        if t.values and not rec.is_duplicate and not (searched_only and rec.role == "reference"):
            out.append(list(t.values))
    return out


def exhaustive_table(space: Space, run_dir: Path, fresh: bool = False,
                     ) -> tuple[dict[str, dict[int, dict[str, Any]]], Any]:
    """Train every candidate of ``space`` at the full budget once (reused unless ``fresh``)."""
    import optuna

    from gcsearch.search.storage import open_storage

    db = run_dir / "study.db"
    if fresh or not db.is_file():
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        full = space.with_overrides(sampler="grid", n_trials=None, enabled=False)
        search(full, run_dir, progress=True, export=False)
    storage, _ = open_storage(run_dir, None)
    study = optuna.load_study(study_name=space.name, storage=storage)
    table: dict[str, dict[int, dict[str, Any]]] = {}
    for t in study.get_trials(deepcopy=False):
        rec = TrialRecord.read(t)
        if t.state.is_finished() and not rec.is_duplicate:
            for r in rec.results:
                table.setdefault(rec.candidate_id, {})[int(r["seed"])] = r
    return table, study


def replay(space: Space, table: Mapping[str, Any], *, sampler: str, n_trials: int | None,
           seed: int, fidelity: bool) -> tuple[Any, TableExecutor]:
    """One search answered from ``table`` (in-memory study, no Ray)."""
    sp = space.with_overrides(sampler=sampler, n_trials=n_trials, sampler_seed=seed,
                              enabled=fidelity, parallel=1)
    budget_epochs = int(space.budget.get("epochs", 0)) or max(
        len(r.get("history") or []) for seeds in table.values() for r in seeds.values())
    del budget_epochs
    ex = TableExecutor(table, parallel=1)
    with tempfile.TemporaryDirectory() as tmp:
        out = search(sp, Path(tmp), storage="memory", executor=ex, progress=False,
                     export=False)
    return out.study, ex


def _mean_sd(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} (n={len(values)})"


class _Scale:
    """Hypervolume on objectives normalised to the exhaustive run's ideal (0) and nadir (1)
    points, reference 1.1 in each: raw costs of these blocks differ by under 1 %, so with a raw
    reference at 1.1 x the largest cost every point owns most of the box and every fraction
    looks near 1. Also keeps the raw figure for comparison."""

    def __init__(self, points: Sequence[Sequence[float]], senses: Sequence[str]) -> None:
        self.signs = [-1.0 if s == "max" else 1.0 for s in senses]
        mins = [[v * g for v, g in zip(p, self.signs, strict=True)] for p in points]
        self.ideal = [min(col) for col in zip(*mins, strict=True)]
        self.nadir = [max(col) for col in zip(*mins, strict=True)]
        self.senses = list(senses)
        self.raw_ref = [0.0 if s == "max" else 1.1 * max(p[i] for p in points)
                        for i, s in enumerate(senses)]

    def hv(self, points: Sequence[Sequence[float]]) -> float:
        norm = [[(v * g - lo) / ((hi - lo) or 1.0) for v, g, lo, hi in
                 zip(p, self.signs, self.ideal, self.nadir, strict=True)] for p in points]
        return _front_hv(norm, ["min"] * len(self.signs), [1.1] * len(self.signs))

    def raw(self, points: Sequence[Sequence[float]]) -> float:
        return _front_hv(points, self.senses, self.raw_ref)


def bench_efficiency_and_fidelity(space: Space, run_dir: Path, repeats: int,
                                  fresh: bool = False) -> dict[str, Any]:
    """Sampler efficiency at 25 % of the space and successive-halving savings, by replay."""
    table, study = exhaustive_table(space, run_dir, fresh)
    senses = ["max" if o.endswith(":max") else "min" for o in space.objectives]
    all_pts, searched_pts = _points(study), _points(study, True)
    scale = _Scale(all_pts, senses)
    hv_all, hv_searched, raw_all = scale.hv(all_pts), scale.hv(searched_pts), scale.raw(all_pts)
    n = len(space.candidates())
    budget = max(1, round(0.25 * n))
    out: dict[str, Any] = {"space": str(space.path), "candidates": n, "budget_trials": budget,
                           "hv_exhaustive": hv_all, "hv_exhaustive_raw": raw_all,
                           "ideal": scale.ideal, "nadir": scale.nadir,
                           "exhaustive_epochs": sum(len(r.get("history") or [])
                                                    for s in table.values() for r in s.values())}
    for sampler in ("nsga2", "tpe", "random"):
        fracs, searched, raw = [], [], []
        for seed in range(repeats):
            st, _ = replay(space, table, sampler=sampler, n_trials=budget, seed=seed,
                           fidelity=False)
            fracs.append(scale.hv(_points(st)) / hv_all)
            searched.append(scale.hv(_points(st, True)) / hv_searched)
            raw.append(scale.raw(_points(st)) / raw_all)
        out[f"hv_fraction_{sampler}"] = fracs
        out[f"hv_fraction_searched_{sampler}"] = searched
        out[f"hv_fraction_raw_{sampler}"] = raw
    saved, secs, hv_sh, hv_sh_raw = [], [], [], []
    full_epochs = out["exhaustive_epochs"]
    full_secs = sum(sum(float(h.get("seconds") or 0) for h in r.get("history") or [])
                    for s in table.values() for r in s.values())
    for seed in range(repeats):
        st, ex = replay(space, table, sampler="random", n_trials=None, seed=seed, fidelity=True)
        saved.append(1 - ex.epochs_trained / full_epochs)
        secs.append(1 - ex.seconds_trained / full_secs if full_secs else math.nan)
        hv_sh.append(scale.hv(_points(st)) / hv_all)
        hv_sh_raw.append(scale.raw(_points(st)) / raw_all)
    out.update(fidelity_rungs=space.fidelity.rungs(int(space.budget.get("epochs", 0))),
               fidelity_eta=space.fidelity.eta, epochs_saved=saved, seconds_saved=secs,
               hv_fraction_fidelity=hv_sh, hv_fraction_raw_fidelity=hv_sh_raw)
    return out


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
        res = search(space.with_overrides(parallel=parallel), run, progress=False, export=False)
        n = res.counts["complete"] + res.counts["pruned"] + res.counts["failed"]
        out[f"p{parallel}"] = {
            "trials": n, "loop_s": res.loop_s, "total_s": time.perf_counter() - t0,
            "job_s": res.job_seconds, "trials_per_hour": 3600 * n / res.loop_s,
            # serial trials: loop time not spent inside a worker is the driver's and Ray's
            "overhead_per_trial_s": (res.loop_s - res.job_seconds) / n if parallel == 1
            else None,
            "driver_per_trial_s": res.driver_s / n,
            "load_average": os.getloadavg(),
            "mean_trial_s": res.job_seconds / n}
    out["speedup"] = out["p2"]["trials_per_hour"] / out["p1"]["trials_per_hour"]
    over = out["p1"]["overhead_per_trial_s"]
    out["overhead_share_of_20s_trial"] = over / 20.0
    return out


def _scaling_rows(t: Any, sc: Mapping[str, Any]) -> None:
    t.add_row("trials/hour, 1 parallel", f"{sc['p1']['trials_per_hour']:.0f}")
    t.add_row("trials/hour, 2 parallel", f"{sc['p2']['trials_per_hour']:.0f}")
    t.add_row("scaling 2 vs 1 (target >= 1.8x)", f"{sc['speedup']:.2f}x")
    t.add_row("mean trial (s)", f"{sc['p1']['mean_trial_s']:.1f}")
    t.add_row("driver + Ray overhead per trial (s)", f"{sc['p1']['overhead_per_trial_s']:.3f}")
    t.add_row("  as share of a 20 s trial (target < 2 %)",
              f"{100 * sc['overhead_share_of_20s_trial']:.2f} %")
    t.add_row("  of which driver ask/tell/bookkeeping (s)",
              f"{sc['p1']['driver_per_trial_s']:.3f}")
    t.add_row("load average during the runs (1 min)",
              f"{sc['p1']['load_average'][0]:.1f} / {sc['p2']['load_average'][0]:.1f}")


def _search_rows(t: Any, se: Mapping[str, Any]) -> None:
    for sampler in ("nsga2", "tpe", "random"):
        t.add_row(f"HV fraction at 25 % ({se['budget_trials']}/{se['candidates']}), {sampler}",
                  _mean_sd(se[f"hv_fraction_{sampler}"]))
        t.add_row("  searched rows only (no baseline/presets)",
                  _mean_sd(se[f"hv_fraction_searched_{sampler}"]))
        t.add_row("  raw objectives, reference 1.1 x max cost",
                  _mean_sd(se[f"hv_fraction_raw_{sampler}"]))
    t.add_row(f"fidelity: epochs saved (rungs {se['fidelity_rungs']}, eta "
              f"{se['fidelity_eta']})", _mean_sd(se["epochs_saved"]))
    t.add_row("fidelity: train seconds saved", _mean_sd(se["seconds_saved"]))
    t.add_row("fidelity: HV fraction of its front (full budget = 1)",
              _mean_sd(se["hv_fraction_fidelity"]))
    t.add_row("  raw objectives", _mean_sd(se["hv_fraction_raw_fidelity"]))


def run_bench_search(args: argparse.Namespace) -> int:
    """Entry point for ``gcsearch bench search``."""
    from rich.console import Console
    from rich.table import Table

    quick = bool(getattr(args, "quick", False) or getattr(args, "smoke", False))
    run_root = Path(getattr(args, "run_root", None) or "runs")
    repeats = int(getattr(args, "replays", None) or (5 if quick else 20))
    console = Console()
    figures: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out_file = run_root / "bench-search.json"
    if out_file.is_file():  # sections not run this time keep their last figures
        figures = {**json.loads(out_file.read_text()), **figures}
    only = getattr(args, "only", None)
    if only in (None, "scaling"):
        figures["scaling"] = bench_scaling(2 if quick else 6, run_root)
    if only in (None, "search"):
        space = load_space(BENCH_SPACE)
        figures["search"] = bench_efficiency_and_fidelity(
            space, run_root / "bench-exhaustive", repeats, bool(getattr(args, "fresh", False)))
    run_root.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(figures, indent=2) + "\n")

    t = Table(title="gcsearch bench search", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    if "scaling" in figures:
        _scaling_rows(t, figures["scaling"])
    if "search" in figures:
        _search_rows(t, figures["search"])
    console.print(t)
    console.print(f"figures: {run_root / 'bench-search.json'}", highlight=False)
    return 0


__all__ = ["bench_efficiency_and_fidelity", "bench_scaling", "replay", "run_bench_search"]
