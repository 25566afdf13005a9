"""Ray execution of trials: a local Ray by default, ``--address`` to join a cluster.

The only module of gcsearch that imports ``ray``. Each slot is a long-lived Ray actor
(``TrialWorker``) holding exactly the resources of one trial (``num_cpus=cpus_per_trial``,
``num_gpus=gpus_per_trial``, fractions allowed) for the whole search, and training job after
job: imports, the CUDA context of the GPU it was given and cuDNN autotuning are paid once per
slot, not once per trial. A file task's decoded images are held once per node, not per worker:
uint8 arrays in the node's data cache (``gcsearch.tasks.held``), mapped by each worker (one
shared copy in the page cache) and copied once to a worker's GPU. Ray's scheduler places the
slots on the cluster's nodes. A worker that dies (SIGKILL, OOM killer, lost node) is replaced by
a new one and its job is run again, up to ``max_retries`` times; the attempt is recorded on the
trial's row (``env.attempt``). An exception inside a trial is never retried: ``run_jobs`` turns
it into a failed row. Rung decisions are the driver's (``rungs.py``): a rung run is a job with
``stop_at``.

Ray keeps its session files (sockets, logs) under ``<run dir>/ray`` when that path is short
enough for Unix socket names (Ray's socket paths must stay under ~107 bytes), else under a
short ``/tmp/gcsearch-ray-<uid>-<hash>`` (linked from the run directory while Ray runs,
removed at shutdown).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import shutil
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayTaskError

from gcsearch.errors import UserError
from gcsearch.result import TrialResult
from gcsearch.search.stopping import stops_deferred
from gcsearch.search.trial import Job, run_jobs

#: A stop of the Ray this process started, on a thread (``RayExecutor.shutdown(wait=False)``)
_stopping: threading.Thread | None = None


def wait_stopped() -> None:
    """Wait until a Ray stop begun with ``RayExecutor.shutdown(wait=False)`` has ended (at once if
    none is under way). A new ``RayExecutor`` waits here before it starts Ray."""
    global _stopping
    if _stopping is not None:
        _stopping.join()
        _stopping = None


#: Longest ``_temp_dir`` (bytes) we hand Ray: its session dir (~45 chars) and socket names must fit
#: in the 107-byte limit of a Unix socket path.
MAX_TEMP_DIR = 40


def short_temp_dir(run_dir: Path) -> Path:
    """``<run_dir>/ray`` if short enough for Ray's socket paths, else a short /tmp path
    (linked from ``<run_dir>/ray``)."""
    wanted = run_dir.resolve() / "ray"
    if len(os.fsencode(wanted)) <= MAX_TEMP_DIR:  # bytes: the limit is on bytes
        wanted.mkdir(parents=True, exist_ok=True)
        return wanted
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    short = Path("/tmp") / f"gcsearch-ray-{os.getuid()}-{digest}"
    short.mkdir(parents=True, exist_ok=True)
    link = run_dir / "ray"
    if link.is_symlink() or not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(short, target_is_directory=True)
    return short


#: Seconds to wait for a TCP answer at ``--address`` before saying nothing listens there.
PROBE_TIMEOUT_S = 10.0


def probe_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail in seconds, with one line, where nothing listens at ``--address`` HOST:PORT:
    ``ray.init`` itself waits for minutes (20+ seen) for a head that never answers.
    ``auto`` and addresses without a port are left to Ray (it answers those at once)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if target == "auto" or not sep or not host or "://" in target:
        return
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(
            f"--address {address}: {port!r} is not a port (allowed: auto, "
            "HOST:PORT such as 10.0.0.1:6379, or ray://HOST:10001)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UserError(
            f"--address {address}: nothing answers at {host}:{port} ({why}); "
            "start the cluster first (ray start --head) or give its head's address "
            "(allowed: auto, HOST:PORT of a running Ray head)"
        ) from None


def _join(address: str) -> None:
    """``ray.init(address=...)``; if that fails and this machine has a Ray token while
    ``RAY_AUTH_MODE`` is unset, once more with the token, as Ray itself does for
    ``address="auto"``: ``ray start --head`` turns token authentication on whenever
    ~/.ray/auth_token exists, but ``ray.init(address=HOST:PORT)`` sends no token unless told.
    (Sending a token first is no shortcut: a cluster without token authentication accepts the
    connection, but its actors then die.)"""

    def attempt() -> Exception | None:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            with contextlib.suppress(Exception):
                ray.shutdown()
            return exc
        return None

    probe_address(address)
    exc = attempt()
    if exc is not None and "RAY_AUTH_MODE" not in os.environ and _enable_auth_token():
        exc = attempt()
    if exc is not None:
        hint = (
            ""
            if os.environ.get("RAY_AUTH_MODE") == "token"
            else "; if the cluster uses token authentication, give this machine its token "
            "(RAY_AUTH_TOKEN, or ~/.ray/auth_token from its head)"
        )
        raise UserError(
            f"--address {address}: cannot join the Ray cluster "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}){hint}"
        )


def _enable_auth_token() -> bool:
    """Token mode for this process when a token is at hand (Ray >= 2.5x; older Ray has no
    helper and no token authentication)."""
    try:  # private API: tests/runners/test_runners.py fails loudly when it moves
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        return False
    return bool(maybe_enable_token_auth_if_token_available(warn_if_disabled=False))


class TrialWorker:
    """One slot of the search: a process that keeps its resources and trains job after job."""

    def warm(self) -> None:
        """Import what a training needs (torch, the tasks and the training loop) and, on a GPU
        slot, make the CUDA context of the GPU Ray gave it, before the first job comes: asked as
        soon as the worker exists, so it runs while the driver still counts costs and sets up,
        not inside the first trial. A failure here shows again, recorded, in the first job."""
        import torch

        import gcsearch.tasks.fused
        import gcsearch.tasks.train  # noqa: F401

        # torch's optimizers import torch._dynamo on their first construction (1.2-1.7 s on
        # a CPU here): paid now, while the driver opens its study, not in the first trial
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        gpu_ids = ray.get_gpu_ids()
        if gpu_ids and torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            torch.zeros(1, device=trial_device("auto", gpu_ids, visible))

    def run(self, job: Job, attempt: int) -> list[tuple[Job, TrialResult]]:
        """``run_jobs`` on the device Ray gave this worker (each seed's job and result; several
        for a fused job), with Ray's view of where it ran."""
        ctx = ray.get_runtime_context()
        gpu_ids = ray.get_gpu_ids()
        device = trial_device(job.device, gpu_ids, os.environ.get("CUDA_VISIBLE_DEVICES"))
        parts = tuple(dataclasses.replace(p, device=device) for p in job.fused)
        done = run_jobs(dataclasses.replace(job, device=device, fused=parts))
        for _, out in done:
            out.env["node"] = ctx.get_node_id()[:12]
            out.env["ip"] = ray.util.get_node_ip_address()
            out.env["ray_worker"] = ctx.get_worker_id()[:12]
            out.env["attempt"] = attempt
            if gpu_ids:
                out.env["ray_gpus"] = [str(g) for g in gpu_ids]
        return [(part, out) for part, (_, out) in zip(job.parts(), done, strict=True)]


