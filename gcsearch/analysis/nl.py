"""``gcsearch analyze nl``: is a trained Non-local block's attention query-independent?

GCNet (Cao et al., 2019, https://arxiv.org/abs/1904.11492, Sec. 3.1 and Table 1) observed that
after training, the attention maps of different query positions in a Non-local block are almost
the same: the average cosine distance between the block's *inputs* at different positions is
large, while it is small between its *outputs* (z - x, what the block adds at each position) and
between the attention maps of different query positions. This module measures the same on a
trained model, for every Non-local block it holds, over held-out images:

- ``input``: mean cosine distance 1 - cos(x_i, x_j) between the input feature vectors at two
  different positions i != j (all pairs, closed form);
- ``output``: the same for the block's output z - x;
- ``attention``: the same between the attention rows (maps) of two different query positions;
- ``jsd``: mean Jensen-Shannon divergence between the attention maps of two different query
  positions, in **nats** (natural log: 0 for identical maps, ln 2 = 0.693 for maps with
  disjoint support). Rows of the ``dot`` and ``concat`` variants are not distributions (they are
  divided by N, not normalised); they are normalised to sum to one first. Above
  ``EXACT_UP_TO`` positions the JSD averages over ``PAIRS`` random query pairs per image
  (seeded), not all pairs.

Example:
    gcsearch analyze nl runs/paper/weights/nl-embedded_after_add_c4_last.pt --images 256
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gcsearch.errors import UserError

EXACT_UP_TO = 64
PAIRS = 512


def mean_pairwise_cosine_distance(v: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(v_i, v_j) over ordered pairs i != j of the rows of ``v`` (B, N, D);
    per batch element, shape (B,). Zero rows count as distance 1 to everything."""
    n = v.shape[1]
    if n < 2:
        raise ValueError("need at least two positions")
    u = torch.nn.functional.normalize(v.double(), dim=-1)
    total = u.sum(dim=1).pow(2).sum(-1)  # sum over all ordered pairs (i, j) of cos(u_i, u_j)
    diag = u.pow(2).sum(-1).sum(-1)  # the i == j terms (1, or 0 for a zero row)
    return 1 - (total - diag) / (n * (n - 1))


def jsd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence in nats between distributions on the last dimension
    (normalised to sum to one here); 0 for equal maps, ln 2 for disjoint support."""
    p = p.double() / p.double().sum(-1, keepdim=True)
    q = q.double() / q.double().sum(-1, keepdim=True)
    m = (p + q) / 2
    kl_pm = torch.special.xlogy(p, p).sum(-1) - torch.special.xlogy(p, m).sum(-1)
    kl_qm = torch.special.xlogy(q, q).sum(-1) - torch.special.xlogy(q, m).sum(-1)
    return (kl_pm + kl_qm) / 2


def mean_pairwise_jsd(attn: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """Mean JSD between the attention rows of two different query positions, per image (B,).

    Exact over all ordered pairs up to ``EXACT_UP_TO`` positions, else over ``PAIRS`` random
    pairs (the same pairs for every image of the batch). NaN for an image whose maps hold a
    negative weight (the ``dot`` and ``concat`` affinities are not distributions)."""
    n = attn.shape[1]
    if n < 2:
        raise ValueError("need at least two query positions")
    negative = (attn < 0).flatten(1).any(1)
    if n <= EXACT_UP_TO:
        i, j = torch.triu_indices(n, n, offset=1)  # JSD is symmetric: unordered pairs suffice
    else:
        gen = gen or torch.Generator().manual_seed(0)
        i = torch.randint(0, n, (PAIRS,), generator=gen)
        j = (i + torch.randint(1, n, (PAIRS,), generator=gen)) % n  # j != i
    out = jsd(attn[:, i].clamp_min(0), attn[:, j].clamp_min(0)).mean(dim=1)
    return torch.where(negative, torch.full_like(out, math.nan), out)


def nl_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, block)`` for every Non-local block (anything with ``attention(x)``)."""
    from gcsearch.blocks.nonlocal_ import NonLocal2d

    return [(n, m) for n, m in model.named_modules() if isinstance(m, NonLocal2d)]


@torch.no_grad()
def block_stats(
    model: nn.Module, images: Iterable[torch.Tensor], max_images: int | None = None
) -> list[dict[str, Any]]:
    """Table 1's four figures for every Non-local block of ``model``, averaged over images."""
    blocks = nl_blocks(model)
    if not blocks:
        return []
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, name=name: seen.__setitem__(name, (inp[0], out))
        )
        for name, m in blocks
    ]
    sums = {name: {"input": 0.0, "output": 0.0, "attention": 0.0, "jsd": 0.0} for name, _ in blocks}
    shapes: dict[str, tuple[int, int, int]] = {}
    count = 0
    gen = torch.Generator().manual_seed(0)
    model.eval()
    try:
        for x in images:
            if max_images is not None and count >= max_images:
                break
            if max_images is not None:
                x = x[: max_images - count]
            model(x)
            for name, block in blocks:
                inp, out = seen[name]
                _, c, h, w = inp.shape
                shapes[name] = (c, h, w)
                attn = block.attention(inp).float()  # (B, N, N), query rows
                feats = {
                    "input": inp.flatten(2).transpose(1, 2),  # (B, N, C)
                    "output": (out - inp).flatten(2).transpose(1, 2),
                    "attention": attn,
                }
                for key, v in feats.items():
                    sums[name][key] += float(mean_pairwise_cosine_distance(v).sum())
                sums[name]["jsd"] += float(mean_pairwise_jsd(attn, gen).sum())
            count += len(x)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, block in blocks:
        c, h, w = shapes[name]
        rows.append(
            {
                "block": name,
                "mode": getattr(block, "mode", "?"),
                "channels": c,
                "positions": h * w,
                "images": count,
                **{k: v / max(count, 1) for k, v in sums[name].items()},
            }
        )
    return rows


