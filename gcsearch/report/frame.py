"""The results frame: one tidy row per Optuna trial, read from the study storage alone.

Columns are prefixed by kind (``spec.*``, ``metric.*``, ``cost.*``, ``fidelity.*``, ``obj.*``,
``env.*``), as Optuna's ``trials_dataframe`` does, so a frame filters and groups with plain
pandas. Trials in every state are rows (running ones too), so an interrupted study reads. Seeds
that ``gcsearch resolve`` added to a candidate count in its trial's row (their own rows have
status ``seed``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gcsearch.errors import UserError
from gcsearch.report.sequential import PLAN_ATTR
from gcsearch.report.stats import mean_ci
from gcsearch.search.record import DUPLICATE_OF, SEED, TrialRecord, counts
from gcsearch.spec import AXES as SPEC_AXES
from gcsearch.spec import METRICS, Candidate

if TYPE_CHECKING:
    import optuna

_SPEC_FIELDS = tuple(SPEC_AXES)  # every axis, from the registry

#: Objective name -> frame column, from the objective registry (``spec.METRICS``); a name the
#: registry does not know (a plain Optuna study's) is read from the trial's values (``obj.<name>``).
OBJECTIVE_COLUMNS: dict[str, str] = {name: m.column for name, m in METRICS.items()}
#: The ``env.*`` fields that name the machine a trial ran on (``gcsearch.tasks.machine``): the
#: same seed reproduces only where all of them, and torch, are the same.
MACHINE_KEYS = (
    "cpu",
    "cpu_id",
    "cpu_isa",
    "cpu_capability",
    "gpu",
    "gpu_capability",
    "cuda",
    "cudnn",
)
_STATE_STATUS = {
    "COMPLETE": "complete",
    "PRUNED": "pruned",
    "FAIL": "failed",
    "RUNNING": "running",
    "WAITING": "waiting",
}


def load_study(target: str | os.PathLike[str], study_name: str | None = None) -> optuna.Study:
    """Open the study in a run directory, storage file or URL (read only; nothing is changed).

    With no ``study_name`` the storage must hold exactly one study.
    """
    from gcsearch.search.storage import load_study_readonly

    return load_study_readonly(target, study_name)


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
    row.update(
        {"spec.position": p.position, "spec.stages": "".join(p.stages), "spec.density": p.density}
    )
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
    row.update(
        {
            "metric.top1_mean": mean,
            "metric.top1_std": float(np.std(tops, ddof=1)) if n > 1 else math.nan,
            "metric.top1_n": n,
            "metric.top1_ci95": half,
            "metric.loss_mean": float(np.mean(losses)) if losses else math.nan,
            "time.wall_s": wall,
            "metric.seeds": ",".join(str(r.get("seed")) for r in results),
        }
    )
    return row


def added_seeds(trials: Sequence[optuna.trial.FrozenTrial]) -> dict[int, list[dict[str, Any]]]:
    """Trial number -> the seed results ``gcsearch resolve`` added to its candidate (its
    ``SEED`` rows, by seed)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for t in trials:
        rec = TrialRecord.read(t)
        if rec.role == SEED and rec.extends is not None and t.state.is_finished():
            out.setdefault(rec.extends, []).extend(rec.results)
    return {k: sorted(v, key=lambda r: int(r.get("seed", 0))) for k, v in out.items()}


