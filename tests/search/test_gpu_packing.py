"""GPU packing and device choice, checked on CPU: Ray is told the machine has one GPU (Ray
schedules declared GPUs without touching CUDA), so the fractional packing, the
CUDA_VISIBLE_DEVICES Ray hands each task and the no-reuse rule are Ray's real behaviour."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest
import ray

from gcsearch.search.executor import task_options, trial_device


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


def test_task_options_keep_gpu_workers_from_being_reused() -> None:
    assert "max_calls" not in task_options(1, 0, 3)
    assert task_options(2, 0.25, 3) == {
        "num_cpus": 2,
        "num_gpus": 0.25,
        "max_retries": 3,
        "retry_exceptions": False,
        "max_calls": 1,
    }


def test_quarter_gpus_pack_four_trials_on_one_gpu() -> None:
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

    def probe_task(hold: float) -> dict:  # defined here: Ray ships it by value
        from gcsearch.search.executor import trial_device as device_of

        start = time.time()
        time.sleep(hold)
        return {
            "start": start,
            "end": time.time(),
            "pid": os.getpid(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "device": device_of("auto", ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")),
        }

    try:
        probe = ray.remote(**task_options(1, 0.25, 0))(probe_task)
        out = ray.get([probe.remote(3.0) for _ in range(5)])
        assert all(o["gpus"] == ["0"] and o["visible"] == "0" for o in out), out
        assert {o["device"] for o in out} == {"cuda"}
        # four ran at once on the one GPU; the fifth waited for a free quarter
        out.sort(key=lambda o: o["start"])
        first_end = min(o["end"] for o in out[:4])
        assert max(o["start"] for o in out[:4]) < first_end
        assert out[4]["start"] >= first_end - 0.05
        assert len({o["pid"] for o in out}) == 5  # no worker ran two GPU trials
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
