"""Reports of a study: the tidy results frame, the Pareto front, ablation tables and rendering.

Everything starts from ``results_frame``: one flat row per Optuna trial (``spec.*``,
``metric.*``, ``cost.*``, ``fidelity.*``, ``status``, ``env.*``), read from the study storage
alone, so a report works offline and on an interrupted study. The Pareto front, the hypervolume
(computed here: Optuna's helper is private) and the ablation tables in the style of GCNet's
Table 2 (Cao et al., 2019, https://arxiv.org/abs/1904.11492) are functions of that frame;
rich, Markdown and HTML only render it.

Example::

    gcsearch report runs/quick --md reports/quick.md
"""

from __future__ import annotations

import argparse
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gcsearch.errors import UserError
from gcsearch.spec import BlockSpec, Candidate, SpecError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "AXES",
    "Objective",
    "Report",
    "ablation_tables",
    "build_report",
    "candidate_rows",
    "front_table",
    "hypervolume",
    "load_study",
    "mean_ci",
    "pareto_front",
    "preset_table",
    "reference_point",
    "results_frame",
    "run_report",
    "welch_diff",
]

#: Storage files a run directory may hold, in the order they are looked for.
RUN_STORAGE_FILES = ("study.db", "study.sqlite", "study.sqlite3", "study.journal", "study.log")

#: Presets that are one point of the BlockSpec grid (same pooling/transform/fusion).
PRESET_BLOCKS: dict[str, str] = {
    "gc": "att-r16ln-add",
    "snl": "att-1x1-add",
    "se": "avg-r16-mul",
    "cbam-channel": "avgmax-r16-mul",
}

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
_SPEC_FIELDS = ("pooling", "transform", "ratio", "norm", "fusion", "position", "stages", "density")

#: Objective name -> frame column; other names are read from the trial's values (``obj.<name>``).
OBJECTIVE_COLUMNS: dict[str, str] = {
    "top1": "metric.top1_mean",
    "macs": "cost.macs",
    "params": "cost.params",
    "block_macs": "cost.block_macs",
    "block_params": "cost.block_params",
}
_STATE_STATUS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
                 "RUNNING": "running", "WAITING": "waiting"}


# ----------------------------------------------------------------------------- loading


def _storage_for(target: str | os.PathLike[str]) -> tuple[Any, str]:
    """Map a run directory, a storage file or a storage URL to an Optuna storage."""
    text = str(target)
    if "://" in text:
        if text.startswith("sqlite:///"):
            db = Path(text.removeprefix("sqlite:///"))
            if not db.is_file():
                raise UserError(f"storage not found: {db} (from {text})")
        return text, text
    path = Path(text)
    if path.is_dir():
        found = [path / name for name in RUN_STORAGE_FILES if (path / name).is_file()]
        if not found:
            raise UserError(
                f"{path} holds no study storage (expected one of {', '.join(RUN_STORAGE_FILES)})"
            )
        path = found[0]
    elif not path.is_file():
        raise UserError(f"run directory or storage not found: {path}")
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        return f"sqlite:///{path.resolve()}", str(path)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path))), str(path)