def _trial_row(
    trial: optuna.trial.FrozenTrial,
    names: Sequence[str],
    added: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One trial's row; ``added``: seeds of its candidate from ``SEED`` rows, counted as its
    own (its mean, interval and ``metric.top1.s<seed>`` columns)."""
    rec = TrialRecord.read(trial)
    results = [*rec.results, *added]
    state = trial.state.name
    row: dict[str, Any] = {
        "trial": trial.number,
        "state": state.lower(),
        "status": rec.status or _STATE_STATUS.get(state, state.lower()),
        "reason": rec.reason or "; ".join(str(r["reason"]) for r in results if r.get("reason")),
        DUPLICATE_OF: rec.duplicate_of,
        "role": rec.role,
        "network": rec.network,
        "retries": len(rec.retries),
        "retryable": rec.retryable,
    }
    cand = rec.candidate
    row.update(_spec_columns(cand, {"candidate_id": rec.candidate_text}))
    if rec.role == SEED:  # folded into the row it extends; no candidate row of its own
        row["status"] = SEED
    if cand is None and rec.status == "complete":  # gcsearch's own row, its spec unreadable
        row["status"], row["reason"] = "failed", "unreadable candidate spec in storage"
    row.update(_metric_columns(results))
    first = results[0] if results else {}
    for key in ("params", "macs", "block_params", "block_macs"):
        row[f"cost.{key}"] = rec.cost.get(key, first.get(key))
    for key in ("epochs", "max_epochs", "rung"):
        row[f"fidelity.{key}"] = rec.fidelity.get(key)
    if row["fidelity.epochs"] is None and results:
        row["fidelity.epochs"] = max(int(r.get("epochs") or 0) for r in results)
    if trial.values is not None:
        for name, value in zip(names, trial.values, strict=False):
            row[f"obj.{name}"] = value
    env = dict(rec.env or first.get("env") or {})
    when = trial.datetime_complete or trial.datetime_start
    env.setdefault("time", when.isoformat(timespec="seconds") if when else None)
    for key in ("node", "device", "torch", *MACHINE_KEYS):  # older rows: the columns, empty
        env.setdefault(key, None)
    row.update({f"env.{k}": v for k, v in env.items() if not isinstance(v, dict | list)})
    row["artifact.weights"] = rec.weights
    return row


_INT_COLUMNS = (
    "trial",
    DUPLICATE_OF,
    "spec.ratio",
    "metric.top1_n",
    "cost.params",
    "cost.macs",
    "cost.block_params",
    "cost.block_macs",
    "fidelity.epochs",
    "fidelity.max_epochs",
    "fidelity.rung",
)


def machines(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The distinct machines (host, torch and ``MACHINE_KEYS``) the frame's trained rows ran
    on, with how many rows each: what ``run.json`` and a ``--compare`` note record."""
    keys = [f"env.{k}" for k in ("host", "torch", *MACHINE_KEYS) if f"env.{k}" in frame]
    rows = frame
    if "status" in frame:
        rows = frame[frame["status"].isin(["complete", "pruned", "failed"])]
    if not keys or rows.empty:
        return []
    groups = rows[keys].astype(object).where(rows[keys].notna(), None)
    out = []
    for values, n in groups.value_counts(dropna=False, sort=True).items():
        entry = {k.removeprefix("env."): v for k, v in zip(keys, values, strict=True)}
        out.append({**{k: _plain(v) for k, v in entry.items()}, "trials": int(n)})
    return out


def _plain(value: Any) -> Any:
    """A JSON-ready scalar (numpy numbers as Python's, NaN as None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def machine_label(entry: Mapping[str, Any]) -> str:
    """One machine of ``machines`` in a few words: CPU (capability), GPU, torch."""
    cpu = entry.get("cpu") or "unknown CPU"
    if entry.get("cpu_capability"):
        cpu += f" ({entry['cpu_capability']})"
    parts = [cpu]
    if entry.get("gpu"):
        parts.append(f"{entry['gpu']} (CUDA {entry.get('cuda')}, cuDNN {entry.get('cudnn')})")
    if entry.get("torch"):
        parts.append(f"torch {entry['torch']}")
    return ", ".join(str(p) for p in parts)


def frame_from_study(study: optuna.Study) -> pd.DataFrame:
    """The results frame of an open study (see ``results_frame``)."""
    objectives = study_objectives(study)
    names = [o.name for o in objectives]
    trials = study.get_trials(deepcopy=False)
    added = added_seeds(trials)
    rows = [_trial_row(t, names, added.get(t.number, ())) for t in trials]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["trial", "status", "spec.id"])
    for col in _INT_COLUMNS:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
    lead = [c for c in ("trial", "status", "spec.id") if c in frame]
    rest = sorted(
        (c for c in frame.columns if c not in lead),
        key=lambda c: (c.split(".")[0] != "spec", c.split(".")[0], c),
    )
    frame = frame[lead + rest]
    attrs = dict(study.user_attrs)
    frame.attrs["counts"] = counts(trials)
    frame.attrs["study"] = {
        "name": study.study_name,
        "objectives": [f"{o.name}:{o.sense}" for o in objectives],
        **{
            k: attrs[k]
            for k in (
                "task",
                "backbone",
                "input_shape",
                "budget",
                "gcsearch_version",
                "hv_reference",
                "hv_ideal",
                "seeds",
                "sampler",
                "fidelity",
                "versions",
                "min_hidden",
                "smoke",
                PLAN_ATTR,
            )
            if k in attrs
        },
    }
    searched = (attrs.get("space") or {}).get("search") or {}
    if searched.get("reference_ci"):  # reference rows' seeds followed their intervals
        frame.attrs["study"]["reference_ci"] = {
            "ci": searched["reference_ci"],
            "max_seeds": searched.get("reference_max_seeds"),
        }
    return frame


def results_frame(
    storage_or_run_dir: str | os.PathLike[str], study_name: str | None = None
) -> pd.DataFrame:
    """One tidy row per trial of a study; works on interrupted studies (running rows included).

    Example::

        frame = results_frame("runs/quick")
        frame[frame.status == "complete"][["spec.id", "metric.top1_mean", "cost.macs"]]
    """
    return frame_from_study(load_study(storage_or_run_dir, study_name))


@dataclass(frozen=True)
class Objective:
    """One objective as the report reads it: its name, ``max`` or ``min``, and the frame column
    holding it (``spec.METRICS`` for the search's own; any name for a plain Optuna study)."""

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
