"""A search run: set-up, provenance, the run directory and the command line.

``search`` opens (or resumes) the study through ``storage.py``, records what the run depends
on (resolved space, budget, versions, the fixed hypervolume box), starts the executor, hands
the loop to ``driver.Driver`` and writes the outputs: ``results.csv`` (the report's frame),
``run.json`` (command, counts, the machines the trials ran on, rung decisions, timing),
``weights/`` (the best seed of each complete candidate, ``gcsearch.checkpoint`` format) and
``best_block.py``.

Example::

    gcsearch search --space spaces/quick.toml            # runs/quick/{study.db,results.csv,...}
    gcsearch search --space spaces/quick.toml --resume   # after a crash or Ctrl-C
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from gcsearch.errors import IOFault, UserError, io_line, mask_secrets
from gcsearch.search.display import Display, Progress, starting
from gcsearch.search.driver import Driver, recover_stale_trials
from gcsearch.search.liveness import Heartbeat, liveness_settings
from gcsearch.search.record import TrialRecord, count_line, counts
from gcsearch.search.space import Space, load_space
from gcsearch.search.storage import (
    STORAGE_FILE,
    driver_lock,
    open_storage,
    open_study,
    space_fingerprint,
)
from gcsearch.search.trial import resolve_budget, seed_weights_path
from gcsearch.spec import Candidate


@dataclass
class Outcome:
    """What ``search`` hands back: the study, the run directory and what happened."""

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


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (Slurm, kubectl delete) stops the search like Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


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


def write_results(study: optuna.Study, run_dir: Path, frame: Any = None) -> Path:
    """``results.csv``: one flat row per trial (the report's frame, or ``frame`` read
    already)."""
    from gcsearch import report

    frame = report.frame_from_study(study) if frame is None else frame
    path = run_dir / "results.csv"
    path.write_text(frame.to_csv(index=False))
    return path


def _kept_weights(
    study: optuna.Study, run_dir: Path, row: Any, cand: Candidate, meta: Mapping[str, Any]
) -> tuple[Path | None, str | None]:
    """The best block's kept weights and, when there are none to export, a one-line note.

    Looked for in this run directory, then in the run directory of the driver that trained
    the network (its heartbeat record names it: drivers on one shared file system); weights
    recorded on the trial but readable nowhere here are left out, and the note says so."""
    from gcsearch import export
    from gcsearch.search.liveness import drivers, owner

    path = export.weights_path(run_dir, row, cand, meta)
    if path is not None and path.is_file() and os.access(path, os.R_OK):
        return path, None
    recorded = row.get("artifact.weights")
    if not isinstance(recorded, str) or not recorded:
        return None, None  # the search kept no weights (``weights=False``)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    trial = trials[int(row["trial"])]
    trial = trials.get(TrialRecord.read(trial).duplicate_of, trial)  # the one that trained it
    who = owner(trial)
    theirs = drivers(study).get(who or "", {}).get("run_dir")
    if theirs:
        path = Path(theirs) / recorded
        if path.is_file() and os.access(path, os.R_OK):
            return path, None
    where = f"driver {who}'s {path}" if theirs else f"{recorded} (in no run directory here)"
    return None, (
        f"best_block.py exported without weights: {cand.id} was trained by trial "
        f"{trial.number}, whose weights ({where}) are not readable from this machine"
    )


def export_best(
    study: optuna.Study, run_dir: Path, frame: Any = None, notes: list[str] | None = None
) -> Path | None:
    """Export the most accurate front member with a block as ``best_block.py``, with its
    trained weights where they can be read (else ``notes`` gets one line saying why not)."""
    from gcsearch import report

    frame = report.frame_from_study(study) if frame is None else frame
    objectives = report.frame_objectives(frame)
    rows = report.candidate_rows(frame, objectives)
    if rows.empty:
        return None
    front = report.front_table(rows, objectives)
    front = front[front["spec.kind"] != "baseline"]
    if front.empty:
        return None
    row = front.iloc[0]
    mean, half, n = report.mean_ci(
        [float(row[c]) for c in row.index if c.startswith("metric.top1.s") and row[c] == row[c]]
    )
    attrs = study.user_attrs
    meta = {
        "accuracy": {
            "top1_mean": mean,
            "top1_ci95": None if half != half else half,
            "n": n,
            "epochs": int(row["fidelity.epochs"]),
        },
        "cost": {
            k: int(row[f"cost.{k}"]) for k in ("params", "macs", "block_params", "block_macs")
        },
        "source": {"run": str(run_dir), "study": study.study_name, "trial": int(row["trial"])},
        **{k: attrs[k] for k in ("backbone", "task", "input_shape", "min_hidden") if k in attrs},
    }
    cand = Candidate.parse(str(row["spec.id"]))
    weights, note = _kept_weights(study, run_dir, row, cand, meta)  # the best seed kept
    if note is not None and notes is not None:
        notes.append(note)
    from gcsearch import export

    written = export.export_candidate(cand, run_dir / "best_block.py", meta=meta, weights=weights)
    return written["module"]


def _weights_keeper(run_dir: Path, weights_dir: Path) -> Any:
    """Keep the best seed's checkpoint of a complete candidate as
    ``weights/<checkpoint_name(network key)>``; the other seeds' files are removed. Returns
    the path relative to the run directory (recorded on the trial as ``weights``)."""
    from gcsearch.checkpoint import checkpoint_name

    def keep(key: str, results: list[dict[str, Any]]) -> str | None:
        scored = [r for r in results if r.get("top1") is not None]
        if not scored:
            return None
        best = max(scored, key=lambda r: (float(r["top1"]), -int(r.get("seed", 0))))
        target = weights_dir / checkpoint_name(key)
        kept = None
        for r in results:
            path = seed_weights_path(weights_dir, str(r.get("candidate_id")), int(r["seed"]))
            if not path.is_file():
                continue
            if r is best:
                path.replace(target)
                kept = target
            else:
                path.unlink()
        return str(kept.relative_to(run_dir)) if kept else None

    return keep


def search(
    space: Space,
    run_dir: Path | str | None = None,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    resume: bool = False,
    address: str | None = None,
    device: str = "auto",
    smoke: bool = False,
    executor: Any = None,
    faults: Mapping[str, str] | None = None,
    max_retries: int = 3,
    parallel: int | None = None,
    progress: bool = True,
    export: bool = True,
    console: Any = None,
    weights: bool = True,
    network_costs: Any = None,
    deterministic: bool = False,
    command: Sequence[str] | None = None,
) -> Outcome:
    """Run (or resume) the search a space describes; see the module docstring.

    ``command`` is the CLI arguments the run was started with (``search --space ...``): an
    interrupted run's resume hint repeats them. ``executor`` replaces the Ray executor
    (``gcsearch.search.local``); ``faults`` maps candidate ids to a test fault (``nan``,
    ``kill-once:<marker>``); ``GCSEARCH_FAULTS`` (JSON) does the same from the environment.
    ``network_costs`` (network key -> cost dict) skips counting the space's costs (benchmark
    replays pass the table's).
    """
    from gcsearch.search.strategy import hv_box, make_strategy, searched_networks, space_costs

    started = time.time()
    run_dir = Path(run_dir or Path("runs") / space.name)
    if resume and storage is None and not (run_dir / STORAGE_FILE).is_file():
        raise UserError(
            f"--resume: {run_dir} holds no {STORAGE_FILE} (run without --resume "
            "to start, or point --run-dir/--storage at the search to continue)"
        )
    if executor is None and device == "cuda" and space.search.gpus_per_trial <= 0:
        raise UserError(
            "--device cuda: trials hold no GPU (allowed: --gpus-per-trial > 0, "
            "e.g. 1 or 0.25, or --device auto/cpu)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    name = study_name or space.name
    faults = dict(faults or json.loads(os.environ.get("GCSEARCH_FAULTS", "{}") or "{}"))
    budget, input_shape, num_classes = resolve_budget(space, smoke)
    max_epochs = int(budget["epochs"])
    rungs = space.fidelity.rungs(max_epochs)
    n_trials = space.n_trials()
    versions = _versions()
    attrs = {
        "objectives": list(space.objectives),
        "space": space.to_dict(),
        "backbone": space.backbone,
        "task": space.task,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "min_hidden": space.min_hidden,
        "budget": budget,
        "seeds": space.search.seeds,
        "sampler": space.search.sampler,
        "fidelity": {**space.fidelity.to_dict(), "rungs": list(rungs)},
        "gcsearch_version": versions["gcsearch"],
        "versions": versions,
        "fingerprint": space_fingerprint(space, budget),
        "smoke": smoke,
    }
    if address and executor is None:  # nothing listening there: say so before any study exists
        from gcsearch.search.executor import probe_address

        probe_address(address)
    store, where = open_storage(run_dir, storage)
    with driver_lock(run_dir), contextlib.ExitStack() as stack:
        # never consulted: every trial is enqueued with its candidate's parameters, and the
        # proposals come from the driver's own sampler study (sampling.SamplerStudy)
        idle = optuna.samplers.RandomSampler(seed=space.search.sampler_seed)
        study = open_study(space, store, where, name, resume, idle, attrs)
        if not resume:  # a start that fails (or is stopped) before any trial leaves no study
            stack.push(_drop_if_empty(study, store, name))
        stack.enter_context(_sigterm_as_interrupt())  # Ray's start-up included
        interval, grace = liveness_settings()
        heartbeat = Heartbeat(study, interval=interval, info={"run_dir": str(run_dir.resolve())})
        stack.enter_context(heartbeat)  # alive to other drivers before judging theirs
        marked = len(recover_stale_trials(study, grace, own=heartbeat.driver_id)) if resume else 0
        costs = network_costs or study.user_attrs.get("network_costs")
        if not costs:  # once per study: the strategy and the hypervolume box need them
            if progress:
                print(
                    f"counting the exact cost of every network of {space.name} (fvcore, "
                    "once per study) ...",
                    flush=True,
                )
            costs = space_costs(space, input_shape, num_classes)
        if "hv_reference" not in study.user_attrs:
            reference, ideal = hv_box(
                space.objectives, costs, num_classes, searched_networks(space)
            )
            study.set_user_attr("network_costs", costs)
            study.set_user_attr("hv_reference", reference)
            study.set_user_attr("hv_ideal", ideal)
        (run_dir / "space.resolved.toml").write_text(space.to_toml())
        threads = max(1, int(space.search.cpus_per_trial))
        own_executor = executor is None
        if progress:  # the first line, before Ray's start-up (seconds) begins
            from rich.console import Console

            console = console or Console()
            starting(console, f"{space.name}: {n_trials} trials x {space.search.seeds} seed(s), "
                              f"task {space.task}, {space.backbone}; " + (
                                  "custom executor" if not own_executor
                                  else f"joining Ray at {address}" if address
                                  else "starting Ray (local)"))
        ray_t0 = time.perf_counter()
        if executor is None:
            from gcsearch.search.executor import RayExecutor

            executor = RayExecutor(
                run_dir,
                address=address,
                parallel=parallel or (None if address else space.search.parallel),
                cpus_per_trial=space.search.cpus_per_trial,
                gpus_per_trial=space.search.gpus_per_trial,
                max_retries=max_retries,
            )
            stack.callback(executor.shutdown)  # also when stopped before the loop (idempotent)
        ray_start_s = time.perf_counter() - ray_t0
        if progress and own_executor:
            console.print(f"Ray ready in {ray_start_s:.1f}s", highlight=False)
        refs = len(space.references())
        prog = Progress(
            title=f"{space.name} ({where})",
            total=n_trials + refs,
            parallel=int(executor.parallel),
            objectives=list(space.objectives),
            seeds=space.search.seeds,
            max_epochs=max_epochs,
            rungs=tuple(rungs),
        )
        display = Display(prog, console=console, enabled=progress)
        if progress and marked:
            display.console.print(
                f"resume: {marked} trial(s) of dead driver(s) marked failed; "
                "their candidates will be asked again"
            )
        weights_dir = run_dir / "weights"
        driver = Driver(
            space,
            study,
            executor,
            budget=budget,
            device=device,
            rungs=rungs,
            faults=faults,
            display=display,
            n_trials=n_trials,
            threads=threads,
            strategy=make_strategy(space, costs, study.user_attrs),
            weights_dir=str(weights_dir.resolve()) if weights else None,
            keep_weights=_weights_keeper(run_dir, weights_dir) if weights else None,
            liveness=heartbeat,
            grace=grace,
            deterministic=deterministic,
            where=f"the study {where}",
        )
        ref_keys = {driver.key(c) for c in space.references()}
        networks = len({driver.key(c) for c in space.candidates()} - ref_keys)
        prog.total = len(ref_keys) + min(n_trials, networks)  # a network trains once
        c0 = counts(study.get_trials(deepcopy=False))
        prog.done, prog.pruned, prog.failed = c0["complete"], c0["pruned"], c0["failed"]
        cluster = executor.describe()
        fault: IOFault | None = None
        resume_hint = resume_command(command, space, run_dir, smoke)
        try:
            with _sigterm_as_interrupt(), display:
                loop_start = time.perf_counter()
                try:
                    driver.run()
                except KeyboardInterrupt:
                    driver.abandon("interrupted")
                    with contextlib.suppress(OSError):  # the study has every result
                        write_results(study, run_dir)
                    display.console.print(
                        f"interrupted: resume with `{resume_hint}`", highlight=False, soft_wrap=True
                    )
                    raise
                except IOFault as exc:  # disk full, read-only: what finished is in the study
                    fault = exc
                loop_s = time.perf_counter() - loop_start
        finally:
            ray_t0 = time.perf_counter()
            if own_executor:
                executor.shutdown()
            ray_stop_s = time.perf_counter() - ray_t0
        if weights and weights_dir.is_dir():  # seed files of candidates that did not complete
            for sub in weights_dir.glob("seed*"):
                shutil.rmtree(sub, ignore_errors=True)
        from gcsearch import report

        # one read of the study: results.csv, best_block.py and run.json say the same
        frame = report.frame_from_study(study)
        files: dict[str, Path | str] = {"storage": where, "config": run_dir / "space.resolved.toml"}
        notes: list[str] = []
        unwritten: list[str] = []
        try:
            files["results"] = write_results(study, run_dir, frame)
        except OSError as exc:
            unwritten.append(f"results.csv not written ({io_line(exc)})")
        if export and fault is None:
            try:
                best = export_best(study, run_dir, frame, notes)
            except OSError as exc:
                best = None
                unwritten.append(f"best_block.py not written ({io_line(exc)})")
            if best:
                files["best_block"] = best
        outcome = Outcome(
            study,
            run_dir,
            frame.attrs["counts"],
            time.time() - started,
            driver.job_seconds,
            driver.epochs_trained,
            loop_s,
            driver.driver_s,
            files,
            notes,
        )
        record = {
            "command": [mask_secrets(a) for a in sys.argv],
            "space": space.to_dict(),
            "budget": budget,
            "cluster": cluster,
            "versions": versions,
            # the CPU / GPU each trial ran on: the same seed reproduces on one machine only
            "machines": report.machines(frame),
            "counts": outcome.counts,
            "count_line": count_line(outcome.counts),
            "elapsed_s": outcome.elapsed_s,
            "job_seconds": outcome.job_seconds,
            "epochs_trained": outcome.epochs_trained,
            "loop_s": outcome.loop_s,
            "driver_s": outcome.driver_s,
            "ray_start_s": ray_start_s,
            "ray_shutdown_s": ray_stop_s,
            "rung_decisions": driver.decisions,
            "hv_reference": study.user_attrs.get("hv_reference"),
            "hv_ideal": study.user_attrs.get("hv_ideal"),
            "storage": where,
            "study": name,
            "notes": notes,
            "fault": str(fault) if fault is not None else None,
        }
        try:
            (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
            files["record"] = run_dir / "run.json"
        except OSError as exc:
            unwritten.append(f"run.json not written ({io_line(exc)})")
        if fault is not None or unwritten:
            what = str(fault) if fault is not None else unwritten.pop(0)
            kept = "; ".join([count_line(outcome.counts) + f" in {where}", *unwritten])
            raise IOFault(
                f"{what}; the search {'stopped' if fault else 'finished'} ({kept}); once "
                f"fixed, resume with `{resume_hint}`"
            ) from fault
    return outcome


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


class TrialsFailed(UserError):
    """Every trial of a search failed: nothing to rank (exit code 1, as ``gcsearch train``)."""

    exit_code = 1


def first_failure(study: optuna.Study) -> tuple[int, str, str] | None:
    """(trial number, candidate id, reason) of the study's first failed trained trial."""
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        rec = TrialRecord.read(trial)
        if rec.status == "failed" and rec.trained:
            return trial.number, rec.candidate_id, rec.reason or "no reason recorded"
    return None


