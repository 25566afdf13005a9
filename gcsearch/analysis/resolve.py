"""Adaptive seeds: train more seeds only where a verdict of the paper is still open.

After a first pass (a search or a paper-space ablation with n seeds per candidate),
``gcsearch resolve RUN`` adds seeds look by look to the candidates of the comparisons that
are still open, until each is decided or a cap is hit (seeds per candidate: the plan's last
look; total added trainings; hours). The looks and the boundaries are a group-sequential plan
(``gcsearch.report.sequential``), recorded on the study at the first resolve and kept by every
later one, so the verdicts stay valid however early each comparison stopped; the report reads
the same plan (``report.sequential_verdicts``). Each trained seed is one ``SEED`` row of the
study, written as soon as it finishes: a stopped resolve resumes by running again, and no
seed is trained twice.

Example::

    gcsearch resolve runs/gcnet-paper --max-seeds 12 --step 3 --hours 2
    gcsearch report runs/gcnet-paper --md reports/gcnet-paper.md
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from gcsearch.errors import UserError
from gcsearch.report import sequential as sq
from gcsearch.report import sequential_verdicts as sv
from gcsearch.report.tables import Report, seed_map
from gcsearch.search.record import SEED, TrialRecord

#: caps when the run has no plan yet and none is given
DEFAULT_MAX_SEEDS, DEFAULT_STEP = 12, 3


@dataclass(frozen=True)
class Caps:
    """What a resolve may spend: ``max_seeds`` per candidate (the last look), ``step`` seeds
    a look (these two make the plan, fixed at the first resolve: None keeps the recorded or
    the default one), ``max_trainings`` added seeds in all (the run's, resumes included) and
    ``hours`` of this call."""

    max_seeds: int | None = None
    step: int | None = None
    max_trainings: int | None = None
    hours: float | None = None

    def check(self) -> None:
        """Raise a one-line ``UserError`` naming the allowed values of a bad cap."""
        for flag, value, lo in (
            ("--max-seeds", self.max_seeds, 3),
            ("--step", self.step, 1),
            ("--max-trainings", self.max_trainings, 1),
        ):
            if value is not None and (not isinstance(value, int) or value < lo):
                raise UserError(f"{flag}: {value} is out of range (allowed: integers >= {lo})")
        if self.hours is not None and not (math.isfinite(self.hours) and self.hours > 0):
            raise UserError(f"--hours: {self.hours} is out of range (allowed: numbers > 0)")


@dataclass
class Resolved:
    """What a resolve did: the plan, each conclusion's state, the seeds trained by this call
    and in the run so far, each candidate's seeds, and why it stopped."""

    plan: sq.Plan
    outcome: list[sv.Sequential]
    trained: int
    trained_total: int
    seeds: dict[str, int]
    stopped: str
    looks: list[dict[str, Any]] = field(default_factory=list)  # what each round trained


def _open_study(run_dir: Path, study_name: str | None, storage: str | None) -> optuna.Study:
    from gcsearch.search.storage import STORAGE_FILE, open_storage

    if storage is None and not (run_dir / STORAGE_FILE).is_file():
        raise UserError(
            f"no such run: {run_dir} holds no {STORAGE_FILE} (allowed: a run directory "
            "`gcsearch search` wrote, or --storage with its storage)"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store, where = open_storage(run_dir, storage)
    names = optuna.study.get_all_study_names(store)
    if study_name is None and len(names) == 1:
        study_name = names[0]
    if study_name not in names:
        raise UserError(
            f"{where}: no study {study_name!r} (allowed: --study with one of "
            f"{', '.join(sorted(names)) or 'none'})"
        )
    return optuna.load_study(study_name=study_name, storage=store)


def _report(study: optuna.Study, run_dir: Path) -> Report:
    from gcsearch.report import build_report, frame_from_study

    return build_report(run_dir, frame=frame_from_study(study))


def _plan(study: optuna.Study, report: Report, ids: set[str], caps: Caps) -> sq.Plan:
    """The recorded plan (a resolve that asks for another is refused), else the caps' one."""
    recorded = study.user_attrs.get(sq.PLAN_ATTR)
    if isinstance(recorded, Mapping):
        plan = sq.Plan.from_dict(recorded)
        step = plan.looks[1] - plan.looks[0] if len(plan.looks) > 1 else None
        asked = (caps.max_seeds, caps.step)
        if (caps.max_seeds not in (None, plan.looks[-1])) or (caps.step not in (None, step)):
            raise UserError(
                f"--max-seeds/--step {asked}: this run's plan is fixed ({plan.describe()}; "
                "recorded by its first resolve, so earlier looks stay valid); allowed: "
                f"--max-seeds {plan.looks[-1]}"
                + (f" --step {step}" if step else "")
                + " or neither"
            )
        return plan
    counts = [len(seed_map(r)) for _, r in report.rows.iterrows() if r["spec.id"] in ids]
    first = max(2, min(counts))
    cap = caps.max_seeds or max(DEFAULT_MAX_SEEDS, first + 1)
    if cap <= first:
        raise UserError(
            f"--max-seeds {cap}: the first pass already has {first} seeds per candidate "
            f"(allowed: integers > {first})"
        )
    return sq.Plan.schedule(first, caps.step or DEFAULT_STEP, cap)


def _family(report: Report, nl: Sequence[Mapping[str, Any]] | None) -> tuple[list, Any]:
    """The comparisons of the paper's conclusions in this run, and the NL test (or None)."""
    from gcsearch.report import verdicts
    from gcsearch.report.nl_summary import nl_evidence

    found = verdicts.family(verdicts.pending_verdicts(report, nl))
    word, _, _, p, direction = nl_evidence(nl)
    return found, None if word else (p, direction)


def _targets(outcome: Sequence[sv.Sequential], plan: sq.Plan) -> dict[str, int]:
    """Candidate id -> the seeds it needs for the next look of its open comparisons."""
    want: dict[str, int] = {}
    for s in outcome:
        if not s.open or s.reached >= len(plan.looks) - 1:
            continue
        target = plan.looks[s.reached + 1]
        for cid in s.candidates:
            want[cid] = max(want.get(cid, 0), target)
    return want


def _attempted(row: pd.Series) -> set[int]:
    """Seeds a candidate's row holds or tried (its own and the added ones)."""
    text = str(row.get("metric.seeds") or "")
    return {int(s) for s in text.split(",") if s.strip().lstrip("-").isdigit()}


def _jobs(report: Report, study: optuna.Study, want: Mapping[str, int], device: str) -> list:
    """One job per seed a network lacks up to its target, at the study's budget. Candidate
    ids that build one network (a preset and its spec, ratios the ``min_hidden`` floor
    folds together) share each training: the job's ``twins`` are the other ids' (trial,
    candidate) that get the same seed row."""
    from gcsearch.search.sampling import network_key
    from gcsearch.search.trial import Job
    from gcsearch.spec import Candidate

    attrs = study.user_attrs
    space = attrs.get("space") or {}
    search = space.get("search") or {}
    backbone, min_hidden = str(attrs.get("backbone")), int(attrs.get("min_hidden", 8))
    rows = report.rows.set_index("spec.id", drop=False)
    cands = {cid: Candidate.parse(cid) for cid in sorted(want)}
    groups: dict[str, list[str]] = {}
    for cid, cand in cands.items():
        groups.setdefault(network_key(cand, backbone, min_hidden), []).append(cid)
    jobs = []
    for cids in groups.values():
        target = max(want[c] for c in cids)
        have = {c: _attempted(rows.loc[c]) for c in cids}
        for seed in range(target):
            lacking = [c for c in cids if seed not in have[c]]
            if not lacking:
                continue
            row = rows.loc[lacking[0]]
            cost = {
                k: int(row[f"cost.{k}"])
                for k in ("params", "macs", "block_params", "block_macs")
                if pd.notna(row.get(f"cost.{k}"))
            }
            job = Job(
                trial=int(row["trial"]),
                candidate=cands[lacking[0]].to_dict(),
                seed=seed,
                task=str(attrs.get("task")),
                data=space.get("data"),
                budget=dict(attrs.get("budget") or {}),
                backbone=backbone,
                min_hidden=min_hidden,
                device=device,
                threads=max(1, int(search.get("cpus_per_trial", 1))),
                objectives=tuple(attrs.get("objectives") or ()),
                cost=cost or None,
            )
            twins = [(int(rows.loc[c]["trial"]), cands[c].to_dict()) for c in lacking[1:]]
            jobs.append((job, twins))
    return jobs


def _tell_seed(
    study: optuna.Study, job: Any, result: Any, twin: tuple[int, dict[str, Any]] | None = None
) -> None:
    """One trained seed as a ``SEED`` row extending the trial of its candidate (or of the
    ``twin`` (trial, candidate) that builds the same network)."""
    from optuna.trial import TrialState, create_trial

    from gcsearch.spec import Candidate

    trial, cand = twin or (job.trial, job.candidate)
    res = result.to_dict()
    if twin is not None:
        # the same training, told again under the twin's id (not counted as a training)
        res = {**res, "candidate_id": Candidate.from_dict(cand).id, "twin_of": job.candidate_id}
    rec = TrialRecord(
        candidate=Candidate.from_dict(cand),
        role=SEED,
        status=str(res.get("status") or "failed"),
        reason=str(res.get("reason") or ""),
        results=[res],
        cost=dict(job.cost or {}),
        env=dict(res.get("env") or {}),
        extends=trial,
    )
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=rec.attrs()))


