"""``gcsearch train``: one candidate under one or more seeds, trained one after another
(``tasks.train``) or as one fused network (``--fuse``, ``tasks.fused``), with each seed's line,
the mean ± std over seeds and the best seed's weights (``--save``).

Example:
    gcsearch train gc --task digits --seeds 0,1,2 --fuse
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gcsearch.errors import UserError
from gcsearch.result import TrialResult
from gcsearch.spec import Candidate
from gcsearch.tasks import Budget, Task, get_task
from gcsearch.tasks.fused import train_fused
from gcsearch.tasks.train import (
    budget_from_args,
    check_memory,
    read_candidate,
    resolve_device,
    save_weights,
    train,
)


def _line(r: TrialResult) -> str:
    top1 = "-" if r.top1 is None else f"{r.top1:6.2f}"
    extra = f"  ({r.reason})" if r.reason else ""
    return (
        f"seed {r.seed}: {r.status:8s} top1 {top1} %  loss {r.loss or float('nan'):.4f}  "
        f"epochs {r.epochs}  {r.wall_s:6.1f} s  {r.images_per_s:7.0f} img/s{extra}"
    )


def _common(args: argparse.Namespace, backbone: str) -> dict[str, Any]:
    """The keyword arguments a lone and a fused run take alike from the flags."""
    return {
        "backbone": backbone,
        "threads": args.threads,
        "min_hidden": args.min_hidden,
        "amp": not args.no_amp,
        "deterministic": bool(getattr(args, "deterministic", False)),
    }


def _train_fused(
    args: argparse.Namespace,
    candidate: Candidate,
    task: Task,
    budget: Budget,
    backbone: str,
    device: torch.device,
    seeds: list[int],
    save: Path | None,
) -> tuple[list[TrialResult], TrialResult | None]:
    """``gcsearch train --fuse``: the seeds as one fused run; the best seed's weights saved."""
    if len(seeds) < 2:
        raise UserError(f"--fuse: {len(seeds)} seed given (allowed: --seeds with 2 or more)")
    if getattr(args, "compile", "off") != "off":
        raise UserError("--fuse: a fused run is not compiled (allowed: --compile off)")
    best: list[TrialResult] = []

    def keep(model: nn.Module, r: TrialResult) -> None:
        if save is not None and (not best or (r.top1 or 0.0) > (best[0].top1 or 0.0)):
            save_weights(save, model, candidate, task, budget, backbone, args.min_hidden, r, shape)
            best[:] = [r]

    shape = task.shape_at(budget)
    results = train_fused(
        candidate, task, budget, seeds, device, on_trained=keep, **_common(args, backbone)
    )
    return results, (best[0] if best else None)


def run_train(args: argparse.Namespace) -> int:
    """``gcsearch train``: train one candidate under one or more seeds and print the result."""
    if args.threads < 1:
        raise UserError(f"--threads: {args.threads} is out of range (allowed: integers >= 1)")
    task = get_task(args.task, args.data)
    budget = budget_from_args(task, args)
    check_memory(task, budget)
    backbone = args.backbone or task.backbone
    candidate = read_candidate(args.candidate, backbone)
    try:
        seeds = [int(s) for s in str(args.seeds).split(",")] if args.seeds else [args.seed]
    except ValueError:
        raise UserError(f"--seeds: {args.seeds!r} is not a list of integers like 0,1,2") from None
    device = resolve_device(args.device)
    if not args.json:
        print(
            f"{candidate.id} on {task.name} ({'x'.join(map(str, task.shape_at(budget)))}, "
            f"{backbone}, {device}, {args.threads} thread(s)): {budget.train_images} images x "
            f"{budget.epochs} epochs, eval on {budget.eval_split}"
        )
    results = []
    save = Path(args.save) if getattr(args, "save", None) else None
    best: TrialResult | None = None
    if getattr(args, "fuse", False):
        results, best = _train_fused(args, candidate, task, budget, backbone, device, seeds, save)
        if not args.json:
            for r in results:
                print(_line(r), flush=True)
    for seed in seeds if not results else ():
        tmp = save.with_name(f".{save.name}.seed{seed}.tmp") if save else None
        try:
            r = train(
                candidate,
                task,
                budget,
                seed,
                device,
                save=tmp,
                compile=getattr(args, "compile", "off"),
                **_common(args, backbone),
            )
            results.append(r)
            better = best is None or (r.top1 or 0.0) > (best.top1 or 0.0)
            if tmp is not None and tmp.is_file() and better:  # the best seed's (as the search)
                tmp.replace(save)
                best = r
        finally:  # whatever happened (an error, Ctrl-C), no temporary file stays behind
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        if not args.json:
            print(_line(r), flush=True)
    if save is not None and not args.json:
        print(f"weights of seed {best.seed} -> {save}" if best else "no complete seed: no weights")
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0 if all(r.status != "failed" for r in results) else 1
    r = results[0]
    print(
        f"params {r.params:,} (block {r.block_params:,})  MACs {r.macs:,} (block {r.block_macs:,})"
    )
    done = [x.top1 for x in results if x.top1 is not None and x.status == "complete"]
    if len(done) > 1:
        print(
            f"top1 mean {statistics.mean(done):.2f} ± {statistics.stdev(done):.2f} "
            f"(std over n={len(done)} seeds)"
        )
    if len(results) == 1:
        print("epoch  val_top1  val_loss  train_loss  seconds")
        for h in r.history:
            print(
                f"{h['epoch']:5d}  {h['val_top1']:8.2f}  {h['val_loss']:8.4f}  "
                f"{h['train_loss']:10.4f}  {h['seconds']:7.1f}"
            )
    return 0 if all(x.status != "failed" for x in results) else 1
