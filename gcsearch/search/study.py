"""The search driver: one Optuna study, owned through ``ask()``/``tell()``, fed by an executor.

The driver is the only writer of the study storage (``storage.py``: SQLite in the run
directory by default, any Optuna RDB URL, or a journal file); ``sampling.py`` turns Optuna
trials into candidates; the executor (``executor.py``, Ray) runs the trials. One Optuna trial
is one candidate evaluation; its ``user_attrs`` hold the candidate spec, the per-seed
``TrialResult``s, cost, fidelity and where it ran, and its objective values are the means over
seeds (see the common interface).

* Samplers: ``nsga2`` (default; reference rows and duplicates are kept out of its parents and
  search space), ``tpe`` (multivariate, grouped, constant liar: conditional parameters are
  modelled per group), ``random``, and ``grid`` (every candidate in space order, enqueued one by
  one, so a conditional space is enumerated exactly, without the ratio x 1x1 duplicates of a
  Cartesian grid).
* Conditional parameters: ``ratio`` and ``norm`` are suggested only when ``transform`` is
  ``bottleneck``; spaces with several ``[[axes]]`` grids first suggest ``grid``.
* Reference rows (the ``none`` baseline and the space's presets) are enqueued first and always
  trained at the full budget.
* Deduplication by the network a candidate builds (its canonical id, except that bottleneck
  ratios the ``min_hidden`` floor folds together, and presets that are exactly a spec such as
  ``gc`` = ``att-r16ln-add``, share one key): a candidate proposed again is answered from the
  stored result (``duplicate_of``), or when that trial finishes if it is still running;
  ``n_trials`` counts distinct networks trained. After 10 duplicates in a row the driver
  enqueues an unseen candidate, so a small space is never stuck.
* Resume: ``--resume`` reopens the study; trials a dead driver left running are marked failed
  (``retryable``) and their candidates asked again; finished ones are never trained twice.
  Ctrl-C (or SIGTERM) cancels the Ray tasks, marks running trials failed with reason
  ``interrupted`` and leaves a resumable study.

Example::

    gcsearch search --space spaces/quick.toml            # runs/quick/{study.db,results.csv,...}
    gcsearch search --space spaces/quick.toml --resume   # after a crash or Ctrl-C
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gcsearch.errors import UserError
from gcsearch.search.display import Display, Progress, starting
from gcsearch.search.fidelity import rung_vector
from gcsearch.search.sampling import (
    candidate_params,
    make_sampler,
    preset_block,
    suggest_candidate,
)
from gcsearch.search.space import Space, load_space
from gcsearch.search.storage import (
    STORAGE_FILE,
    driver_lock,
    mark_dead_driver_trials,
    open_storage,
    open_study,
    space_fingerprint,
)
from gcsearch.search.trial import SMOKE_BUDGET, Job
from gcsearch.spec import Candidate

#: Failure reasons that say nothing about the candidate: asked again on resume.
RETRYABLE = ("interrupted", "driver died", "worker lost", "stale")
MAX_DUPLICATE_STREAK = 10
_STATE = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
          "failed": TrialState.FAIL}


# ------------------------------------------------------------------------------ records
def _summarise(results: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """Candidate status from its seeds: any failed -> failed, any pruned -> pruned."""
    for status in ("failed", "pruned"):
        hits = [r for r in results if r.get("status") == status]
        if hits:
            return status, str(hits[0].get("reason") or status)
    if not results:
        return "failed", "no result"
    return "complete", ""


def _cost(results: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    for r in results:
        if r.get("params") is not None and r.get("macs") is not None:
            return {k: int(r[k]) for k in ("params", "macs", "block_params", "block_macs")
                    if r.get(k) is not None}
    return {}


def objective_values(objectives: Sequence[str], results: Sequence[Mapping[str, Any]],
                     cost: Mapping[str, float]) -> list[float] | None:
    """Objective values in study order: accuracy means over seeds, costs as counted."""
    tops = [float(r["top1"]) for r in results if r.get("top1") is not None]
    losses = [float(r["loss"]) for r in results if r.get("loss") is not None]
    lats = [float(r["latency"]["ms"]) for r in results if isinstance(r.get("latency"), Mapping)]
    metrics = {**{k: float(v) for k, v in cost.items()},
               "top1": sum(tops) / len(tops) if tops else math.nan,
               "loss": sum(losses) / len(losses) if losses else math.nan,
               "latency": statistics.median(lats) if lats else math.nan}
    values = [metrics.get(o.split(":")[0], math.nan) for o in objectives]
    return values if all(math.isfinite(v) for v in values) else None


@dataclass
class _Running:
    trial: optuna.Trial
    cand: Candidate
    role: str
    jobs_left: int
    results: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)


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


# ------------------------------------------------------------------------------ driver
class Driver:
    """Asks candidates, submits one job per seed, tells results; owns no training code."""

    def __init__(self, space: Space, study: optuna.Study, executor: Any, *, budget: Mapping[str,
                 Any], device: str, rungs: Sequence[int], faults: Mapping[str, str],
                 display: Display, n_trials: int, threads: int) -> None:
        self.space, self.study, self.executor = space, study, executor
        self.budget, self.device, self.rungs = dict(budget), device, tuple(rungs)
        self.faults, self.display, self.n_trials, self.threads = faults, display, n_trials, threads
        self.max_epochs = int(budget.get("epochs", 0))
        self.running: dict[int, _Running] = {}
        self.by_key: dict[str, int] = {}  # network key -> running trial number
        self.waiting_dups: dict[str, list[optuna.Trial]] = {}
        self.finished: dict[str, FrozenTrial] = {}  # network key -> the trial that trained it
        self.seen_ids: set[str] = set()
        self.order = space.candidates()
        self._keys: dict[str, str] = {}
        self.rng = random.Random(space.search.sampler_seed)
        self.streak = 0
        self.job_seconds = 0.0
        self.driver_s = 0.0  # time in ask/tell and bookkeeping (not waiting on trials)
        self.epochs_trained = 0
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and not t.user_attrs.get("retryable"):
                cid = t.user_attrs.get("candidate_id")
                if not cid:
                    continue
                self.seen_ids.add(cid)
                if "duplicate_of" not in t.user_attrs:
                    self.finished.setdefault(self.key(Candidate.parse(cid)), t)
        self.refs = [c for c in space.references() if c.id not in self.seen_ids]

    # bookkeeping ----------------------------------------------------------------------
    def key(self, cand: Candidate) -> str:
        """The network a candidate builds: candidates that build the same network (bottleneck
        ratios the ``min_hidden`` floor folds on a narrow backbone) are trained once."""
        if cand.id not in self._keys:
            from gcsearch.backbones import module_key

            spec = preset_block(cand.preset) if cand.preset else None
            same = Candidate(block=spec, placement=cand.placement) if spec else cand
            self._keys[cand.id] = module_key(same, self.space.backbone, self.space.min_hidden)
        return self._keys[cand.id]

    def known(self, cand: Candidate) -> bool:
        k = self.key(cand)
        return k in self.finished or k in self.by_key

    def trained_search(self) -> int:
        """Distinct searched networks finished or in flight (the n_trials budget)."""
        done = sum(1 for t in self.finished.values() if t.user_attrs.get("role") == "search")
        return done + sum(1 for r in self.running.values() if r.role == "search")

    def unseen(self) -> list[Candidate]:
        """Candidates with no trial yet."""
        busy = {r.cand.id for r in self.running.values()}
        busy |= {d.user_attrs.get("candidate_id") for ds in self.waiting_dups.values()
                 for d in ds}
        return [c for c in self.order if c.id not in self.seen_ids and c.id not in busy]

    def _next_fixed(self) -> Candidate | None:
        """Grid order: a candidate whose network is known costs nothing; a new one needs
        budget."""
        budget = self.trained_search() < self.n_trials
        for cand in self.unseen():
            if self.known(cand) or budget:
                return cand
        return None

    def can_ask(self) -> bool:
        if self.refs:
            return True
        if self.space.search.sampler == "grid":
            return self._next_fixed() is not None
        return self.trained_search() < self.n_trials and any(
            not self.known(c) for c in self.unseen())

    def jobs_in_flight(self) -> int:
        return sum(r.jobs_left for r in self.running.values())

    # asking ---------------------------------------------------------------------------
    def _ask_fixed(self, cand: Candidate, role: str) -> optuna.Trial:
        params = {} if role == "reference" else candidate_params(self.space, cand)
        self.study.enqueue_trial(params, user_attrs={"candidate_id": cand.id, "role": role})
        return self.study.ask()

    def ask_next(self) -> None:
        """Ask one trial and launch, dedupe or enqueue it."""
        if self.refs:
            trial = self._ask_fixed(self.refs.pop(0), "reference")
        elif self.space.search.sampler == "grid":
            nxt = self._next_fixed()
            assert nxt is not None
            trial = self._ask_fixed(nxt, "search")
        elif self.streak >= MAX_DUPLICATE_STREAK:
            fresh = [c for c in self.unseen() if not self.known(c)]
            trial = self._ask_fixed(self.rng.choice(fresh), "search")
            self.streak = 0
        else:
            trial = self.study.ask()
        role = trial.user_attrs.get("role", "search")
        if role == "reference":
            cand = Candidate.parse(trial.user_attrs["candidate_id"])
        else:
            cand = suggest_candidate(trial, self.space)
        for name, value in (("candidate", cand.to_dict()), ("candidate_id", cand.id),
                            ("role", role)):
            trial.set_user_attr(name, value)
        key = self.key(cand)
        if key != cand.id:
            trial.set_user_attr("module_key", key)
        if key in self.finished:
            self.streak += 1
            self._tell_duplicate(trial, self.finished[key], cand.id)
        elif key in self.by_key:
            self.streak += 1
            self.waiting_dups.setdefault(key, []).append(trial)
        else:
            self.streak = 0
            self._launch(trial, cand, role)

    def _launch(self, trial: optuna.Trial, cand: Candidate, role: str) -> None:
        seeds = range(self.space.search.seeds)
        self.running[trial.number] = _Running(trial, cand, role, len(seeds))
        self.by_key[self.key(cand)] = trial.number
        for seed in seeds:
            self.executor.submit(Job(
                trial=trial.number, candidate=cand.to_dict(), seed=seed, task=self.space.task,
                data=self.space.data, budget=self.budget, backbone=self.space.backbone,
                min_hidden=self.space.min_hidden, device=self.device, threads=self.threads,
                objectives=tuple(self.space.objectives), protected=role == "reference",
                fault=self.faults.get(cand.id)))
        self.display.progress.running = [r.cand.id for r in self.running.values()]

    # telling --------------------------------------------------------------------------
    def _tell_duplicate(self, trial: optuna.Trial, original: FrozenTrial, cid: str) -> None:
        self.seen_ids.add(cid)
        attrs = original.user_attrs
        for key in ("results", "status", "reason", "cost", "fidelity", "env"):
            if key in attrs:
                trial.set_user_attr(key, attrs[key])
        trial.set_user_attr("duplicate_of", original.number)
        state = original.state
        self.study.tell(trial, original.values if state == TrialState.COMPLETE else None,
                        state=state)
        self.display.progress.duplicates += 1

    def collect(self, job: Job, result: dict[str, Any]) -> None:
        run = self.running.get(job.trial)
        if run is None:  # cancelled meanwhile
            return
        run.results.append(result)
        run.jobs_left -= 1
        wall = float((result.get("env") or {}).get("job_wall_s") or result.get("wall_s") or 0)
        self.job_seconds += wall
        self.epochs_trained += int(result.get("epochs") or 0)
        self.display.progress.job_seconds.append(wall)
        if run.jobs_left == 0:
            self._finish(run)

    def _finish(self, run: _Running, forced: str | None = None) -> FrozenTrial:
        results = sorted(run.results, key=lambda r: r.get("seed", 0))
        status, reason = ("failed", forced) if forced else _summarise(results)
        cost = _cost(results)
        values = objective_values(self.space.objectives, results, cost)
        if status == "complete" and values is None:
            status, reason = "failed", "no finite objective values"
        epochs = max((int(r.get("epochs") or 0) for r in results), default=0)
        attrs = {
            "results": results, "status": status, "reason": reason, "cost": cost,
            "fidelity": {"epochs": epochs, "max_epochs": self.max_epochs,
                         "rung": sum(1 for r in self.rungs if r <= epochs)},
            "env": (results[0].get("env") or {}) if results else {},
            "retryable": status == "failed" and reason.startswith(RETRYABLE),
        }
        trial = run.trial
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        frozen = self.study.tell(trial, values if status == "complete" else None,
                                 state=_STATE[status])
        del self.running[trial.number]
        key = self.key(run.cand)
        self.by_key.pop(key, None)
        if not attrs["retryable"]:
            self.finished[key] = frozen
            self.seen_ids.add(run.cand.id)
        for dup in self.waiting_dups.pop(key, []):
            if attrs["retryable"]:
                for name, value in (("status", "failed"), ("reason", reason),
                                    ("retryable", True)):
                    dup.set_user_attr(name, value)
                self.study.tell(dup, None, state=TrialState.FAIL)
            else:
                self._tell_duplicate(dup, frozen, dup.user_attrs["candidate_id"])
        p = self.display.progress
        p.running = [r.cand.id for r in self.running.values()]
        if status == "complete":
            p.done += 1
        elif status == "pruned":
            p.pruned += 1
        else:
            p.failed += 1
        if status == "complete":
            self._update_front()
        top = values[0] if values else None
        detail = (f"top1 {top:.2f}" if status == "complete" and top is not None
                  else f"{reason[:80]}")
        where = attrs["env"].get("node") or attrs["env"].get("host") or ""
        where = f", {where}" if where else ""
        self.display.finished(f"{run.cand.id} {status} ({detail}, {epochs}/{self.max_epochs} "
                              f"epochs, {time.time() - run.started:.1f}s{where})")
        return frozen

    def _update_front(self) -> None:
        rows = [(t.user_attrs["candidate_id"], list(t.values)) for t in self.finished.values()
                if t.state == TrialState.COMPLETE and t.values]
        if not rows:
            return
        signs = [-1.0 if o.endswith(":max") else 1.0 for o in self.space.objectives]
        pts = [[v * s for v, s in zip(vals, signs, strict=True)] for _, vals in rows]
        front = [i for i, p in enumerate(pts) if not any(
            all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in pts)]
        names = list(self.space.objectives)
        table = [{"id": rows[i][0], **dict(zip(names, rows[i][1], strict=True))} for i in front]
        self.display.progress.front = sorted(table, key=lambda r: -r[names[0]]
                                             if names[0].endswith(":max") else r[names[0]])

    def abandon(self, reason: str) -> None:
        """Cancel everything in flight; running trials become failed (retryable) rows."""
        self.executor.cancel_all()
        for run in list(self.running.values()):
            try:
                self._finish(run, forced=reason)
            except (RuntimeError, ValueError):  # interrupted after its tell: already told
                self.running.pop(run.trial.number, None)
        for dups in self.waiting_dups.values():
            for dup in dups:
                with contextlib.suppress(RuntimeError, ValueError):
                    for name, value in (("status", "failed"), ("reason", reason),
                                        ("retryable", True)):
                        dup.set_user_attr(name, value)
                    self.study.tell(dup, None, state=TrialState.FAIL)
        self.waiting_dups.clear()

    def run(self) -> None:
        """Fill the executor up to ``parallel`` jobs, collect results, until the budget is
        spent and nothing is left in flight."""
        self._update_front()
        parallel = max(1, int(self.executor.parallel))
        while True:
            tick = time.perf_counter()
            while self.jobs_in_flight() < parallel and self.can_ask():
                self.ask_next()
            self.driver_s += time.perf_counter() - tick
            if not self.running:
                if self.waiting_dups:  # cannot happen: dups wait only on running trials
                    self.abandon("stale duplicate")
                break
            done = self.executor.wait(1.0)  # returns at once when a trial ends
            tick = time.perf_counter()
            for job, result in done:
                self.collect(job, result)
            self.display.refresh()
            self.driver_s += time.perf_counter() - tick


# ------------------------------------------------------------------------------ setup
def _resolve_budget(space: Space, smoke: bool) -> tuple[dict[str, Any], tuple[int, ...], int]:
    """Full budget dict, input shape and number of classes of the space's task."""
    from gcsearch.search.trial import make_budget
    from gcsearch.tasks import get_task

    task = get_task(space.task, space.data) if space.data else get_task(space.task)
    overrides = {**space.budget, **(SMOKE_BUDGET if smoke else {})}
    budget = dataclasses.asdict(make_budget(task, overrides))
    return budget, tuple(task.input_shape), int(task.num_classes)


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, Any]:
    import torch

    from gcsearch import __version__

    out = {"gcsearch": __version__, "python": platform.python_version(),
           "torch": torch.__version__, "optuna": optuna.__version__,
           "cuda": torch.version.cuda, "git": _git_revision()}
    with contextlib.suppress(ImportError):
        import ray

        out["ray"] = ray.__version__
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


