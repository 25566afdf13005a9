"""The machine a trial ran on: CPU model and instruction set, GPU, CUDA and cuDNN.

The same seed gives the same result on one machine only: torch picks its CPU kernels by the
instruction set it finds (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512;
oneDNN also looks for AVX-512 VNNI/BF16 and AMX), and its GPU kernels by the GPU, CUDA and
cuDNN, and each choice sums in its own order. Two runs of one seed on machines that differ here
can part after the first step and end points apart, so every trial row names them (``env.*``),
and ``gcsearch report --compare`` checks a rerun against the distributions, never the seeds.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

#: /proc/cpuinfo flags that change which CPU kernels torch and oneDNN run (x86, then Arm)
ISA_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
)


def _cpuinfo(text: str) -> dict[str, str]:
    """First value of each ``key : value`` line of /proc/cpuinfo (one core is enough)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def cpu_fields(cpuinfo: str, capability: str | None) -> dict[str, Any]:
    """``cpu`` (model name), ``cpu_id`` (family/model/stepping: a VM may hide the name),
    ``cpu_isa`` (the ``ISA_FLAGS`` present, space-separated) and ``cpu_capability``."""
    info = _cpuinfo(cpuinfo)
    flags = set((info.get("flags") or info.get("Features") or "").split())
    ident = [f"{k} {info[k]}" for k in ("cpu family", "model", "stepping") if k in info]
    if not ident and "CPU part" in info:  # Arm: implementer and part number
        ident = [f"{k} {info[k]}" for k in ("CPU implementer", "CPU part") if k in info]
    return {
        "cpu": info.get("model name") or info.get("Model") or platform.processor() or None,
        "cpu_id": ", ".join(ident) or None,
        "cpu_isa": " ".join(f for f in ISA_FLAGS if f in flags) or None,
        "cpu_capability": capability,
        "cpus": os.cpu_count(),
    }


@functools.cache
def cpu() -> dict[str, Any]:
    """This machine's ``cpu_fields`` (read once per process)."""
    import torch

    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: the name from platform, no flags
        text = ""
    get = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return cpu_fields(text, get() if get is not None else None)


def gpu(device: Any) -> dict[str, Any]:
    """``gpu`` (name), ``gpu_capability`` (compute capability), ``cuda`` (torch's build) and
    ``cudnn`` (version) of a CUDA ``device``; the same keys, None, on any other device."""
    import torch

    out: dict[str, Any] = {
        "gpu": None,
        "gpu_capability": None,
        "cuda": torch.version.cuda,
        "cudnn": None,
    }
    if getattr(device, "type", str(device)) == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        out.update(
            gpu=torch.cuda.get_device_name(device),
            gpu_capability=f"{major}.{minor}",
            cudnn=torch.backends.cudnn.version(),
        )
    return out


def machine(device: Any) -> dict[str, Any]:
    """The CPU and (on CUDA) the GPU fields of one trial's row."""
    return {**cpu(), **gpu(device)}