def _seed_rows(study: optuna.Study) -> int:
    """Seeds resolve trained in this run (a twin's copy of one is not another training)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        rec = TrialRecord.read(t)
        if rec.role == SEED and not any("twin_of" in r for r in rec.results):
            n += 1
    return n


def resolve(
    run_dir: str | Path,
    caps: Caps | None = None,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    executor: Any = None,
    nl: Sequence[Mapping[str, Any]] | None = None,
    device: str = "auto",
    address: str | None = None,
    parallel: int | None = None,
    progress: bool = True,
) -> Resolved:
    """Add seeds to the candidates of open comparisons until each is decided or a cap is hit.

    ``executor``: the executor protocol of ``gcsearch.search`` (default: Ray workers as the
    search's); ``nl``: the rows of ``gcsearch analyze nl --json``, so the family is the
    report's. Example::

        resolve("runs/gcnet-paper", Caps(max_seeds=12, hours=2.0))
    """
    from gcsearch.report import verdicts
    from gcsearch.search.storage import driver_lock

    caps = caps or Caps()
    caps.check()
    run_dir = Path(run_dir)
    study = _open_study(run_dir, study_name, storage)
    run_dir.mkdir(parents=True, exist_ok=True)  # with --storage: where the lock and CSV go
    report = _report(study, run_dir)
    found, nl_p = _family(report, nl)
    if not found:
        names = ", ".join(c.id for c in verdicts.CONCLUSIONS if c.kind != "nl")
        raise UserError(
            f"{run_dir}: no verdict pairs: none of the paper's comparisons ({names}) has both "
            "candidates complete in this run (allowed: a run of a GCNet paper space, e.g. "
            "`gcsearch search --space gcnet-paper`)"
        )
    ids = {cid for _, cands, _ in found for cid in cands}
    plan = _plan(study, report, ids, caps)
    started, trained, rounds = time.time(), 0, []
    step = verdicts.run_resolution(report)[0]
    with driver_lock(run_dir):
        if sq.PLAN_ATTR not in study.user_attrs:
            study.set_user_attr(sq.PLAN_ATTR, plan.to_dict())
        own = executor is None
        try:
            while True:
                report = _report(study, run_dir)
                found, _ = _family(report, nl)
                outcome = sv.evaluate(report, plan, found, step, nl_p)
                jobs = _jobs(report, study, _targets(outcome, plan), device)
                done = _seed_rows(study)
                stopped = ""
                if not jobs:
                    stopped = "every comparison is decided or at the cap of seeds per candidate"
                elif caps.max_trainings is not None and done >= caps.max_trainings:
                    stopped = f"the cap of {caps.max_trainings} added trainings is reached"
                elif caps.hours is not None and time.time() - started >= caps.hours * 3600:
                    stopped = f"the cap of {caps.hours:g} hours is reached"
                if stopped:
                    break
                if caps.max_trainings is not None:
                    jobs = jobs[: caps.max_trainings - done]
                if executor is None:
                    executor = _executor(study, run_dir, address, parallel)
                if progress:
                    who = sorted({j.candidate_id for j, _ in jobs})
                    print(
                        f"resolve: {len(jobs)} seed(s) for {len(who)} candidate(s): "
                        + ", ".join(who)
                    )
                rounds.append(
                    {"jobs": len(jobs), "candidates": sorted({j.candidate_id for j, _ in jobs})}
                )
                trained += _train(study, executor, jobs, progress)
        finally:
            if own and executor is not None:
                executor.shutdown()
    _write_results(study, run_dir)
    seeds = {str(r["spec.id"]): len(seed_map(r)) for _, r in report.rows.iterrows()}
    return Resolved(plan, outcome, trained, _seed_rows(study), seeds, stopped, rounds)


def _executor(study: optuna.Study, run_dir: Path, address: str | None, parallel: int | None) -> Any:
    from gcsearch.search.executor import RayExecutor

    search = (study.user_attrs.get("space") or {}).get("search") or {}
    return RayExecutor(
        run_dir,
        address=address,
        parallel=parallel or (None if address else int(search.get("parallel", 2))),
        cpus_per_trial=float(search.get("cpus_per_trial", 1.0)),
        gpus_per_trial=float(search.get("gpus_per_trial", 0.0)),
    )


def _train(study: optuna.Study, executor: Any, jobs: Sequence[Any], progress: bool) -> int:
    """Train ``jobs`` ((job, twins) pairs) and write each seed as it finishes, for the job's
    candidate and its twins; returns how many trainings finished."""
    twins_of = {}
    for job, twins in jobs:
        twins_of[(job.trial, job.seed)] = twins
        executor.submit(job)
    left, n = len(jobs), 0
    while left:
        for job, result in executor.wait(1.0):
            _tell_seed(study, job, result)
            for twin in twins_of.get((job.trial, job.seed), []):
                _tell_seed(study, job, result, twin)
            left, n = left - 1, n + 1
            if progress:
                top1 = result.top1
                shown = f"{top1:.2f} %" if top1 is not None else result.status
                print(f"  {job.candidate_id} seed {job.seed}: {shown}")
    return n


def _write_results(study: optuna.Study, run_dir: Path) -> None:
    """``results.csv`` again, with the added seeds (as the search writes it)."""
    from gcsearch.report import frame_from_study, write_frame

    with contextlib.suppress(OSError):  # the study holds every seed; a report writes it too
        write_frame(frame_from_study(study), run_dir / "results.csv")


def run_resolve(args: Any) -> int:
    """``gcsearch resolve``: add seeds where verdicts are open, then print where each stands."""
    from gcsearch.report import verdicts

    caps = Caps(args.max_seeds, args.step, args.max_trainings, args.hours)
    if args.parallel is not None and args.parallel < 1:
        raise UserError(f"--parallel: {args.parallel} is out of range (allowed: integers >= 1)")
    nl = verdicts.load_json(getattr(args, "nl", None), "--nl")
    out = resolve(
        args.run,
        caps,
        study_name=args.study,
        storage=args.storage,
        nl=nl,
        device=args.device,
        address=args.address,
        parallel=args.parallel,
    )
    print(f"resolve: {sq.METHOD}; {out.plan.describe()}")
    print(
        f"trained {out.trained} seed(s) now, {out.trained_total} added in all; "
        f"stopped: {out.stopped}"
    )
    for s in out.outcome:
        verdict, why = sv.verdict_of(s, out.plan)
        print(f"  {s.id}: {verdict}: {why}")
    print("seeds per candidate: " + ", ".join(f"{k} {v}" for k, v in sorted(out.seeds.items())))
    return 0


__all__ = ["Caps", "Resolved", "resolve", "run_resolve"]
