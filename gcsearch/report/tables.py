"""Tables over the complete candidates: the ranked front and GCNet-style ablations.

Ablation tables follow GCNet's Table 2 (Cao et al., 2019, https://arxiv.org/abs/1904.11492):
for each axis, the rows that differ from a reference candidate in that axis alone, with their
cost, mean top-1 and its interval over seeds, and the difference to the reference with its own
interval. ``build_report`` gathers them with the front and the hypervolume into a ``Report``.

Intervals (see ``gcsearch.report.stats``): a difference is paired over seeds when the two rows
were trained under the same seeds, Welch otherwise, and each row says which (``delta.method``).
All Δ rows of one report form one family whose p-values are Holm-adjusted (``delta.p_holm``);
``delta.significant`` is true only where the adjusted p is below 0.05, never with n = 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gcsearch.errors import UserError, mask_secrets
from gcsearch.report.frame import Objective, frame_objectives, results_frame
from gcsearch.report.pareto import (
    hypervolume,
    ideal_point,
    normalised_hypervolume,
    pareto_front,
    reference_point,
)
from gcsearch.report.stats import NO_INTERVAL, PAIRED, WELCH, compare, holm, mean_ci
from gcsearch.search.record import DUPLICATE_OF
from gcsearch.spec import AXES as SPEC_AXES
from gcsearch.spec import PRESETS, BlockSpec, Candidate

#: Presets that are one point of the BlockSpec grid (same pooling/transform/fusion; the init
#: may differ, see ``Preset.equivalent_spec``), read from the registry.
PRESET_BLOCKS: dict[str, str] = {n: p.spec.id for n, p in PRESETS.items() if p.spec is not None}

#: Ablation axes -> the spec fields that may change along the axis.
AXES: dict[str, tuple[str, ...]] = {
    "pooling": ("pooling",),
    "transform": ("transform", "ratio"),
    "norm": ("norm",),
    "fusion": ("fusion",),
    "position": ("position",),
    "stages": ("stages",),
    "density": ("density",),
}
_SPEC_FIELDS = tuple(SPEC_AXES)  # every axis, from the registry


#: family-wise error rate of the Holm-adjusted Δ tests
ALPHA = 0.05


def seed_values(row: pd.Series) -> list[float]:
    return list(seed_map(row).values())


def seed_map(row: pd.Series) -> dict[int, float]:
    """``{seed: top1}`` from a row's ``metric.top1.s<seed>`` columns."""
    out: dict[int, float] = {}
    for c in row.index:
        if c.startswith("metric.top1.s") and pd.notna(row[c]):
            try:
                out[int(c.removeprefix("metric.top1.s"))] = float(row[c])
            except ValueError:
                continue
    return out


def candidate_rows(frame: pd.DataFrame, objectives: Sequence[Objective] = ()) -> pd.DataFrame:
    """Complete trials, one row per candidate id.

    A candidate evaluated twice keeps the row with the most epochs, then the most seeds, then
    the original over a ``duplicate_of`` copy, then the earliest trial.
    """
    if "status" not in frame or frame.empty:
        return frame.iloc[0:0]
    done = frame[(frame["status"] == "complete") & frame["metric.top1_mean"].notna()].copy()
    for obj in objectives:
        if obj.column in done:
            done = done[pd.to_numeric(done[obj.column], errors="coerce").notna()]
    done["_dup"] = done[DUPLICATE_OF].notna()
    done = done.sort_values(
        ["fidelity.epochs", "metric.top1_n", "_dup", "trial"],
        ascending=[False, False, True, True],
        na_position="last",
    )
    return done.drop_duplicates("spec.id").drop(columns="_dup").sort_values("trial")


