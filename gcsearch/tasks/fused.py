"""Several seeds of one candidate trained as one horizontally fused network.

HFTA (Wang et al., "Horizontally Fused Training Array", MLSys 2021,
https://arxiv.org/abs/2102.02344) trains many small models of one shape as one wide model, so a
GPU that one small model leaves idle is kept busy. Here the k seeds of a candidate are built as k
networks, each as ``train`` builds its lone run (torch's generator seeded with its seed), then
stacked (``torch.func.stack_module_state``): each parameter and buffer gains a leading seed
dimension, and one step runs ``vmap(functional_call)`` with each seed's own batch.

* data order: each seed has its own shuffling generator, seeded as its lone run's;
* BatchNorm: running statistics are stacked buffers, updated slice by slice;
* loss: the sum of the seeds' mean losses, so each seed's gradient is its own;
* optimizer: SGD and AdamW are elementwise, so a slice is updated as its lone run's parameter
  (weight decay grouped by each seed's own rank); the loop has nothing global (no gradient
  clipping). fp16 autocast is refused (``fusable``): its loss scaler would skip a step for every
  seed when one overflows;
* schedule: one per-step warmup + cosine schedule, the same for every seed;
* evaluation: one vmapped pass over the shared evaluation images, metrics per seed.

Each seed's ``TrialResult`` is what its lone run records (history, status, reason: a seed whose
loss turns non-finite fails alone, the others go on), with ``env.fused`` = k; ``train_s`` is the
fused epochs' wall time. A kept state is one file per seed in ``train``'s format, so a fused rung
run and a lone promotion (or the reverse) continue each other. Whether fusion is faster depends
on the device (3-way fusion of ResNet-8 ran at 0.7x the separate steps on a 2-core CPU):
``gcsearch bench fuse`` measures it.

Example:
    >>> results = train_fused("gc", "digits", None, seeds=(0, 1, 2))
    >>> [r.top1 for r in results]
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from gcsearch.errors import UserError
from gcsearch.result import TrialResult
from gcsearch.spec import Candidate
from gcsearch.tasks import FUSE_MODES, Budget, Task, get_task
from gcsearch.tasks.batches import TensorBatches
from gcsearch.tasks.train import (
    Callback,
    amp_dtype,
    full,
    load_data,
    make_optimizer,
    resolve_device,
    restore,
    seeded_model,
    set_cost,
    torch_settings,
    training_state,
    trial_env,
    validates,
)


def fusable(device: str | torch.device, amp: bool = True) -> str | None:
    """Why seeds cannot be fused on ``device`` (one line), or None when they can."""
    if amp_dtype(resolve_device(device), amp) is torch.float16:
        return (
            "fp16 autocast (this GPU has no bf16): its loss scaler skips a step for every "
            "fused seed when one overflows"
        )
    return None


class GlobalMean(nn.Module):
    """``AdaptiveAvgPool2d(1)`` as a mean over H and W: the same numbers (float order aside),
    but vmap has a batching rule for it, where adaptive pooling falls back to a loop over the
    seeds (its ``as_strided_``; measured 25 % of a fused ResNet-8 step on CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)


def _global_means(module: nn.Module) -> None:
    """Every global ``AdaptiveAvgPool2d`` of ``module`` as a ``GlobalMean`` (no state: the
    state dict keeps its keys)."""
    for name, child in module.named_children():
        size = getattr(child, "output_size", None)
        if isinstance(child, nn.AdaptiveAvgPool2d) and size in (1, (1, 1)):
            setattr(module, name, GlobalMean())
        else:
            _global_means(child)


class FusedNet:
    """k networks of one architecture as stacked parameters and buffers, run by ``vmap``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        self.k = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")  # the structure; no storage
        _global_means(self.base)
        self.params, self.buffers = stack_module_state(list(models))

        def one(params: dict[str, Any], buffers: dict[str, Any], x: torch.Tensor) -> Any:
            return functional_call(self.base, (params, buffers), (x,))

        self._own = vmap(one)  # x: (k, B, C, H, W), a batch per seed
        self._shared = vmap(one, in_dims=(0, 0, None))  # x: (B, C, H, W), one for all

    def __call__(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Logits (k, B, classes)."""
        return (self._shared if shared else self._own)(self.params, self.buffers, x)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Seed ``i``'s ``state_dict``, as its lone network's."""
        both = {**self.params, **self.buffers}
        return {name: t[i].detach().clone() for name, t in both.items()}

    @torch.no_grad()
    def load(self, states: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Each seed's lone ``state_dict``, into its slice."""
        for name, t in {**self.params, **self.buffers}.items():
            t.copy_(torch.stack([s[name].to(t.device) for s in states]))


