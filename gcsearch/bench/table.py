"""The exhaustive table: every distinct network of a space trained under n seeds, once.

``gcsearch bench search`` replays search strategies against this table (as tabular NAS
benchmarks such as NATS-Bench do), so its figures are exact functions of it. The table is one
JSON-lines file: a header (what was trained, the command that rebuilds it, a fingerprint of
task, budget, backbone, networks and seeds) and one line per (network, seed) with the full
``TrialResult`` including its per-epoch history. Building appends line by line, so an
interrupted build resumes where it stopped; reading refuses a table that is incomplete or
was built for another task, budget, backbone or space.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcsearch.errors import UserError
from gcsearch.pool import process_pool
from gcsearch.result import TrialResult
from gcsearch.search.local import InlineExecutor
from gcsearch.search.space import Space
from gcsearch.search.trial import Job, resolve_budget
from gcsearch.spec import Candidate

FORMAT = 1


def networks(space: Space) -> dict[str, list[str]]:
    """Network key -> the candidate ids (references first, then the space) that build it."""
    from gcsearch.search.sampling import network_key

    out: dict[str, list[str]] = {}
    for cand in [*space.references(), *space.candidates()]:
        out.setdefault(network_key(cand, space.backbone, space.min_hidden), []).append(cand.id)
    return out


def fingerprint(space: Space, budget: Mapping[str, Any], seeds: Sequence[int]) -> str:
    """What a table's figures depend on: task, data, backbone, budget, objectives, networks,
    seeds. A table with another fingerprint is refused."""
    key = {
        "task": space.task,
        "data": space.data,
        "backbone": space.backbone,
        "min_hidden": space.min_hidden,
        "budget": dict(budget),
        "networks": sorted(networks(space)),
        "seeds": list(seeds),
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: Budget fields added after tables were first written, with the value every table written
#: before the field existed was trained under: such a table reads as having recorded it.
LEGACY_BUDGET: dict[str, Any] = {"optimizer": "sgd"}


def mismatch(
    header: Mapping[str, Any], space: Space, budget: Mapping[str, Any], seeds: Sequence[int]
) -> list[str]:
    """What differs between the table a header describes and the one ``space`` asks for, as
    ``"budget.lr (table 0.2, asked 0.1)"`` lines; empty when the table serves.

    Compared field by field rather than by fingerprint, so a table stays loadable while its
    recorded budget is the one asked for, whatever the task's defaults become later."""
    recorded = {**LEGACY_BUDGET, **(header.get("budget") or {})}
    asked = {
        "task": space.task,
        "data": space.data,
        "backbone": space.backbone,
        "min_hidden": space.min_hidden,
        "seeds": list(seeds),
        **{f"budget.{k}": v for k, v in budget.items()},
    }
    have = {k: header.get(k) for k in ("task", "data", "backbone", "min_hidden", "seeds")}
    have |= {f"budget.{k}": v for k, v in recorded.items()}
    out = [
        f"{k} (table {have.get(k)!r}, asked {v!r})" for k, v in asked.items() if have.get(k) != v
    ]
    out += [f"{k} (table {v!r}, not asked)" for k, v in have.items() if k not in asked]
    if sorted(header.get("networks") or {}) != sorted(networks(space)):
        out.append("set of networks (the space's axes or references changed)")
    return out


#: The cost fields every table row carries.
COST_KEYS = ("params", "macs", "block_params", "block_macs")


@dataclass
class Table:
    """A complete exhaustive table: ``results[key][seed]`` is a ``TrialResult`` dict."""

    header: dict[str, Any]
    results: dict[str, dict[int, dict[str, Any]]]

    @property
    def networks(self) -> dict[str, list[str]]:
        return dict(self.header["networks"])

    @property
    def seeds(self) -> list[int]:
        return list(self.header["seeds"])

    def key_of(self, candidate_id: str) -> str:
        for key, ids in self.header["networks"].items():
            if candidate_id in ids:
                return key
        raise KeyError(candidate_id)

    def costs(self) -> dict[str, dict[str, int]]:
        """``{network key: {params, macs, block_params, block_macs}}`` (counted before training,
        so every seed's row holds the same figures)."""
        return {
            key: {k: int(next(iter(seeds.values()))[k]) for k in COST_KEYS}
            for key, seeds in self.results.items()
        }

    def by_candidate(self) -> dict[str, dict[int, dict[str, Any]]]:
        """``{candidate_id: {seed: result}}`` for every candidate id (shared networks share)."""
        return {
            cid: self.results[key] for key, ids in self.header["networks"].items() for cid in ids
        }


