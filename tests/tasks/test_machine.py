"""Every trial row names the machine it ran on: CPU model and instruction set, GPU, CUDA, cuDNN
(the same seed reproduces on one machine only)."""

from __future__ import annotations

import os

import pytest
import torch

from gcsearch.tasks import Budget
from gcsearch.tasks import machine as machine_mod
from gcsearch.tasks.machine import cpu_fields, gpu
from gcsearch.tasks.train import environment, train

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
processor\t: 1
model name\t: another core, not read
"""

ARM = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes sve sve2 i8mm bf16
CPU implementer\t: 0x41
CPU part\t: 0xd4f
"""


def test_cpu_fields_read_model_id_and_the_flags_that_pick_kernels() -> None:
    f = cpu_fields(X86, "AVX512")
    assert f["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert f["cpu_id"] == "cpu family 6, model 143, stepping 8"
    assert f["cpu_isa"] == "avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8"
    assert f["cpu_capability"] == "AVX512"
    older = cpu_fields(
        X86.replace(" avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8", ""), "AVX2"
    )
    assert older["cpu_isa"] == "avx avx2 fma" and older["cpu_isa"] != f["cpu_isa"]


def test_cpu_fields_on_arm_and_without_cpuinfo() -> None:
    f = cpu_fields(ARM, "DEFAULT")
    assert f["cpu_isa"] == "asimd sve sve2 i8mm bf16"
    assert f["cpu_id"] == "CPU implementer 0x41, CPU part 0xd4f"
    bare = cpu_fields("", None)
    assert bare["cpu_isa"] is None and bare["cpu_id"] is None and bare["cpu_capability"] is None


def test_a_cpu_trial_row_names_cpu_and_no_gpu() -> None:
    r = train("none", "digits", Budget(train_images=64, val_images=32, epochs=1, batch_size=32))
    env = r.env
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu"] and env["cpus"] == os.cpu_count()
    assert {"cpu_id", "cpu_isa"} <= set(env)
    assert env["gpu"] is None and env["gpu_capability"] is None and env["cudnn"] is None
    assert env["cuda"] == torch.version.cuda


def test_a_cuda_row_names_gpu_capability_and_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU fields as a CUDA trial records them (torch's CUDA queries stubbed: no GPU here)."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    g = gpu(torch.device("cuda"))
    assert g == {
        "gpu": "NVIDIA H200",
        "gpu_capability": "9.0",
        "cuda": torch.version.cuda,
        "cudnn": 91002,
    }
    env = environment(torch.device("cuda"), 1)
    assert env["gpu"] == "NVIDIA H200" and env["cudnn"] == 91002 and env["cpu"]


def test_cpu_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    machine_mod.cpu.cache_clear()
    first = machine_mod.cpu()
    monkeypatch.setattr(machine_mod, "cpu_fields", lambda *a: pytest.fail("read again"))
    assert machine_mod.cpu() is first
