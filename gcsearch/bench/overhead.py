"""``gcsearch bench overhead``: where a search's time goes, against the same trainings in a
plain loop.

It runs ``gcsearch search`` on a space as a user would (a fresh process, local Ray, SQLite),
timing the whole command, then reads the study and ``run.json`` and splits the slot-time
(``parallel`` slots x the command's wall time) into its parts: training steps (each seed's
``train_s``), validation (its epochs' time beyond the steps), per-trial set-up in the worker
(data, model, cost), the worker's own share of a job beyond ``train`` (imports of a fresh
worker, process and Ray task hand-off), slots idle during the loop (split, from the jobs' and
the loop's spans, into waiting for a worker's start-up, between jobs, and the search's tail),
Ray's start and stop, and the driver process's own start, cost table and outputs. Then it
trains the same (candidate, seed, epochs) in one plain Python loop in a fresh process and
prints both walls. Figures, never assertions; ``--out`` writes them as JSON.

Example:
    gcsearch bench overhead --space quick --out benchmarks/overhead-quick.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gcsearch.errors import UserError

#: the plain loop, run in a fresh process: the trainings of a finished search, one by one,
#: validated at the epochs the search validates (its rungs and the last)
_PLAIN = """
import json, sys, time
t0 = time.perf_counter()
from gcsearch.search.space import load_space
from gcsearch.search.trial import resolve_budget
from gcsearch.tasks import Budget, get_task
from gcsearch.tasks.train import train
space_path, smoke, jobs = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
space = load_space(space_path)
budget, _, _ = resolve_budget(space, smoke)
task = get_task(space.task, space.data) if space.data else get_task(space.task)
b = Budget(**{k: tuple(v) if isinstance(v, list) else v for k, v in budget.items()})
at = space.search.validate_at(b.epochs, space.fidelity.rungs(b.epochs))  # as the search does
steps = 0.0
for cand, seed, epochs in jobs:
    r = train(cand, task, b, seed, "cpu", backbone=space.backbone, threads=1,
              min_hidden=space.min_hidden, callback=lambda rec, e=epochs: rec["epoch"] >= e,
              validate_at=at)
    steps += r.train_s
