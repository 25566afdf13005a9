"""One unit of work: train one candidate under one seed, wherever it runs.

A ``Job`` is plain data (picklable, no torch), so Ray can ship and retry it; ``run_job`` is the
pure function ``(candidate, task, budget, seed, device) -> TrialResult`` plus what the search
needs around it: the candidate's cost (counted before training, for the rungs), the fixed
number of torch threads, the device, and where it ran. It knows nothing of Optuna or Ray, nor
of the rungs: a rung run is a job with ``stop_at``, decided by the driver (``rungs.py``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import signal
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gcsearch.errors import IOFault, io_line
from gcsearch.result import TrialResult
from gcsearch.spec import Candidate
from gcsearch.tasks import DEFAULT_TASK

if TYPE_CHECKING:
    from gcsearch.search.space import Space

#: Reason prefix of a trial that failed on a file (disk full, read-only, unreadable image):
#: nothing about the candidate, so the driver stops the search and ``--resume`` retries it.
IO_ERROR = "I/O error"

#: Budget overrides of ``--smoke``: a handful of images for a couple of epochs (tests, CI).
SMOKE_BUDGET = {"epochs": 2, "train_images": 256, "val_images": 128, "batch_size": 64}


@dataclass(frozen=True)
class Job:
    """One (candidate, seed) training run as the driver hands it to an executor."""

    trial: int
    candidate: Mapping[str, Any]
    seed: int
    task: str = DEFAULT_TASK
    data: str | None = None
    budget: Mapping[str, Any] = field(default_factory=dict)
    backbone: str = "resnet20"
    min_hidden: int = 8
    device: str = "auto"
    threads: int = 1
    objectives: tuple[str, ...] = ("top1:max", "macs:min", "params:min")
    protected: bool = False
    deterministic: bool = False  # CUDA: deterministic cuDNN instead of autotuning
    fault: str | None = None  # test hook: "nan" or "kill-once:<marker file>"
    stop_at: int | None = None  # a rung run: stop after this epoch (same schedule as full)
    validate_at: tuple[int, ...] | None = None  # epochs to validate at; None: every epoch
    keep_state: str | None = None  # a rung run keeps its training state here when it stops
    resume_state: str | None = None  # a promotion continues the run kept here ...
    start_epoch: int = 0  # ... which stopped after this epoch (0: trains from scratch)
    cost: Mapping[str, int] | None = None  # the network's cost the driver counted (no recount)
    weights_dir: str | None = None  # save this seed's trained weights here (complete runs)
    compile: str = "off"  # the training step through torch.compile (tasks.COMPILE_MODES)
    # several seeds of this candidate trained as one network (``tasks.fused``): each seed's own
    # job, answered one by one as those jobs would be; empty: this job's seed alone
    fused: tuple[Job, ...] = ()

    @property
    def candidate_id(self) -> str:
        return str(self.candidate["id"])

    def parts(self) -> tuple[Job, ...]:
        """The one-seed jobs this job answers: each fused seed's, or itself."""
        return self.fused or (self,)

    @property
    def key(self) -> str:
        return f"{self.candidate_id}#s{self.seed}"


def make_budget(task: Any, overrides: Mapping[str, Any]) -> Any:
    """The task's budget (or ``Budget()``) with the space's overrides applied."""
    from gcsearch.tasks import Budget

    base = getattr(task, "budget", None)
    base = base if isinstance(base, Budget) else Budget()
    known = {f.name for f in dataclasses.fields(Budget)}
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if k in known})


def _inject(job: Job, epoch: int) -> None:
    """Test hook: kill this worker once, mid-trial (a real SIGKILL, as an OOM killer would)."""
    if job.fault and job.fault.startswith("kill-once:") and epoch == 1:
        marker = Path(job.fault.split(":", 1)[1])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


def seed_weights_path(weights_dir: str | Path, candidate_id: str, seed: int) -> Path:
    """Where a job leaves one seed's weights; the driver keeps the best seed's file."""
    from gcsearch.checkpoint import checkpoint_name

    return Path(weights_dir) / f"seed{seed}" / checkpoint_name(candidate_id)


def run_job(job: Job) -> dict[str, Any]:
    """``run_trial`` as the dict a record stores (the exhaustive table writes it)."""
    return run_trial(job).to_dict()


def run_trial(job: Job) -> TrialResult:
    """Train ``job``'s candidate under its one seed; always a ``TrialResult`` (failures
    included), typed from the worker to the driver, which writes it into the trial's record."""
    return _run(dataclasses.replace(job, fused=()))[0]


def run_jobs(job: Job) -> list[tuple[Job, TrialResult]]:
    """Each one-seed job of ``job`` (``Job.parts``) with its result: one fused training for a
    fused job, each result as its seed's own job would have given it (``env.fused`` = k)."""
    return list(zip(job.parts(), _run(job), strict=True))


