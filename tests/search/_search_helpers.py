"""Helpers for search tests: tiny space files and study queries (imported by the tests)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import optuna

from gcsearch.search.record import TrialRecord

ROOT = Path(__file__).resolve().parents[2]

#: Three searched candidates (+ the baseline and one preset) on the synthetic task.
TINY = """
name = "tiny"
objectives = ["top1:max", "macs:min", "params:min"]
[task]
name = "synthetic"
backbone = "resnet8"
[axes]
pooling = ["att", "avg"]
transform = ["1x1"]
fusion = ["add", "mul"]
stages = ["c4"]
[references]
include = ["se"]
placement = "after_1x1:c4"
[search]
sampler = "{sampler}"
n_trials = {n_trials}
parallel = 2
[fidelity]
enabled = {fidelity}
eta = 2
"""


def smoke_search_argv(space: Path, run: Path, *extra: str) -> list[str]:
    """``python -m gcsearch search`` of ``space`` into ``run`` at the smoke budget, for tests
    that run the driver as its own process (to kill it, or to join a cluster)."""
    cmd = [sys.executable, "-m", "gcsearch", "search", "--space", str(space)]
    return [*cmd, "--run-dir", str(run), "--smoke", *extra]


def tiny_space(
    tmp_path: Path,
    sampler: str = "grid",
    n_trials: str = '"all"',
    fidelity: bool = True,
    extra: str = "",
) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(
        TINY.format(sampler=sampler, n_trials=n_trials, fidelity="true" if fidelity else "false")
        + extra
    )
    return path


def trained_per_candidate(study: optuna.Study) -> Counter[str]:
    """How many times each candidate was trained (duplicates and retryable rows excluded)."""
    return Counter(
        rec.candidate_id
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and (rec := TrialRecord.read(t)).trained
    )