print(json.dumps({"wall_s": time.perf_counter() - t0, "train_s": steps}))
"""


def _trainings(study: Any) -> list[dict[str, Any]]:
    """Every seed a search trained (duplicates answered from storage trained nothing)."""
    from gcsearch.search.record import TrialRecord

    out = []
    for t in study.get_trials(deepcopy=False):
        rec = TrialRecord.read(t)
        if not rec.trained:
            continue
        out += [r for r in rec.results if int(r.get("epochs") or 0) > 0]
    return out


#: the slots' idle time during the loop, when the jobs' spans cannot split it
IDLE = "slots idle during the loop (ask, tell, rungs, Ray)"
#: its parts where they can (``idle_split``)
IDLE_PARTS = (
    "slots waiting for their worker's start-up (before the first job)",
    "slots idle between jobs (ask, tell, rung barriers, Ray hand-off)",
    "slots done before the last job ends (the search's tail)",
)


def idle_split(
    results: list[dict[str, Any]], record: dict[str, Any], slots: int, idle: float
) -> dict[str, float]:
    """``idle`` slot-seconds split by where they fall, from the jobs' spans (``env.job_span``,
    ``env.ray_worker``) and the loop's (``loop_span``): before each slot's first job on record,
    after its last, and between; one figure where a result lacks its span or the jobs ran on
    more workers than slots (a worker replaced). A promoted seed's record holds its last job
    only, so "between" also holds its rung job."""
    loop = record.get("loop_span")
    spans: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        env = r.get("env") or {}
        if not env.get("job_span") or not env.get("ray_worker"):
            return {IDLE: idle}
        spans.setdefault(str(env["ray_worker"]), []).append(tuple(env["job_span"]))
    if not loop or not spans or len(spans) > slots:
        return {IDLE: idle}
    start, end = float(loop[0]), float(loop[1])
    first = sum(max(0.0, min(a for a, _ in s) - start) for s in spans.values())
    first += (slots - len(spans)) * (end - start)  # a slot that never ran a job
    last = sum(max(0.0, end - max(b for _, b in s)) for s in spans.values())
    first, last = min(first, idle), min(last, max(0.0, idle - first))
    return dict(zip(IDLE_PARTS, (first, max(0.0, idle - first - last), last), strict=True))


def split(
    results: list[dict[str, Any]], record: dict[str, Any], wall_s: float, slots: int
) -> dict[str, float]:
    """The parts of ``slots x wall_s`` (seconds), from the seeds' final results and
    ``run.json``. A promoted seed's final result holds its rung run's epochs too (it continued
    that run's state), so the jobs' wall time is the driver's count over every job it ran
    (``job_seconds``), not a sum over final results."""
    steps = sum(float(r.get("train_s") or 0) for r in results)
    epochs = sum(float(h.get("seconds") or 0) for r in results for h in r.get("history") or [])
    jobs = float(record.get("job_seconds") or 0) or sum(
        float((r.get("env") or {}).get("job_wall_s") or 0) for r in results
    )
    loop = float(record.get("loop_s") or 0)
    ray = float(record.get("ray_start_s") or 0) + float(record.get("ray_shutdown_s") or 0)
    parts = {
        "training steps": steps,
        "validation": max(0.0, epochs - steps),
        "worker outside epochs (data, model, imports, hand-off)": max(0.0, jobs - epochs),
        **idle_split(results, record, slots, max(0.0, slots * loop - jobs)),
        "Ray start and stop": slots * ray,
    }
    parts["driver process (imports, cost table, outputs, exit)"] = max(
        0.0, slots * wall_s - sum(parts.values())
    )
    return parts


def run_bench_overhead(args: argparse.Namespace) -> int:
    """Time a search and its plain-loop twin; print the slot-time split."""
    from gcsearch.search.space import load_space
    from gcsearch.search.storage import STORAGE_FILE

    space = load_space(args.space or "quick")
    smoke = bool(args.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "gcsearch",
            "search",
            "--space",
            str(space.path),
            "--run-dir",
            str(run),
        ] + (["--smoke"] if smoke else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"bench overhead: the search failed ({last})")
        import optuna

        record = json.loads((run / "run.json").read_text())
        study = optuna.load_study(
            study_name=record["study"], storage=f"sqlite:///{run / STORAGE_FILE}"
        )
        results = _trainings(study)
    slots = int(space.search.parallel)
    parts = split(results, record, wall, slots)
    jobs = [[r["candidate_id"], int(r["seed"]), int(r["epochs"])] for r in results]
    t0 = time.perf_counter()
    plain = subprocess.run(
        [sys.executable, "-c", _PLAIN, str(space.path), "1" if smoke else "0", json.dumps(jobs)],
        capture_output=True,
        text=True,
    )
    if plain.returncode != 0:
        raise UserError(f"bench overhead: the plain loop failed ({plain.stderr.strip()[-200:]})")
    loop = json.loads(plain.stdout.strip().splitlines()[-1])
    loop["process_wall_s"] = time.perf_counter() - t0
    total = slots * wall
    outside = 1 - parts["training steps"] / total
    print(
        f"bench overhead: {space.name}, {len(results)} trainings, {slots} slots, "
        f"search wall {wall:.1f} s ({'smoke' if smoke else 'full'} budget)"
    )
    width = max(map(len, parts))
    for name, seconds in parts.items():
        print(f"  {name:{width}s} {seconds:8.1f} slot-s  {100 * seconds / total:5.1f} %")
    print(f"share of slot-time outside training steps: {100 * outside:.1f} %")
    print(
        f"the same trainings in a plain loop (one process, one slot): "
        f"{loop['process_wall_s']:.1f} s wall, {loop['train_s']:.1f} s of training steps; "
        f"search wall x slots / plain wall = {total / loop['process_wall_s']:.2f}"
    )
    figures = {
        "space": space.name,
        "smoke": smoke,
        "slots": slots,
        "trainings": len(results),
        "search_wall_s": wall,
        "parts_slot_s": parts,
        "outside_share": outside,
        "plain_loop": loop,
        "run_json": {
            k: record.get(k)
            for k in (
                "elapsed_s",
                "loop_s",
                "job_seconds",
                "ray_start_s",
                "ray_shutdown_s",
                "driver_s",
            )
        },
        "versions": record.get("versions"),
        "command": " ".join(sys.argv),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"figures: {args.out}")
    return 0


__all__ = ["IDLE", "IDLE_PARTS", "idle_split", "run_bench_overhead", "split"]