def load_study(target: str | os.PathLike[str], study_name: str | None = None) -> optuna.Study:
    """Open the study in a run directory, storage file or URL (read only; nothing is changed).

    With no ``study_name`` the storage must hold exactly one study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, where = _storage_for(target)
    try:
        storage = optuna.storages.get_storage(storage)
        names = optuna.study.get_all_study_names(storage)
    except Exception as exc:  # a corrupt or foreign file
        kind = type(exc).__name__
        raise UserError(f"cannot read a study storage from {where} ({kind})") from None
    if not names:
        raise UserError(f"{where} holds no study")
    if study_name is None:
        if len(names) > 1:
            raise UserError(f"{where} holds {len(names)} studies; choose one with --study "
                            f"({', '.join(sorted(names))})")
        study_name = names[0]
    if study_name not in names:
        raise UserError(f"unknown study {study_name!r} in {where} (studies: {', '.join(names)})")
    return optuna.load_study(study_name=study_name, storage=storage)


def _candidate(attrs: Mapping[str, Any]) -> Candidate | None:
    data = attrs.get("candidate")
    try:
        if isinstance(data, Mapping):
            return Candidate.from_dict(data)
        if isinstance(attrs.get("candidate_id"), str):
            return Candidate.parse(attrs["candidate_id"])
    except (SpecError, TypeError, KeyError):
        return None
    return None


def _spec_columns(cand: Candidate | None, attrs: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(
        ("spec.id", "spec.kind", "spec.block", "spec.preset", *(f"spec.{f}" for f in _SPEC_FIELDS))
    )
    if cand is None:
        row["spec.id"] = str(attrs.get("candidate_id", "?"))
        row["spec.kind"] = "invalid"
        return row
    row["spec.id"] = cand.id
    row["spec.block"] = cand.block_id
    if cand.is_baseline:
        row["spec.kind"] = "baseline"
        row["spec.preset"] = "none"
        return row
    row["spec.kind"] = "preset" if cand.preset else "block"
    row["spec.preset"] = cand.preset
    if cand.block is not None:
        row.update({f"spec.{k}": v for k, v in cand.block.to_dict().items()})
    p = cand.placement
    row.update({"spec.position": p.position, "spec.stages": "".join(p.stages),
                "spec.density": p.density})
    return row


def _metric_columns(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    tops, losses, wall = [], [], 0.0
    for res in results:
        top1 = res.get("top1")
        if top1 is not None and math.isfinite(float(top1)):
            row[f"metric.top1.s{res.get('seed')}"] = float(top1)
            tops.append(float(top1))
        if res.get("loss") is not None:
            losses.append(float(res["loss"]))
        wall += float(res.get("wall_s") or 0.0)
    mean, half, n = mean_ci(tops)
    row.update({
        "metric.top1_mean": mean,
        "metric.top1_std": float(np.std(tops, ddof=1)) if n > 1 else math.nan,
        "metric.top1_n": n,
        "metric.top1_ci95": half,
        "metric.loss_mean": float(np.mean(losses)) if losses else math.nan,
        "time.wall_s": wall,
        "metric.seeds": ",".join(str(r.get("seed")) for r in results),
    })
    return row


def _trial_row(trial: optuna.trial.FrozenTrial, names: Sequence[str]) -> dict[str, Any]:
    attrs = trial.user_attrs
    results = [r for r in attrs.get("results") or [] if isinstance(r, Mapping)]
    state = trial.state.name
    row: dict[str, Any] = {
        "trial": trial.number,
        "state": state.lower(),
        "status": attrs.get("status") or _STATE_STATUS.get(state, state.lower()),
        "reason": attrs.get("reason") or "; ".join(
            str(r["reason"]) for r in results if r.get("reason")),
        "duplicate_of": attrs.get("duplicate_of"),
        "role": attrs.get("role"),
    }
    cand = _candidate(attrs)
    row.update(_spec_columns(cand, attrs))
    if cand is None and row["status"] == "complete":
        row["status"], row["reason"] = "failed", "unreadable candidate spec in storage"
    row.update(_metric_columns(results))
    cost = dict(attrs.get("cost") or {})
    first = results[0] if results else {}
    for key in ("params", "macs", "block_params", "block_macs"):
        row[f"cost.{key}"] = cost.get(key, first.get(key))
    fid = attrs.get("fidelity") or {}
    for key in ("epochs", "max_epochs", "rung"):
        row[f"fidelity.{key}"] = fid.get(key)
    if row["fidelity.epochs"] is None and results:
        row["fidelity.epochs"] = max(int(r.get("epochs") or 0) for r in results)
    if trial.values is not None:
        for name, value in zip(names, trial.values, strict=False):
            row[f"obj.{name}"] = value
    env = dict(attrs.get("env") or first.get("env") or {})
    when = trial.datetime_complete or trial.datetime_start
    env.setdefault("time", when.isoformat(timespec="seconds") if when else None)
    for key in ("node", "device", "torch"):
        env.setdefault(key, None)
    row.update({f"env.{k}": v for k, v in env.items() if not isinstance(v, dict | list)})
    row["artifact.weights"] = attrs.get("weights")
    return row


_INT_COLUMNS = ("trial", "duplicate_of", "spec.ratio", "metric.top1_n", "cost.params", "cost.macs",
                "cost.block_params", "cost.block_macs", "fidelity.epochs", "fidelity.max_epochs",
                "fidelity.rung")


def frame_from_study(study: optuna.Study) -> pd.DataFrame:
    """The results frame of an open study (see ``results_frame``)."""
    objectives = study_objectives(study)
    names = [o.name for o in objectives]
    rows = [_trial_row(t, names) for t in study.get_trials(deepcopy=False)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["trial", "status", "spec.id"])
    for col in _INT_COLUMNS:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
    lead = [c for c in ("trial", "status", "spec.id") if c in frame]
    rest = sorted((c for c in frame.columns if c not in lead),
                  key=lambda c: (c.split(".")[0] != "spec", c.split(".")[0], c))
    frame = frame[lead + rest]
    attrs = dict(study.user_attrs)
    frame.attrs["study"] = {
        "name": study.study_name,
        "objectives": [f"{o.name}:{o.sense}" for o in objectives],
        **{k: attrs[k] for k in ("task", "backbone", "input_shape", "budget", "gcsearch_version",
                                 "hv_reference", "seeds", "sampler", "fidelity", "versions",
                                 "min_hidden", "smoke") if k in attrs},
    }
    return frame


def results_frame(storage_or_run_dir: str | os.PathLike[str],
                  study_name: str | None = None) -> pd.DataFrame:
    """One tidy row per trial of a study; works on interrupted studies (running rows included).

    Example::

        frame = results_frame("runs/quick")
        frame[frame.status == "complete"][["spec.id", "metric.top1_mean", "cost.macs"]]
    """
    return frame_from_study(load_study(storage_or_run_dir, study_name))


# ----------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """One study objective: its name, ``max`` or ``min``, and the frame column holding it."""

    name: str
    sense: str
    column: str


def _objective(text: str) -> Objective:
    name, _, sense = str(text).partition(":")
    sense = {"maximize": "max", "minimize": "min"}.get(sense, sense or "max")
    if sense not in ("max", "min"):
        raise UserError(f"objective {text!r}: sense must be max or min")
    return Objective(name, sense, OBJECTIVE_COLUMNS.get(name, f"obj.{name}"))


def study_objectives(study: optuna.Study) -> list[Objective]:
    """The objectives recorded by the search (``study.user_attrs['objectives']``)."""
    recorded = study.user_attrs.get("objectives")
    if recorded:
        return [_objective(t) for t in recorded]
    senses = ["max" if d.name == "MAXIMIZE" else "min" for d in study.directions]
    return [Objective(f"obj{i}", s, f"obj.obj{i}") for i, s in enumerate(senses)]


def frame_objectives(frame: pd.DataFrame) -> list[Objective]:
    """The objectives stored with a frame (by ``frame_from_study``); top1/macs if none."""
    texts = frame.attrs.get("study", {}).get("objectives") or ["top1:max", "macs:min"]
    return [_objective(t) for t in texts]


# ----------------------------------------------------------------------------- Pareto, HV


def _as_min(points: Any, senses: Sequence[str]) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != len(senses):
        raise ValueError(f"points must be (n, {len(senses)}), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points must be finite")
    signs = np.array([_sign(s) for s in senses])
    return pts * signs


def _sign(sense: str) -> float:
    if sense in ("max", "maximize"):
        return -1.0
    if sense in ("min", "minimize"):
        return 1.0
    raise ValueError(f"sense {sense!r} (allowed: max, min)")


def pareto_front(points: Any, senses: Sequence[str]) -> np.ndarray:
    """Indices (ascending) of the points no other point dominates.

    ``q`` dominates ``p`` when it is at least as good in every objective and better in one;
    identical points do not dominate each other, so duplicates are all on the front.
    """
    pts = _as_min(points, senses)
    if len(pts) == 0:
        return np.zeros(0, dtype=int)
    le = (pts[:, None, :] <= pts[None, :, :]).all(axis=2)  # le[q, p]: q <= p everywhere
    lt = (pts[:, None, :] < pts[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    return np.flatnonzero(~dominated)


def _hv_min(pts: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by ``pts`` inside the box below ``ref`` (minimisation, pts < ref)."""
    if len(pts) == 0:
        return 0.0
    if pts.shape[1] == 1:
        return float(ref[0] - pts[:, 0].min())
    if pts.shape[1] == 2:
        order = np.lexsort((pts[:, 1], pts[:, 0]))
        area, best_y = 0.0, ref[1]
        xs = np.append(pts[order, 0], ref[0])
        for i, idx in enumerate(order):
            best_y = min(best_y, pts[idx, 1])
            area += (xs[i + 1] - xs[i]) * (ref[1] - best_y)
        return float(area)
    # slice along the last objective: between consecutive levels, the dominated region is the
    # (k-1)-dimensional hypervolume of every point at or below that level
    order = np.argsort(pts[:, -1], kind="stable")
    levels = np.append(pts[order, -1], ref[-1])
    volume = 0.0
    for i in range(len(order)):
        depth = levels[i + 1] - levels[i]
        if depth > 0:
            volume += depth * _hv_min(pts[order[: i + 1], :-1], ref[:-1])
    return float(volume)


