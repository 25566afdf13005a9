"""Measured latency: what a block costs at deployment, beside the MACs that understate it.

Global-context blocks are memory-bound (softmax over H*W, LayerNorm, broadcasts), so two blocks
with the same MACs can differ in wall time. The measurement follows timm's ``benchmark.py``
conventions: the model in eval mode under ``torch.inference_mode``, a fixed random batch on the
device, ``warmup`` untimed passes, then ``iters`` timed passes, each closed by
``torch.cuda.synchronize`` on CUDA; the figure is the median pass (robust to a loaded machine),
with the 10th and 90th percentiles beside it. It is measured on the trial's own device with the
trial's torch threads, so figures compare within one study, not across machines.

Example::

    from gcsearch.latency import candidate_latency
    candidate_latency("gc@after_1x1:c3c4c5", "resnet20", (3, 32, 32)).ms
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: timm benchmark.py's defaults are 10 warm-up and 40 timed iterations.
WARMUP_ITERS = 10
TIMED_ITERS = 40


@dataclass(frozen=True)
class Latency:
    """One measurement: median milliseconds per forward pass of a ``batch``, and its spread."""

    ms: float
    p10_ms: float
    p90_ms: float
    batch: int
    device: str
    threads: int
    warmup: int
    iters: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure_latency(
    model: Any,
    input_shape: Sequence[int],
    *,
    batch: int = 1,
    device: Any = "cpu",
    warmup: int = WARMUP_ITERS,
    iters: int = TIMED_ITERS,
) -> Latency:
    """Median wall time (ms) of ``model`` on a ``(batch, *input_shape)`` input on ``device``.

    The model is put in eval mode and moved to ``device`` (the caller's module is changed in
    place, as ``.to`` does); ``warmup`` passes run untimed first.
    """
    import torch

    if batch < 1 or iters < 1 or warmup < 0:
        raise ValueError(f"batch {batch} and iters {iters} must be >= 1, warmup {warmup} >= 0")
    dev = torch.device(device)
    model = model.eval().to(dev)
    x = torch.randn(batch, *(int(s) for s in input_shape), device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(iters):
            start = time.perf_counter()
            model(x)
            sync()
            times.append(1000.0 * (time.perf_counter() - start))
    return Latency(
        ms=statistics.median(times),
        p10_ms=_quantile(times, 0.1),
        p90_ms=_quantile(times, 0.9),
        batch=batch,
        device=str(dev),
        threads=torch.get_num_threads(),
        warmup=warmup,
        iters=iters,
    )


def compare_latency(
    models: dict[str, Any],
    input_shape: Sequence[int],
    *,
    batch: int = 1,
    device: Any = "cpu",
    warmup: int = WARMUP_ITERS,
    iters: int = TIMED_ITERS,
    rounds: int = 5,
) -> dict[str, Latency]:
    """``measure_latency`` of several models, interleaved: ``rounds`` rounds, each timing every
    model for ``iters // rounds`` passes, so a change in machine load during the measurement
    shifts every model alike instead of whichever ran then (as in ``gcsearch bench train``)."""
    import torch

    per_round = max(1, iters // max(1, rounds))
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up each once
        measure_latency(model, input_shape, batch=batch, device=device, warmup=warmup, iters=1)
    for _ in range(max(1, rounds)):
        for name, model in models.items():
            lat = _timed(model, input_shape, batch, torch.device(device), per_round)
            times[name] += lat
    return {
        name: Latency(
            ms=statistics.median(t),
            p10_ms=_quantile(t, 0.1),
            p90_ms=_quantile(t, 0.9),
            batch=batch,
            device=str(torch.device(device)),
            threads=torch.get_num_threads(),
            warmup=warmup,
            iters=len(t),
        )
        for name, t in times.items()
    }


def _timed(model: Any, input_shape: Sequence[int], batch: int, dev: Any, n: int) -> list[float]:
    """``n`` timed passes (ms) of an already warm model."""
    import torch

    x = torch.randn(batch, *(int(s) for s in input_shape), device=dev)
    out = []
    with torch.inference_mode():
        for _ in range(n):
            start = time.perf_counter()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            out.append(1000.0 * (time.perf_counter() - start))
    return out


def candidate_latency(
    candidate: Any,
    backbone: str,
    input_shape: Sequence[int],
    *,
    num_classes: int = 10,
    min_hidden: int = 8,
    device: Any = "cpu",
    batch: int = 1,
    warmup: int = WARMUP_ITERS,
    iters: int = TIMED_ITERS,
) -> Latency:
    """Latency of ``candidate`` (id or ``Candidate``) inserted in ``backbone``, freshly built:
    weights do not change the time of a dense forward pass, so no trained model is needed."""
    from gcsearch.backbones import build_model
    from gcsearch.spec import Candidate

    cand = Candidate.parse(candidate) if isinstance(candidate, str) else candidate
    model = build_model(
        cand, backbone, num_classes=num_classes, in_chans=int(input_shape[0]), min_hidden=min_hidden
    )
    return measure_latency(
        model, input_shape, batch=batch, device=device, warmup=warmup, iters=iters
    )


__all__ = [
    "TIMED_ITERS",
    "WARMUP_ITERS",
    "Latency",
    "candidate_latency",
    "compare_latency",
    "measure_latency",
]
