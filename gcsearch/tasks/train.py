"""The one training loop: ``train(candidate, task, budget, seed, device) -> TrialResult``.

SGD with Nesterov momentum (or AdamW: ``budget.optimizer``), a linear warmup then cosine decay
to zero (set by the full budget, so a run stopped early follows the same curve up to where it
stops), label smoothing, weight decay on conv/linear weights only, channels_last, and on CUDA
mixed precision (bf16 where the GPU has it, else fp16 with a gradient scaler). The same seed on
the same device and thread count gives the same result (on CUDA with ``deterministic=True``;
without it cuDNN autotunes, which is faster but not bit-reproducible). A NaN/inf loss fails the
trial at once; a ``callback`` that returns True after an epoch stops it as ``pruned``. Failures
are rows, never exceptions.

Example:
    >>> result = train("gc", "synthetic", None, seed=0)
    >>> result.top1, result.status
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gcsearch.errors import UserError
from gcsearch.result import TrialResult
from gcsearch.spec import PRESETS, Candidate, paper_placement
from gcsearch.tasks import COMPILE_MODES, Budget, Task, get_task
from gcsearch.tasks.batches import TensorBatches

#: ``callback(record) -> stop?`` with record keys epoch, val_top1, val_loss, train_loss, seconds
Callback = Callable[[dict[str, float]], bool]


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` if a GPU is visible, else ``cpu``; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device: {device!r} asked for, but no CUDA device is visible (try cpu)")
    return dev


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """Autocast dtype for ``device``: bf16 on GPUs that have it, else fp16; None on CPU."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def environment(device: torch.device, threads: int) -> dict[str, Any]:
    """Where and with what a trial ran: host, versions, and the machine (CPU model and
    instruction set, GPU, CUDA, cuDNN; ``gcsearch.tasks.machine``), since the same seed
    reproduces on one machine only."""
    from gcsearch import __version__
    from gcsearch.tasks.machine import machine

    env: dict[str, Any] = {
        "host": platform.node(),
        "device": str(device),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gcsearch": __version__,
        # every row names its CPU and GPU (None on CPU); under Ray, CUDA_VISIBLE_DEVICES holds
        # only the GPU(s) the trial was given, so "cuda" is that GPU and the index is Ray's
        **machine(device),
    }
    if device.type == "cuda":
        env["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return env


@contextlib.contextmanager
def torch_settings(threads: int, device: torch.device, deterministic: bool) -> Iterator[None]:
    """Fixed thread count (parallel trials must not fight over cores) and, on CUDA, either
    deterministic cuDNN (``deterministic``: same seed, same result) or cuDNN's autotuner
    (faster, not bit-reproducible); restored afterwards."""
    cudnn = torch.backends.cudnn
    old = torch.get_num_threads(), cudnn.benchmark, cudnn.deterministic
    torch.set_num_threads(threads)
    if device.type == "cuda":
        cudnn.benchmark, cudnn.deterministic = not deterministic, deterministic
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        cudnn.benchmark, cudnn.deterministic = old[1], old[2]


def make_optimizer(
    model: nn.Module | Iterable[torch.Tensor],
    budget: Budget,
    steps: int,
    warmup: int,
    *,
    stacked: bool = False,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """``budget.optimizer`` (Nesterov SGD or AdamW; no decay on norms and biases) and a
    warmup + cosine per-step schedule. ``model``: a network or its parameters; ``stacked``:
    each parameter holds several seeds' copies along a leading dimension (``tasks.fused``), so
    a norm's or a bias's own rank is one less. AdamW on CUDA uses the fused kernel (one launch
    for every parameter); both optimizers are elementwise, so a stacked parameter's slice is
    updated exactly as that seed's own parameter would be."""
    source = model.parameters() if isinstance(model, nn.Module) else model
    params = [p for p in source if p.requires_grad]
    extra = 1 if stacked else 0
    groups = [
        {"params": [p for p in params if p.ndim - extra > 1], "weight_decay": budget.weight_decay},
        {"params": [p for p in params if p.ndim - extra <= 1], "weight_decay": 0.0},
    ]
    opt: torch.optim.Optimizer
    if budget.optimizer == "adamw":
        # CUDA: fused (one kernel for all tensors); CPU: foreach, the same numbers as the
        # per-tensor loop, ~8 % faster here
        fused = bool(params) and all(p.device.type == "cuda" for p in params)
        opt = torch.optim.AdamW(groups, lr=budget.lr, foreach=not fused, fused=fused or None)
    else:
        opt = torch.optim.SGD(
            groups, lr=budget.lr, momentum=budget.momentum, nesterov=budget.momentum > 0
        )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def full(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least float32 (autocast's bf16/fp16 logits go up, float64 stays)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: TensorBatches, dtype: torch.dtype | None
) -> tuple[float, float]:
    """Top-1 (percent) and mean cross-entropy over every image of ``batches``. Under
    ``inference_mode`` (no autograd bookkeeping at all): the same logits as ``no_grad``, 3-4 %
    less time on ResNet-8 on one CPU thread."""
    model.eval()
    correct = torch.zeros((), device=batches.device)
    loss = torch.zeros((), device=batches.device)
    for x, y in batches:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            logits = model(x)
        loss += F.cross_entropy(full(logits), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = batches.n_images
    return 100.0 * correct.item() / n, loss.item() / n


def trial_env(
    dev: torch.device,
    threads: int,
    task: Task,
    backbone: str,
    dtype: torch.dtype | None,
    deterministic: bool,
) -> dict[str, Any]:
    """A trial's ``env``: ``environment`` plus the task, backbone, autocast dtype and whether
    the run is bit-reproducible."""
    return {
        **environment(dev, threads),
        "task": task.name,
        "backbone": backbone,
        "amp": str(dtype).removeprefix("torch.") if dtype else None,
        "deterministic": deterministic or dev.type == "cpu",
    }


def load_data(task: Task, seed: int, budget: Budget) -> tuple[TensorBatches, TensorBatches]:
    """``task.loaders``, with a one-line ``UserError`` where the images do not fit in memory."""
    try:
        return task.loaders(seed, budget)
    except (MemoryError, RuntimeError) as exc:  # torch's "can't allocate memory"
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        raise UserError(
            f"budget: {budget.train_images} train + {budget.val_images} val "
            f"images of {task.name} do not fit in memory (allowed: fewer "
            "train_images / val_images, or a smaller image_size)"
        ) from None


def set_cost(
    result: TrialResult,
    cost: Mapping[str, int] | None,
    candidate: Candidate,
    backbone: str,
    task: Task,
    shape: tuple[int, int, int],
    min_hidden: int,
) -> None:
    """The network's cost on ``result``: ``cost`` as the search counted it, else counted here."""
    from gcsearch.cost import count_cost

    counted = (
        dict(cost)
        if cost
        else count_cost(
            candidate, backbone, shape, num_classes=task.num_classes, min_hidden=min_hidden
        ).to_dict()
    )
    result.params, result.macs = int(counted["params"]), int(counted["macs"])
    result.block_params = int(counted["block_params"])
    result.block_macs = int(counted["block_macs"])


def seeded_model(
    candidate: Candidate,
    backbone: str,
    task: Task,
    shape: tuple[int, int, int],
    min_hidden: int,
    seed: int,
    dev: torch.device,
) -> nn.Module:
    """The network of ``candidate``, initialised from torch's generator seeded with ``seed``,
    on ``dev`` in channels_last."""
    from gcsearch.backbones import build_model

    torch.manual_seed(seed)
    model = build_model(
        candidate, backbone, num_classes=task.num_classes, in_chans=shape[0], min_hidden=min_hidden
    )
    return model.to(dev, memory_format=torch.channels_last)


def train(
    candidate: Candidate | str,
    task: Task | str,
    budget: Budget | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    *,
    backbone: str | None = None,
    threads: int = 1,
    callback: Callback | None = None,
    min_hidden: int = 8,
    amp: bool = True,
    deterministic: bool = False,
    on_trained: Callable[[nn.Module, TrialResult], None] | None = None,
    save: str | Path | None = None,
    validate_at: Collection[int] | None = None,
    keep_state: str | Path | None = None,
    resume_state: str | Path | None = None,
    cost: Mapping[str, int] | None = None,
    compile: str = "off",
) -> TrialResult:
    """Train ``candidate`` in ``backbone`` (default: the task's) on ``task`` under ``budget``
    (default: the task's) and return its ``TrialResult``; top1 is on ``budget.eval_split``.

    ``on_trained(model, result)`` is called with the trained network when training completes
    (the search keeps the best seed's weights there); with ``save``, a complete run's weights
    go to that path (``gcsearch.checkpoint`` format). ``validate_at``: the epochs to validate
    after (the last always is; None: every epoch); training is the same either way.

    ``keep_state``: when the callback stops the run, its whole training state (weights,
    optimizer, schedule, scaler, the data order's and torch's random states, history) goes to
    that path; ``resume_state`` continues such a run from its next epoch, so a rung run and its
    promotion together train exactly what one uninterrupted run of the seed trains. ``cost``
    (params, macs, block_params, block_macs) is what the search counted for this network
    before training, recorded as given instead of counted again here. ``compile``: the
    training forward through ``torch.compile`` with this mode (``COMPILE_MODES``;
    ``reduce-overhead`` adds CUDA graphs on a GPU): the same computation in another float
    order, paid for by a compile at the first step (``env.compile``)."""
    if compile not in COMPILE_MODES:
        raise UserError(f"compile: {compile!r} (allowed: {', '.join(COMPILE_MODES)})")
    start = time.perf_counter()
    candidate = Candidate.parse(candidate) if isinstance(candidate, str) else candidate
    task = get_task(task) if isinstance(task, str) else task
    budget = budget or task.budget
    backbone = backbone or task.backbone
    dev = resolve_device(device)
    dtype = amp_dtype(dev, amp)
    env = trial_env(dev, threads, task, backbone, dtype, deterministic)
    if compile != "off":
        env["compile"] = compile
    result = TrialResult(candidate.id, seed, budget=budget.to_dict(), env=env)
    with torch_settings(threads, dev, deterministic):
        train_data, eval_data = load_data(task, seed, budget)
        set_cost(result, cost, candidate, backbone, task, train_data.shape, min_hidden)
        model = seeded_model(candidate, backbone, task, train_data.shape, min_hidden, seed, dev)
        train_data.to(dev)
        eval_data.to(dev)
        state = None
        if resume_state is not None:
            state = torch.load(resume_state, map_location=dev, weights_only=True)
            model.load_state_dict(state["model"])
        try:
            _fit(
                model,
                train_data,
                eval_data,
                budget,
                dev,
                dtype,
                result,
                callback,
                validate_at,
                state,
                keep_state,
                compile,
            )
        except torch.cuda.OutOfMemoryError as exc:
            result.status, result.reason = "failed", f"out of memory: {str(exc)[:200]}"
        if on_trained is not None and result.status == "complete":
            on_trained(model, result)
        if save is not None and result.status == "complete":
            shape = train_data.shape
            save_weights(save, model, candidate, task, budget, backbone, min_hidden, result, shape)
    result.wall_s = time.perf_counter() - start
    return result


def save_weights(
    path: str | Path,
    model: nn.Module,
    candidate: Candidate,
    task: Task,
    budget: Budget,
    backbone: str,
    min_hidden: int,
    result: TrialResult,
    shape: tuple[int, int, int],
) -> None:
    """The trained weights with what rebuilds them and where their held-out images come from."""
    from gcsearch.checkpoint import save_checkpoint

    save_checkpoint(
        path,
        model,
        candidate,
        backbone=backbone,
        min_hidden=min_hidden,
        num_classes=task.num_classes,
        input_shape=shape,
        meta={
            "task": task.name,
            "seed": result.seed,
            "top1": float(result.top1 or 0.0),
            "eval_split": budget.eval_split,
            "data_seed": budget.data_seed,
            "image_size": budget.image_size or 0,
            "epochs": result.epochs,
        },
    )


def _fit(
    model: nn.Module,
    train_data: TensorBatches,
    eval_data: TensorBatches,
    budget: Budget,
    dev: torch.device,
    dtype: torch.dtype | None,
    result: TrialResult,
    callback: Callback | None,
    validate_at: Collection[int] | None = None,
    state: dict[str, Any] | None = None,
    keep_state: str | Path | None = None,
    compile: str = "off",
) -> None:
    """The epochs; fills ``result`` in place (history, top1, loss, status, timing). An epoch
    not in ``validate_at`` (the last always is) records its training loss and time only."""
    per_epoch = len(train_data)
    if per_epoch == 0:
        raise UserError(
            f"budget.batch_size: {budget.batch_size} is larger than the "
            f"{train_data.n_images} training images (one full batch is the minimum)"
        )
    opt, sched = make_optimizer(
        model, budget, budget.epochs * per_epoch, round(budget.warmup_epochs * per_epoch)
    )
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype is torch.float16)
    check_every = 1 if dev.type == "cpu" else 25  # a CUDA sync per step would cost throughput
    # the static-shape training forward compiled (evaluation stays eager: other batch shapes)
    forward = model if compile == "off" else torch.compile(model, mode=compile)
    images, first = 0, 1
    if state is not None:  # continue a stopped run where it stopped
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        train_data.set_rng_state(state["data_rng"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        images, first = restore(result, state)
    for epoch in range(first, budget.epochs + 1):
        model.train()
        tick = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        for step, (x, y) in enumerate(train_data, 1):
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(forward(x), y, label_smoothing=budget.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            loss_sum += loss.detach()
            if (step % check_every == 0 or step == per_epoch) and not torch.isfinite(loss_sum):
                result.status = "failed"
                result.reason = (
                    f"non-finite training loss ({loss.item()}) at epoch {epoch} step {step}"
                )
                return
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        result.train_s += time.perf_counter() - tick
        images += train_data.images_per_pass
        result.images_per_s = images / result.train_s
        record: dict[str, float] = {"epoch": epoch}
        result.epochs = epoch
        if validates(epoch, validate_at, budget.epochs):
            top1, val_loss = evaluate(model, eval_data, dtype)
            record.update(val_top1=top1, val_loss=val_loss)
            result.top1, result.loss = top1, val_loss
        else:
            val_loss = 0.0  # not measured here
        record.update(
            train_loss=loss_sum.item() / max(1, per_epoch), seconds=time.perf_counter() - tick
        )
        result.history.append(record)
        if not math.isfinite(val_loss):
            result.status, result.reason = "failed", f"non-finite validation loss at epoch {epoch}"
            return
        if callback is not None and callback(dict(record)) and epoch < budget.epochs:
            result.status, result.reason = "pruned", f"stopped by the callback after epoch {epoch}"
            if keep_state is not None:
                _keep_state(keep_state, model, opt, sched, scaler, train_data, result, images)
            return


def restore(result: TrialResult, state: Mapping[str, Any]) -> tuple[int, int]:
    """A kept state's history, time and last validation onto ``result``; returns the images
    trained so far and the first epoch still to train."""
    result.history = [dict(h) for h in state["history"]]
    result.train_s = float(state["train_s"])
    result.epochs = int(state["epoch"])
    last = next((h for h in reversed(result.history) if "val_top1" in h), None)
    if last is not None:
        result.top1, result.loss = last["val_top1"], last["val_loss"]
    return int(state["images"]), result.epochs + 1


def validates(epoch: int, validate_at: Collection[int] | None, epochs: int) -> bool:
    """Whether ``epoch`` is validated: every epoch without ``validate_at``, else its epochs
    and always the last."""
    return validate_at is None or epoch in validate_at or epoch == epochs


def training_state(
    model: Mapping[str, torch.Tensor],
    optimizer: Mapping[str, Any],
    schedule: Mapping[str, Any],
    scaler: Mapping[str, Any],
    data_rng: torch.Tensor,
    torch_rng: torch.Tensor,
    result: TrialResult,
    images: int,
) -> dict[str, Any]:
    """Everything ``resume_state`` needs to continue a run at its next epoch: one format,
    whether one seed trained alone or fused with others (``tasks.fused``)."""
    return {
        "model": dict(model),
        "optimizer": optimizer,
        "schedule": schedule,
        "scaler": scaler,
        "data_rng": data_rng,
        "torch_rng": torch_rng,
        "history": [dict(h) for h in result.history],
        "epoch": result.epochs,
        "train_s": result.train_s,
        "images": images,
    }


def _keep_state(
    path: str | Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    train_data: TensorBatches,
    result: TrialResult,
    images: int,
) -> None:
    """``training_state`` of this run, written as a checkpoint is: a kill or a full disk never
    leaves half a state behind."""
    from gcsearch.checkpoint import save_atomic

    state = training_state(
        model.state_dict(),
        opt.state_dict(),
        sched.state_dict(),
        scaler.state_dict(),
        train_data.rng_state(),
        torch.get_rng_state(),
        result,
        images,
    )
    save_atomic(state, path)


# ------------------------------------------------------------------------------ CLI
def read_candidate(text: str, backbone: str | None = None) -> Candidate:
    """A candidate id, a preset, 'none', inline JSON, or a path to a JSON spec file; a bare
    preset goes where its paper put it, fitted to ``backbone`` when given."""
    path = Path(text)
    if text.strip().startswith("{"):
        return Candidate.from_json(text)
    if text.endswith(".json") or path.is_file():
        if not path.is_file():
            raise UserError(
                f"candidate: no such file {text!r} (give an id, a preset, 'none' or a JSON file)"
            )
        return Candidate.from_json(path.read_text())
    if text.strip() in PRESETS:  # a bare preset goes where its paper put it (as in `flops`)
        if backbone is not None:
            from gcsearch.backbones import preset_placement

            return Candidate(
                preset=text.strip(), placement=preset_placement(text.strip(), backbone)
            )
        return Candidate(preset=text.strip(), placement=paper_placement(text.strip()))
    return Candidate.parse(text)


def budget_from_args(task: Task, args: argparse.Namespace) -> Budget:
    """The task's budget with the CLI's overrides (flags left unset keep the task's value)."""
    keys = (
        "train_images",
        "val_images",
        "epochs",
        "batch_size",
        "lr",
        "image_size",
        "warmup_epochs",
        "augment",
        "data_seed",
        "eval_split",
    )
    return task.budget.replace(**{k: getattr(args, k, None) for k in keys})


def data_bytes(task: Task, budget: Budget) -> int:
    """About the memory a budget's images take at the budget's image size: a file task holds
    them as uint8 (``bytes_per_value`` 1: normalised per batch); a generated one as float32,
    twice (generated, then normalised)."""
    c, h, w = task.shape_at(budget)
    per_value = int(getattr(task, "bytes_per_value", 8))
    return per_value * c * h * w * (budget.train_images + budget.val_images)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _size(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def check_memory(task: Task, budget: Budget, available: int | None = None) -> None:
    """A one-line ``UserError`` when the budget's images cannot fit in memory (before the
    machine starts swapping or the OOM killer ends the run without a word)."""
    available = available_memory() if available is None else available
    need = data_bytes(task, budget)
    if available is None or need <= available:
        return
    per_image = need // (budget.train_images + budget.val_images)
    most = max(0, available // per_image - budget.val_images)
    raise UserError(
        f"--train-images {budget.train_images}: the images need about {_size(need)} of memory, "
        f"{_size(available)} is available (allowed: up to about "
        f"{most:,} train images with {budget.val_images} val images at this image size)"
    )