def hypervolume(points: Any, senses: Sequence[str], reference: Sequence[float]) -> float:
    """Hypervolume of ``points`` w.r.t. ``reference`` (exact; slicing for 3 objectives).

    Points that do not strictly beat the reference in every objective add nothing.
    """
    pts = _as_min(points, senses)
    ref = _as_min([list(reference)], senses)[0]
    pts = pts[(pts < ref).all(axis=1)] if len(pts) else pts.reshape(0, len(senses))
    if len(pts):
        pts = pts[pareto_front(pts, ["min"] * len(senses))]
    return _hv_min(pts, ref)


def reference_point(objectives: Sequence[Objective], frame: pd.DataFrame) -> dict[str, float]:
    """The hypervolume reference: 0 for top-1, 1.1 x the largest cost recorded in the study.

    A study may fix it beforehand in ``study.user_attrs['hv_reference']`` (name -> value); the
    report uses that when present, so hypervolumes of runs over one space compare.
    """
    fixed = frame.attrs.get("study", {}).get("hv_reference") or {}
    ref: dict[str, float] = {}
    for obj in objectives:
        if obj.name in fixed:
            ref[obj.name] = float(fixed[obj.name])
        elif obj.name == "top1":
            ref[obj.name] = 0.0
        else:
            values = pd.to_numeric(frame.get(obj.column), errors="coerce").dropna()
            if values.empty:
                ref[obj.name] = math.nan
            elif obj.sense == "min":
                ref[obj.name] = float(values.max()) * 1.1
            else:
                ref[obj.name] = float(values.min()) * 0.9
    return ref