def _preload_rungs(study: optuna.Study, space: Space,
                   rungs: Sequence[int]) -> list[tuple[int, str, list[float], bool]]:
    """Rung entries of finished trials, so a resumed search compares against them too."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if "duplicate_of" in t.user_attrs:
            continue
        cost = t.user_attrs.get("cost") or {}
        for r in t.user_attrs.get("results") or []:
            for rec in r.get("history") or []:
                epoch = int(rec.get("epoch", 0))
                if epoch in rungs and rec.get("val_top1") is not None:
                    metrics = {**cost, "top1": rec["val_top1"],
                               "loss": rec.get("val_loss", math.nan),
                               "latency": (r.get("latency") or {}).get("ms", math.nan)}
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        vec = rung_vector(space.objectives, metrics)
                        out.append((epoch, f"{t.user_attrs['candidate_id']}#s{r['seed']}",
                                    list(vec), t.user_attrs.get("role") == "reference"))
    return out


def _counts(study: optuna.Study) -> dict[str, int]:
    counts = {"complete": 0, "pruned": 0, "failed": 0, "duplicates": 0, "trials": 0}
    for t in study.get_trials(deepcopy=False):
        counts["trials"] += 1
        if "duplicate_of" in t.user_attrs:
            counts["duplicates"] += 1
            continue
        status = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
                  TrialState.FAIL: "failed"}.get(t.state)
        if status:
            counts[status] += 1
    return counts


def write_results(study: optuna.Study, run_dir: Path) -> Path | None:
    """``results.csv``: one flat row per trial (the report's frame)."""
    from gcsearch import report

    frame = report.frame_from_study(study)
    path = run_dir / "results.csv"
    frame.to_csv(path, index=False)
    return path


def export_best(study: optuna.Study, run_dir: Path) -> Path | None:
    """Export the most accurate front member with a block as ``best_block.py``."""
    from gcsearch import export, report

    frame = report.frame_from_study(study)
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
        [float(row[c]) for c in row.index if c.startswith("metric.top1.s") and row[c] == row[c]])
    attrs = study.user_attrs
    meta = {"accuracy": {"top1_mean": mean, "top1_ci95": None if half != half else half,
                         "n": n, "epochs": int(row["fidelity.epochs"])},
            "cost": {k: int(row[f"cost.{k}"]) for k in ("params", "macs", "block_params",
                                                         "block_macs")},
            "source": {"run": str(run_dir), "study": study.study_name, "trial": int(row["trial"])},
            **{k: attrs[k] for k in ("backbone", "task", "input_shape", "min_hidden")
               if k in attrs}}
    written = export.export_candidate(Candidate.parse(str(row["spec.id"])),
                                      run_dir / "best_block.py", meta=meta)
    return written["module"]