# ------------------------------------------------------------------------------ CLI
def _check_flags(args: Any) -> None:
    """Flag values a user can get wrong -> one-line UserError naming the allowed values."""
    n = getattr(args, "n_trials", None)
    if n is not None and n != "all" and (not str(n).isdigit() or int(n) < 1):
        raise UserError(f"--n-trials: {n!r} is not allowed (allowed: 'all' or integers >= 1)")
    for flag, lo in (
        ("seeds", 1),
        ("parallel", 1),
        ("eta", 2),
        ("max_retries", 0),
        ("min_epochs", 1),
    ):
        value = getattr(args, flag, None)
        if value is not None and value < lo:
            raise UserError(
                f"--{flag.replace('_', '-')}: {value} is out of range (allowed: integers >= {lo})"
            )
    for flag in ("cpus_per_trial", "gpus_per_trial"):
        value = getattr(args, flag, None)
        lo_ok = value is None or (value > 0 if flag == "cpus_per_trial" else value >= 0)
        if not lo_ok or (value is not None and not math.isfinite(value)):
            raise UserError(
                f"--{flag.replace('_', '-')}: {value} is out of range (allowed: "
                f"numbers {'> 0' if flag == 'cpus_per_trial' else '>= 0'})"
            )


def _space_from_args(args: Any) -> Space:
    _check_flags(args)
    space = load_space(args.space)
    overrides: dict[str, Any] = {}
    for flag, key in (
        ("sampler", "sampler"),
        ("seeds", "seeds"),
        ("parallel", "parallel"),
        ("min_epochs", "min_epochs"),
        ("cpus_per_trial", "cpus_per_trial"),
        ("gpus_per_trial", "gpus_per_trial"),
        ("eta", "eta"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "n_trials", None) is not None:
        overrides["n_trials"] = None if args.n_trials == "all" else int(args.n_trials)
    if getattr(args, "no_fidelity", False):
        overrides["enabled"] = False
    if getattr(args, "fidelity", False):
        overrides["enabled"] = True
    if getattr(args, "data", None) is not None:
        overrides["data"] = args.data
    return space.with_overrides(**overrides) if overrides else space


def run_search(args: Any) -> int:
    """``gcsearch search``: run the study, then print the front and write the run directory."""
    space = _space_from_args(args)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / space.name
    try:
        outcome = search(
            space,
            run_dir,
            study_name=args.study_name,
            storage=args.storage,
            resume=args.resume,
            address=args.address,
            device=args.device,
            smoke=args.smoke,
            max_retries=args.max_retries,
            parallel=args.parallel,
            deterministic=bool(getattr(args, "deterministic", False)),
            command=getattr(args, "argv", None),
        )
    except OSError as exc:  # a write outside the trials (run directory, lock): one line
        raise IOFault(f"{io_line(exc)}; the search stopped (what finished is in its study)"
                      ) from exc
    c = outcome.counts
    if c["failed"] and not c["complete"] and not c["pruned"]:  # nothing to rank: say why
        first = first_failure(outcome.study)
        number, cand, reason = first or (-1, "?", "no reason recorded")
        raise TrialsFailed(
            f"every trial failed ({c['failed']} failed, none complete; run directory "
            f"{run_dir}); the first, trial {number} ({cand}): {' '.join(reason.split())}"
        )
    from rich.console import Console

    from gcsearch import report

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(
        f"search finished in {outcome.elapsed_s:.0f}s: {count_line(outcome.counts)}; "
        f"{outcome.epochs_trained} epochs trained",
        highlight=False,
    )
    try:
        rep = report.build_report(
            run_dir, args.study_name, frame=report.frame_from_study(outcome.study)
        )
        report.render_terminal(rep, console)
    except UserError as exc:
        console.print(str(exc), highlight=False)
    for label, path in outcome.files.items():
        console.print(f"{label}: {path}", highlight=False)
    for note in outcome.notes:
        console.print(note, highlight=False)
    return 0


__all__ = [
    "Outcome", "TrialsFailed", "export_best", "first_failure", "resume_command", "run_search",
    "search", "write_results",
]
