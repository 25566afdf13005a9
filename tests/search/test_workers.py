"""Long-lived workers: one slot trains job after job in the same process, and each result
equals the same job trained afresh; a worker killed mid-trial is replaced and the job retried."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gcsearch.result import TrialResult
from gcsearch.search.executor import RayExecutor
from gcsearch.search.trial import SMOKE_BUDGET, Job, run_job
from gcsearch.spec import Candidate


def _job(trial: int, cand: str, seed: int, fault: str | None = None) -> Job:
    return Job(
        trial=trial,
        candidate=Candidate.parse(cand).to_dict(),
        seed=seed,
        task="digits",
        budget=dict(SMOKE_BUDGET),
        backbone="resnet8",
        device="cpu",
        fault=fault,
    )


def _drain(ex: RayExecutor, n: int) -> list[dict]:
    """The next ``n`` results, as the dicts a record stores (they travel typed)."""
    out: list[dict] = []
    while len(out) < n:
        for _, r in ex.wait(5.0):
            assert isinstance(r, TrialResult)
            out.append(r.to_dict())
    return out


def _same(a: dict, b: dict) -> bool:
    keys = ("status", "top1", "loss", "epochs", "params", "macs")
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a["history"]]
    return all(a[k] == b[k] for k in keys) and strip == [
        {k: v for k, v in h.items() if k != "seconds"} for h in b["history"]
    ]


def test_one_worker_trains_two_jobs_each_equal_to_a_fresh_run(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    ex = RayExecutor(tmp_path / "run", parallel=1)
    try:
        jobs = [_job(0, "gc@after_1x1:c4c5", 0), _job(1, "se@after_1x1:c4c5", 1)]
        for job in jobs:
            ex.submit(job)  # the second waits in the queue for the one slot
        assert len(ex.in_flight()) == 2
        results = _drain(ex, 2)
    finally:
        ex.shutdown()
    by_id = {r["candidate_id"]: r for r in results}
    pids = {r["env"]["pid"] for r in results}
    assert len(pids) == 1  # one process trained both
    for job in jobs:
        assert _same(by_id[job.candidate_id], run_job(job)), job.candidate_id


def test_a_worker_killed_mid_trial_is_replaced_and_its_job_retried(tmp_path: Path) -> None:
    marker = tmp_path / "killed.pid"
    (tmp_path / "run").mkdir()
    ex = RayExecutor(tmp_path / "run", parallel=1, max_retries=2)
    try:
        ex.submit(_job(0, "gc@after_1x1:c4c5", 0, fault=f"kill-once:{marker}"))
        (result,) = _drain(ex, 1)
    finally:
        ex.shutdown()
    assert marker.is_file() and result["status"] == "complete"
    assert result["env"]["attempt"] == 2 and result["env"]["pid"] != int(marker.read_text())


def test_a_fused_job_comes_back_as_each_seeds_own_result(tmp_path: Path) -> None:
    """A worker trains a fused job (``[search] fuse_seeds``) once and answers each seed's job
    with the result an in-process fused run gives (CPU: bit for bit)."""
    from gcsearch.search.trial import run_jobs

    parts = tuple(_job(0, "gc@after_1x1:c4c5", s) for s in (0, 1, 2))
    fused = dataclasses.replace(parts[0], fused=parts)
    (tmp_path / "run").mkdir()
    ex = RayExecutor(tmp_path / "run", parallel=1)
    try:
        ex.submit(fused)
        assert len(ex.in_flight()) == 1  # one job, one slot
        got: list[tuple[Job, TrialResult]] = []
        while not got:
            got = ex.wait(5.0)
    finally:
        ex.shutdown()
    assert [job for job, _ in got] == list(parts)
    here = run_jobs(fused)
    for (_, a), (_, b) in zip(got, here, strict=True):
        assert a.env["fused"] == 3 and a.env["attempt"] == 1
        assert _same(a.to_dict(), b.to_dict())


def test_a_ray_stopping_on_a_thread_has_stopped_before_the_next_one_starts(tmp_path: Path) -> None:
    """``shutdown(wait=False)`` stops Ray on a thread while the driver writes its outputs; a new
    executor waits for that stop, then starts a Ray of its own (not the one going away)."""
    import ray

    from gcsearch.search import executor

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = RayExecutor(tmp_path / "a", parallel=1)
    first.shutdown(wait=False)
    assert executor._stopping is not None  # the stop runs on a thread
    second = RayExecutor(tmp_path / "b", parallel=1)
    try:
        assert second.started_ray  # it found no Ray half-stopped to join
        second.submit(_job(0, "none", 0))
        (result,) = _drain(second, 1)
        assert result["status"] == "complete"
    finally:
        second.shutdown(wait=False)
        executor.wait_stopped()
    assert not ray.is_initialized() and executor._stopping is None
