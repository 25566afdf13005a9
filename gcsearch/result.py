"""``TrialResult``: what one training run of one candidate under one seed produced.

A plain, JSON-serialisable record (no torch) so the study, the report and the storage can
read it anywhere. ``top1`` is validation top-1 in percent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("complete", "pruned", "failed")


@dataclass
class TrialResult:
    """One candidate trained under one seed; failures are rows too (``status``, ``reason``)."""

    candidate_id: str
    seed: int
    status: str = "complete"
    reason: str = ""
    top1: float | None = None
    loss: float | None = None
    epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    train_s: float = 0.0
    images_per_s: float = 0.0
    params: int | None = None
    macs: int | None = None
    block_params: int | None = None
    block_macs: int | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] | None = None  # measured on the trial's device (latency objective)
    io_error: str | None = None  # its weights could not be written (the result is kept)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: {self.status!r} (allowed: {', '.join(STATUSES)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})
