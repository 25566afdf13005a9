"""``gcsearch bench storage``: how many trials a study storage takes per second, and from how
many concurrent drivers on.

Each driver is its own process (as separate ``gcsearch search --resume`` drivers on one study
are) and runs the storage side of the driver's loop for ``--trials`` trials: ``ask`` (four
categorical parameters, random sampler, so the sampler's own cost stays out), the four
attributes the driver writes when it launches a candidate (candidate, id, role, owner), then
the six it writes when the candidate finishes (per-seed results with a per-epoch history of the
size a 3-seed, 10-epoch candidate has, status, reason, cost, fidelity, env) and ``tell``. All
drivers start together (a barrier) on one study. Reported per storage and number of drivers:

* **trials/s** - trials told by all drivers together per second of wall time;
* **per-trial overhead** - mean seconds one driver spent in storage calls per trial;
* **errors** - storage calls that raised (e.g. SQLite ``database is locked``), retried;
* **lost** - trials told but not COMPLETE in the study afterwards (must be 0);
* **scan** - milliseconds per 100 trials to read the whole study once (``get_trials``: what a
  resume, a driver's sync with other drivers, and a report do), median of 3;
* **scales to** - the largest driver count whose trials/s still rose by at least 10 %.

PostgreSQL: ``--postgres URL``, else a throwaway durable server on 127.0.0.1
(``gcsearch.testing.postgres``; ``--postgres nofsync``: the same without fsync, to see what
durable commits cost). Figures print as a table and go to ``--out`` (a JSON file,
default ``runs/bench-storage.json``).
On a machine with fewer cores than drivers the drivers' own CPU time limits scaling too: the
core count is printed with the figures.

Example::

    gcsearch bench storage --drivers 1,2,4,8 --trials 100
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from gcsearch.errors import UserError, mask_secrets

STORAGES = ("sqlite", "journal", "postgresql")
SCALE_GAIN = 1.10


def _payload(seeds: int = 3, epochs: int = 10) -> list[dict[str, Any]]:
    """Per-seed results shaped like the driver's ``results`` attribute."""
    rng = random.Random(0)
    return [
        {
            "candidate_id": "att-r16ln-add@after_1x1:c3c4c5",
            "seed": s,
            "status": "complete",
            "top1": rng.uniform(50, 90),
            "loss": rng.uniform(0.3, 1.5),
            "epochs": epochs,
            "params": 272474,
            "macs": 41123456,
            "block_params": 1234,
            "block_macs": 5678,
            "wall_s": 12.3,
            "train_s": 11.0,
            "images_per_s": 4000.0,
            "history": [
                {
                    "epoch": e,
                    "val_top1": rng.uniform(40, 90),
                    "val_loss": 1.0,
                    "train_loss": 1.1,
                    "seconds": 1.2,
                }
                for e in range(1, epochs + 1)
            ],
            "env": {"host": "node-1", "device": "cuda", "gpu": "NVIDIA H100", "threads": 2},
        }
        for s in range(seeds)
    ]


def _open(kind: str, where: str) -> Any:
    from gcsearch.search.storage import open_storage

    if kind == "journal":
        storage, _ = open_storage(Path(where).parent, where)
    elif kind == "sqlite":
        storage, _ = open_storage(Path(where).parent, None)
    else:
        storage, _ = open_storage(Path(tempfile.gettempdir()), where)
    return storage


def _call(fn: Any, errors: list[int], tries: int = 20) -> Any:
    """A storage call, retried on the errors concurrent writers can meet (locked SQLite)."""
    for attempt in range(tries):
        try:
            return fn()
        except Exception:  # counted and retried; re-raised on the last try
            errors[0] += 1
            if attempt == tries - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    return None


