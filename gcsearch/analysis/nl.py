"""``gcsearch analyze nl``: is a trained Non-local block's attention query-independent?

GCNet (Cao et al., 2019, https://arxiv.org/abs/1904.11492, Sec. 3.1 and Table 1) observed that
after training, the attention maps of different query positions in a Non-local block are almost
the same: the average cosine distance between the block's *inputs* at different positions is
large, while it is small between its *outputs* (z - x, what the block adds at each position) and
between the attention maps of different query positions. This module measures the same on
trained models, for every Non-local block they hold, over held-out images, with the paper's
definitions:

- ``input``, ``output``, ``attention``: avg_dist = (1/N²) Σ_i Σ_j (1 - cos(v_i, v_j)) / 2 over
  all N² position pairs (i = j included; range 0-1), for v_i = x_i, z_i - x_i and the attention
  map of query i. An all-zero vector has no direction: it is left out of the pairs (N counts
  the non-zero ones) and its share is reported (``*_zero_rows``); an image with fewer than two
  non-zero vectors adds nothing to that distance.
- ``jsd``: the Jensen-Shannon divergence between the attention maps of queries i and j, in
  **nats**, averaged the same way over all N² pairs (0 for identical maps, at most ln 2). Rows
  of the ``dot`` and ``concat`` variants are not distributions (they are divided by N, not
  normalised); they are normalised to sum to one first, and a map with a negative weight has no
  JSD. Above ``EXACT_UP_TO`` positions the i ≠ j part averages over ``PAIRS`` random pairs.
- ``inert``: the block's output z - x does not depend on the input (its spread over positions
  and images is below ``INERT_TOL`` of the input's scale, float32 round-off): e.g. a block whose
  last BatchNorm scale stayed at its zero init adds the constant bias everywhere. Its distances
  say nothing about attention; the verdict leaves it out and says so.

One row per (model, block); ``gcsearch.report.nl_summary`` pools the rows of the models of one
instantiation (seeds) into means with intervals and the test behind the report's verdict.
Train three or more models per instantiation for an interval (the search keeps one, its best
seed): e.g. ``gcsearch train CAND --seeds S --save runs/nl/seedS/CAND.pt`` for three seeds, then
``gcsearch analyze nl runs/nl`` (weights are found in sub-folders too).

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
#: a block whose output spread is below this share of its input's scale is inert (round-off)
INERT_TOL = 1e-6
#: the distance definition written in every row (``gcsearch.report.nl_summary.DEFINITION``)
DEFINITION = "gcnet-table1"


def zero_rows(v: torch.Tensor) -> torch.Tensor:
    """Which rows of ``v`` (B, N, D) are all zero (B, N): they have no direction."""
    return v.abs().amax(dim=-1) == 0


def mean_pairwise_cosine_distance(v: torch.Tensor) -> torch.Tensor:
    """GCNet's avg_dist: the mean of (1 - cos(v_i, v_j)) / 2 over all N² ordered pairs of the
    non-zero rows of ``v`` (B, N, D), i = j included; per batch element, shape (B,). NaN for an
    element with fewer than two non-zero rows."""
    if v.shape[1] < 2:
        raise ValueError("need at least two positions")
    u = torch.nn.functional.normalize(v.double(), dim=-1)  # zero rows stay zero
    m = (~zero_rows(v)).sum(dim=1).double()  # non-zero rows
    total = u.sum(dim=1).pow(2).sum(-1)  # sum over all ordered pairs (i, j) of cos(u_i, u_j)
    out = (1 - total / m.pow(2)) / 2
    return torch.where(m >= 2, out, torch.full_like(out, math.nan))


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
    """GCNet's avg_dist with the JSD: the mean over all N² query pairs (i = j included, JSD 0
    there) of the JSD between their attention rows, per image (B,).

    The i ≠ j part is exact up to ``EXACT_UP_TO`` positions, else over ``PAIRS`` random pairs
    (the same pairs for every image of the batch). NaN for an image whose maps hold a negative
    weight (the ``dot`` and ``concat`` affinities are not distributions) or an all-zero row."""
    n = attn.shape[1]
    if n < 2:
        raise ValueError("need at least two query positions")
    negative = (attn < 0).flatten(1).any(1) | zero_rows(attn).any(1)
    if n <= EXACT_UP_TO:
        i, j = torch.triu_indices(n, n, offset=1)  # JSD is symmetric: unordered pairs suffice
    else:
        gen = gen or torch.Generator().manual_seed(0)
        i = torch.randint(0, n, (PAIRS,), generator=gen)
        j = (i + torch.randint(1, n, (PAIRS,), generator=gen)) % n  # j != i
    out = jsd(attn[:, i].clamp_min(0), attn[:, j].clamp_min(0)).mean(dim=1) * (n - 1) / n
    return torch.where(negative, torch.full_like(out, math.nan), out)


def nl_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, block)`` for every Non-local block (anything with ``attention(x)``)."""
    from gcsearch.blocks.nonlocal_ import NonLocal2d

    return [(n, m) for n, m in model.named_modules() if isinstance(m, NonLocal2d)]


