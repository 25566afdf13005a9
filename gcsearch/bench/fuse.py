"""``gcsearch bench fuse``: k seeds of one candidate trained separately vs as one fused network.

Fusion (``tasks.fused``) pays where one small network leaves the device idle (HFTA, MLSys 2021:
up to 15x training throughput for fused small models on one GPU); on a CPU whose cores one
network already keeps busy it can lose (3-way grouped-convolution fusion of ResNet-8 ran at 0.7x
the separate steps on a 2-core VM). So it is measured, per device, never assumed: this runs the
k seeds one after another (``train``) and as one fused run (``train_fused``), in interleaved
repeats, and prints training steps per second of both (a step = one seed's batch), their median
ratio, and the largest gap between a seed's top-1 in the two (float32 reorderings grown in
training; equality is tested in float64). ``--record`` keeps the figures in
``tasks/measured/fuse-seeds.json`` under this device's key, where ``[search] fuse_seeds =
"auto"`` reads them (``tasks.fused.measured_speedup``). Figures, never assertions.

Example:
    gcsearch bench fuse --task digits --k 3 --device cpu --repeats 3 --record
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from gcsearch.errors import UserError


def run_bench_fuse(args: argparse.Namespace) -> int:
    """Separate vs fused steps/s for k seeds on one device; optionally recorded."""
    import torch

    from gcsearch.bench.train import bench_setup
    from gcsearch.tasks.fused import (
        device_key,
        fusable,
        record_speedup,
        train_fused,
        workload,
    )
    from gcsearch.tasks.train import read_candidate, train

    task, budget, backbone, device = bench_setup(args)
    k = int(args.k)
    if k < 2:
        raise UserError(f"--k: {k} is out of range (allowed: integers >= 2, the seeds fused)")
    why = fusable(device)
    if why is not None:
        raise UserError(f"bench fuse: cannot fuse on {device}: {why}")
    candidate = read_candidate(args.candidate, backbone)
    seeds = list(range(k))
    repeats = 1 if args.smoke else max(1, args.repeats)
    key = device_key(device, args.threads)
    print(
        f"bench fuse: {candidate.id} in {backbone} on {task.name}, k = {k} seeds, "
        f"{budget.train_images} images x {budget.epochs} epochs, batch {budget.batch_size}, "
        f"{key}, torch {torch.__version__}"
    )
    kw: dict[str, Any] = {"backbone": backbone, "threads": args.threads, "validate_at": ()}
    rows: list[dict[str, float]] = []
    for r in range(repeats):
        order = ("separate", "fused") if r % 2 == 0 else ("fused", "separate")
        got: dict[str, Any] = {}
        for which in order:
            tick = time.perf_counter()
            if which == "separate":
                out = [train(candidate, task, budget, s, device, **kw) for s in seeds]
                train_s = sum(x.train_s for x in out)
            else:
                out = train_fused(candidate, task, budget, seeds, device, **kw)
                train_s = out[0].train_s
            bad = [x for x in out if x.status != "complete"]
            if bad:
                raise UserError(f"bench fuse: a {which} run ended {bad[0].status}: {bad[0].reason}")
            steps = k * budget.epochs * (budget.train_images // budget.batch_size)
            got[which] = {
                "steps_per_s": steps / train_s,
                "wall_s": time.perf_counter() - tick,
                "top1": [x.top1 for x in out],
            }
            print(
                f"  run {r + 1} {which:8s}: {got[which]['steps_per_s']:8.1f} steps/s "
                f"(training)  {got[which]['wall_s']:6.1f} s end to end  top1 "
                + " ".join(f"{t:.1f}" for t in got[which]["top1"]),
                flush=True,
            )
        rows.append(
            {
                "separate_steps_per_s": got["separate"]["steps_per_s"],
                "fused_steps_per_s": got["fused"]["steps_per_s"],
                "separate_top1": got["separate"]["top1"],
                "fused_top1": got["fused"]["top1"],
            }
        )
    speedup = statistics.median(x["fused_steps_per_s"] / x["separate_steps_per_s"] for x in rows)
    # float32: the two differ in the order of float sums only, which training amplifies (the
    # float64 test, tests/tasks/test_fused.py, shows them equal); a figure, not a verdict
    gap = max(
        abs(a - b) for x in rows for a, b in zip(x["separate_top1"], x["fused_top1"], strict=True)
    )
    print(
        f"fused / separate training steps per second (median of {repeats}): {speedup:.2f}x "
        f"({'fusion pays here' if speedup > 1 else 'fusion does not pay here'}); largest "
        f"per-seed top-1 gap {gap:.1f} points (float32 reorderings grown in training)"
    )
    shape = task.shape_at(budget)
    figures = {
        "device": key,
        "workload": workload(backbone, shape, budget.batch_size, k),
        "input_shape": list(shape),
        "backbone": backbone,
        "task": task.name,
        "candidate": candidate.id,
        "k": k,
        "threads": args.threads,
        "budget": budget.to_dict(),
        "torch": torch.__version__,
        "repeats": rows,
        "speedup": speedup,
        "top1_max_gap": gap,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures -> {args.out}")
    if args.record and not args.smoke:
        path = record_speedup(figures)
        print(f"recorded for fuse_seeds = 'auto' -> {path}")
    return 0