def worker_options(cpus: float, gpus: float) -> dict[str, Any]:
    """Ray options of one slot's worker: exactly one trial's resources, held for its life (a
    0.25 GPU packs four slots on one GPU); a dead worker is replaced by the executor, which
    records the retry, rather than restarted by Ray."""
    return {
        "num_cpus": cpus,
        "num_gpus": gpus,
        "max_restarts": 0,
        "max_task_retries": 0,
        "max_concurrency": 1,
    }


def trial_device(asked: str, gpu_ids: Sequence[Any], visible: str | None) -> str:
    """The device a Ray task trains on: only a GPU Ray assigned it, never another one.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to a task's assigned GPU(s) (a 0.25-GPU task too: four
    such tasks share that GPU), so ``cuda`` (index 0) is the assigned GPU. A task given no GPU
    may still see every GPU (Ray leaves the variable alone then), so ``auto`` decides from the
    assignment, not from what is visible. Where Ray was told not to set the variable
    (``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES``), the assigned id is used as the index.
    """
    if asked not in ("auto", "cuda"):
        return asked
    if not gpu_ids:
        return "cpu" if asked == "auto" else asked
    if visible is None or visible == "":
        return f"cuda:{gpu_ids[0]}"
    return "cuda"


def _failed(job: Job, reason: str) -> list[tuple[Job, TrialResult]]:
    """Each seed of ``job`` failed for ``reason`` (its worker's error, not its own)."""
    return [
        (p, TrialResult(p.candidate_id, p.seed, status="failed", reason=reason))
        for p in job.parts()
    ]