def _driver(kind: str, where: str, study_name: str, trials: int, barrier: Any, out: Any) -> None:
    """One driver process: ``trials`` trials through the storage, timed."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = _open(kind, where)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=os.getpid()),
    )
    results, owner, errors = _payload(), uuid.uuid4().hex[:12], [0]
    barrier.wait()
    start = time.perf_counter()
    spent = 0.0
    for _ in range(trials):
        tick = time.perf_counter()
        trial = _call(study.ask, errors)
        for name, values in (
            ("pooling", ["att", "avg"]),
            ("transform", ["1x1", "bottleneck"]),
            ("fusion", ["add", "mul"]),
            ("stages", ["c3", "c4", "c5"]),
        ):
            trial.suggest_categorical(name, values)
        for key, value in (
            ("candidate", {"id": "x", "block": {"pooling": "att"}}),
            ("candidate_id", "x"),
            ("role", "search"),
            ("driver", owner),
        ):
            _call(lambda k=key, v=value, t=trial: t.set_user_attr(k, v), errors)
        spent += time.perf_counter() - tick
        tick = time.perf_counter()
        for key, value in (
            ("results", results),
            ("status", "complete"),
            ("reason", ""),
            ("cost", {"params": 1, "macs": 2}),
            ("fidelity", {"epochs": 10}),
            ("env", results[0]["env"]),
        ):
            _call(lambda k=key, v=value, t=trial: t.set_user_attr(k, v), errors)
        _call(lambda t=trial: study.tell(t, [random.random(), 1.0, 2.0]), errors)
        spent += time.perf_counter() - tick
    out.put(
        {"wall": time.perf_counter() - start, "spent": spent, "trials": trials, "errors": errors[0]}
    )


def measure(kind: str, where: str, drivers: int, trials: int) -> dict[str, Any]:
    """Run ``drivers`` driver processes on a fresh study in ``where``; their figures."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"bench-{kind}-{drivers}-{uuid.uuid4().hex[:6]}"
    optuna.create_study(
        study_name=name, storage=_open(kind, where), directions=["maximize", "minimize", "minimize"]
    )
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(drivers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_driver, args=(kind, where, name, trials, barrier, out))
        for _ in range(drivers)
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=300)
    start = time.perf_counter()
    rows = [out.get(timeout=1800) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join(timeout=60)
    told = sum(r["trials"] for r in rows)
    study = optuna.load_study(study_name=name, storage=_open(kind, where))
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    scans = []
    for _ in range(3):  # reading the whole study (what resume, sync and reports do)
        tick = time.perf_counter()
        study.get_trials(deepcopy=False)
        scans.append(time.perf_counter() - tick)
    return {
        "storage": kind,
        "drivers": drivers,
        "trials": told,
        "complete": complete,
        "wall_s": wall,
        "trials_per_s": told / wall,
        "overhead_ms": 1000 * statistics.mean(r["spent"] / r["trials"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "scan_ms_per_100_trials": 1e5 * statistics.median(scans) / max(1, told),
    }


def scales_to(rows: list[dict[str, Any]]) -> int:
    """The largest driver count up to which trials/s kept rising by ``SCALE_GAIN``."""
    rows = sorted(rows, key=lambda r: r["drivers"])
    best = rows[0]["drivers"]
    for prev, row in itertools.pairwise(rows):
        if row["trials_per_s"] < SCALE_GAIN * prev["trials_per_s"]:
            break
        best = row["drivers"]
    return best


@contextlib.contextmanager
def _where(kind: str, root: Path, postgres: str | None) -> Any:
    if kind == "sqlite":
        yield str(root / "study.db")
    elif kind == "journal":
        yield str(root / "study.log")
    elif postgres and postgres != "nofsync":
        yield postgres
    else:
        from gcsearch.testing.postgres import throwaway_postgres

        with throwaway_postgres(durable=postgres != "nofsync") as url:
            yield url


def run_bench_storage(args: argparse.Namespace) -> int:
    """Entry point for ``gcsearch bench storage``."""
    from rich.console import Console
    from rich.table import Table

    smoke = bool(getattr(args, "smoke", False))
    console = Console()
    if not console.is_terminal:
        console = Console(width=130)
    drivers = _ints(getattr(args, "drivers", None) or ("1,2" if smoke else "1,2,4,8"), "--drivers")
    trials = int(getattr(args, "trials", None) or (5 if smoke else 100))
    kinds = [
        k.strip()
        for k in (getattr(args, "storages", None) or ",".join(STORAGES)).split(",")
        if k.strip()
    ]
    bad = [k for k in kinds if k not in STORAGES]
    if bad or trials < 1:
        raise UserError(
            f"--storages: {', '.join(bad)} not known (allowed: "
            f"{', '.join(STORAGES)}); --trials must be >= 1"
        )
    out_file = Path(getattr(args, "out", None) or Path("runs") / "bench-storage.json")
    figures: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
        "trials_per_driver": trials,
        "load_avg": list(os.getloadavg()),
        "storages": {},
    }
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"gcsearch-bench-{kind}-") as tmp:
            try:
                with _where(kind, Path(tmp), getattr(args, "postgres", None)) as where:
                    rows = []
                    for n in drivers:
                        # a fresh file per point for the file storages
                        point = where
                        if kind != "postgresql":
                            point = str(Path(tmp) / f"{n}" / Path(where).name)
                            Path(point).parent.mkdir(parents=True, exist_ok=True)
                        rows.append(measure(kind, point, n, trials))
                        console.print(
                            f"{kind:10s} {n} driver(s): {rows[-1]['trials_per_s']:.1f} trials/s",
                            highlight=False,
                        )
            except Exception as exc:  # an unavailable storage is a row
                figures["storages"][kind] = {
                    "error": mask_secrets(f"{type(exc).__name__}: {exc}")[:300]
                }
                continue
            figures["storages"][kind] = {"rows": rows, "scales_to": scales_to(rows)}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(figures, indent=2) + "\n")

    t = Table(
        title=f"gcsearch bench storage ({trials} trials per driver, "
        f"{os.cpu_count()} CPUs, load {figures['load_avg'][0]:.1f})",
        title_justify="left",
    )
    for col in (
        "storage",
        "drivers",
        "trials/s",
        "per-trial overhead (ms)",
        "errors",
        "lost",
        "scan ms/100 trials",
        "scales to",
    ):
        t.add_column(col, justify="left" if col == "storage" else "right")
    for kind, fig in figures["storages"].items():
        if "error" in fig:
            t.add_row(kind, "-", "-", "-", "-", "-", "-", f"unavailable: {fig['error'][:60]}")
            continue
        for i, r in enumerate(fig["rows"]):
            t.add_row(
                kind if i == 0 else "",
                str(r["drivers"]),
                f"{r['trials_per_s']:.1f}",
                f"{r['overhead_ms']:.1f}",
                str(r["errors"]),
                str(r["trials"] - r["complete"]),
                f"{r['scan_ms_per_100_trials']:.0f}",
                f"{fig['scales_to']} driver(s)" if i == 0 else "",
            )
    console.print(t)
    console.print(f"figures: {out_file}", highlight=False)
    return 0


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = sorted({int(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1:
        raise UserError(f"{flag}: {text!r} is not a list of driver counts >= 1 (e.g. 1,2,4,8)")
    return values


__all__ = ["measure", "run_bench_storage", "scales_to"]