# ----------------------------------------------------------------------------- statistics


def _t_quantile(df: float, level: float) -> float:
    from scipy.special import stdtrit  # much lighter to import than scipy.stats

    return float(stdtrit(df, 0.5 + level / 2))


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of its t-interval and n; the half-width is NaN below two values."""
    vals = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(vals[0]), math.nan, 1
    sem = float(np.std(vals, ddof=1)) / math.sqrt(n)
    return float(vals.mean()), _t_quantile(n - 1, level) * sem, n


def welch_diff(a: Sequence[float], b: Sequence[float],
               level: float = 0.95) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the half-width of its Welch t-interval (NaN if n < 2)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return diff, math.nan
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se2 = vx + vy
    if se2 == 0:
        return diff, 0.0
    df = se2**2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return diff, _t_quantile(df, level) * math.sqrt(se2)


# ----------------------------------------------------------------------------- tables


def _seed_values(row: pd.Series) -> list[float]:
    return [float(row[c]) for c in row.index
            if c.startswith("metric.top1.s") and pd.notna(row[c])]


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
    done["_dup"] = done["duplicate_of"].notna()
    done = done.sort_values(["fidelity.epochs", "metric.top1_n", "_dup", "trial"],
                            ascending=[False, False, True, True], na_position="last")
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
        ascending=[False, True, True, True])
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


def _stat_columns(rows: pd.DataFrame, ref: pd.Series | None) -> pd.DataFrame:
    ref_vals = _seed_values(ref) if ref is not None else []
    out = rows.copy()
    stats = [mean_ci(_seed_values(r)) for _, r in rows.iterrows()]
    out["top1.mean"] = [s[0] for s in stats]
    out["top1.ci95"] = [s[1] for s in stats]
    out["top1.n"] = [s[2] for s in stats]
    diffs = [welch_diff(_seed_values(r), ref_vals) for _, r in rows.iterrows()]
    out["delta.mean"] = [d[0] for d in diffs]
    out["delta.ci95"] = [d[1] for d in diffs]
    return out


def stopped_rows(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Pruned candidates that never completed, one row each (the one trained longest)."""
    if "status" not in frame or frame.empty:
        return frame.iloc[0:0]
    pruned = frame[(frame["status"] == "pruned") & frame["duplicate_of"].isna()
                   & ~frame["spec.id"].isin(rows["spec.id"]) & frame["metric.top1_mean"].notna()]
    pruned = pruned.sort_values(["fidelity.epochs", "trial"], ascending=[False, True])
    return pruned.drop_duplicates("spec.id").sort_values("trial")