def _run(job: Job) -> list[TrialResult]:
    """Train every seed of ``job`` (fused when it holds several); failures are rows."""
    start, started = time.perf_counter(), time.time()
    parts = job.parts()
    cand = Candidate.from_dict(job.candidate)
    try:
        import torch

        from gcsearch.tasks import get_task
        from gcsearch.tasks.fused import fusable, train_fused
        from gcsearch.tasks.train import environment, resolve_device, train

        threads = max(1, int(job.threads))
        torch.set_num_threads(threads)
        device = resolve_device(job.device)  # auto: the GPU Ray assigned this task, if any
        task = get_task(job.task, job.data)
        budget = make_budget(task, job.budget)
        if job.fault == "nan":  # test hook: a learning rate that overflows the weights
            budget = dataclasses.replace(budget, lr=1e30)
        shape = tuple(task.shape_at(budget))  # the study's image_size, as its cost table
        # a promotion continues its rung run's state; where that state cannot be read here (a
        # node without the run directory) it trains again from scratch, as the same prefix
        readable = [bool(p.resume_state and Path(p.resume_state).is_file()) for p in parts]
        resumes = all(readable) and bool(parts[0].resume_state)
        latency = None
        if "latency" in {o.split(":")[0] for o in job.objectives}:  # measured, this device
            from gcsearch.latency import candidate_latency

            latency = candidate_latency(
                cand,
                job.backbone,
                shape,
                num_classes=task.num_classes,
                min_hidden=job.min_hidden,
                device=device,
                batch=budget.batch_size,
            )

        def callback(record: dict[str, Any]) -> bool:
            """After each epoch: stop once a rung run reaches its rung."""
            epoch = int(record["epoch"])
            _inject(job, epoch)
            return job.stop_at is not None and epoch >= job.stop_at

        io_errors: dict[int, str] = {}  # a failed weights write: the trained result is kept

        def save(model: Any, res: TrialResult) -> None:
            from gcsearch.checkpoint import save_checkpoint

            assert job.weights_dir is not None
            path = seed_weights_path(job.weights_dir, cand.id, res.seed)
            meta = {
                "seed": res.seed,
                "image_size": budget.image_size or 0,
                "top1": float(res.top1 or math.nan),
                "task": job.task,
                "epochs": res.epochs,
            }
            try:
                save_checkpoint(
                    path,
                    model,
                    cand,
                    backbone=job.backbone,
                    min_hidden=job.min_hidden,
                    num_classes=task.num_classes,
                    input_shape=shape,
                    meta=meta,
                )
            except OSError as exc:
                io_errors[res.seed] = io_line(exc, path=exc.filename or path)

        kw: dict[str, Any] = {
            "backbone": job.backbone,
            "threads": threads,
            "callback": callback,
            "min_hidden": job.min_hidden,
            "deterministic": job.deterministic,
            "on_trained": save if job.weights_dir else None,
            "validate_at": job.validate_at,
            "cost": job.cost,
        }
        refused = fusable(device) if job.fused else None
        if job.fused and refused is None:
            keep = [p.keep_state for p in parts] if job.keep_state else None
            resume = [str(p.resume_state) for p in parts] if resumes else None
            seeds = [p.seed for p in parts]
            results = train_fused(
                cand, task, budget, seeds, device, keep_state=keep, resume_state=resume, **kw
            )
        else:  # one seed, or seeds this device cannot fuse: one after another
            results = [
                train(
                    cand,
                    task,
                    budget,
                    p.seed,
                    device,
                    compile=job.compile,
                    keep_state=p.keep_state,
                    resume_state=p.resume_state if ok else None,
                    **kw,
                )
                for p, ok in zip(parts, readable, strict=True)
            ]
        results = [r if isinstance(r, TrialResult) else TrialResult.from_dict(r) for r in results]
        for out, part, ok in zip(results, parts, readable, strict=True):
            if part.seed in io_errors:
                out.io_error = io_errors[part.seed]
            if latency is not None:
                out.latency = latency.to_dict()
            out.env = {**environment(device, threads), **out.env, "pid": os.getpid()}
            if refused is not None:
                out.env["fuse_refused"] = refused
            if (resumes if job.fused and refused is None else ok) and part.resume_state:
                out.env["resumed"] = part.start_epoch  # the epochs this job did not train
            if device.type == "cuda":
                out.env["visible_gpus"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    except Exception as exc:  # a failure is a row, not a crash of the search
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
        reason = f"{type(exc).__name__}: {exc}".strip()[:400] + where
        if isinstance(exc, OSError):  # a file, not the candidate: retried on --resume
            reason = f"{IO_ERROR}: {io_line(exc, '')}{where}"
        elif isinstance(exc, IOFault):  # the node's data cache (full disk, read-only folder)
            reason = f"{IO_ERROR}: {exc}{where}"
        elif "out of memory" in str(exc).lower():
            reason = f"out of memory: {reason}"
        env = {"host": platform.node(), "pid": os.getpid(), "device": job.device}
        results = [
            TrialResult(cand.id, p.seed, status="failed", reason=reason, env=dict(env))
            for p in parts
        ]
    wall = time.perf_counter() - start
    for out in results:
        out.wall_s = out.wall_s or wall
        # a fused job's share: summed over its seeds, the slot's time
        out.env["job_wall_s"] = wall / len(results)
        # when the slot ran it (epoch seconds): where a search's idle slot-time falls
        out.env["job_span"] = [started, started + wall]
    return results


def resolve_budget(
    space: Space, smoke: bool = False
) -> tuple[dict[str, Any], tuple[int, ...], int]:
    """Full budget dict, input shape (at the budget's ``image_size``: the shape every cost is
    counted at) and number of classes of the space's task, once it can read its data."""
    from gcsearch.search.space import space_task

    task = space_task(space)
    overrides = {**space.budget, **(SMOKE_BUDGET if smoke else {})}
    budget = make_budget(task, overrides)
    return dataclasses.asdict(budget), tuple(task.shape_at(budget)), int(task.num_classes)


__all__ = [
    "IO_ERROR",
    "SMOKE_BUDGET",
    "Job",
    "make_budget",
    "resolve_budget",
    "run_job",
    "run_jobs",
    "run_trial",
    "seed_weights_path",
]
