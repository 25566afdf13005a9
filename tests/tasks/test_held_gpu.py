"""Held uint8 data on a GPU: one device copy, normalised there, and a pass that never syncs.

Marked ``gpu`` (skipped by default; run with ``-m gpu`` on a machine with CUDA, or through
``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import pytest
import torch

from gcsearch.tasks.batches import TensorBatches, channel_stats

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def _held() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 256, (300, 3, 16, 16), dtype=torch.uint8)
    return x, torch.arange(0, 300, 3)


def test_rows_go_to_the_device_once_as_uint8_and_normalise_there() -> None:
    x, idx = _held()
    cpu = TensorBatches(x, idx % 5, 32, index=idx, stats=channel_stats(x, idx))
    gpu = TensorBatches(x, idx % 5, 32, index=idx, stats=channel_stats(x, idx)).to("cuda")
    assert gpu.x.is_cuda and gpu.x.dtype == torch.uint8 and len(gpu.x) == len(idx)
    assert gpu.index is None  # the set's rows only, compacted on the device
    torch.testing.assert_close(gpu.images().cpu(), cpu.images(), rtol=0, atol=1e-5)


def test_a_training_pass_on_cuda_never_waits_on_the_host() -> None:
    x, idx = _held()
    tb = TensorBatches(
        x, idx % 5, 32, shuffle=True, augment="flip-crop", index=idx, stats=channel_stats(x, idx)
    ).to("cuda")
    assert tb._gen.device.type == "cuda"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        batches = [xb for xb, _ in tb]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(batches) == len(idx) // 32 and all(b.is_cuda for b in batches)
