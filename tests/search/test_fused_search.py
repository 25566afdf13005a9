"""A search that fuses each candidate's seeds (``[search] fuse_seeds = "on"``) records exactly
what the same search with one job per seed records: each seed's result, its rung decisions and
its resumed promotion. Float64 (see tests/tasks/test_fused.py for why and the tolerance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from gcsearch.launch import search
from gcsearch.search.local import InlineExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space
from gcsearch.search.trial import SMOKE_BUDGET, Job, run_job, run_jobs
from gcsearch.spec import Candidate

TOL = 1e-9

SPACE = """
name = "fused"
objectives = ["top1:max", "macs:min", "params:min"]
[task]
name = "digits"
backbone = "resnet8"
[budget]
train_images = 128
val_images = 64
epochs = 4
batch_size = 32
optimizer = "adamw"
lr = 0.01
[axes]
pooling = ["att", "avg"]
transform = ["1x1"]
fusion = ["add"]
stages = ["c4"]
[search]
sampler = "grid"
seeds = 3
parallel = 2
fuse_seeds = "{fuse}"
[fidelity]
enabled = true
eta = 2
min_epochs = 2
"""


def _results(study: optuna.Study) -> dict[str, list[dict[str, Any]]]:
    return {
        rec.candidate_id: rec.results for t in study.trials if (rec := TrialRecord.read(t)).trained
    }


def test_a_fused_search_records_what_separate_seed_jobs_record(
    float64: None, tmp_path: Path
) -> None:
    runs = {}
    for fuse in ("off", "on"):
        path = tmp_path / f"{fuse}.toml"
        path.write_text(SPACE.format(fuse=fuse))
        runs[fuse] = search(
            load_space(path),
            tmp_path / fuse,
            progress=False,
            export=False,
            executor=InlineExecutor(parallel=2),
        )
    lone, fused = _results(runs["off"].study), _results(runs["on"].study)
    assert set(lone) == set(fused) and len(lone) >= 3
    resumed = 0
    for cid, seeds in lone.items():
        assert [r["seed"] for r in fused[cid]] == [0, 1, 2]
        for a, b in zip(seeds, fused[cid], strict=True):
            assert b["env"]["fused"] == 3 and "fused" not in a["env"]
            assert (b["status"], b["epochs"], b["top1"]) == (a["status"], a["epochs"], a["top1"])
            assert b["reason"] == a["reason"] and b["env"].get("resumed") == a["env"].get("resumed")
            for h, g in zip(a["history"], b["history"], strict=True):
                assert g["train_loss"] == pytest.approx(h["train_loss"], abs=TOL)
            resumed += bool(b["env"].get("resumed"))
    assert resumed  # some promotions continued a fused rung run's per-seed states
    assert runs["on"].epochs_trained == runs["off"].epochs_trained
    assert runs["on"].record["fuse_seeds"]["fused"] is True


def _job(seed: int, **kw: Any) -> Job:
    return Job(
        trial=0,
        candidate=Candidate.parse("gc@after_1x1:c4").to_dict(),
        seed=seed,
        task="digits",
        budget=dict(SMOKE_BUDGET),
        backbone="resnet8",
        device="cpu",
        **kw,
    )


def test_a_fused_job_answers_each_seed_as_its_own_job() -> None:
    parts = tuple(_job(s) for s in (0, 1))
    done = run_jobs(Job(**{**_job(0).__dict__, "fused": parts}))
    assert [job for job, _ in done] == list(parts)
    for job, result in done:
        alone = run_job(job)
        assert (result.seed, result.status, result.epochs) == (job.seed, "complete", 2)
        assert result.params == alone["params"] and result.env["fused"] == 2
        # float32 here: equal to about a point, not to the digit (tests/tasks/test_fused.py)
        assert abs(result.top1 - alone["top1"]) <= 5.0
