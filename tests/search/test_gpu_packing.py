"""GPU packing and device choice, checked on CPU: Ray is told the machine has one GPU (Ray
schedules declared GPUs without touching CUDA), so the fractional packing, the
CUDA_VISIBLE_DEVICES Ray hands each task and the no-reuse rule are Ray's real behaviour."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import ray

from gcsearch.search.executor import trial_device, worker_options


@pytest.mark.parametrize(
    "asked, gpu_ids, visible, device",
    [
        ("auto", [], None, "cpu"),  # no GPU given: CPU even where GPUs are visible
        ("auto", [], "0,1", "cpu"),
        ("auto", ["3"], "3", "cuda"),  # Ray narrowed the view to the assigned GPU
        ("cuda", ["1"], "1", "cuda"),
        ("auto", [2], None, "cuda:2"),  # Ray told not to set the variable: use the id
        ("cpu", ["0"], "0", "cpu"),  # an explicit device is kept
        ("cuda:1", [], None, "cuda:1"),
    ],
)
def test_trial_device(asked: str, gpu_ids: list, visible: str | None, device: str) -> None:
    assert trial_device(asked, gpu_ids, visible) == device


def test_a_slot_holds_one_trials_resources_for_life() -> None:
    assert worker_options(2, 0.25) == {
        "num_cpus": 2,
        "num_gpus": 0.25,
        "max_restarts": 0,  # a dead worker is replaced (and the retry recorded) by the executor
        "max_task_retries": 0,
        "max_concurrency": 1,
    }


def test_quarter_gpu_slots_pack_four_workers_on_one_gpu() -> None:
    """Four 0.25-GPU slots share the one GPU, each seeing only it; a fifth waits for a free
    quarter; a slot keeps its process (and so its CUDA context) from job to job."""
    temp = tempfile.mkdtemp(prefix="gcs-gp-", dir="/tmp")  # short: Ray's socket path limit
    ray.init(
        num_cpus=5,
        num_gpus=1,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=temp,
        object_store_memory=100 * 1024**2,
    )

    class Probe:  # defined here: Ray ships it by value
        def where(self) -> dict:
            from gcsearch.search.executor import trial_device as device_of

            gpus = ray.get_gpu_ids()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            return {
                "pid": os.getpid(),
                "gpus": [str(g) for g in gpus],
                "visible": visible,
                "device": device_of("auto", gpus, visible),
            }

    try:
        slot = ray.remote(Probe).options(**worker_options(1, 0.25))
        workers = [slot.remote() for _ in range(5)]
        refs = [w.where.remote() for w in workers]
        ready, waiting = ray.wait(refs, num_returns=5, timeout=20)
        assert len(ready) == 4 and len(waiting) == 1  # the fifth has no quarter left
        out = ray.get(ready)
        assert all(o["gpus"] == ["0"] and o["visible"] == "0" for o in out), out
        assert {o["device"] for o in out} == {"cuda"}
        assert len({o["pid"] for o in out}) == 4
        first = refs.index(ready[0])
        again = ray.get(workers[first].where.remote())
        assert again["pid"] == out[0]["pid"]  # the same process ran its next job
        ray.kill(workers[first])
        assert ray.get(waiting[0], timeout=30)["gpus"] == ["0"]  # a freed quarter is taken
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