class RayExecutor:
    """Runs ``Job``s on ``parallel`` long-lived Ray workers (one per slot); the driver
    submits, waits and cancels through it, and a job waits in a queue for a free slot.

    Example::

        ex = RayExecutor(Path("runs/x"), parallel=2)
        ex.submit(job); done = ex.wait(1.0); ex.shutdown()
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        address: str | None = None,
        parallel: int | None = 2,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        max_retries: int = 3,
    ) -> None:
        wait_stopped()  # one Ray per process: the last search's may still be stopping
        self.run_dir = Path(run_dir)
        self.address = address
        self.started_ray = False
        self.temp_dir: Path | None = None
        if not ray.is_initialized():
            try:
                # SIGTERM while Ray starts is held until ``ray.init`` returns: interrupting it
                # halfway would leave its GCS and raylet running with no one to stop them
                with stops_deferred((signal.SIGTERM,), force_on_second=False):
                    if address:
                        _join(address)
                    else:
                        self.temp_dir = short_temp_dir(self.run_dir)
                        ray.init(
                            num_cpus=max(1, math.ceil((parallel or 1) * cpus_per_trial)),
                            include_dashboard=False,
                            _temp_dir=str(self.temp_dir),
                            object_store_memory=256 * 1024**2,
                            log_to_driver=False,
                            configure_logging=False,
                        )
            except BaseException:  # SIGTERM, Ctrl-C or a failed start: no Ray left behind
                with contextlib.suppress(Exception):
                    ray.shutdown()
                raise
            self.started_ray = True
        if gpus_per_trial > 0 and ray.cluster_resources().get("GPU", 0) < gpus_per_trial:
            have = ray.cluster_resources().get("GPU", 0)
            if self.started_ray:
                ray.shutdown()
            raise UserError(
                f"--gpus-per-trial {gpus_per_trial:g}: the Ray cluster has "
                f"{have:g} GPUs (allowed: up to {have:g}, or 0 to train on CPU)"
            )
        if parallel is None:  # as many trials as the cluster holds at once
            res = ray.cluster_resources()
            parallel = int(res.get("CPU", 1) // cpus_per_trial) if cpus_per_trial else 1
            if gpus_per_trial:
                parallel = min(parallel, int(res.get("GPU", 0) // gpus_per_trial))
        self.parallel = max(1, parallel)
        self.max_retries = max_retries
        self._worker = ray.remote(TrialWorker).options(
            **worker_options(cpus_per_trial, gpus_per_trial)
        )
        self._idle = [self._worker.remote() for _ in range(self.parallel)]
        for worker in self._idle:  # a job asked later waits for its worker's warm-up to end
            worker.warm.remote()
        self._vacant = 0  # slots whose worker was killed or died: refilled when work comes
        self._queue: deque[tuple[Job, int]] = deque()  # (job, attempt) waiting for a slot
        self._refs: dict[Any, tuple[Job, Any, int]] = {}  # running: (job, worker, attempt)

    # -------------------------------------------------------------------- work
    def submit(self, job: Job) -> None:
        self._queue.append((job, 1))
        self._dispatch()

    def _dispatch(self) -> None:
        while (self._idle or self._vacant) and self._queue:
            if self._idle:
                worker = self._idle.pop()
            else:
                worker, self._vacant = self._worker.remote(), self._vacant - 1
            job, attempt = self._queue.popleft()
            self._refs[worker.run.remote(job, attempt)] = (job, worker, attempt)

    def in_flight(self) -> list[Job]:
        return [job for job, _, _ in self._refs.values()] + [job for job, _ in self._queue]

    def wait(self, timeout: float) -> list[tuple[Job, TrialResult]]:
        """Results of the jobs that finished within ``timeout`` seconds (maybe none)."""
        self._dispatch()
        if not self._refs:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:  # collect everything else already done as well
            ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
        out = []
        for ref in ready:
            job, worker, attempt = self._refs.pop(ref)
            try:
                done = ray.get(ref)
            except RayTaskError as exc:  # an error outside run_jobs' own guard
                done = _failed(job, f"{type(exc.cause).__name__}: {str(exc.cause)[:300]}")
            except (GetTimeoutError, ray.exceptions.RayError) as exc:  # the worker died
                self._replace(worker)
                if attempt <= self.max_retries:
                    self._queue.appendleft((job, attempt + 1))  # run again, first
                    continue
                done = _failed(job, f"worker lost: {type(exc).__name__} (after retries)")
            else:
                self._idle.append(worker)
            out.extend(done)
        self._dispatch()
        return out

    def _replace(self, worker: Any) -> None:
        """Free the slot of a worker whose process is gone (or is being stopped); a new worker
        starts there when a job needs it, not during a shutdown."""
        with contextlib.suppress(Exception):
            ray.kill(worker)
        self._vacant += 1

    def cancel_all(self) -> None:
        """Stop every job in flight (their workers are killed; new ones start when work comes)."""
        self._queue.clear()
        for _, worker, _ in list(self._refs.values()):
            self._replace(worker)
        self._refs.clear()

    def describe(self) -> dict[str, Any]:
        """Nodes and resources of the Ray cluster (for the run record)."""
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        return {
            "address": self.address or "local",
            "nodes": len(nodes),
            "resources": {
                k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")
            },
            "ray": ray.__version__,
        }

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers and the Ray this executor started (idempotent). ``wait=False`` lets
        Ray's own stop (1.2-1.4 s on 2 cores: its processes get a second each to exit) run on a
        thread while the driver writes its outputs; ``wait_stopped`` joins it. The thread is
        not a daemon, so the interpreter waits for it at exit."""
        global _stopping
        self._queue.clear()
        for worker in [*self._idle, *(w for _, w, _ in self._refs.values())]:
            with contextlib.suppress(Exception):
                ray.kill(worker)
        self._idle, self._refs, self._vacant = [], {}, 0
        if not self.started_ray:
            return
        self.started_ray = False
        wait_stopped()
        if wait:
            self._stop_ray()
        else:
            _stopping = threading.Thread(target=self._stop_ray, name="gcsearch-ray-stop")
            _stopping.start()

    def _stop_ray(self) -> None:
        ray.shutdown()
        # a /tmp fallback session dir would pile up run after run; one under the run
        # directory stays with it (its logs/ hold the workers' output)
        if self.temp_dir is not None and self.temp_dir.parent == Path("/tmp"):
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            (self.run_dir / "ray").unlink(missing_ok=True)


__all__ = [
    "RayExecutor",
    "TrialWorker",
    "probe_address",
    "short_temp_dir",
    "trial_device",
    "wait_stopped",
    "worker_options",
]