def _stacked(key: str, value: Any) -> bool:
    """Whether an optimizer state entry holds a slice per seed (``step`` is one scalar)."""
    return torch.is_tensor(value) and key != "step"


def unstack_optimizer(state: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Seed ``i``'s optimizer ``state_dict`` from the fused one (lone-run format)."""
    return {
        "state": {
            idx: {k: (v[i].clone() if _stacked(k, v) else v) for k, v in entry.items()}
            for idx, entry in state["state"].items()
        },
        "param_groups": copy.deepcopy(state["param_groups"]),
    }


def stack_optimizer(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fused optimizer ``state_dict`` from each seed's lone one."""
    first = states[0]
    return {
        "state": {
            idx: {
                k: (torch.stack([s["state"][idx][k] for s in states]) if _stacked(k, v) else v)
                for k, v in entry.items()
            }
            for idx, entry in first["state"].items()
        },
        "param_groups": copy.deepcopy(first["param_groups"]),
    }


@torch.inference_mode()  # as ``train.evaluate``
def evaluate_fused(
    net: FusedNet, batches: TensorBatches, dtype: torch.dtype | None
) -> list[tuple[float, float]]:
    """Per seed: top-1 (percent) and mean cross-entropy over every image of ``batches``."""
    net.train(False)
    dev = batches.device
    correct = torch.zeros(net.k, device=dev)
    loss = torch.zeros(net.k, device=dev)
    for x, y in batches:
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            logits = net(x, shared=True)
        flat = full(logits).flatten(0, 1)
        loss += F.cross_entropy(flat, y.repeat(net.k), reduction="none").view(net.k, -1).sum(1)
        correct += (logits.argmax(2) == y).sum(1)
    n = batches.n_images
    return [(100.0 * c / n, v / n) for c, v in zip(correct.tolist(), loss.tolist(), strict=True)]


def train_fused(
    candidate: Candidate | str,
    task: Task | str,
    budget: Budget | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    device: str | torch.device = "cpu",
    *,
    backbone: str | None = None,
    threads: int = 1,
    callback: Callback | None = None,
    min_hidden: int = 8,
    amp: bool = True,
    deterministic: bool = False,
    on_trained: Callable[[nn.Module, TrialResult], None] | None = None,
    validate_at: Collection[int] | None = None,
    keep_state: Sequence[str | Path | None] | None = None,
    resume_state: Sequence[str | Path] | None = None,
    cost: Mapping[str, int] | None = None,
) -> list[TrialResult]:
    """``train`` of ``candidate`` under each of ``seeds``, as one fused network; one
    ``TrialResult`` per seed, in ``seeds``' order. Arguments as ``train``'s; ``keep_state``
    and ``resume_state`` hold one path per seed; ``callback`` is asked per seed and must
    decide by the epoch alone (the seeds stop together)."""
    start = time.perf_counter()
    candidate = Candidate.parse(candidate) if isinstance(candidate, str) else candidate
    task = get_task(task) if isinstance(task, str) else task
    budget = budget or task.budget
    backbone = backbone or task.backbone
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"fused seeds: {seeds} (allowed: one or more distinct seeds)")
    dev = resolve_device(device)
    why = fusable(dev, amp)
    if why is not None:
        raise UserError(f"fuse_seeds: cannot fuse on {dev}: {why} (allowed: fuse_seeds = off)")
    dtype = amp_dtype(dev, amp)
    env = {**trial_env(dev, threads, task, backbone, dtype, deterministic), "fused": len(seeds)}
    results = [TrialResult(candidate.id, s, budget=budget.to_dict(), env=dict(env)) for s in seeds]
    with torch_settings(threads, dev, deterministic):
        first, eval_data = load_data(task, seeds[0], budget)
        for r in results:
            set_cost(r, cost, candidate, backbone, task, first.shape, min_hidden)
        models, torch_rngs = [], []
        for s in seeds:
            models.append(seeded_model(candidate, backbone, task, first.shape, min_hidden, s, dev))
            torch_rngs.append(torch.get_rng_state())  # what a lone run's kept state holds
        first.to(dev)
        eval_data.to(dev)
        trains = [first.reseeded(s) if i else first for i, s in enumerate(seeds)]
        net = FusedNet(models)
        states = None
        if resume_state is not None:
            states = [torch.load(p, map_location=dev, weights_only=True) for p in resume_state]
            net.load([s["model"] for s in states])
        try:
            _fit_fused(
                net, trains, eval_data, budget, dev, dtype, results, callback, validate_at,
                states, keep_state, torch_rngs,
            )  # fmt: skip
        except torch.cuda.OutOfMemoryError as exc:
            for r in results:
                r.status, r.reason = "failed", f"out of memory: {str(exc)[:200]}"
        if on_trained is not None:
            for i, (model, r) in enumerate(zip(models, results, strict=True)):
                if r.status == "complete":
                    model.load_state_dict(net.state_dict(i))
                    on_trained(model, r)
    wall = time.perf_counter() - start
    for r in results:
        r.wall_s = wall
    return results


def _fit_fused(
    net: FusedNet,
    trains: list[TensorBatches],
    eval_data: TensorBatches,
    budget: Budget,
    dev: torch.device,
    dtype: torch.dtype | None,
    results: list[TrialResult],
    callback: Callback | None,
    validate_at: Collection[int] | None,
    states: list[dict[str, Any]] | None,
    keep_state: Sequence[str | Path | None] | None,
    torch_rngs: list[torch.Tensor],
) -> None:
    """``train._fit`` for k seeds at once; fills ``results`` in place."""
    k, per_epoch = net.k, len(trains[0])
    if per_epoch == 0:
        raise UserError(
            f"budget.batch_size: {budget.batch_size} is larger than the "
            f"{trains[0].n_images} training images (one full batch is the minimum)"
        )
    opt, sched = make_optimizer(
        net.params.values(),
        budget,
        budget.epochs * per_epoch,
        round(budget.warmup_epochs * per_epoch),
        stacked=True,
    )
    scaler = torch.amp.GradScaler(dev.type, enabled=False)  # fp16 is refused: no scaling
    check_every = 1 if dev.type == "cpu" else 25  # a CUDA sync per step would cost throughput
    images, first = 0, 1
    if states is not None:  # continue each seed's stopped run where it stopped
        epochs = {int(s["epoch"]) for s in states}
        if len(epochs) != 1:
            raise ValueError(f"fused seeds' kept states stopped at different epochs: {epochs}")
        opt.load_state_dict(stack_optimizer([s["optimizer"] for s in states]))
        sched.load_state_dict(states[0]["schedule"])
        for data, s, r in zip(trains, states, results, strict=True):
            data.set_rng_state(s["data_rng"].cpu())
            images, first = restore(r, s)
    alive = list(range(k))
    for epoch in range(first, budget.epochs + 1):
        net.train()
        tick = time.perf_counter()
        loss_sum = torch.zeros(k, device=dev)
        for step, pairs in enumerate(zip(*trains, strict=True), 1):
            xs = torch.stack([x for x, _ in pairs])
            ys = torch.stack([y for _, y in pairs])
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                logits = net(xs)
                flat = F.cross_entropy(
                    logits.flatten(0, 1),
                    ys.flatten(),
                    reduction="none",
                    label_smoothing=budget.label_smoothing,
                )
            losses = flat.view(k, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # seed i's gradient is that of its own loss alone
            opt.step()
            sched.step()
            loss_sum += losses.detach()
            if step % check_every == 0 or step == per_epoch:
                finite = torch.isfinite(loss_sum).tolist()
                for i in [i for i in alive if not finite[i]]:
                    results[i].status = "failed"
                    results[i].reason = (
                        f"non-finite training loss ({losses[i].item()}) "
                        f"at epoch {epoch} step {step}"
                    )
                    alive.remove(i)
                if not alive:
                    return
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - tick
        images += trains[0].images_per_pass
        scores = evaluate_fused(net, eval_data, dtype) if validates(
            epoch, validate_at, budget.epochs
        ) else None  # fmt: skip
        train_losses = (loss_sum / max(1, per_epoch)).tolist()
        stops = []
        for i in list(alive):
            r = results[i]
            r.train_s += seconds
            r.images_per_s, r.epochs = images / r.train_s, epoch
            record: dict[str, float] = {"epoch": epoch}
            if scores is not None:
                record.update(val_top1=scores[i][0], val_loss=scores[i][1])
                r.top1, r.loss = scores[i]
            record.update(train_loss=train_losses[i], seconds=time.perf_counter() - tick)
            r.history.append(record)
            if scores is not None and not math.isfinite(scores[i][1]):
                r.status, r.reason = "failed", f"non-finite validation loss at epoch {epoch}"
                alive.remove(i)
                continue
            stops.append(callback is not None and callback(dict(record)))
        if any(stops) and epoch < budget.epochs:
            if not all(stops):
                raise ValueError("fused seeds must stop together (a callback by epoch alone)")
            for i in alive:
                results[i].status = "pruned"
                results[i].reason = f"stopped by the callback after epoch {epoch}"
                path = keep_state[i] if keep_state is not None else None
                if path is not None:
                    _keep_seed(path, net, i, opt, sched, scaler, trains[i], torch_rngs[i],
                               results[i], images)  # fmt: skip
            return
        if not alive:
            return


def _keep_seed(
    path: str | Path,
    net: FusedNet,
    i: int,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    data: TensorBatches,
    torch_rng: torch.Tensor,
    result: TrialResult,
    images: int,
) -> None:
    """Seed ``i``'s training state in a lone run's format (``train.training_state``)."""
    from gcsearch.checkpoint import save_atomic

    state = training_state(
        net.state_dict(i),
        unstack_optimizer(opt.state_dict(), i),
        sched.state_dict(),
        scaler.state_dict(),
        data.rng_state(),
        torch_rng,
        result,
        images,
    )
    save_atomic(state, path)


# ---------------------------------------------------------------- where fusion pays


def speedups_path() -> Path:
    """Where ``gcsearch bench fuse --record`` keeps its figures (package data, as ``bench proxy
    --record``'s)."""
    from gcsearch.tasks import MEASURED_DIR

    return MEASURED_DIR / "fuse-seeds.json"


def device_key(device: str | torch.device, threads: int = 1) -> str:
    """What a fusion measurement holds for: the GPU's name, or the CPU model and thread count."""
    from gcsearch.tasks.machine import machine

    dev = resolve_device(device)
    info = machine(dev)
    if dev.type == "cuda":
        return f"cuda {info.get('gpu') or 'unknown GPU'}"
    return f"cpu {info.get('cpu') or 'unknown CPU'} x{threads} thread(s)"


def workload(backbone: str, shape: Sequence[int], batch_size: int, k: int) -> str:
    """What a fusion measurement holds for besides the device: the network, its input (C, H,
    W), the batch and the number of seeds fused (each moves the ratio)."""
    return f"{backbone} {'x'.join(map(str, shape))} batch {batch_size} k={k}"


def record_speedup(figures: Mapping[str, Any], path: Path | None = None) -> Path:
    """Keep ``bench fuse`` figures under their ``device`` and ``workload``."""
    path = path or speedups_path()
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(str(figures["device"]), {})[str(figures["workload"])] = dict(figures)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def measured_speedup(key: str, work: str, path: Path | None = None) -> float | None:
    """Fused / separate steps per second ``bench fuse --record`` measured for ``key`` (a
    ``device_key``) and ``work`` (a ``workload``); None where never measured."""
    path = path or speedups_path()
    data = json.loads(path.read_text()) if path.is_file() else {}
    figures = data.get(key, {}).get(work)
    return float(figures["speedup"]) if figures else None


def decide_fusion(
    mode: str, device: str | torch.device, threads: int, work: str, k: int
) -> tuple[bool, str]:
    """Whether a search fuses its k seeds per candidate, and why, in one line: ``on`` fuses
    wherever it can; ``auto`` only where ``bench fuse`` measured fusion faster for this
    device and ``work`` (a ``workload``)."""
    if mode not in FUSE_MODES:
        raise UserError(f"fuse_seeds: {mode!r} (allowed: {', '.join(FUSE_MODES)})")
    if mode == "off":
        return False, "fuse_seeds = off"
    if k < 2:
        return False, f"fuse_seeds = {mode}: one seed per candidate, nothing to fuse"
    try:
        why = fusable(device)
    except UserError:  # the slots' GPUs are not visible to this driver (a cluster)
        if mode == "on":
            return True, f"fuse_seeds = on: {k} seeds per candidate (decided on each worker)"
        return False, f"fuse_seeds = auto: {device} is not visible here to look up: not fused"
    if why is not None:
        if mode == "on":
            raise UserError(f"fuse_seeds = on: cannot fuse on {device}: {why}")
        return False, f"fuse_seeds = auto: {why}"
    if mode == "on":
        return True, f"fuse_seeds = on: {k} seeds per candidate as one network"
    key = device_key(device, threads)
    speedup = measured_speedup(key, work)
    if speedup is None:
        return False, (
            f"fuse_seeds = auto: never measured on {key} for {work} (gcsearch bench fuse "
            f"--task TASK --k {k} --record, with the search's backbone and budget): not fused"
        )
    verdict = "fused" if speedup > 1 else "not fused"
    return speedup > 1, f"fuse_seeds = auto: {speedup:.2f}x measured on {key}: {verdict}"


__all__ = [
    "FusedNet",
    "GlobalMean",
    "decide_fusion",
    "device_key",
    "evaluate_fused",
    "fusable",
    "measured_speedup",
    "record_speedup",
    "stack_optimizer",
    "train_fused",
    "unstack_optimizer",
    "workload",
]
