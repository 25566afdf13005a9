"""A search run: set-up, provenance and the loop, up to the study.

``run_study`` opens (or resumes) the study through ``storage.py``, records what the run depends
on (resolved space, budget, versions, the fixed hypervolume box), starts the executor, hands
the loop to ``driver.Driver``, keeps ``weights/`` (the best seed of each complete candidate,
``gcsearch.checkpoint`` format) and returns at the study. Its caller (``gcsearch.launch``)
writes what reads the study: ``results.csv`` (the report's frame), ``best_block.py`` and
``run.json`` (command, counts, the machines the trials ran on, rung decisions, timing).

Example::

    gcsearch search --space spaces/quick.toml            # runs/quick/{study.db,results.csv,...}
    gcsearch search --space spaces/quick.toml --resume   # after a crash or Ctrl-C
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from gcsearch.errors import IOFault, UserError, mask_secrets
from gcsearch.search.display import Display, Progress, starting
from gcsearch.search.driver import Driver, recover_stale_trials
from gcsearch.search.liveness import Heartbeat, liveness_settings
from gcsearch.search.record import counts
from gcsearch.search.space import Space
from gcsearch.search.stopping import sigterm_as_interrupt, stops_deferred
from gcsearch.search.storage import (
    STORAGE_FILE,
    driver_lock,
    open_storage,
    open_study,
    space_fingerprint,
)
from gcsearch.search.trial import resolve_budget, seed_weights_path


@dataclass
class Outcome:
    """What ``run_study`` hands back: the study, the run directory and what happened."""

    study: optuna.Study
    run_dir: Path
    counts: dict[str, int]
    elapsed_s: float
    job_seconds: float
    epochs_trained: int
    loop_s: float = 0.0
    driver_s: float = 0.0
    files: dict[str, Path | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one line each, printed after the run
    fault: IOFault | None = None  # an I/O fault stopped the loop (what finished is stored)
    resume_hint: str = ""  # the command that continues this run
    where: str = ""  # the study storage, password masked
    record: dict[str, Any] = field(default_factory=dict)  # run.json, less the outputs


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, Any]:
    import torch

    from gcsearch import __version__

    out = {
        "gcsearch": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "cuda": torch.version.cuda,
        "git": _git_revision(),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        out["ray"] = importlib.metadata.version("ray")
    return out


def _drop_if_empty(study: optuna.Study, store: Any, name: str) -> Any:
    """An exit callback (``ExitStack.push``) that deletes the study this run created when the
    run ends in an error or an interrupt before any trial was asked: an empty study would
    make the rerun fail with "already exists" unless given ``--resume``."""

    def drop(exc_type: type[BaseException] | None, *_: object) -> bool:
        if exc_type is not None:
            with contextlib.suppress(Exception):  # the storage itself may be what failed
                if not study.get_trials(deepcopy=False):
                    optuna.delete_study(study_name=name, storage=store)
        return False

    return drop


@dataclass
class WeightsKeeper:
    """Keeps the best seed's checkpoint of a complete candidate as
    ``weights/<checkpoint_name(network key)>``; the other seeds' files are removed, except a
    Non-local row's (``nl-*`` presets): ``gcsearch analyze nl RUN`` averages GCNet's Table 1
    over its seeds (``weights/seedS/``), so those stay (listed in ``kept``, which
    ``drop_seed_files`` spares) and the best is copied. A call returns the path relative to
    the run directory (recorded on the trial as ``weights``)."""

    run_dir: Path
    weights_dir: Path
    kept: set[Path] = field(default_factory=set)

    def __call__(self, key: str, results: list[dict[str, Any]]) -> str | None:
        from gcsearch.checkpoint import checkpoint_name

        scored = [r for r in results if r.get("top1") is not None]
        if not scored:
            return None
        best = max(scored, key=lambda r: (float(r["top1"]), -int(r.get("seed", 0))))
        target = self.weights_dir / checkpoint_name(key)
        every = any(str(r.get("candidate_id", "")).startswith("nl-") for r in results)
        wrote = False
        for r in results:
            cid = str(r.get("candidate_id"))
            path = seed_weights_path(self.weights_dir, cid, int(r["seed"]))
            if not path.is_file():
                continue
            if r is best:
                (shutil.copyfile if every else Path.replace)(path, target)
                wrote = True
            if every:
                self.kept.add(path)
            elif r is not best:
                path.unlink()
        return str(target.relative_to(self.run_dir)) if wrote else None


def drop_seed_files(weights_dir: Path, kept: set[Path]) -> None:
    """At the end of a search: remove the per-seed checkpoints under ``weights/seed*`` except
    ``kept`` (an NL row's seeds, for ``analyze nl``); those of candidates that did not
    complete go."""
    for sub in weights_dir.glob("seed*"):
        for f in sub.glob("*"):
            if f not in kept:
                f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            sub.rmdir()  # empty


@dataclass(frozen=True)
class SearchConfig:
    """How one search runs, beside what its space says: where (``run_dir``, ``storage``,
    ``study_name``), on what (``address`` of a Ray cluster, ``device``, ``parallel`` slots,
    ``max_retries`` of a lost worker; ``executor`` replaces Ray, as ``gcsearch.search.local``
    and the benchmark's table executor do), and what it keeps (``weights``) or shows
    (``progress``, ``console``). ``smoke``: the tiny budget the tests use (no reference seeds
    added: its intervals say nothing). ``faults`` maps candidate ids to a test fault (``nan``,
    ``kill-once:<marker>``; ``GCSEARCH_FAULTS``, JSON, does the same from the environment);
    ``network_costs`` (network key -> cost dict) skips counting the space's costs (benchmark
    replays pass their table's); ``command`` is the CLI arguments the run was started with,
    repeated by the resume hint. A rung run keeps its
    training state under ``states/`` so a promotion continues it; ``keep_states`` keeps them
    after the search (removed otherwise)."""

    run_dir: Path | str | None = None
    study_name: str | None = None
    storage: str | None = None
    resume: bool = False
    address: str | None = None
    device: str = "auto"
    smoke: bool = False
    executor: Any = None
    faults: Mapping[str, str] | None = None
    max_retries: int = 3
    parallel: int | None = None
    progress: bool = True
    console: Any = None
    weights: bool = True
    network_costs: Any = None
    ehvi: Any = None  # strategy.EHVISettings of the ehvi strategy; None: the shipped ones
    deterministic: bool = False
    command: Sequence[str] | None = None
    keep_states: bool = False  # keep the rung runs' training states after the search


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during the loop: the running trials became retryable rows of
    ``study``; the caller writes what the run directory shows of it, then exits."""

    def __init__(self, study: optuna.Study, run_dir: Path) -> None:
        super().__init__("interrupted")
        self.study, self.run_dir = study, run_dir


def _check_start(space: Space, c: SearchConfig, run_dir: Path) -> None:
    """What a user can get wrong before anything starts: one line each."""
    if c.resume and c.storage is None and not (run_dir / STORAGE_FILE).is_file():
        raise UserError(
            f"--resume: {run_dir} holds no {STORAGE_FILE} (run without --resume "
            "to start, or point --run-dir/--storage at the search to continue)"
        )
    if c.executor is None and c.device == "cuda" and space.search.gpus_per_trial <= 0:
        raise UserError(
            "--device cuda: trials hold no GPU (allowed: --gpus-per-trial > 0, "
            "e.g. 1 or 0.25, or --device auto/cpu)"
        )
    if c.address and c.executor is None:  # nothing listening there: say so before any study
        from gcsearch.search.executor import probe_address

        probe_address(c.address)


def _provenance(
    space: Space,
    budget: Mapping[str, Any],
    shape: Sequence[int],
    classes: int,
    rungs: Sequence[int],
    versions: Mapping[str, Any],
    smoke: bool,
) -> dict[str, Any]:
    """What the study records of the run it is (its resume must match the fingerprint)."""
    return {
        "objectives": list(space.objectives),
        "space": space.to_dict(),
        "backbone": space.backbone,
        "task": space.task,
        "input_shape": list(shape),
        "num_classes": classes,
        "min_hidden": space.min_hidden,
        "budget": dict(budget),
        "seeds": space.search.seeds,
        "sampler": space.search.sampler,
        "fidelity": {**space.fidelity.to_dict(), "rungs": list(rungs)},
        "gcsearch_version": versions["gcsearch"],
        "versions": dict(versions),
        "fingerprint": space_fingerprint(space, budget),
        "smoke": smoke,
    }


class _Prepared:
    """The run's torch-side preparation, on a thread (``gcsearch-prepare``) that starts before
    Ray does: the budget, input shape and classes of the space's task (which imports torch),
    then, for a new study, every network's exact cost (fvcore). Ray's start-up is mostly
    waiting on its own processes, so the driver imports torch and counts meanwhile, and the
    workers warm up while the driver opens its study.

    However the run ends, ``stack`` stops the count at its next network and joins the thread:
    a process that exits (Ctrl-C or SIGTERM while Ray starts) with that thread inside torch
    aborts in torch's C++ teardown ("terminate called without an active exception")."""

    def __init__(self, space: Space, c: SearchConfig, stack: contextlib.ExitStack) -> None:
        self.space, self.c = space, c
        self.box: dict[str, Any] = {}
        self.stop = threading.Event()
        self.budgeted = threading.Event()
        # a resumed study holds its costs (counted here only if it does not)
        self.counting = not c.network_costs and not c.resume
        if self.counting and c.progress:
            print(
                f"counting the exact cost of every network of {space.name} (fvcore, "
                "once per study) ...",
                flush=True,
            )
        self.thread = threading.Thread(target=self._work, name="gcsearch-prepare", daemon=True)
        self.thread.start()

        def stopped() -> None:
            self.stop.set()
            self.thread.join()

        stack.callback(stopped)

    def _work(self) -> None:
        from gcsearch.search.strategy import space_costs

        try:
            self.box["budget"] = resolve_budget(self.space, self.c.smoke)
            self.budgeted.set()
            if self.counting:
                _, shape, classes = self.box["budget"]
                self.box["costs"] = space_costs(self.space, shape, classes, stop=self.stop.is_set)
        except BaseException as exc:  # raised again in the driver's thread
            self.box["error"] = exc
        finally:
            self.budgeted.set()

    def budget(self) -> tuple[dict[str, Any], tuple[int, ...], int]:
        """``resolve_budget``'s answer (its error, a one-line ``UserError``, raised here)."""
        self.budgeted.wait()
        if "budget" not in self.box:
            raise self.box["error"]
        return self.box["budget"]

    def costs(self, study: optuna.Study) -> dict[str, Any]:
        """Every network's cost, fixed once per study with the hypervolume box (the strategy
        and the report read them from there): waits for the count, raises its error."""
        from gcsearch.search.strategy import hv_box, searched_networks, space_costs

        self.thread.join()
        if "error" in self.box:
            raise self.box["error"]
        space, (_, shape, classes) = self.space, self.box["budget"]
        known = self.c.network_costs or study.user_attrs.get("network_costs")
        costs = known or self.box.get("costs") or space_costs(space, shape, classes)
        if "hv_reference" not in study.user_attrs:
            reference, ideal = hv_box(space.objectives, costs, classes, searched_networks(space))
            study.set_user_attr("network_costs", costs)
            study.set_user_attr("hv_reference", reference)
            study.set_user_attr("hv_ideal", ideal)
        return dict(costs)


def _start_executor(
    space: Space, c: SearchConfig, run_dir: Path, console: Any, stack: contextlib.ExitStack
) -> tuple[Any, float]:
    """The executor (Ray unless the config brings one) and its start-up seconds; a Ray
    executor is shut down however the run ends."""
    if c.progress:  # the first line, before Ray's start-up (seconds) begins
        where = (
            "custom executor"
            if c.executor is not None
            else f"joining Ray at {c.address}"
            if c.address
            else "starting Ray (local)"
        )
        starting(
            console,
            f"{space.name}: {space.n_trials()} trials x {space.search.seeds} "
            f"seed(s), task {space.task}, {space.backbone}; {where}",
        )
    if c.executor is not None:
        return c.executor, 0.0
    from gcsearch.search.executor import RayExecutor

    t0 = time.perf_counter()
    executor = RayExecutor(
        run_dir,
        address=c.address,
        parallel=c.parallel or (None if c.address else space.search.parallel),
        cpus_per_trial=space.search.cpus_per_trial,
        gpus_per_trial=space.search.gpus_per_trial,
        max_retries=c.max_retries,
    )
    stack.callback(executor.shutdown)  # also when stopped before the loop (idempotent)
    ray_start_s = time.perf_counter() - t0
    if c.progress:
        console.print(f"Ray ready in {ray_start_s:.1f}s", highlight=False)
    return executor, ray_start_s


def _display(
    space: Space,
    c: SearchConfig,
    study: optuna.Study,
    driver: Driver,
    marked: int,
) -> Display:
    """The live progress, counting what a resumed study already holds."""
    n_trials = space.n_trials()
    ref_keys = {driver.key(x) for x in space.references()}
    networks = len({driver.key(x) for x in space.candidates()} - ref_keys)
    prog = driver.display.progress
    prog.total = len(ref_keys) + min(n_trials, networks)  # a network trains once
    c0 = counts(study.get_trials(deepcopy=False))
    prog.done, prog.pruned, prog.failed = c0["complete"], c0["pruned"], c0["failed"]
    if c.progress and marked:
        driver.display.console.print(
            f"resume: {marked} trial(s) of dead driver(s) marked failed; "
            "their candidates will be asked again"
        )
    return driver.display


def _fusion(
    space: Space, c: SearchConfig, shape: Sequence[int], batch_size: int
) -> tuple[bool, str]:
    """Whether each candidate's seeds train as one fused job, and why (``tasks.fused``)."""
    mode, k = space.search.fuse_seeds, space.search.seeds
    if mode == "off":  # torch is not imported for it
        return False, "fuse_seeds = off"
    from gcsearch.tasks.fused import decide_fusion, workload

    device = "cuda" if space.search.gpus_per_trial > 0 else c.device
    threads = max(1, int(space.search.cpus_per_trial))
    return decide_fusion(mode, device, threads, workload(space.backbone, shape, batch_size, k), k)


def run_study(space: Space, config: SearchConfig | None = None) -> Outcome:
    """Run (or resume) the search a space describes and stop at the study (see the module
    docstring): the caller writes the run directory's outputs (``gcsearch.launch``).

    Example::

        outcome = run_study(load_space("quick"), SearchConfig(run_dir="runs/q", smoke=True))
        outcome.study.best_trials
    """
    from gcsearch.search.strategy import make_strategy

    c = config or SearchConfig()
    started = time.time()
    run_dir = Path(c.run_dir or Path("runs") / space.name)
    _check_start(space, c, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = c.study_name or space.name
    faults = dict(c.faults or json.loads(os.environ.get("GCSEARCH_FAULTS", "{}") or "{}"))
    if c.smoke and space.search.reference_ci:  # a smoke budget's intervals say nothing
        space = space.with_overrides(reference_ci=0.0)
    console = c.console
    if c.progress and console is None:
        from rich.console import Console

        console = Console()
    with driver_lock(run_dir), contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_interrupt())
        # a stop while the search starts is raised once it has started (``stopping``)
        starting_up = stack.enter_context(contextlib.ExitStack())
        starting_up.enter_context(stops_deferred())
        prepared = _Prepared(space, c, stack)  # torch's part, while Ray starts
        executor, ray_start_s = _start_executor(space, c, run_dir, console, stack)
        budget, input_shape, num_classes = prepared.budget()
        max_epochs = int(budget["epochs"])
        rungs = space.fidelity.rungs(max_epochs)
        versions = _versions()
        attrs = _provenance(space, budget, input_shape, num_classes, rungs, versions, c.smoke)
        store, where = open_storage(run_dir, c.storage)
        # never consulted: every trial is enqueued with its candidate's parameters, and the
        # proposals come from the driver's own sampler study (sampling.SamplerStudy)
        idle = optuna.samplers.RandomSampler(seed=space.search.sampler_seed)
        study = open_study(space, store, where, name, c.resume, idle, attrs)
        if not c.resume:  # a start that fails (or is stopped) before any trial leaves no study
            stack.push(_drop_if_empty(study, store, name))
        interval, grace = liveness_settings()
        heartbeat = Heartbeat(study, interval=interval, info={"run_dir": str(run_dir.resolve())})
        stack.enter_context(heartbeat)  # alive to other drivers before judging theirs
        marked = len(recover_stale_trials(study, grace, own=heartbeat.driver_id)) if c.resume else 0
        costs = prepared.costs(study)  # counted while Ray started
        starting_up.close()  # raises a stop held while it started
        (run_dir / "space.resolved.toml").write_text(space.to_toml())
        prog = Progress(
            title=f"{space.name} ({where})",
            total=space.n_trials() + len(space.references()),
            parallel=int(executor.parallel),
            objectives=list(space.objectives),
            seeds=space.search.seeds,
            max_epochs=max_epochs,
            rungs=tuple(rungs),
        )
        weights_dir, states_dir = run_dir / "weights", run_dir / "states"
        keep_weights = WeightsKeeper(run_dir, weights_dir) if c.weights else None
        fuse, fuse_why = _fusion(space, c, input_shape, int(budget["batch_size"]))
        if console is not None and c.progress and space.search.fuse_seeds != "off":
            console.print(fuse_why, highlight=False)
        driver = Driver(
            space,
            study,
            executor,
            budget=budget,
            device=c.device,
            rungs=rungs,
            faults=faults,
            display=Display(prog, console=console, enabled=c.progress),
            n_trials=space.n_trials(),
            threads=max(1, int(space.search.cpus_per_trial)),
            strategy=make_strategy(space, costs, study.user_attrs, c.ehvi),
            weights_dir=str(weights_dir.resolve()) if c.weights else None,
            states_dir=str(states_dir.resolve()) if space.fidelity.enabled else None,
            costs=costs,
            keep_weights=keep_weights,
            liveness=heartbeat,
            grace=grace,
            deterministic=c.deterministic,
            fuse=fuse,
            where=f"the study {where}",
        )
        display = _display(space, c, study, driver, marked)
        cluster = executor.describe()
        fault: IOFault | None = None
        resume_hint = resume_command(c.command, space, run_dir, c.smoke)
        try:
            with sigterm_as_interrupt(), display:
                loop_start, loop_started = time.perf_counter(), time.time()
                try:
                    driver.run()
                except KeyboardInterrupt as exc:
                    driver.abandon("interrupted")
                    display.console.print(
                        f"interrupted: resume with `{resume_hint}`", highlight=False, soft_wrap=True
                    )
                    raise SearchInterrupted(study, run_dir) from exc
                except IOFault as exc:  # disk full, read-only: what finished is in the study
                    fault = exc
                loop_s = time.perf_counter() - loop_start
        finally:
            ray_t0 = time.perf_counter()
            if c.executor is None:  # Ray's own stop goes on while the caller writes outputs
                executor.shutdown(wait=False)
            ray_stop_s = time.perf_counter() - ray_t0
        if c.weights and weights_dir.is_dir():  # seed files of candidates that did not complete
            drop_seed_files(weights_dir, keep_weights.kept if keep_weights else set())
        if not c.keep_states and fault is None:  # a stopped run's states serve its --resume
            shutil.rmtree(states_dir, ignore_errors=True)
        outcome = Outcome(
            study,
            run_dir,
            counts(study.get_trials(deepcopy=False)),
            time.time() - started,
            driver.job_seconds,
            driver.epochs_trained,
            loop_s,
            driver.driver_s,
            {"storage": where, "config": run_dir / "space.resolved.toml"},
            fault=fault,
            resume_hint=resume_hint,
            where=where,
        )
        outcome.record = {  # run.json, once the caller adds its outputs
            "command": [mask_secrets(a) for a in sys.argv],
            "space": space.to_dict(),
            "budget": budget,
            "cluster": cluster,
            "versions": versions,
            "elapsed_s": outcome.elapsed_s,
            "job_seconds": outcome.job_seconds,
            "epochs_trained": outcome.epochs_trained,
            "loop_s": outcome.loop_s,
            "loop_span": [loop_started, loop_started + outcome.loop_s],  # epoch seconds
            "driver_s": outcome.driver_s,
            "ray_start_s": ray_start_s,
            "ray_shutdown_s": ray_stop_s,
            "rung_decisions": driver.decisions,
            # seed segments started at a rung's barrier before its decision: used or lost
            "early_segments": dict(driver.early),
            "fuse_seeds": {"mode": space.search.fuse_seeds, "fused": fuse, "why": fuse_why},
            "hv_reference": study.user_attrs.get("hv_reference"),
            "hv_ideal": study.user_attrs.get("hv_ideal"),
            "storage": where,
            "study": name,
        }
    return outcome


def ray_stopped() -> None:
    """Wait until the Ray ``run_study`` started has stopped: its stop runs on a thread while
    the caller writes the outputs (at once where Ray was never imported or has stopped)."""
    executor = sys.modules.get("gcsearch.search.executor")  # not imported: no Ray to wait for
    if executor is not None:
        executor.wait_stopped()


def resume_command(
    command: Sequence[str] | None, space: Space, run_dir: Path, smoke: bool = False
) -> str:
    """The command that continues a run: ``gcsearch`` and the arguments it was started with
    (they set the space, budget, seeds, storage and study a resume must match), with
    ``--run-dir``, ``--smoke`` (for a smoke run) and ``--resume`` added where missing; a storage
    password is masked (``mask_secrets``)."""
    args = [a for a in command or ("search", "--space", space.path) if a != "--resume"]
    if not any(a == "--run-dir" or a.startswith("--run-dir=") for a in args):
        args += ["--run-dir", str(run_dir)]
    if smoke and "--smoke" not in args:
        args.append("--smoke")
    return mask_secrets(shlex.join(["gcsearch", *args, "--resume"]))


__all__ = [
    "Outcome",
    "SearchConfig",
    "SearchInterrupted",
    "ray_stopped",
    "resume_command",
    "run_study",
]
