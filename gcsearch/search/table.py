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

import dataclasses
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
from gcsearch.search.space import Space
from gcsearch.spec import Candidate

FORMAT = 1


def resolve_budget(
    space: Space, smoke: bool = False
) -> tuple[dict[str, Any], tuple[int, ...], int]:
    """Full budget dict, input shape (at the budget's ``image_size``: the shape every cost is
    counted at) and number of classes of the space's task, once it can read its data."""
    from gcsearch.search.space import space_task
    from gcsearch.search.trial import SMOKE_BUDGET, make_budget

    task = space_task(space)
    overrides = {**space.budget, **(SMOKE_BUDGET if smoke else {})}
    budget = make_budget(task, overrides)
    return dataclasses.asdict(budget), tuple(task.shape_at(budget)), int(task.num_classes)


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
    want = fingerprint(space, budget, seeds)
    if header.get("fingerprint") != want:
        raise UserError(
            f"{path}: built for another task/budget/backbone/space or seeds "
            f"(fingerprint {header.get('fingerprint')} != {want}); rebuild with "
            f"`{header.get('command')}`"
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


__all__ = ["Table", "build_table", "fingerprint", "load_table", "networks", "resolve_budget"]