class _Sums:
    """Running sums for one block: finite per-image means, zero-row counts, output spread."""

    def __init__(self) -> None:
        self.total = {k: 0.0 for k in ("input", "output", "attention", "jsd")}
        self.count = {k: 0 for k in self.total}
        self.zero = {k: 0.0 for k in ("input", "output", "attention")}
        self.rows = 0
        self.out_sum: torch.Tensor | None = None  # (C,) sum of z - x over images and positions
        self.out_sq = 0.0  # sum of |z - x|² and of |x|²
        self.in_sq = 0.0

    def add(self, key: str, per_image: torch.Tensor) -> None:
        ok = torch.isfinite(per_image)
        self.total[key] += float(per_image[ok].sum())
        self.count[key] += int(ok.sum())

    def spread(self) -> float:
        """RMS of z - x about its mean over images and positions, relative to the RMS of x."""
        if self.out_sum is None or self.rows == 0 or self.in_sq == 0:
            return math.nan
        var = self.out_sq / self.rows - float(self.out_sum.pow(2).sum()) / self.rows**2
        return math.sqrt(max(var, 0.0) / (self.in_sq / self.rows))


@torch.no_grad()
def block_stats(
    model: nn.Module, images: Iterable[torch.Tensor], max_images: int | None = None
) -> list[dict[str, Any]]:
    """Table 1's figures for every Non-local block of ``model``, averaged over images (see the
    module's note for the definitions, zero rows and ``inert``)."""
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
    sums = {name: _Sums() for name, _ in blocks}
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
                acc = sums[name]
                for key, v in feats.items():
                    acc.add(key, mean_pairwise_cosine_distance(v))
                    acc.zero[key] += float(zero_rows(v).double().sum())
                acc.add("jsd", mean_pairwise_jsd(attn, gen))
                delta = feats["output"].double().reshape(-1, c)
                acc.rows += delta.shape[0]
                acc.out_sum = delta.sum(0) + (acc.out_sum if acc.out_sum is not None else 0)
                acc.out_sq += float(delta.pow(2).sum())
                acc.in_sq += float(feats["input"].double().pow(2).sum())
            count += len(x)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, block in blocks:
        c, h, w = shapes[name]
        acc = sums[name]
        spread = acc.spread()
        rows.append(
            {
                "block": name,
                "mode": getattr(block, "mode", "?"),
                "channels": c,
                "positions": h * w,
                "images": count,
                "definition": DEFINITION,
                **{k: acc.total[k] / acc.count[k] if acc.count[k] else math.nan for k in acc.total},
                **{f"{k}_zero_rows": acc.zero[k] / max(acc.rows, 1) for k in acc.zero},
                "output_spread": spread,
                "inert": bool(math.isfinite(spread) and spread < INERT_TOL),
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
        files = sorted(folder.rglob("*.pt"))
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
                {
                    "weights": str(path),
                    "candidate": ckpt.candidate.id,
                    "task": task_name,
                    "seed": ckpt.meta.get("seed"),
                    **row,
                }
            )
    if not rows:
        raise UserError(
            f"{target}: no Non-local block in {', '.join(skipped) or 'its weights'} "
            "(analyze nl needs a candidate with an nl-* preset)"
        )
    return rows


def _f(v: float, width: int) -> str:
    return f"{v:{width}.4f}" if math.isfinite(v) else f"{'n/a':>{width}s}"


def render(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per (model, block), then each instantiation over its models, then the
    verdict the report would give (``gcsearch.report.nl_summary``)."""
    from gcsearch.report.nl_summary import MIN_MODELS, nl_evidence, summarize

    lines = [
        f"{'candidate':32s} {'block':24s} {'seed':>4s} {'N':>4s} {'imgs':>5s} "
        f"{'input':>8s} {'output':>8s} {'attn':>8s} {'JSD attn':>8s} {'0-rows':>6s}"
    ]
    for r in rows:
        seed = r.get("seed")
        lines.append(
            f"{r['candidate']:32s} {r['block']:24s} {'?' if seed is None else seed!s:>4s} "
            f"{r['positions']:4d} {r['images']:5d} {_f(r['input'], 8)} {_f(r['output'], 8)} "
            f"{_f(r['attention'], 8)} {_f(r['jsd'], 8)} {r['attention_zero_rows']:6.1%}"
            + ("  inert: output does not depend on the input" if r["inert"] else "")
        )
    lines.append("per instantiation, mean ± 95 % t-interval over its models (seeds):")
    for rec in summarize(rows):

        def pm(key: str, rec: dict[str, Any] = rec) -> str:
            c = rec[key]
            return (
                (
                    f"{c['mean']:.4f}"
                    + (f" ± {c['ci95']:.4f}" if math.isfinite(c["ci95"]) else " (no interval)")
                )
                if c["n"]
                else "n/a"
            )

        lines.append(
            f"  {rec['candidate']} {rec['block']}: {rec['live']} live of {rec['models']} models"
            f"; input {pm('input')}, output {pm('output')}, attention {pm('attention')}, "
            f"JSD {pm('jsd')}"
            + (
                f"  (fewer than {MIN_MODELS} models: no interval, no verdict)"
                if 0 < rec["live"] < MIN_MODELS
                else ""
            )
        )
    verdict, _, _, p, direction = nl_evidence(rows)
    if not verdict:
        side = "agree" if direction > 0 else "disagree"
        verdict = f"{side} if p {p:.3g} < 0.05 after Holm's adjustment in the report"
    lines.append(f"verdict: {verdict}")
    lines.append(
        "Distances as GCNet defines them: (1 - cos)/2 averaged over all N² position pairs (0-1;"
        " all-zero vectors left out, their share in 0-rows), for inputs x, outputs z - x and "
        f"the attention maps of two queries; JSD in nats (max ln 2 = {math.log(2):.3f}; n/a: "
        "maps with negative weights, dot and concat, are not distributions). GCNet's finding: "
        "inputs differ, outputs and attention maps are nearly query-independent. A finding "
        "here holds on this proxy only."
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