def _header(space: Space, seeds: Sequence[int], command: str) -> dict[str, Any]:
    budget, shape, classes = resolve_budget(space)
    return {
        "kind": "gcsearch-exhaustive-table",
        "format": FORMAT,
        "space": str(space.path),
        "space_name": space.name,
        "task": space.task,
        "data": space.data,
        "backbone": space.backbone,
        "min_hidden": space.min_hidden,
        "input_shape": list(shape),
        "num_classes": classes,
        "budget": budget,
        "objectives": list(space.objectives),
        "references": list(space.reference_ids),
        "seeds": list(seeds),
        "networks": networks(space),
        "fingerprint": fingerprint(space, budget, seeds),
        "command": command,
    }


def _read_lines(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    header, rows = None, []
    with path.open() as fh:
        for n, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: ignored, trained again
                continue
            if n == 0:
                header = item
            else:
                rows.append(item)
    return header, rows


def _job(space: Space, budget: Mapping[str, Any], cand: Candidate, seed: int) -> Any:
    from gcsearch.search.trial import Job

    return Job(
        trial=0,
        candidate=cand.to_dict(),
        seed=seed,
        task=space.task,
        data=space.data,
        budget=dict(budget),
        backbone=space.backbone,
        min_hidden=space.min_hidden,
        device="cpu",
        threads=1,
        objectives=tuple(space.objectives),
    )


def _run(job: Any) -> dict[str, Any]:
    from gcsearch.search.trial import run_job

    return run_job(job)


def build_table(
    space: Space,
    path: Path,
    seeds: Sequence[int],
    *,
    parallel: int = 1,
    command: str | None = None,
    log: Any = print,
) -> Table:
    """Train every network of ``space`` under ``seeds`` at the full budget into ``path``.

    Resumes a partial file with the same fingerprint; refuses one with another.
    """
    command = command or (
        "gcsearch bench search --build-table --space "
        f"{shlex.quote(str(space.path))} --table {shlex.quote(str(path))} "
        f"--table-seeds {len(seeds)}"
    )
    header = _header(space, seeds, command)
    done: set[tuple[str, int]] = set()
    if path.is_file():
        old, rows = _read_lines(path)
        if not old or old.get("fingerprint") != header["fingerprint"]:
            raise UserError(
                f"{path}: a table for another task/budget/backbone/space "
                f"(fingerprint {old and old.get('fingerprint')} != "
                f"{header['fingerprint']}); remove it or choose another --table"
            )
        done = {(r["key"], int(r["seed"])) for r in rows if r["result"].get("status") == "complete"}
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header) + "\n")
    by_id = {c.id: c for c in [*space.references(), *space.candidates()]}
    todo = [
        (key, by_id[ids[0]], s)
        for key, ids in header["networks"].items()
        for s in seeds
        if (key, s) not in done
    ]
    log(
        f"table {path}: {len(header['networks'])} networks x {len(seeds)} seeds, "
        f"{len(done)} done, {len(todo)} to train ({parallel} at once)"
    )
    budget = header["budget"]
    with process_pool(parallel) as ex:
        pending = {ex.submit(_run, _job(space, budget, cand, s)): (key, s) for key, cand, s in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                key, s = pending.pop(fut)
                result = fut.result()
                with path.open("a") as fh:
                    fh.write(json.dumps({"key": key, "seed": s, "result": result}) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                log(
                    f"  {key} seed {s}: {result.get('status')} top1 {result.get('top1')} "
                    f"({len(pending)} left)"
                )
    return load_table(path, space, seeds)


def load_table(path: Path, space: Space, seeds: Sequence[int] | None = None) -> Table:
    """The table at ``path``, refused unless complete and built for this space and budget."""
    if not path.is_file():
        raise UserError(
            f"no exhaustive table at {path} (build it with `gcsearch bench search "
            f"--build-table --space {space.path} --table {path}`)"
        )
    header, rows = _read_lines(path)
    if not header or header.get("kind") != "gcsearch-exhaustive-table":
        raise UserError(f"{path} is not an exhaustive table")
    seeds = list(seeds) if seeds is not None else list(header.get("seeds") or [])
    budget, _, _ = resolve_budget(space)
    differs = mismatch(header, space, budget, seeds)
    if differs:
        raise UserError(
            f"{path}: built for another {'; '.join(differs)} (set the space's [budget] to the "
            f"table's, or rebuild it with `{header.get('command')}`)"
        )
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["result"].get("status") == "complete":
            results.setdefault(r["key"], {})[int(r["seed"])] = r["result"]
    missing = [
        f"{k}#s{s}" for k in header["networks"] for s in seeds if s not in results.get(k, {})
    ]
    if missing:
        raise UserError(
            f"{path}: incomplete table ({len(missing)} of "
            f"{len(header['networks']) * len(seeds)} trainings missing, e.g. "
            f"{missing[0]}); finish it with `{header.get('command')}`"
        )
    return Table(header, results)


class TableExecutor(InlineExecutor):
    """The executor protocol answered from an exhaustive table's recorded full-budget results
    (``{candidate_id: {seed: result}}``), as tabular NAS benchmarks (NAS-Bench-201,
    NATS-Bench) replay recorded learning curves: a rung run (``Job.stop_at``) is the recorded
    history cut at the rung, since a run stopped there and a full run under one seed and budget
    follow the same curve up to it (the learning-rate schedule depends on the budget, not on
    where the run stops), and a promotion that resumes is charged the epochs after its rung.

    ``epochs_trained`` and ``seconds_trained`` count what the replay charged;
    ``interrupt_after`` raises ``KeyboardInterrupt`` after that many answered jobs (to test
    interrupt and resume).
    """

    def __init__(
        self,
        table: Mapping[str, Mapping[int, Mapping[str, Any]]],
        *,
        parallel: int = 1,
        interrupt_after: int | None = None,
    ) -> None:
        super().__init__(parallel=parallel)
        self.results = table
        self.epochs_trained = 0
        self.seconds_trained = 0.0
        self.answered = 0
        self.interrupt_after = interrupt_after

    def submit(self, job: Job) -> None:
        self._queue.extend(job.parts())  # a fused job: each seed's recorded result

    def wait(self, timeout: float) -> list[tuple[Job, TrialResult]]:
        if not self._queue:
            return []
        if self.interrupt_after is not None and self.answered >= self.interrupt_after:
            raise KeyboardInterrupt
        job = self._queue.popleft()
        try:
            full = copy.deepcopy(dict(self.results[job.candidate_id][job.seed]))
        except KeyError:
            raise KeyError(f"no recorded result for {job.key}") from None
        history = list(full.get("history") or [])
        if job.stop_at is not None and full.get("status") == "complete":
            history = [h for h in history if int(h["epoch"]) <= job.stop_at]
            last = history[-1]
            full.update(
                status="pruned",
                reason=f"stopped after epoch {job.stop_at}",
                top1=last.get("val_top1"),
                loss=last.get("val_loss"),
                epochs=int(last["epoch"]),
            )
        full["history"] = history
        full["candidate_id"] = job.candidate_id
        # a promotion resumed from its rung (as the driver runs it) is charged the epochs after
        charged = [h for h in history if not job.resume_state or int(h["epoch"]) > job.start_epoch]
        if job.resume_state:
            full.setdefault("env", {})["resumed"] = job.start_epoch
        self.epochs_trained += len(charged)
        self.seconds_trained += sum(float(r.get("seconds") or 0.0) for r in charged)
        self.answered += 1
        return [(job, TrialResult.from_dict(full))]


__all__ = ["Table", "TableExecutor", "build_table", "fingerprint", "load_table", "networks"]
