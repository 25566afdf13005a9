"""``gcsearch bench flops``: the default ``gcsearch flops`` table's time against one baseline
trace (its target: the whole table costs at most two traces of the bare backbone).

Example:
    gcsearch bench flops --backbone resnet50 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time


def run_bench_flops(args: argparse.Namespace) -> int:
    """Interleaved ``--repeats`` times with every cache cleared, so each figure is a cold run;
    prints the medians and their ratio."""
    import torch

    from gcsearch.backbones import get_backbone
    from gcsearch.cost import clear_caches, count_cost, flops_candidates, table_costs
    from gcsearch.spec import Candidate

    backbone = args.backbone or "resnet50"
    spec = get_backbone(backbone)
    side = spec.input_size if getattr(args, "input", None) is None else args.input
    shape = (3, side, side)
    torch.set_num_threads(max(1, int(args.threads)))
    candidates = flops_candidates([], None, backbone)
    base_s, table_s = [], []
    repeats = 1 if args.smoke else max(1, args.repeats)
    for _ in range(repeats):
        clear_caches()
        start = time.perf_counter()
        count_cost(Candidate.none(), backbone, shape, num_classes=spec.num_classes)
        base_s.append(time.perf_counter() - start)
        clear_caches()
        start = time.perf_counter()
        table_costs(candidates, backbone, shape, num_classes=spec.num_classes)
        table_s.append(time.perf_counter() - start)
    b, t = statistics.median(base_s), statistics.median(table_s)
    print(
        f"gcsearch bench flops: {backbone} at 3x{side}x{side}, {len(candidates)} preset rows "
        f"+ baseline, {torch.get_num_threads()} torch thread(s), {repeats} cold repeat(s)"
    )

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    print(f"  one baseline trace : {b:.2f} s (median; all: {runs(base_s)})")
    print(f"  whole flops table  : {t:.2f} s (median; all: {runs(table_s)})")
    print(f"  table / baseline   : {t / b:.2f} baseline traces (target <= 2)")
    return 0
