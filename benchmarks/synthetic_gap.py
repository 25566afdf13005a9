"""Does the synthetic task need global context? Train the no-block baseline and context blocks
on it under several seeds with the task's default budget, and print mean ± std per candidate
and each one's gap to the baseline.

The task is only useful as a proxy if the gap to ``none`` is large against the seed-to-seed
spread. Every trial is ``gcsearch.tasks.train.train`` with one torch thread, exactly what
``gcsearch train CANDIDATE --task synthetic --seed S`` runs; ``--jobs`` trials run in parallel.

Usage:
    python benchmarks/synthetic_gap.py --seeds 0,1,2 --jobs 2
    python benchmarks/synthetic_gap.py --backbone resnet20 --epochs 4   # the quick space's setting
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def one(job: tuple[str, int, str, str | None, dict[str, Any], int]) -> dict[str, Any]:
    from gcsearch.tasks import get_task
    from gcsearch.tasks.train import train

    candidate, seed, task_name, backbone, overrides, threads = job
    task = get_task(task_name)
    r = train(
        candidate,
        task,
        task.budget.replace(**overrides),
        seed,
        "cpu",
        backbone=backbone,
        threads=threads,
    )
    return r.to_dict()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", default="none,gc,snl,se")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--task", default="synthetic")
    p.add_argument("--backbone", default=None, help="default: the task's")
    p.add_argument("--epochs", type=int, default=None, help="default: the task's budget")
    p.add_argument("--train-images", type=int, default=None, help="default: the task's budget")
    p.add_argument("--lr", type=float, default=None, help="default: the task's budget")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1, help="trials in parallel (processes)")
    a = p.parse_args()
    cands = a.candidates.split(",")
    seeds = [int(s) for s in a.seeds.split(",")]
    overrides = {"epochs": a.epochs, "train_images": a.train_images, "lr": a.lr}
    jobs = [(c, s, a.task, a.backbone, overrides, a.threads) for c in cands for s in seeds]
    start = time.perf_counter()
    with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(one, jobs))
    import torch

    r0 = results[0]
    b = r0["budget"]
    print(
        f"task {a.task}, {r0['env']['backbone']}, {b['train_images']} images x "
        f"{b['epochs']} epochs, lr {b['lr']}, "
        f"eval {b['val_images']} {b['eval_split']} images; {len(seeds)} seeds; "
        f"{platform.node()}, torch {torch.__version__}, {a.threads} thread(s)/trial, "
        f"{a.jobs} parallel; {time.perf_counter() - start:.0f} s in all"
    )
    base = [r["top1"] for r in results if r["candidate_id"] == "none"]
    print(
        f"{'candidate':32s} {'top1 mean ± std':>16s}  {'gap to none':>12s}  "
        f"{'gap/spread':>10s}  {'s/trial':>7s}  per seed"
    )
    for c in cands:
        rows = [
            r
            for r in results
            if r["candidate_id"].split("@")[0] == c.split("@")[0]
            and (("@" not in c) or r["candidate_id"] == c)
        ]
        top = [r["top1"] if r["top1"] is not None else math.nan for r in rows]
        mean, sd = statistics.mean(top), statistics.stdev(top) if len(top) > 1 else 0.0
        gap = ""
        ratio = ""
        if base and c != "none":
            gap_v = mean - statistics.mean(base)
            spread = math.hypot(sd, statistics.stdev(base) if len(base) > 1 else 0.0)
            gap = f"{gap_v:+.1f}"
            ratio = f"{gap_v / spread:.1f}" if spread > 0 else "inf"
        secs = statistics.mean(r["wall_s"] for r in rows)
        ids = rows[0]["candidate_id"]
        print(
            f"{ids:32s} {mean:8.1f} ± {sd:4.1f}  {gap:>12s}  {ratio:>10s}  {secs:7.1f}  "
            + " ".join(f"{t:.1f}" for t in top)
        )


if __name__ == "__main__":
    main()