def search(space: Space, run_dir: Path | str | None = None, *, study_name: str | None = None,
           storage: str | None = None, resume: bool = False, address: str | None = None,
           device: str = "auto", smoke: bool = False, executor: Any = None,
           faults: Mapping[str, str] | None = None, max_retries: int = 3,
           parallel: int | None = None,
           progress: bool = True, export: bool = True, console: Any = None) -> Outcome:
    """Run (or resume) the search a space describes; see the module docstring.

    ``executor`` replaces the Ray executor (``gcsearch.search.local``); ``faults`` maps
    candidate ids to a test fault (``nan``, ``kill-once:<marker>``); ``GCSEARCH_FAULTS`` (JSON)
    does the same from the environment.
    """
    started = time.time()
    run_dir = Path(run_dir or Path("runs") / space.name)
    if resume and storage is None and not (run_dir / STORAGE_FILE).is_file():
        raise UserError(f"--resume: {run_dir} holds no {STORAGE_FILE} (run without --resume "
                        "to start, or point --run-dir/--storage at the search to continue)")
    if executor is None and device == "cuda" and space.search.gpus_per_trial <= 0:
        raise UserError("--device cuda: trials hold no GPU (allowed: --gpus-per-trial > 0, "
                        "e.g. 1 or 0.25, or --device auto/cpu)")
    run_dir.mkdir(parents=True, exist_ok=True)
    name = study_name or space.name
    faults = dict(faults or json.loads(os.environ.get("GCSEARCH_FAULTS", "{}") or "{}"))
    budget, input_shape, num_classes = _resolve_budget(space, smoke)
    max_epochs = int(budget["epochs"])
    rungs = space.fidelity.rungs(max_epochs)
    n_trials = space.n_trials()
    attrs = {
        "objectives": list(space.objectives), "space": space.to_dict(),
        "backbone": space.backbone, "task": space.task, "input_shape": list(input_shape),
        "num_classes": num_classes, "min_hidden": space.min_hidden, "budget": budget,
        "seeds": space.search.seeds, "sampler": space.search.sampler,
        "fidelity": {**space.fidelity.to_dict(), "rungs": list(rungs)},
        "gcsearch_version": _versions()["gcsearch"], "versions": _versions(),
        "fingerprint": space_fingerprint(space, budget), "smoke": smoke,
    }
    store, where = open_storage(run_dir, storage)
    with driver_lock(run_dir):
        study = open_study(space, store, where, name, resume, make_sampler(space, n_trials), attrs)
        marked = mark_dead_driver_trials(study) if resume else 0
        (run_dir / "space.resolved.toml").write_text(space.to_toml())
        threads = max(1, int(space.search.cpus_per_trial))
        own_executor = executor is None
        if progress:  # the first line, before Ray's start-up (seconds) begins
            from rich.console import Console

            console = console or Console()
            starting(console, f"{space.name}: {n_trials} trials x "
                              f"{space.search.seeds} seed(s), task {space.task}, "
                              f"{space.backbone}; " + (
                                  "custom executor" if not own_executor
                                  else f"joining Ray at {address}" if address
                                  else "starting Ray (local)"))
        ray_t0 = time.perf_counter()
        if executor is None:
            from gcsearch.search.executor import RayExecutor

            try:
                executor = RayExecutor(
                    run_dir, address=address,
                    parallel=parallel or (None if address else space.search.parallel),
                    cpus_per_trial=space.search.cpus_per_trial,
                    gpus_per_trial=space.search.gpus_per_trial, rungs=rungs,
                    eta=space.fidelity.eta, max_retries=max_retries,
                    preload=_preload_rungs(study, space, rungs) if resume else ())
            except UserError:
                if not resume and not study.trials:  # leave no empty study behind
                    optuna.delete_study(study_name=name, storage=store)
                raise
        ray_start_s = time.perf_counter() - ray_t0
        if progress and own_executor:
            console.print(f"Ray ready in {ray_start_s:.1f}s", highlight=False)
        refs = len(space.references())
        prog = Progress(title=f"{space.name} ({where})", total=n_trials + refs,
                        parallel=int(executor.parallel), objectives=list(space.objectives),
                        seeds=space.search.seeds, max_epochs=max_epochs, rungs=tuple(rungs))
        display = Display(prog, console=console, enabled=progress)
        if progress and marked:
            display.console.print(f"resume: {marked} trial(s) of the dead driver marked failed; "
                                  "their candidates will be asked again")
        driver = Driver(space, study, executor, budget=budget, device=device, rungs=rungs,
                        faults=faults, display=display, n_trials=n_trials, threads=threads)
        ref_keys = {driver.key(c) for c in space.references()}
        networks = len({driver.key(c) for c in space.candidates()} - ref_keys)
        prog.total = len(ref_keys) + min(n_trials, networks)  # a network trains once
        for t in driver.finished.values():  # a resumed search starts from its record
            status = t.user_attrs.get("status")
            if status == "complete":
                prog.done += 1
            elif status == "pruned":
                prog.pruned += 1
            elif status == "failed":
                prog.failed += 1
        cluster = executor.describe()
        try:
            with _sigterm_as_interrupt(), display:
                loop_start = time.perf_counter()
                try:
                    driver.run()
                except KeyboardInterrupt:
                    driver.abandon("interrupted")
                    write_results(study, run_dir)
                    display.console.print(
                        f"interrupted: resume with `gcsearch search --space {space.path} "
                        f"--run-dir {run_dir} --resume`")
                    raise
                loop_s = time.perf_counter() - loop_start
        finally:
            decisions = executor.rung_decisions() if rungs else []
            ray_t0 = time.perf_counter()
            if own_executor:
                executor.shutdown()
            ray_stop_s = time.perf_counter() - ray_t0
        files: dict[str, Path | str] = {"storage": where,
                                        "config": run_dir / "space.resolved.toml"}
        csv = write_results(study, run_dir)
        if csv:
            files["results"] = csv
        if export:
            best = export_best(study, run_dir)
            if best:
                files["best_block"] = best
        outcome = Outcome(study, run_dir, _counts(study), time.time() - started,
                          driver.job_seconds, driver.epochs_trained, loop_s, driver.driver_s,
                          files)
        record = {"command": sys.argv, "space": space.to_dict(), "budget": budget,
                  "cluster": cluster, "versions": attrs["versions"], "counts": outcome.counts,
                  "elapsed_s": outcome.elapsed_s, "job_seconds": outcome.job_seconds,
                  "epochs_trained": outcome.epochs_trained, "loop_s": outcome.loop_s,
                  "driver_s": outcome.driver_s,
                  "ray_start_s": ray_start_s, "ray_shutdown_s": ray_stop_s,
                  "rung_decisions": decisions,
                  "storage": where, "study": name}
        (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        files["record"] = run_dir / "run.json"
    return outcome


# ------------------------------------------------------------------------------ CLI
def _check_flags(args: Any) -> None:
    """Flag values a user can get wrong -> one-line UserError naming the allowed values."""
    n = getattr(args, "n_trials", None)
    if n is not None and n != "all" and (not str(n).isdigit() or int(n) < 1):
        raise UserError(f"--n-trials: {n!r} is not allowed (allowed: 'all' or integers >= 1)")
    for flag, lo in (("seeds", 1), ("parallel", 1), ("eta", 2), ("max_retries", 0)):
        value = getattr(args, flag, None)
        if value is not None and value < lo:
            raise UserError(f"--{flag.replace('_', '-')}: {value} is out of range "
                            f"(allowed: integers >= {lo})")
    for flag in ("cpus_per_trial", "gpus_per_trial"):
        value = getattr(args, flag, None)
        lo_ok = value is None or (value > 0 if flag == "cpus_per_trial" else value >= 0)
        if not lo_ok or (value is not None and not math.isfinite(value)):
            raise UserError(f"--{flag.replace('_', '-')}: {value} is out of range (allowed: "
                            f"numbers {'> 0' if flag == 'cpus_per_trial' else '>= 0'})")


def _space_from_args(args: Any) -> Space:
    _check_flags(args)
    space = load_space(args.space)
    overrides: dict[str, Any] = {}
    for flag, key in (("sampler", "sampler"), ("seeds", "seeds"), ("parallel", "parallel"),
                      ("cpus_per_trial", "cpus_per_trial"), ("gpus_per_trial", "gpus_per_trial"),
                      ("eta", "eta")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "n_trials", None) is not None:
        overrides["n_trials"] = None if args.n_trials == "all" else int(args.n_trials)
    if getattr(args, "no_fidelity", False):
        overrides["enabled"] = False
    return space.with_overrides(**overrides) if overrides else space


def run_search(args: Any) -> int:
    """``gcsearch search``: run the study, then print the front and write the run directory."""
    space = _space_from_args(args)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / space.name
    outcome = search(space, run_dir, study_name=args.study_name, storage=args.storage,
                     resume=args.resume, address=args.address, device=args.device,
                     smoke=args.smoke, max_retries=args.max_retries, parallel=args.parallel)
    from rich.console import Console

    from gcsearch import report

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    c = outcome.counts
    console.print(f"search finished in {outcome.elapsed_s:.0f}s: {c['complete']} complete, "
                  f"{c['pruned']} pruned, {c['failed']} failed, {c['duplicates']} duplicates; "
                  f"{outcome.epochs_trained} epochs trained", highlight=False)
    try:
        rep = report.build_report(run_dir, args.study_name,
                                  frame=report.frame_from_study(outcome.study))
        report.render_terminal(rep, console)
    except UserError as exc:
        console.print(str(exc), highlight=False)
    for label, path in outcome.files.items():
        console.print(f"{label}: {path}", highlight=False)
    return 0


__all__ = ["Driver", "Outcome", "objective_values", "run_search", "search"]
