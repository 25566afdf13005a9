"""Whether any block beats the network without blocks: one sentence the search, the report
and ``gcsearch export`` all print when none does (and then nothing is exported)."""

from __future__ import annotations

import pandas as pd

from gcsearch.units import si


def no_block_verdict(rows: pd.DataFrame, front: pd.DataFrame) -> str | None:
    """``None`` when a block is on the Pareto front; otherwise why none is.

    ``rows`` are the complete candidates (``candidate_rows``), ``front`` their ranked front.
    """
    if front.empty or (front["spec.kind"] != "baseline").any():
        return None
    blocks = rows[rows["spec.kind"] != "baseline"]
    base = front.iloc[0]
    head = (
        f"no block beats the baseline: the network without blocks ('none', top-1 "
        f"{float(base['metric.top1_mean']):.2f} %)"
    )
    if blocks.empty:
        return f"{head} is the only complete candidate; nothing to export"
    best = blocks.sort_values(["metric.top1_mean", "trial"], ascending=[False, True]).iloc[0]
    return (
        f"{head} is at least as good as each of the {len(blocks)} complete block candidates "
        f"in every objective (the most accurate, {best['spec.id']}, reached "
        f"{float(best['metric.top1_mean']):.2f} % for +{si(float(best['cost.block_macs']))} "
        "MACs); no block is exported"
    )


__all__ = ["no_block_verdict"]
