"""``gcsearch bench train``: the harness against a bare PyTorch loop.

It measures the harness overhead: the same model, data, batch size and optimizer run
through ``gcsearch.tasks.train.train`` and through a bare hand-written PyTorch loop, in
interleaved pairs (harness, bare, bare, harness, ...) so drift in machine load hits both. It
prints each run's training throughput (images/s over the optimisation steps only) and the
median ratio harness/bare; the target is >= 0.97. It also prints the end-to-end ratio, where
the harness additionally counts the cost and validates. Both sides use the task's optimizer
and schedule (``tasks.train.make_optimizer``) and print their top-1, so a pair that did not
learn the same thing shows.

Example:
    gcsearch bench train --task synthetic --candidate gc --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from gcsearch.errors import UserError


def bare_loop(
    candidate: Any, task: Any, budget: Any, seed: int, device: Any, backbone: str, threads: int
) -> dict[str, float]:
    """What one would write by hand: same model, data, optimizer and schedule, no harness."""
    import torch
    import torch.nn.functional as F

    from gcsearch.backbones import build_model
    from gcsearch.tasks.train import make_optimizer

    start = time.perf_counter()
    torch.set_num_threads(threads)
    train_data, eval_data = task.loaders(seed, budget)
    x = train_data.images().to(device).contiguous(memory_format=torch.channels_last)
    y = train_data.y.to(device)
    torch.manual_seed(seed)
    model = build_model(candidate, backbone, num_classes=task.num_classes, in_chans=x.shape[1])
    model = model.to(device, memory_format=torch.channels_last)
    bs, steps = budget.batch_size, len(x) // budget.batch_size
    # the task's own optimizer and schedule (AdamW on the default task: an SGD loop stayed at
    # chance there, so the ratio compared against a run that learnt nothing)
    opt, sched = make_optimizer(
        model, budget, budget.epochs * steps, round(budget.warmup_epochs * steps)
    )
    train_s = 0.0
    for _ in range(budget.epochs):
        model.train()
        tick = time.perf_counter()
        order = torch.randperm(len(x), device=device)
        for i in range(steps):
            idx = order[i * bs : (i + 1) * bs]
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=budget.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_s += time.perf_counter() - tick
    model.eval()
    with torch.no_grad():
        xe = eval_data.images().to(device).contiguous(memory_format=torch.channels_last)
        top1 = (model(xe).argmax(1) == eval_data.y.to(device)).float().mean().item() * 100
    images = budget.epochs * steps * bs
    return {"images_per_s": images / train_s, "wall_s": time.perf_counter() - start, "top1": top1}


def bench_setup(args: argparse.Namespace) -> tuple[Any, Any, str, Any]:
    """Task, budget, backbone and device of a training benchmark from its flags (``--smoke``:
    256 digits for one epoch)."""
    from gcsearch.tasks import DEFAULT_TASK, get_task
    from gcsearch.tasks.train import resolve_device

    task = get_task("digits" if args.smoke else args.task or DEFAULT_TASK)
    budget = task.budget
    if args.smoke:
        budget = budget.replace(train_images=256, val_images=128, epochs=1)
    budget = budget.replace(epochs=args.epochs)
    return task, budget, args.backbone or task.backbone, resolve_device(args.device)


def run_bench_train(args: argparse.Namespace) -> int:
    """Harness vs bare loop, interleaved; prints per-run figures and the median ratios."""
    import torch

    from gcsearch.spec import Candidate
    from gcsearch.tasks.train import train

    task, budget, backbone, device = bench_setup(args)
    candidate = Candidate.parse(args.candidate)
    repeats = 1 if args.smoke else max(1, args.repeats)
    print(
        f"bench train: {candidate.id} in {backbone} on {task.name}, {budget.train_images} "
        f"images x {budget.epochs} epochs, batch {budget.batch_size}, {device}, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    harness: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    for r in range(repeats):
        order = ("harness", "bare") if r % 2 == 0 else ("bare", "harness")
        for which in order:
            if which == "harness":
                res = train(
                    candidate, task, budget, 0, device, backbone=backbone, threads=args.threads
                )
                if res.status != "complete":
                    raise UserError(
                        f"bench train: the harness run ended {res.status}: {res.reason}"
                    )
                row = {
                    "images_per_s": res.images_per_s,
                    "wall_s": res.wall_s,
                    "top1": res.top1 or 0.0,
                }
                harness.append(row)
            else:
                row = bare_loop(candidate, task, budget, 0, device, backbone, args.threads)
                bare.append(row)
            print(
                f"  run {r + 1} {which:7s}: {row['images_per_s']:8.1f} img/s (training steps)"
                f"  {row['wall_s']:6.1f} s end to end  top1 {row['top1']:.1f}",
                flush=True,
            )
    pairs = list(zip(harness, bare, strict=True))
    ratio = statistics.median(h["images_per_s"] / b["images_per_s"] for h, b in pairs)
    wall = statistics.median(b["wall_s"] / h["wall_s"] for h, b in pairs)
    print(
        f"throughput ratio harness/bare (median of {repeats} pairs): {ratio:.3f} (target >= 0.97)"
    )
    print(
        f"end-to-end ratio bare/harness wall time (harness also counts cost and validates "
        f"every epoch): {wall:.3f}"
    )
    return 0