def _objective_matrix(rows: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    return np.column_stack([pd.to_numeric(rows[o.column]).to_numpy(float) for o in objectives])


def front_table(rows: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The Pareto-front members of ``candidate_rows``, ranked: top-1 desc, then MACs, params.

    ``rank`` 1 is what ``gcsearch export --rank 1`` exports.
    """
    if rows.empty:
        return rows.assign(rank=pd.Series(dtype="Int64"))
    idx = pareto_front(_objective_matrix(rows, objectives), [o.sense for o in objectives])
    front = rows.iloc[idx].sort_values(
        ["metric.top1_mean", "cost.macs", "cost.params", "spec.id"],
        ascending=[False, True, True, True],
    )
    return front.assign(rank=np.arange(1, len(front) + 1))


def _placement_key(row: pd.Series) -> str:
    return f"{row['spec.position']}:{row['spec.stages']}:{row['spec.density']}"


def _resolve_reference(rows: pd.DataFrame, reference: str) -> pd.Series | None:
    """The row a ``--reference`` names: a full id, a block id or a preset (see README)."""
    if "@" in reference or reference in ("none", "baseline"):
        target = Candidate.parse(reference).id
        hit = rows[rows["spec.id"] == target]
        return hit.iloc[0] if len(hit) else None
    block = PRESET_BLOCKS.get(reference, reference)
    blocks = rows[(rows["spec.kind"] == "block") & (rows["spec.block"] == block)]
    preset = rows[(rows["spec.kind"] == "preset") & (rows["spec.preset"] == reference)]
    if len(blocks):  # prefer the preset row's placement, then the study's most common one
        wanted = [_placement_key(r) for _, r in preset.iterrows()]
        common = rows[rows["spec.kind"] == "block"].apply(_placement_key, axis=1).value_counts()
        wanted += list(common.index)
        keys = blocks.apply(_placement_key, axis=1)
        for key in wanted:
            if (keys == key).any():
                return blocks[keys == key].iloc[0]
        return blocks.iloc[0]
    if len(preset) and reference in PRESET_BLOCKS:
        ref = preset.iloc[0].copy()
        for k, v in BlockSpec.parse(PRESET_BLOCKS[reference]).to_dict().items():
            ref[f"spec.{k}"] = v
        return ref
    return preset.iloc[0] if len(preset) else None


def _same(a: Any, b: Any) -> bool:
    return (pd.isna(a) and pd.isna(b)) if (pd.isna(a) or pd.isna(b)) else a == b


def _along(row: pd.Series, ref: pd.Series, axis: str) -> bool:
    """Whether ``row`` differs from ``ref`` in ``axis`` alone (a 1x1 transform forces no norm)."""
    free = set(AXES[axis])
    if axis == "transform" and "1x1" in (row["spec.transform"], ref["spec.transform"]):
        free.add("norm")
    differs = [f for f in _SPEC_FIELDS if not _same(row[f"spec.{f}"], ref[f"spec.{f}"])]
    return bool(differs) and set(differs) <= free


def _value_label(row: pd.Series, axis: str) -> str:
    if axis == "transform":
        return "1x1" if row["spec.transform"] == "1x1" else f"r{int(row['spec.ratio'])}"
    return str(row[f"spec.{axis}"])


def with_stats(rows: pd.DataFrame, ref: pd.Series | None) -> pd.DataFrame:
    """``rows`` plus ``top1.mean/ci95/n`` and, to ``ref``, ``delta.mean/ci95/method/p``
    (paired over shared seeds, else Welch) and an unadjusted ``delta.significant``."""
    ref_seeds = seed_map(ref) if ref is not None else {}
    out = rows.copy()
    stats = [mean_ci(seed_values(r)) for _, r in rows.iterrows()]
    out["top1.mean"] = [s[0] for s in stats]
    out["top1.ci95"] = [s[1] for s in stats]
    out["top1.n"] = [s[2] for s in stats]
    diffs = [compare(seed_map(r), ref_seeds) for _, r in rows.iterrows()]
    out["delta.mean"] = [d.mean for d in diffs]
    out["delta.ci95"] = [d.half for d in diffs]
    out["delta.method"] = [d.method for d in diffs]
    out["delta.p"] = [d.p for d in diffs]
    out["delta.p_holm"] = out["delta.p"]
    out["delta.significant"] = [bool(d.p < ALPHA) for d in diffs]
    return out


def _clear_delta(table: pd.DataFrame, mask: Any) -> None:
    """No difference on these rows (the reference itself, pruned rows)."""
    table.loc[mask, ["delta.mean", "delta.ci95", "delta.p", "delta.p_holm"]] = math.nan
    table.loc[mask, "delta.method"] = ""
    table.loc[mask, "delta.significant"] = False


def adjust_holm(tables: Sequence[pd.DataFrame]) -> int:
    """Holm-adjust the p-values of every Δ row of ``tables`` as one family, in place; sets
    ``delta.p_holm`` and ``delta.significant`` (adjusted p < ``ALPHA``). Returns the number
    of tests in the family."""
    ps = [p for t in tables for p in t["delta.p"].tolist()]
    adjusted = holm(ps)
    k = 0
    for t in tables:
        n = len(t)
        t["delta.p_holm"] = adjusted[k : k + n]
        t["delta.significant"] = [bool(p < ALPHA) for p in adjusted[k : k + n]]
        k += n
    return sum(1 for p in ps if math.isfinite(p))


def interval_note(tables: Sequence[pd.DataFrame], tests: int) -> str:
    """One sentence on the intervals that ``tables`` actually show."""
    methods = {m for t in tables for m in t.get("delta.method", pd.Series(dtype=str)) if m}
    ns = [int(n) for t in tables for n in t.get("top1.n", []) if pd.notna(n)]
    if ns and max(ns) <= 1:
        return (
            "n = 1: no interval. Every candidate ran one seed, so no difference is marked "
            "significant; run --seeds 3 or more for intervals."
        )
    how = []
    if PAIRED in methods:
        how.append("paired t over the seeds both rows share")
    if WELCH in methods:
        how.append("Welch where the seeds differ")
    if NO_INTERVAL in methods:
        how.append("none where a row has one seed (n = 1: no interval)")
    return (
        "Means are over seeds with a 95 % t-interval; Δ intervals (95 %): "
        + ("; ".join(how) or "none")
        + f". `*` marks Δ whose Holm-adjusted p < {ALPHA:g} across the report's "
        f"{tests} Δ tests."
    )


def stopped_rows(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Pruned candidates that never completed, one row each (the one trained longest)."""
    if "status" not in frame or frame.empty:
        return frame.iloc[0:0]
    pruned = frame[
        (frame["status"] == "pruned")
        & frame[DUPLICATE_OF].isna()
        & ~frame["spec.id"].isin(rows["spec.id"])
        & frame["metric.top1_mean"].notna()
    ]
    pruned = pruned.sort_values(["fidelity.epochs", "trial"], ascending=[False, True])
    return pruned.drop_duplicates("spec.id").sort_values("trial")


def ablation_tables(
    rows: pd.DataFrame, reference: pd.Series | None, stopped: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Per axis: the reference row, then rows differing from it in that axis alone.

    Columns add ``value`` (the axis value), ``top1.mean``/``top1.ci95``/``top1.n`` (t-interval
    over seeds), ``delta.mean``/``delta.ci95`` (difference to the reference, Welch interval)
    and ``complete``. ``stopped`` (pruned candidates) rows are listed with the top-1 they had
    when stopped and no difference: they were trained for fewer epochs.
    """
    if reference is None or reference["spec.kind"] == "baseline":
        return {}
    if stopped is not None and len(stopped):
        rows = pd.concat([rows, stopped], ignore_index=True)
    blocks = rows[rows["spec.kind"] == "block"]
    tables: dict[str, pd.DataFrame] = {}
    for axis in AXES:
        mask = [_along(r, reference, axis) for _, r in blocks.iterrows()]
        others = blocks[mask] if len(blocks) else blocks
        if others.empty:
            continue
        table = pd.concat([reference.to_frame().T, others], ignore_index=True)
        table = with_stats(table, reference)
        table["complete"] = (table["status"] == "complete").to_numpy()
        _clear_delta(table, table.index == 0)
        _clear_delta(table, ~table["complete"])
        table["value"] = [_value_label(r, axis) for _, r in table.iterrows()]
        table["is_reference"] = [i == 0 for i in range(len(table))]
        tables[axis] = table
    return tables


def preset_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Baseline and preset rows with top-1 ± CI and the difference to the baseline."""
    presets = rows[rows["spec.kind"].isin(["baseline", "preset"])]
    base = presets[presets["spec.kind"] == "baseline"]
    order = {name: i for i, name in enumerate(["none", *PRESETS])}  # the registry's lineage order
    presets = presets.assign(_o=presets["spec.block"].map(order).fillna(99))
    presets = presets.sort_values(["_o", "spec.id"]).drop(columns="_o")
    table = with_stats(presets, base.iloc[0] if len(base) else None)
    _clear_delta(table, table["spec.kind"] == "baseline")
    return table


@dataclass
class Report:
    """Everything a rendering needs; built by ``build_report``."""

    study: dict[str, Any]
    where: str
    frame: pd.DataFrame
    objectives: list[Objective]
    rows: pd.DataFrame
    front: pd.DataFrame
    reference_point: dict[str, float]
    hv: float
    reference: pd.Series | None
    reference_asked: str
    ablations: dict[str, pd.DataFrame]
    presets: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    interval_note: str = ""
    #: GCNet's findings, checked (``gcsearch.report.verdicts.check``); empty: no such section
    verdicts: list[Any] = field(default_factory=list)
    #: a rerun against committed results (``gcsearch.report.compare``); None: no such section
    comparison: Any = None


def build_report(
    target: str | os.PathLike[str],
    study_name: str | None = None,
    reference: str = "gc",
    frame: pd.DataFrame | None = None,
) -> Report:
    """Load a study and compute its front, hypervolume, ablation and preset tables."""
    frame = results_frame(target, study_name) if frame is None else frame
    objectives = frame_objectives(frame)
    rows = candidate_rows(frame, objectives)
    if rows.empty:
        counts = frame["status"].value_counts().to_dict() if "status" in frame else {}
        what = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no trials"
        if counts.get("complete"):  # finished trials, but not a gcsearch search's records
            raise UserError(
                f"study {frame.attrs.get('study', {}).get('name', '?')!r} holds "
                f"{counts['complete']} complete trial(s) but no gcsearch results (top-1 per "
                "seed in the trials' 'results' attribute): it was not written by `gcsearch "
                "search` (allowed: a study a gcsearch search wrote)"
            )
        raise UserError(
            f"study {frame.attrs.get('study', {}).get('name', '?')!r} has no "
            f"complete trial ({what}); nothing to report yet"
        )
    front = front_table(rows, objectives)
    ref_point = reference_point(objectives, frame)
    senses = [o.sense for o in objectives]
    ideal = ideal_point(objectives, frame)
    ref = [ref_point[o.name] for o in objectives]
    if ideal is not None:  # the search's recorded box: a normalised fraction
        hv = normalised_hypervolume(
            _objective_matrix(rows, objectives), senses, ref, [ideal[o.name] for o in objectives]
        )
    elif all(math.isfinite(v) for v in ref_point.values()):
        hv = hypervolume(_objective_matrix(rows, objectives), senses, ref)
    else:
        hv = math.nan
    ref_row = _resolve_reference(rows, reference)
    notes = []
    if ref_row is None:
        if reference != "gc":
            raise UserError(
                f"reference {reference!r} is not among the complete candidates "
                f"(e.g. {', '.join(rows['spec.id'].head(5))})"
            )
        notes.append(
            "no ablation tables: the study has no complete 'gc' (att-r16ln-add) "
            "candidate; pick a reference with --reference ID"
        )
    ablations = ablation_tables(rows, ref_row, stopped_rows(frame, rows))
    presets = preset_table(rows)
    family = [*ablations.values(), presets]
    tests = adjust_holm(family)
    return Report(
        study=frame.attrs.get("study", {}),
        where=mask_secrets(str(target)),
        frame=frame,
        objectives=objectives,
        rows=rows,
        front=front,
        reference_point=ref_point,
        hv=hv,
        reference=ref_row,
        reference_asked=reference,
        ablations=ablations,
        presets=presets,
        notes=notes,
        interval_note=interval_note(family, tests),
    )