def ablation_tables(rows: pd.DataFrame, reference: pd.Series | None,
                    stopped: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
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
        table = _stat_columns(table, reference)
        table["complete"] = (table["status"] == "complete").to_numpy()
        table.loc[0, ["delta.mean", "delta.ci95"]] = math.nan
        table.loc[~table["complete"], ["delta.mean", "delta.ci95"]] = math.nan
        table["value"] = [_value_label(r, axis) for _, r in table.iterrows()]
        table["is_reference"] = [i == 0 for i in range(len(table))]
        tables[axis] = table
    return tables


def preset_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Baseline and preset rows with top-1 ± CI and the difference to the baseline."""
    presets = rows[rows["spec.kind"].isin(["baseline", "preset"])]
    base = presets[presets["spec.kind"] == "baseline"]
    order = {name: i for i, name in enumerate(["none", "nl-embedded", "nl-gaussian", "nl-dot",
                                               "nl-concat", "snl", "se", "cbam-channel", "gc"])}
    presets = presets.assign(_o=presets["spec.block"].map(order).fillna(99))
    presets = presets.sort_values(["_o", "spec.id"]).drop(columns="_o")
    table = _stat_columns(presets, base.iloc[0] if len(base) else None)
    table.loc[table["spec.kind"] == "baseline", ["delta.mean", "delta.ci95"]] = math.nan
    return table


# ----------------------------------------------------------------------------- the report


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


def build_report(target: str | os.PathLike[str], study_name: str | None = None,
                 reference: str = "gc", frame: pd.DataFrame | None = None) -> Report:
    """Load a study and compute its front, hypervolume, ablation and preset tables."""
    frame = results_frame(target, study_name) if frame is None else frame
    objectives = frame_objectives(frame)
    rows = candidate_rows(frame, objectives)
    if rows.empty:
        counts = frame["status"].value_counts().to_dict() if "status" in frame else {}
        what = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no trials"
        raise UserError(f"study {frame.attrs.get('study', {}).get('name', '?')!r} has no "
                        f"complete trial ({what}); nothing to report yet")
    front = front_table(rows, objectives)
    ref_point = reference_point(objectives, frame)
    senses = [o.sense for o in objectives]
    hv = (hypervolume(_objective_matrix(rows, objectives), senses,
                      [ref_point[o.name] for o in objectives])
          if all(math.isfinite(v) for v in ref_point.values()) else math.nan)
    ref_row = _resolve_reference(rows, reference)
    notes = []
    if ref_row is None:
        if reference != "gc":
            raise UserError(f"reference {reference!r} is not among the complete candidates "
                            f"(e.g. {', '.join(rows['spec.id'].head(5))})")
        notes.append("no ablation tables: the study has no complete 'gc' (att-r16ln-add) "
                     "candidate; pick a reference with --reference ID")
    return Report(
        study=frame.attrs.get("study", {}), where=str(target), frame=frame,
        objectives=objectives, rows=rows, front=front, reference_point=ref_point, hv=hv,
        reference=ref_row, reference_asked=reference,
        ablations=ablation_tables(rows, ref_row, stopped_rows(frame, rows)),
        presets=preset_table(rows), notes=notes)


# ----------------------------------------------------------------------------- formatting


def _si(value: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    v = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}" if abs(v) / scale < 100 else f"{v / scale:.0f}{unit}"
    return f"{v:.0f}"


def _pm(mean: float, half: float, signed: bool = False) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    if half is not None and pd.notna(half):
        text += f" ± {half:.2f}"
        if signed and abs(mean) > half:
            text += " *"
    return text


def _common_columns(t: pd.DataFrame, delta_name: str) -> dict[str, list[str]]:
    done = t["complete"] if "complete" in t else pd.Series(True, index=t.index)
    top1 = [_pm(m, h) for m, h in zip(t["top1.mean"], t["top1.ci95"], strict=True)]
    delta = [_pm(m, h, signed=True) for m, h in zip(t["delta.mean"], t["delta.ci95"],
                                                    strict=True)]
    for i, (ok, (_, r)) in enumerate(zip(done, t.iterrows(), strict=True)):
        if not ok:  # pruned: its top-1 is from fewer epochs, so no difference is given
            top1[i] += f" (pruned, epoch {r['fidelity.epochs']}/{r['fidelity.max_epochs']})"
            delta[i] = "pruned"
    return {
        "params": [_si(v) for v in t["cost.params"]],
        "MACs": [_si(v) for v in t["cost.macs"]],
        "top-1 % (95% CI)": top1,
        "seeds": [str(int(n)) for n in t["top1.n"]],
        delta_name: delta,
    }


def _display_front(report: Report) -> pd.DataFrame:
    t = _stat_columns(report.front, None)
    cols = {"rank": [str(r) for r in t["rank"]], "candidate": list(t["spec.id"]),
            **_common_columns(t, "_")}
    cols.pop("_")
    cols["block params"] = [_si(v) for v in t["cost.block_params"]]
    cols["block MACs"] = [_si(v) for v in t["cost.block_macs"]]
    cols["trial"] = [str(v) for v in t["trial"]]
    return pd.DataFrame(cols)


def _display_ablation(table: pd.DataFrame, axis: str) -> pd.DataFrame:
    cols = {axis: [f"{v} (ref)" if r else v for v, r in
                   zip(table["value"], table["is_reference"], strict=True)],
            "candidate": list(table["spec.id"]),
            **_common_columns(table, "Δ vs ref")}
    return pd.DataFrame(cols)


def _display_presets(report: Report) -> pd.DataFrame:
    t = report.presets
    return pd.DataFrame({"preset": list(t["spec.block"]), "candidate": list(t["spec.id"]),
                         **_common_columns(t, "Δ vs baseline")})


def _display_problems(report: Report) -> pd.DataFrame:
    f = report.frame[report.frame["status"] != "complete"]
    return pd.DataFrame({
        "trial": [str(v) for v in f["trial"]], "candidate": list(f["spec.id"]),
        "status": list(f["status"]),
        "epochs": [("–" if pd.isna(e) else str(e)) + ("" if pd.isna(m) else f"/{m}")
                   for e, m in zip(f["fidelity.epochs"], f["fidelity.max_epochs"], strict=True)],
        "reason": [str(r or "")[:120] for r in f["reason"]],
    })


def _summary_lines(report: Report) -> list[str]:
    s, frame = report.study, report.frame
    counts = frame["status"].value_counts()
    status = ", ".join(f"{counts[k]} {k}" for k in counts.index)
    ref = ", ".join(f"{k} {_si(v) if k != 'top1' else f'{v:g} %'}"
                    for k, v in report.reference_point.items())
    source = ("recorded by the search" if s.get("hv_reference")
              else "top-1 0 %, costs 1.1 x the largest recorded in the study")
    lines = [
        f"Study `{s.get('name', '?')}` in `{report.where}`",
        f"Task `{s.get('task', '?')}`, backbone `{s.get('backbone', '?')}`, "
        f"input {s.get('input_shape', '?')}, objectives {', '.join(s.get('objectives', []))}",
        f"Trials: {len(frame)} ({status}); {len(report.rows)} distinct complete candidates, "
        f"{len(report.front)} on the Pareto front",
        f"Hypervolume {report.hv:.4g} with reference point ({ref}) — {source}",
        "Means are over seeds with a 95 % t-interval; Δ uses a Welch interval, "
        "`*` where it excludes 0.",
    ]
    if "budget" in s:
        lines.insert(2, f"Budget: {_budget_text(s['budget'])}")
    search = [f"{k} {s[k]}" for k in ("sampler", "seeds") if k in s]
    if isinstance(s.get("fidelity"), Mapping) and s["fidelity"].get("enabled"):
        search.append(f"rungs at epochs {s['fidelity'].get('rungs')}")
    if search:
        lines.insert(3, "Search: " + ", ".join(search) + (" (smoke budget)" if s.get("smoke")
                                                          else ""))
    if isinstance(s.get("versions"), Mapping):
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in s["versions"].items()
                                              if v is not None))
    times = frame["env.time"].dropna().astype(str) if "env.time" in frame else []
    if len(times):
        lines.append(f"Trials ran from {min(times)} to {max(times)}")
    envs = frame.filter(like="env.").drop_duplicates()
    for col, label in (("env.device", "devices"), ("env.torch", "torch"), ("env.node", "nodes")):
        if col in envs and envs[col].notna().any():
            lines.append(f"{label}: {', '.join(sorted(map(str, envs[col].dropna().unique())))}")
    return lines + report.notes


def _budget_text(budget: Any) -> str:
    if isinstance(budget, Mapping):
        return ", ".join(f"{k}={v}" for k, v in budget.items())
    return str(budget)


# ----------------------------------------------------------------------------- rendering


def render_terminal(report: Report, console: Any = None) -> None:
    """Print the summary, the front, the ablation tables and the presets with rich."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
            console = Console(width=160)

    def show(title: str, table: pd.DataFrame) -> None:
        rt = Table(title=title, title_justify="left", show_lines=False)
        for col in table.columns:
            rt.add_column(str(col), justify="left" if col in ("candidate", "reason") else "right")
        for _, r in table.iterrows():
            rt.add_row(*(str(v) for v in r))
        console.print(rt)

    for line in _summary_lines(report):
        console.print(line.replace("`", ""), highlight=False)
    show("Pareto front (rank 1 = export --rank 1)", _display_front(report))
    ref_id = report.reference["spec.id"] if report.reference is not None else "–"
    for axis, table in report.ablations.items():
        show(f"Ablation: {axis} (reference {ref_id})", _display_ablation(table, axis))
    if len(report.presets):
        show("Presets", _display_presets(report))
    problems = _display_problems(report)
    if len(problems):
        show("Failed, pruned and unfinished trials", problems)


def _md_table(table: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _sections(report: Report, images: Mapping[str, str]) -> list[tuple[str, str, pd.DataFrame]]:
    ref_id = report.reference["spec.id"] if report.reference is not None else "–"
    out = [("Pareto front", images.get("pareto", ""), _display_front(report))]
    for axis, table in report.ablations.items():
        out.append((f"Ablation: {axis} (reference `{ref_id}`)", images.get(axis, ""),
                    _display_ablation(table, axis)))
    if len(report.presets):
        out.append(("Presets", images.get("presets", ""), _display_presets(report)))
    problems = _display_problems(report)
    if len(problems):
        out.append(("Failed, pruned and unfinished trials", "", problems))
    return out


def render_markdown(report: Report, path: str | os.PathLike[str],
                    images: Mapping[str, Path] | None = None) -> list[Path]:
    """Write ``path`` and its PNG plots beside it; returns the files written."""
    path = Path(path)
    images = write_plots(report, path.parent, path.stem) if images is None else images
    parts = [f"# gcsearch report: {report.study.get('name', '')}", ""]
    parts += [f"- {line}" for line in _summary_lines(report)]
    for title, image, table in _sections(report, {k: p.name for k, p in images.items()}):
        parts += ["", f"## {title}", ""]
        if image:
            parts += [f"![{Path(image).stem}]({image})", ""]
        parts.append(_md_table(table))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return [path, *images.values()]


def render_html(report: Report, path: str | os.PathLike[str],
                images: Mapping[str, Path] | None = None) -> list[Path]:
    """Write an HTML page with its PNG plots beside it; returns the files written."""
    path = Path(path)
    images = write_plots(report, path.parent, path.stem) if images is None else images
    esc = html.escape
    title = f"gcsearch report: {report.study.get('name', '')}"
    body = [f"<h1>{esc(title)}</h1>", "<ul>"]
    body += [f"<li>{esc(line.replace('`', ''))}</li>" for line in _summary_lines(report)]
    body.append("</ul>")
    for head, image, table in _sections(report, {k: p.name for k, p in images.items()}):
        body.append(f"<h2>{esc(head.replace('`', ''))}</h2>")
        if image:
            body.append(f'<img src="{esc(image)}" alt="{esc(head)}" style="max-width:100%">')
        body.append(table.to_html(index=False, escape=True, border=0))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}"
             "tr:nth-child(even){background:#f4f4f4}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return [path, *images.values()]


# ----------------------------------------------------------------------------- plots


def write_plots(report: Report, folder: Path, stem: str) -> dict[str, Path]:
    """The Pareto scatter, one plot per ablation axis and one for presets, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = {"pareto": folder / f"{stem}-pareto.png"}
    fig = _pareto_figure(report, plt)
    fig.savefig(out["pareto"], dpi=110, bbox_inches="tight")
    plt.close(fig)
    for axis, table in report.ablations.items():
        table = table[table["complete"]]
        if len(table) < 2:
            continue
        out[axis] = folder / f"{stem}-{axis}.png"
        fig = _delta_figure(table, axis, plt, "reference")
        fig.savefig(out[axis], dpi=110, bbox_inches="tight")
        plt.close(fig)
    if len(report.presets) > 1 and report.presets["delta.mean"].notna().any():
        out["presets"] = folder / f"{stem}-presets.png"
        table = report.presets.assign(value=report.presets["spec.block"],
                                      is_reference=report.presets["spec.kind"] == "baseline")
        fig = _delta_figure(table, "preset", plt, "baseline (no block)")
        fig.savefig(out["presets"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return out


def _pareto_figure(report: Report, plt: Any) -> Any:
    rows = _stat_columns(report.rows, None)
    fig, ax = plt.subplots(figsize=(8, 5.2))
    added = rows["cost.block_macs"].astype(float)
    scale, unit = (1e6, "M") if added.abs().max() >= 1e6 else (1e3, "K")
    x = added / scale
    base = float((rows["cost.macs"].astype(float) - added).median())
    params = rows["cost.params"].astype(float)
    span = params.max() - params.min()
    size = 25 + 220 * ((params - params.min()) / span if span > 0 else 0 * params)
    on_front = rows["trial"].isin(report.front["trial"])
    ax.errorbar(x, rows["top1.mean"], yerr=rows["top1.ci95"].fillna(0), fmt="none",
                ecolor="0.75", elinewidth=0.8, zorder=1)
    ax.scatter(x[~on_front], rows["top1.mean"][~on_front], s=size[~on_front], c="0.65",
               alpha=0.7, edgecolors="white", label="candidate", zorder=2)
    ax.scatter(x[on_front], rows["top1.mean"][on_front], s=size[on_front], c="tab:red",
               alpha=0.9, edgecolors="black", label="Pareto front (all objectives)", zorder=3)
    pts = np.column_stack([x, rows["top1.mean"]])
    idx = pareto_front(pts, ["min", "max"])
    stair = pts[idx][np.argsort(pts[idx][:, 0])]
    ax.step(stair[:, 0], stair[:, 1], where="post", color="tab:red", lw=1.2, alpha=0.8,
            label="front in (MACs, top-1)", zorder=2)
    labels: dict[tuple[float, float], list[str]] = {}
    for _, r in rows[rows["spec.kind"].isin(["preset", "baseline"])].iterrows():
        key = (float(r["cost.block_macs"]) / scale, float(r["top1.mean"]))
        labels.setdefault(key, []).append(str(r["spec.block"]))
    for key, names in labels.items():
        ax.annotate(", ".join(names), key, textcoords="offset points", xytext=(7, 4), fontsize=8)
    ranks: dict[tuple[float, float], list[str]] = {}
    for _, r in report.front.iterrows():  # rank numbers as in the front table / export --rank
        key = (float(r["cost.block_macs"]) / scale, float(r["metric.top1_mean"]))
        ranks.setdefault(key, []).append(f"#{r['rank']}")
    for key, names in ranks.items():
        ax.annotate(",".join(names), key, textcoords="offset points", xytext=(-4, -13),
                    fontsize=7, color="tab:red", ha="center")
    where = report.study.get("backbone", "the backbone")
    ax.set_xlabel(f"MACs the blocks add to {where} ({_si(base)} MACs without blocks), {unit}")
    ax.set_ylabel("top-1 % (mean over seeds; bars: 95 % CI if n ≥ 2)")
    ax.set_title(f"{report.study.get('name', '')}: accuracy vs added MACs "
                 "(marker area ~ params)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _delta_figure(table: pd.DataFrame, axis: str, plt: Any, against: str) -> Any:
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(table) + 2), 3.6))
    x = np.arange(len(table))
    ax.axhline(0, color="0.5", lw=0.8)
    colors = ["tab:blue" if ref else "tab:orange" for ref in table["is_reference"]]
    ax.errorbar(x, table["delta.mean"].fillna(0), yerr=table["delta.ci95"].fillna(0),
                fmt="none", ecolor="0.3", capsize=4)
    ax.scatter(x, table["delta.mean"].fillna(0), c=colors, s=50, zorder=3)
    labels = [f"{v}\n{_si(m)} MACs" for v, m in zip(table["value"], table["cost.macs"],
                                                     strict=True)]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(f"Δ top-1 vs {against} (pts)")
    ax.set_title(f"{axis}: difference to the {against} (95 % Welch CI)")
    ax.grid(axis="y", alpha=0.3)
    return fig


# ----------------------------------------------------------------------------- CLI


def write_frame(frame: pd.DataFrame, path: str | os.PathLike[str], kind: str = "csv") -> Path:
    """Write the results frame as ``csv`` or ``parquet`` (pyarrow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def run_report(args: argparse.Namespace) -> int:
    """``gcsearch report``: print the tables, write the frame and the Markdown/HTML report."""
    frame = results_frame(args.run, getattr(args, "study", None))
    written = []
    if getattr(args, "csv", None):
        written.append(write_frame(frame, args.csv))
    if getattr(args, "parquet", None):
        written.append(write_frame(frame, args.parquet, "parquet"))
    report = build_report(args.run, reference=getattr(args, "reference", None) or "gc",
                          frame=frame)
    render_terminal(report)
    plots: dict[tuple[Path, str], dict[str, Path]] = {}
    for option, render in (("md", render_markdown), ("html", render_html)):
        target = getattr(args, option, None)
        if target:
            key = (Path(target).parent, Path(target).stem)
            if key not in plots:  # --md r.md --html r.html share one set of plots
                plots[key] = write_plots(report, *key)
            written += render(report, target, plots[key])
    for path in dict.fromkeys(written):
        print(f"wrote {path}")
    return 0
