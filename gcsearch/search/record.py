"""The trial record: what one Optuna trial of a search stores, in one schema.

One trial is one candidate. Its record holds the candidate spec, its role (``search`` or
``reference``), the network it builds (``module_key``), the per-seed ``TrialResult`` dicts with
their per-epoch history, the rung decisions taken on the candidate, its cost, where it ran,
Ray retries, ``duplicate_of`` (the trial whose stored result answered it) and ``weights``
(the checkpoint of its best seed, relative to the run directory). A ``seed`` row (role
``SEED``, written by ``gcsearch resolve``) holds one more seed of the candidate that trial
``extends`` trained: the report folds it into that trial's row. ``TrialRecord.write`` puts
it on an Optuna trial as user attributes (one per field, so ``optuna-dashboard`` shows them);
``TrialRecord.read`` gets it back. Every reader (driver, report frame, benchmark) goes
through here: no other module knows the attribute names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from gcsearch.spec import Candidate, SpecError

#: The frame column (and user attribute) naming the trial a duplicate was answered from.
DUPLICATE_OF = "duplicate_of"
#: the role of a row that adds one seed to another trial's candidate (``gcsearch resolve``)
SEED = "seed"
ROLES = ("search", "reference", SEED)
STATUSES = ("complete", "pruned", "failed")

# field -> user attribute name (kept as the first studies wrote them, so old studies read)
_ATTRS = {
    "candidate": "candidate",
    "role": "role",
    "network": "module_key",
    "status": "status",
    "reason": "reason",
    "results": "results",
    "rungs": "rungs",
    "cost": "cost",
    "fidelity": "fidelity",
    "env": "env",
    "retries": "retries",
    "duplicate_of": DUPLICATE_OF,
    "weights": "weights",
    "retryable": "retryable",
    "extends": "extends",
}


@dataclass
class TrialRecord:
    """What a trial stores; ``status`` is None while it runs."""

    candidate: Candidate | None
    role: str = "search"
    network: str | None = None
    status: str | None = None
    reason: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    rungs: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, int] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    retries: list[dict[str, Any]] = field(default_factory=list)
    duplicate_of: int | None = None
    weights: str | None = None
    retryable: bool = False
    extends: int | None = None  # a SEED row: the trial whose candidate it adds a seed to
    candidate_text: str | None = None  # the stored id when the spec cannot be read

    @property
    def candidate_id(self) -> str:
        return self.candidate.id if self.candidate is not None else str(self.candidate_text)

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate_of is not None

    @property
    def trained(self) -> bool:
        """A finished candidate that was trained here (not a duplicate, not to be retried, not
        a seed added to another trial's candidate)."""
        return (
            self.status is not None
            and not self.is_duplicate
            and not self.retryable
            and self.role != SEED
        )

    def write(self, trial: Any, only: Iterable[str] | None = None) -> None:
        """Set the record (or the fields ``only``) on an ``optuna.Trial`` as user attributes."""
        names = (
            list(only) if only is not None else [f.name for f in fields(self) if f.name in _ATTRS]
        )
        for name in names:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "candidate":
                trial.set_user_attr("candidate_id", value.id)
                value = value.to_dict()
            trial.set_user_attr(_ATTRS[name], value)

    def attrs(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        """The user attributes ``write`` would set (for ``enqueue_trial`` and raw storage)."""
        sink = _Sink()
        self.write(sink, only)
        return sink.items

    @classmethod
    def read(cls, trial: Any) -> TrialRecord:
        """The record of a trial (``FrozenTrial`` or ``Trial``); tolerant of older studies."""
        attrs: Mapping[str, Any] = trial.user_attrs
        cand: Candidate | None = None
        data = attrs.get("candidate")
        try:
            if isinstance(data, Mapping):
                cand = Candidate.from_dict(data)
            elif isinstance(attrs.get("candidate_id"), str):
                cand = Candidate.parse(attrs["candidate_id"])
            elif isinstance(data, str):  # a plain Optuna study's own attribute: an id, maybe
                cand = Candidate.parse(data)
        except (SpecError, TypeError, KeyError, ValueError):
            cand = None
        kw: dict[str, Any] = {}
        for name, attr in _ATTRS.items():
            if name != "candidate" and attr in attrs:
                kw[name] = attrs[attr]
        results = [dict(r) for r in kw.get("results") or [] if isinstance(r, Mapping)]
        kw["results"] = results
        for name in ("duplicate_of", "extends"):
            if kw.get(name) is not None:
                kw[name] = int(kw[name])
        text = (
            None
            if cand is not None
            else attrs.get("candidate_id") or (data if isinstance(data, str) else None)
        )
        return cls(candidate=cand, candidate_text=text, **kw)


class _Sink:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.items[key] = value


def records(trials: Iterable[Any]) -> list[tuple[Any, TrialRecord]]:
    """``(trial, record)`` pairs of the trials that carry a candidate."""
    out = []
    for t in trials:
        rec = TrialRecord.read(t)
        if rec.candidate is not None or rec.candidate_text:
            out.append((t, rec))
    return out


def counts(trials: Sequence[Any]) -> dict[str, int]:
    """The one count of a study's trials, as the search's last line, ``run.json`` and the
    report print it: ``trials`` = every trial; ``complete``/``pruned``/``failed`` = networks
    trained here; ``duplicates`` = answered from another trial's result; ``retried`` = failed
    rows that said nothing about the candidate (interrupted, driver died) and were asked
    again; ``running`` = not finished; ``seeds`` (only when there are any) = seed rows that
    ``gcsearch resolve`` added to trained candidates."""
    out = {
        "trials": 0,
        "complete": 0,
        "pruned": 0,
        "failed": 0,
        "duplicates": 0,
        "retried": 0,
        "running": 0,
    }
    for t in trials:
        out["trials"] += 1
        rec = TrialRecord.read(t)
        state = getattr(getattr(t, "state", None), "name", "")
        if state in ("RUNNING", "WAITING"):
            out["running"] += 1
        elif rec.role == SEED:
            out["seeds"] = out.get("seeds", 0) + 1
        elif rec.is_duplicate:
            out["duplicates"] += 1
        elif rec.retryable:
            out["retried"] += 1
        else:
            status = rec.status or {
                "COMPLETE": "complete",
                "PRUNED": "pruned",
                "FAIL": "failed",
            }.get(state, "failed")
            out[status if status in STATUSES else "failed"] += 1
    return out


def count_line(c: Mapping[str, int]) -> str:
    """``counts`` as one line (the search's last line and the report's header)."""
    parts = [
        f"{c['complete']} complete",
        f"{c['pruned']} pruned",
        f"{c['failed']} failed",
        f"{c['duplicates']} duplicates (answered from a stored result)",
    ]
    if c.get("retried"):
        parts.append(f"{c['retried']} interrupted and asked again")
    if c.get("running"):
        parts.append(f"{c['running']} running")
    if c.get("seeds"):
        parts.append(f"{c['seeds']} seeds added by resolve")
    return f"{c['trials']} trials: " + ", ".join(parts)


__all__ = [
    "DUPLICATE_OF",
    "ROLES",
    "SEED",
    "STATUSES",
    "TrialRecord",
    "count_line",
    "counts",
    "records",
]
