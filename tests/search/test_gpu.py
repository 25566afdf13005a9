"""The GPU path: device, AMP, determinism as a choice, GPU names on rows, fractional packing.

Marked ``gpu`` (skipped by default; run with ``-m gpu`` on a machine with CUDA, or through
``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch
from _search_helpers import tiny_space, trained_per_candidate

from gcsearch.launch import search
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space
from gcsearch.tasks import get_task
from gcsearch.tasks.train import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def _budget():
    task = get_task("synthetic")
    return task, task.budget.replace(epochs=2, train_images=512, val_images=256, batch_size=64)


def test_train_on_cuda_records_device_gpu_and_amp() -> None:
    task, budget = _budget()
    r = train("gc", task, budget, seed=0, device="cuda")
    assert r.status == "complete" and math.isfinite(r.loss)
    assert r.env["device"].startswith("cuda")
    assert r.env["gpu"] == torch.cuda.get_device_name(0)
    assert r.env["amp"] in ("bfloat16", "float16")
    assert r.env["deterministic"] is False
    off = train("gc", task, budget, seed=0, device="cuda", amp=False)
    assert off.env["amp"] is None and off.status == "complete"


def test_deterministic_is_a_choice_and_reproduces() -> None:
    task, budget = _budget()
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    a = train("gc", task, budget, seed=1, device="cuda", deterministic=True)
    b = train("gc", task, budget, seed=1, device="cuda", deterministic=True)
    assert a.env["deterministic"] is True
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == before


def test_quarter_gpu_search_puts_device_and_gpu_on_every_row(tmp_path: Path) -> None:
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    space = space.with_overrides(gpus_per_trial=0.25, parallel=4, cpus_per_trial=1)
    run = tmp_path / "run"
    search(space, run, smoke=True, progress=False, export=False)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")
    assert set(trained_per_candidate(study).values()) == {1}
    for t in study.trials:
        rec = TrialRecord.read(t)
        assert rec.status == "complete", rec.reason
        for r in rec.results:
            env = r["env"]
            assert env["device"].startswith("cuda") and env["gpu"], env
            assert env.get("ray_gpus") and env.get("cuda_visible_devices") is not None, env