def resolve_weights(target: str | Path) -> list[Path]:
    """A weights file, or every ``*.pt`` under a run directory's ``weights/``."""
    path = Path(target)
    if path.is_file():
        return [path]
    if path.is_dir():
        folder = path / "weights" if (path / "weights").is_dir() else path
        files = sorted(folder.glob("*.pt"))
        if files:
            return files
        raise UserError(
            f"{path}: no weights (*.pt) in {folder}; the search saves them under <run>/weights/, "
            "`gcsearch train CANDIDATE --save FILE` writes one"
        )
    raise UserError(f"{target}: neither a weights file nor a run directory")


def held_out_images(
    task_name: str,
    data: str | None,
    n: int,
    data_seed: int = 0,
    image_size: int | tuple[int, int] | None = None,
) -> list[torch.Tensor]:
    """``n`` validation images of the task (held out from its training images), in batches."""
    from gcsearch.tasks import get_task

    task = get_task(task_name, data)
    budget = task.budget.replace(val_images=n, data_seed=data_seed, eval_split="val")
    if image_size is not None:
        budget = budget.replace(image_size=image_size)
    _, val = task.loaders(0, budget)
    return [x for x, _ in val]


def _check_task_fits(path: Path, ckpt: Any, task_name: str, data: str | None) -> None:
    """The task's images must have the channels the weights were trained on (``--task``
    naming another task than the weights' own is a one-line error, not a shape traceback)."""
    from gcsearch.tasks import get_task

    shape = tuple(get_task(task_name, data).input_shape)
    if shape[0] != ckpt.input_shape[0]:
        own = ckpt.meta.get("task")
        raise UserError(
            f"--task {task_name}: its images are {'x'.join(map(str, shape))}, but {path} was "
            f"trained on {'x'.join(map(str, ckpt.input_shape))} images"
            + (f" (task {own})" if own else "")
            + f"; allowed: a task with {ckpt.input_shape[0]}-channel images"
            + (f", e.g. {own} (omit --task)" if own else "")
        )


def analyze(
    target: str | Path, task: str | None = None, data: str | None = None, images: int = 256
) -> list[dict[str, Any]]:
    """Rows of Table 1 for every Non-local block in every checkpoint ``target`` names."""
    from gcsearch.checkpoint import load_checkpoint

    rows = []
    skipped = []
    for path in resolve_weights(target):
        ckpt = load_checkpoint(path)
        model = ckpt.build()
        if not nl_blocks(model):
            skipped.append(path.name)
            continue
        task_name = task or str(ckpt.meta.get("task") or "")
        if not task_name:
            raise UserError(f"{path}: the checkpoint names no task; pass --task")
        _check_task_fits(path, ckpt, task_name, data)
        size = ckpt.meta.get("image_size")
        batches = held_out_images(
            task_name,
            data,
            images,
            int(ckpt.meta.get("data_seed", 0)),
            size or None,  # S or [H, W]; Budget checks it
        )
        for row in block_stats(model, batches, images):
            rows.append(
                {"weights": str(path), "candidate": ckpt.candidate.id, "task": task_name, **row}
            )
    if not rows:
        raise UserError(
            f"{target}: no Non-local block in {', '.join(skipped) or 'its weights'} "
            "(analyze nl needs a candidate with an nl-* preset)"
        )
    return rows


def render(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'candidate':32s} {'block':24s} {'mode':9s} {'N':>4s} {'imgs':>5s} "
        f"{'cos input':>9s} {'cos output':>10s} {'cos att':>8s} {'JSD att':>8s}"
    ]
    for r in rows:
        lines.append(
            f"{r['candidate']:32s} {r['block']:24s} {r['mode']:9s} {r['positions']:4d} "
            f"{r['images']:5d} {r['input']:9.4f} {r['output']:10.4f} {r['attention']:8.4f} "
            + (f"{r['jsd']:8.4f}" if math.isfinite(r["jsd"]) else f"{'n/a':>8s}")
        )
    lines.append(
        "cos: mean cosine distance between two different positions (inputs x, outputs z - x, "
        "attention maps of two query positions); JSD between attention maps in nats "
        f"(max ln 2 = {math.log(2):.3f}). GCNet's finding: inputs differ, outputs and "
        "attention maps are nearly query-independent (small). JSD n/a: the maps hold negative "
        "weights (dot, concat), so they are not distributions."
    )
    return lines


def run_analyze_nl(args: argparse.Namespace) -> int:
    rows = analyze(args.target, args.task, args.data, args.images)
    for line in render(rows):
        print(line)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
