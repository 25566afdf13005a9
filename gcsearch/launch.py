"""Launch a search and write its run directory: the layer above the engine.

``search`` runs ``gcsearch.search.run.run_study`` (which stops at the study), then writes what
reads the study, from one read of it so the three agree: ``results.csv`` (the report's frame),
``best_block.py`` (the front's most accurate block, with the weights the search kept) and
``run.json`` (command, counts, rung decisions, timing). A file that cannot be written is named
in one line (``IOFault``), and ``--resume`` writes it once fixed. ``run_search`` is the
``gcsearch search`` command: the same, then the report in the terminal.

Example::

    gcsearch search --space spaces/quick.toml            # runs/quick/{study.db,results.csv,...}
    gcsearch search --space spaces/quick.toml --resume   # after a crash or Ctrl-C
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from gcsearch.errors import IOFault, UserError, io_line
from gcsearch.search.record import TrialRecord, count_line
from gcsearch.search.run import (
    Outcome,
    SearchConfig,
    SearchInterrupted,
    ray_stopped,
    run_study,
)
from gcsearch.search.space import Space, load_space
from gcsearch.spec import Candidate


def search(
    space: Space, run_dir: Path | str | None = None, *, export: bool = True, **settings: Any
) -> Outcome:
    """Run (or resume) the search ``space`` describes and write its run directory.

    ``settings`` are ``SearchConfig`` fields (storage, resume, executor, smoke, ...);
    ``export=False`` skips ``best_block.py``.
    """
    config = SearchConfig(run_dir=Path(run_dir or Path("runs") / space.name), **settings)
    try:
        try:
            outcome = run_study(space, config)
        except SearchInterrupted as stop:
            with contextlib.suppress(OSError):  # the study has every result
                write_results(stop.study, stop.run_dir)
            raise
        return write_outputs(outcome, export=export)
    finally:
        ray_stopped()  # Ray stopped on a thread while the outputs were written


def write_outputs(outcome: Outcome, export: bool = True) -> Outcome:
    """results.csv, best_block.py (``export``) and run.json from one read of the study; an
    I/O fault of the loop, or an output that cannot be written, ends in one ``IOFault`` line
    after everything that can be written is."""
    from gcsearch import report

    study, run_dir, fault = outcome.study, outcome.run_dir, outcome.fault
    frame = report.frame_from_study(study)
    outcome.counts = frame.attrs["counts"]
    unwritten: list[str] = []
    try:
        outcome.files["results"] = write_results(study, run_dir, frame)
    except OSError as exc:
        unwritten.append(f"results.csv not written ({io_line(exc)})")
    if export and fault is None:
        try:
            best = export_best(study, run_dir, frame, outcome.notes)
        except OSError as exc:
            best = None
            unwritten.append(f"best_block.py not written ({io_line(exc)})")
        if best:
            outcome.files["best_block"] = best
    record = {
        **outcome.record,
        # the CPU / GPU each trial ran on: the same seed reproduces on one machine only
        "machines": report.machines(frame),
        "counts": outcome.counts,
        "count_line": count_line(outcome.counts),
        "notes": outcome.notes,
        "fault": str(fault) if fault is not None else None,
    }
    try:
        (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        outcome.files["record"] = run_dir / "run.json"
    except OSError as exc:
        unwritten.append(f"run.json not written ({io_line(exc)})")
    if fault is not None or unwritten:
        what = str(fault) if fault is not None else unwritten.pop(0)
        kept = "; ".join([count_line(outcome.counts) + f" in {outcome.where}", *unwritten])
        raise IOFault(
            f"{what}; the search {'stopped' if fault else 'finished'} ({kept}); once "
            f"fixed, resume with `{outcome.resume_hint}`"
        ) from fault
    return outcome


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
        ("reference_max_seeds", 2),
    ):
        value = getattr(args, flag, None)
        if value is not None and value < lo:
            raise UserError(
                f"--{flag.replace('_', '-')}: {value} is out of range (allowed: integers >= {lo})"
            )
    for flag in ("cpus_per_trial", "gpus_per_trial", "reference_ci"):
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
        ("fuse_seeds", "fuse_seeds"),
        ("compile", "compile"),
        ("reference_ci", "reference_ci"),
        ("reference_max_seeds", "reference_max_seeds"),
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
    if getattr(args, "no_speculate", False):
        overrides["speculate"] = False
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
            keep_states=bool(getattr(args, "keep_states", False)),
            command=getattr(args, "argv", None),
        )
    except OSError as exc:  # a write outside the trials (run directory, lock): one line
        raise IOFault(
            f"{io_line(exc)}; the search stopped (what finished is in its study)"
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
    "TrialsFailed",
    "export_best",
    "first_failure",
    "run_search",
    "search",
    "write_outputs",
    "write_results",
]
