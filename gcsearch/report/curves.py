"""Learning curves: the per-epoch records every trial keeps, as one long table.

Optuna refuses ``trial.report`` (intermediate values) for multi-objective studies
(``NotImplementedError`` in Optuna 4.x), so optuna-dashboard cannot draw them; the epochs live in
each trial's ``user_attrs['results'][*]['history']`` (visible there as JSON) and this table and
the report's learning-curve plot are where a user reads them, e.g. to judge the rung cuts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import optuna

#: Columns of the long table, in order; the metric columns are those ``train`` records.
CURVE_COLUMNS = (
    "trial",
    "spec.id",
    "status",
    "seed",
    "epoch",
    "val_top1",
    "val_loss",
    "train_loss",
    "seconds",
)


def curve_rows(trials: Iterable[Any]) -> list[dict[str, Any]]:
    """One dict per (trial, seed, epoch) from frozen trials (or anything with ``number``,
    ``user_attrs``)."""
    rows: list[dict[str, Any]] = []
    for t in trials:
        attrs = t.user_attrs
        if "duplicate_of" in attrs:  # answered from another trial: its curve is that trial's
            continue
        cand = attrs.get("candidate")  # a spec dict, or a plain study's own string
        cid = (
            attrs.get("candidate_id")
            or (
                cand.get("id")
                if isinstance(cand, Mapping)
                else cand
                if isinstance(cand, str)
                else None
            )
            or "?"
        )
        status = attrs.get("status") or t.state.name.lower()
        # a seed ``gcsearch resolve`` added is one more seed of the trial it extends
        trial = int(attrs["extends"]) if attrs.get("extends") is not None else t.number
        for res in attrs.get("results") or []:
            if not isinstance(res, Mapping):
                continue
            for rec in res.get("history") or []:
                if not isinstance(rec, Mapping) or "epoch" not in rec:
                    continue
                row = {
                    "trial": trial,
                    "spec.id": cid,
                    "status": status,
                    "seed": res.get("seed"),
                    "epoch": rec.get("epoch"),
                }
                row.update({k: rec.get(k) for k in CURVE_COLUMNS[5:]})
                rows.append(row)
    return rows


def curve_frame(study: optuna.Study) -> pd.DataFrame:
    """The long table of every trial's per-epoch records (``CURVE_COLUMNS``).

    Example::

        curves = curve_frame(load_study("runs/quick"))
        curves.groupby(["spec.id", "epoch"])["val_top1"].mean().unstack()
    """
    frame = pd.DataFrame(curve_rows(study.get_trials(deepcopy=False)), columns=CURVE_COLUMNS)
    for col in ("trial", "seed", "epoch"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in CURVE_COLUMNS[5:]:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame.sort_values(["trial", "seed", "epoch"], ignore_index=True)


def curve_table(curves: pd.DataFrame, ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Wide view: mean validation top-1 over seeds per candidate (rows) and epoch (columns)."""
    if curves.empty:
        return pd.DataFrame()
    data = curves if ids is None else curves[curves["spec.id"].isin(list(ids))]
    # a candidate trained in several trials (rungs, reruns): the longest run's curve
    longest = data.groupby(["spec.id", "trial"])["epoch"].max().reset_index()
    keep = longest.sort_values(["epoch", "trial"]).drop_duplicates("spec.id", keep="last")
    data = data.merge(keep[["spec.id", "trial"]], on=["spec.id", "trial"])
    wide = data.groupby(["spec.id", "epoch"])["val_top1"].mean().unstack("epoch")
    wide = wide.dropna(axis=1, how="all")  # epochs no run validated at: no column
    wide.columns = [f"epoch {int(c)}" for c in wide.columns]
    return wide


def validated_epochs(curves: pd.DataFrame) -> list[int]:
    """The epochs any run validated at (a search validates at its rungs and last epoch, plus
    every ``validate_every``-th): what a curve's points are."""
    if curves.empty:
        return []
    return sorted(int(e) for e in curves.loc[curves["val_top1"].notna(), "epoch"].unique())


__all__ = ["CURVE_COLUMNS", "curve_frame", "curve_rows", "curve_table", "validated_epochs"]
