"""Search-space files: TOML -> a validated, frozen ``Space``.

A space names which values each axis of the GCNet framework may take (pooling, transform,
ratio, norm, fusion, position, stages, density), the reference rows evaluated beside the search
(presets such as ``gc``/``se`` and always the ``none`` baseline), the task, budget and backbone,
the objectives, seeds per candidate and the search settings. ``[[axes]]`` may be repeated: the
space is then the union of small grids (the paper's one-factor-at-a-time ablation rows),
deduplicated by canonical id. Axes a grid leaves out take the GC block's values
(``att-r16ln-add@after_1x1:c3c4c5``).

Any problem in a file is one line, ``<file>: <key>: <problem> (allowed: ...)``, raised as
``UserError`` (exit code 2). Example::

    space = load_space("spaces/quick.toml")
    print(len(space.candidates()), [c.id for c in space.references()])
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import math
import tomllib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gcsearch.errors import InputWarning, UserError
from gcsearch.spec import (
    AXES,
    METRICS,
    PRESETS,
    RATIOS,
    SEARCH_STAGES,
    STAGES,
    Candidate,
    Objective,
    Placement,
    block_specs,
    paper_placement,
    stage_sets,
)
from gcsearch.tasks import (
    BUDGET_CHOICES,
    COMPILE_MODES,
    DEFAULT_TASK,
    FUSE_MODES,
    IMAGE_SIZE_ALLOWED,
    Budget,
    Task,
    file_tasks,
    open_task,
)

SAMPLERS = ("ehvi", "nsga2", "tpe", "random", "grid")
#: What ehvi's top-1 model starts from (``[search] prior``): the tables' effects, or nothing
PRIORS = ("tables", "off")
#: Longest space name in UTF-8 bytes: it names the run directory (a file-name component holds
#: 255 bytes) and the study; bytes, not characters, are what file systems and Ray's socket
#: paths count.
MAX_NAME_BYTES = 128
#: Largest space file read: shipped ones are a few kB; /dev/zero or a data file is a mistake.
MAX_FILE_BYTES = 1024**2
ALL_SUBSETS = "all-subsets"

#: Per-axis defaults (the GC block at the spec's default placement) and allowed values, both
#: read from the axis registry ``gcsearch.spec.AXES``.
AXIS_DEFAULTS: dict[str, tuple[Any, ...]] = {
    name: (("".join(a.default),) if name == "stages" else (a.default,)) for name, a in AXES.items()
}
AXIS_ALLOWED: dict[str, tuple[Any, ...]] = {n: a.values for n, a in AXES.items() if n != "stages"}
_TOP_KEYS = (
    "name",
    "description",
    "objectives",
    "task",
    "budget",
    "axes",
    "references",
    "search",
    "fidelity",
)


def objective(text: str) -> tuple[str, str]:
    """``"top1:max"`` -> ``("top1", "max")``, parsed by ``spec.Objective`` (the registry)."""
    obj = Objective.parse(str(text))
    return obj.metric, obj.direction


def _join(values: tuple[Any, ...] | list[Any]) -> str:
    return ", ".join(str(v) for v in values)


@dataclass(frozen=True)
class Axes:
    """One grid of the space: the values each axis may take (every tuple non-empty)."""

    name: str = "main"
    pooling: tuple[str, ...] = AXIS_DEFAULTS["pooling"]
    transform: tuple[str, ...] = AXIS_DEFAULTS["transform"]
    ratio: tuple[int, ...] = AXIS_DEFAULTS["ratio"]
    norm: tuple[str, ...] = AXIS_DEFAULTS["norm"]
    fusion: tuple[str, ...] = AXIS_DEFAULTS["fusion"]
    position: tuple[str, ...] = AXIS_DEFAULTS["position"]
    stages: tuple[str, ...] = AXIS_DEFAULTS["stages"]
    density: tuple[str, ...] = AXIS_DEFAULTS["density"]

    def candidates(self) -> list[Candidate]:
        """The grid's candidates (ratio and norm only combine with the bottleneck)."""
        blocks = block_specs(self.pooling, self.transform, self.ratio, self.norm, self.fusion)
        placements = [
            Placement(p, s, d)
            for p, s, d in itertools.product(self.position, self.stages, self.density)
        ]
        return [Candidate(block=b, placement=p) for b, p in itertools.product(blocks, placements)]

    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Axes with more than one value (the sampler's parameters); ratio/norm are conditional
        on ``transform == 'bottleneck'`` and only listed when a bottleneck is possible."""
        out: dict[str, tuple[Any, ...]] = {}
        for name in AXIS_DEFAULTS:
            if name in ("ratio", "norm") and "bottleneck" not in self.transform:
                continue
            values = getattr(self, name)
            if len(values) > 1:
                out[name] = values
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: list(getattr(self, k)) for k in AXIS_DEFAULTS}}


@dataclass(frozen=True)
class SearchSettings:
    """How the study runs: sampler, trial budget, parallelism and resources per trial."""

    sampler: str = "ehvi"
    n_trials: int | None = None  # None: every candidate of the space
    seeds: int = 1
    parallel: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    population: int | None = None  # NSGA-II population; None: chosen from n_trials
    sampler_seed: int = 0
    # validation after every k-th epoch too, for learning curves; 0: only where it is read
    # (the rung epochs and the last)
    validate_every: int = 0
    # a candidate's seeds trained as one fused network (tasks.fused): off, on, or auto (where
    # `gcsearch bench fuse --record` measured it faster on this device)
    fuse_seeds: str = "off"
    # the training step through torch.compile (tasks.COMPILE_MODES); off: eager
    compile: str = "off"
    # reference rows train more seeds, a look at a time, until their top-1 95 % interval is
    # at most ± this many points (0: off) or they hold ``reference_max_seeds`` seeds
    reference_ci: float = 0.0
    reference_max_seeds: int = 30
    # ehvi's top-1 model starts from the axis-value effects measured on the project's
    # exhaustive tables ("tables", search.prior) or from a constant ("off")
    prior: str = "tables"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def validate_at(self, max_epochs: int, rungs: Sequence[int]) -> tuple[int, ...]:
        """The epochs a trial validates at: its rungs, its last, and every ``validate_every``-th
        (training between them is the same; only what is measured changes)."""
        k = self.validate_every
        every = range(k, max_epochs + 1, k) if k else ()
        return tuple(sorted({*rungs, max_epochs, *every}))


@dataclass(frozen=True)
class Fidelity:
    """Successive-halving rungs by epochs: rungs at min_epochs * eta**k below the full budget.

    Off by default: on the proxy budgets here (6 epochs, candidates at chance until epoch 2)
    it saves little where its first rung is past chance (``gcsearch bench search``,
    docs/search-benchmark.md); a promoted candidate continues its rung run's training state.
    """

    enabled: bool = False
    eta: int = 3
    min_epochs: int = 2
    #: a slot left idle at a rung's barrier (its last members still train) continues the
    #: candidate most sure to go on; the rung's decision is the same, the work is lost if not
    speculate: bool = True

    def rungs(self, max_epochs: int) -> tuple[int, ...]:
        """Epochs at which a trial is compared with its rung (empty when disabled)."""
        if not self.enabled:
            return ()
        out, e = [], self.min_epochs
        while e < max_epochs:
            out.append(e)
            e *= self.eta
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "eta": self.eta,
            "min_epochs": self.min_epochs,
            "speculate": self.speculate,
        }


@dataclass(frozen=True)
class Space:
    """A validated search space: grids of axes, reference rows, task, objectives, settings."""

    name: str
    path: str
    description: str = ""
    task: str = DEFAULT_TASK
    backbone: str = "resnet20"
    data: str | None = None
    min_hidden: int = 8
    budget: Mapping[str, Any] = field(default_factory=dict)
    grids: tuple[Axes, ...] = (Axes(),)
    reference_ids: tuple[str, ...] = ("none",)
    objectives: tuple[str, ...] = ("top1:max", "macs:min", "params:min")
    search: SearchSettings = field(default_factory=SearchSettings)
    fidelity: Fidelity = field(default_factory=Fidelity)

    def candidates(self) -> list[Candidate]:
        """Every searched candidate, in grid order, deduplicated by canonical id."""
        seen: dict[str, Candidate] = {}
        for grid in self.grids:
            for cand in grid.candidates():
                seen.setdefault(cand.id, cand)
        return list(seen.values())

    def references(self) -> list[Candidate]:
        """Reference rows (baseline first, then presets) that every search evaluates in full."""
        return [Candidate.parse(text) for text in self.reference_ids]

    def n_trials(self) -> int:
        """Distinct searched candidates the study trains (at most the size of the space)."""
        total = len(self.candidates())
        return total if self.search.n_trials is None else min(self.search.n_trials, total)

    def directions(self) -> list[str]:
        """Optuna directions ('maximize'/'minimize') in objective order."""
        return ["maximize" if objective(o)[1] == "max" else "minimize" for o in self.objectives]

    def metrics(self) -> list[str]:
        return [Objective.parse(o).metric for o in self.objectives]

    def with_overrides(self, **changes: Any) -> Space:
        """A copy with some ``search`` / ``fidelity`` / budget settings or the task's ``data``
        folder replaced (CLI flags)."""
        search = {k: changes.pop(k) for k in list(changes) if k in SearchSettings.__annotations__}
        fid = {
            k: changes.pop(k) for k in ("eta", "min_epochs", "enabled", "speculate") if k in changes
        }
        budget = changes.pop("budget", None)
        out = self
        if "data" in changes:
            data = changes.pop("data")
            if data is not None and self.task not in file_tasks():
                raise UserError(
                    f"--data: task {self.task!r} of {self.path} reads no files "
                    f"(allowed for {_join(file_tasks())})"
                )
            out = _replace(out, data=data)
        if search:
            out = _replace(out, search=_replace(out.search, **search))
        if fid:
            out = _replace(out, fidelity=_replace(out.fidelity, **fid))
        if budget is not None:
            out = _replace(out, budget={**out.budget, **budget})
        if changes:
            raise TypeError(f"unknown overrides: {sorted(changes)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (defaults filled in), as stored with the study and the run."""
        return {
            "name": self.name,
            "path": self.path,
            "description": self.description,
            "objectives": list(self.objectives),
            "task": {
                "name": self.task,
                "backbone": self.backbone,
                "data": self.data,
                "min_hidden": self.min_hidden,
            },
            "budget": dict(self.budget),
            "axes": [g.to_dict() for g in self.grids],
            "references": list(self.reference_ids),
            "search": self.search.to_dict(),
            "fidelity": self.fidelity.to_dict(),
            "counts": {"candidates": len(self.candidates()), "references": len(self.reference_ids)},
        }

    def to_toml(self) -> str:
        """The resolved config as TOML (written to the run directory as space.resolved.toml)."""
        d = self.to_dict()
        lines = [
            f"# resolved from {self.path}; {d['counts']['candidates']} candidates + "
            f"{d['counts']['references']} reference rows",
            f"name = {_toml_value(self.name)}",
            f"description = {_toml_value(self.description)}",
            f"objectives = {_toml_value(list(self.objectives))}",
            "",
        ]
        task = {k: v for k, v in d["task"].items() if v is not None}
        sections: list[tuple[str, Mapping[str, Any]]] = [
            ("[task]", task),
            ("[budget]", d["budget"]),
            ("[references]", {"include": [r for r in self.reference_ids if r != "none"]}),
            ("[search]", {k: v for k, v in d["search"].items() if v is not None}),
            ("[fidelity]", d["fidelity"]),
        ]
        sections += [("[[axes]]", g) for g in d["axes"]]
        for head, table in sections:
            lines.append(head)
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            lines.append("")
        return "\n".join(lines)


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


# ----------------------------------------------------------------------------------- loading
class _Reader:
    """Typed access to a parsed TOML table with errors that name the file and dotted key."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, problem: str, allowed: str | None = None) -> UserError:
        tail = f" (allowed: {allowed})" if allowed else ""
        return UserError(f"{self.file}: {key}: {problem}{tail}")

    def table(self, data: Any, key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a table, got {_kind(data)}", _join(allowed))
        for k in data:
            if k not in allowed:
                raise self.fail(f"{key}.{k}" if key else k, "unknown key", _join(allowed))
        return data

    def string(self, data: Any, key: str, allowed: tuple[str, ...] | None = None) -> str:
        if not isinstance(data, str):
            raise self.fail(
                key, f"expected a string, got {_kind(data)}", _join(allowed) if allowed else None
            )
        if allowed is not None and data not in allowed:
            raise self.fail(key, f"{data!r} is not allowed", _join(allowed))
        return data

    def integer(self, data: Any, key: str, lo: int, hi: int | None = None) -> int:
        rng = f"integers {lo}..{hi}" if hi is not None else f"integers >= {lo}"
        if isinstance(data, bool) or not isinstance(data, int):
            raise self.fail(key, f"expected an integer, got {_kind(data)}", rng)
        if data < lo or (hi is not None and data > hi):
            raise self.fail(key, f"{data} is out of range", rng)
        return data

    def number(self, data: Any, key: str, lo: float, lo_open: bool, hi: float) -> float:
        rng = f"numbers {'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise self.fail(key, f"expected a number, got {_kind(data)}", rng)
        value = float(data)
        if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
            raise self.fail(key, f"{data!r} is out of range", rng)
        return value

    def choices(
        self, data: Any, key: str, check: Callable[[Any, str], Any], allowed: str
    ) -> tuple[Any, ...]:
        """A non-empty list of values (a bare value counts as a one-item list), deduplicated."""
        items = data if isinstance(data, list) else [data]
        if not items:
            raise self.fail(key, "empty axis (give at least one value)", allowed)
        out: list[Any] = []
        for i, item in enumerate(items):
            value = check(item, f"{key}[{i}]" if isinstance(data, list) else key)
            if value not in out:
                out.append(value)
        return tuple(out)


def _kind(data: Any) -> str:
    names = {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
    }
    return names.get(type(data), type(data).__name__)


def _read_axes(r: _Reader, data: Any, key: str, index: int) -> Axes:
    allowed_keys = ("name", *AXIS_DEFAULTS)
    table = r.table(data, key, allowed_keys)
    values: dict[str, tuple[Any, ...]] = {}
    for axis, allowed in AXIS_ALLOWED.items():
        if axis not in table:
            continue
        if axis == "ratio":

            def check(v: Any, k: str) -> int:
                if isinstance(v, bool) or not isinstance(v, int) or v not in RATIOS:
                    raise r.fail(k, f"{v!r} is not allowed", _join(RATIOS))
                return v
        else:

            def check(v: Any, k: str, allowed: tuple[Any, ...] = allowed) -> str:
                return r.string(v, k, allowed)

        values[axis] = r.choices(table[axis], f"{key}.{axis}", check, _join(allowed))
    if "stages" in table:
        values["stages"] = _read_stages(r, table["stages"], f"{key}.stages")
    transforms = values.get("transform", AXIS_DEFAULTS["transform"])
    if "bottleneck" not in transforms:
        for axis in ("ratio", "norm"):
            if axis in table:
                raise r.fail(
                    f"{key}.{axis}",
                    f"given with transform {list(transforms)} "
                    "(ratio and norm apply to a bottleneck only)",
                    "add 'bottleneck' to transform, or drop this key",
                )
    name = r.string(table.get("name", "main" if index == 0 else f"axes{index}"), f"{key}.name")
    return Axes(name=name, **values)


def _read_stages(r: _Reader, data: Any, key: str) -> tuple[str, ...]:
    allowed = f"{ALL_SUBSETS!r} or stage sets such as c4, c3c4c5 from {_join(STAGES)}"
    if data == ALL_SUBSETS:
        return tuple("".join(s) for s in stage_sets(SEARCH_STAGES))

    def check(v: Any, k: str) -> str:
        if v == ALL_SUBSETS:
            raise r.fail(k, f"{ALL_SUBSETS!r} must be the whole value, not a list item", allowed)
        text = r.string(v, k)
        try:
            return "".join(Placement("after_1x1", text).stages)
        except UserError as exc:
            raise r.fail(k, f"{text!r} is not a stage set ({exc})", allowed) from None

    return r.choices(data, key, check, allowed)


def _read_objectives(r: _Reader, data: Any) -> tuple[str, ...]:
    allowed = _join([f"{m}:{d.direction}" for m, d in METRICS.items()])

    def check(v: Any, k: str) -> str:
        text = r.string(v, k)
        if ":" not in text:
            raise r.fail(k, f"{text!r} is not '<metric>:<max|min>'", allowed)
        try:
            return str(Objective.parse(text))
        except UserError as exc:
            raise r.fail(k, str(exc), allowed) from None

    objectives = r.choices(data, "objectives", check, allowed)
    metrics = [Objective.parse(o).metric for o in objectives]
    if len(set(metrics)) != len(metrics):
        raise r.fail("objectives", "a metric is listed twice", allowed)
    if "top1" not in metrics and "loss" not in metrics:
        raise r.fail("objectives", "needs an accuracy objective", "top1:max or loss:min")
    return objectives


def _read_references(
    r: _Reader, data: Any, grids: tuple[Axes, ...], backbone: str
) -> tuple[str, ...]:
    table = r.table(data, "references", ("include", "placement"))
    default: str | None = None  # None: each preset's own paper's placement
    if "placement" in table:
        default = r.string(table["placement"], "references.placement")
        try:
            Placement.parse(default)
        except UserError as exc:
            raise r.fail(
                "references.placement",
                str(exc),
                "'<position>:<stages>[:last]', e.g. after_1x1:c3c4c5",
            ) from None
    allowed = f"presets ({_join(tuple(PRESETS))}), 'none', or ids like gc@after_add:c4"

    def placed(preset: str) -> Placement:
        """The paper's placement fitted to the backbone (SE/CBAM: c2-c5, c3-c5 on CIFAR)."""
        try:
            return importlib.import_module("gcsearch.backbone_specs").preset_placement(
                preset, backbone
            )
        except (ImportError, UserError):
            return paper_placement(preset)  # an unknown backbone is reported by _check_stages

    def check(v: Any, k: str) -> str:
        text = r.string(v, k).strip()
        if text in ("none", "baseline"):
            return "none"
        try:
            if "@" in text:
                return Candidate.parse(text).id
            if default is None and text in PRESETS:
                return Candidate(preset=text, placement=placed(text)).id
            return Candidate.parse(f"{text}@{default or Placement().id}").id
        except UserError as exc:
            raise r.fail(k, f"{text!r}: {exc}", allowed) from None

    include = r.choices(table.get("include", ["none"]), "references.include", check, allowed)
    return ("none", *(i for i in include if i != "none"))


def _read_search(r: _Reader, data: Any) -> SearchSettings:
    keys = (
        "sampler",
        "n_trials",
        "seeds",
        "parallel",
        "cpus_per_trial",
        "gpus_per_trial",
        "population",
        "sampler_seed",
        "validate_every",
        "fuse_seeds",
        "compile",
        "reference_ci",
        "reference_max_seeds",
        "prior",
    )
    t = r.table(data, "search", keys)
    kw: dict[str, Any] = {}
    if "sampler" in t:
        kw["sampler"] = r.string(t["sampler"], "search.sampler", SAMPLERS)
    if "n_trials" in t:
        if t["n_trials"] == "all":
            kw["n_trials"] = None
        elif isinstance(t["n_trials"], str):
            raise r.fail(
                "search.n_trials", f"{t['n_trials']!r} is not allowed", "'all' or integers >= 1"
            )
        else:
            kw["n_trials"] = r.integer(t["n_trials"], "search.n_trials", 1)
    for key, lo in (
        ("seeds", 1),
        ("parallel", 1),
        ("sampler_seed", 0),
        ("validate_every", 0),
        ("reference_max_seeds", 2),
    ):
        if key in t:
            kw[key] = r.integer(
                t[key], f"search.{key}", lo, 10_000 if key != "sampler_seed" else 2**31 - 1
            )
    if "fuse_seeds" in t:
        kw["fuse_seeds"] = r.string(t["fuse_seeds"], "search.fuse_seeds", FUSE_MODES)
    if "compile" in t:
        kw["compile"] = r.string(t["compile"], "search.compile", COMPILE_MODES)
    if "prior" in t:
        kw["prior"] = r.string(t["prior"], "search.prior", PRIORS)
    if "population" in t:
        kw["population"] = r.integer(t["population"], "search.population", 2, 10_000)
    if "cpus_per_trial" in t:
        kw["cpus_per_trial"] = r.number(t["cpus_per_trial"], "search.cpus_per_trial", 0, True, 1024)
    if "gpus_per_trial" in t:
        kw["gpus_per_trial"] = r.number(t["gpus_per_trial"], "search.gpus_per_trial", 0, False, 64)
    if "reference_ci" in t:
        kw["reference_ci"] = r.number(t["reference_ci"], "search.reference_ci", 0, False, 100)
    settings = SearchSettings(**kw)
    if settings.reference_ci and settings.reference_max_seeds < settings.seeds:
        raise r.fail(
            "search.reference_max_seeds",
            f"{settings.reference_max_seeds} is fewer than search.seeds ({settings.seeds})",
            f"integers >= {settings.seeds}",
        )
    return settings


def _read_fidelity(r: _Reader, data: Any) -> Fidelity:
    t = r.table(data, "fidelity", ("enabled", "eta", "min_epochs", "speculate"))
    kw: dict[str, Any] = {}
    for key in ("enabled", "speculate"):
        if key in t:
            if not isinstance(t[key], bool):
                raise r.fail(
                    f"fidelity.{key}", f"expected a boolean, got {_kind(t[key])}", "true, false"
                )
            kw[key] = t[key]
    if "eta" in t:
        kw["eta"] = r.integer(t["eta"], "fidelity.eta", 2, 100)
    if "min_epochs" in t:
        kw["min_epochs"] = r.integer(t["min_epochs"], "fidelity.min_epochs", 1, 100_000)
    return Fidelity(**kw)


def _read_budget(r: _Reader, data: Any) -> dict[str, Any]:
    """Budget overrides, checked against ``gcsearch.tasks.Budget`` fields, types and choices."""
    known = {f.name: f.default for f in fields(Budget)}
    table = r.table(data, "budget", tuple(known))
    out: dict[str, Any] = {}
    for k, v in table.items():
        default = known[k]
        key = f"budget.{k}"
        if k == "image_size":
            try:
                v = Budget(image_size=v).image_size
            except UserError:
                raise r.fail(key, f"{v!r} is not allowed", IMAGE_SIZE_ALLOWED) from None
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise r.fail(key, f"expected a boolean, got {_kind(v)}", "true, false")
        elif isinstance(default, int):  # a seed may be 0 (the default); counts start at 1
            v = r.integer(v, key, 0 if k == "data_seed" else 1)
        elif isinstance(default, float):
            v = r.number(v, key, 0.0, True, 1e9)
        elif isinstance(default, str):
            v = r.string(v, key, BUDGET_CHOICES.get(k))
        elif isinstance(v, int) and not isinstance(v, bool):
            v = r.integer(v, key, 1)
        elif isinstance(v, float):
            v = r.number(v, key, 0.0, True, 1e9)
        elif not isinstance(v, (bool, str)):
            raise r.fail(key, f"expected a number, string or boolean, got {_kind(v)}")
        out[k] = v
    return out


def _known(module: str, attr: str) -> tuple[str, ...] | None:
    try:
        return tuple(getattr(importlib.import_module(module), attr))
    except (ImportError, AttributeError):
        return None


def _read_task(r: _Reader, data: Any) -> dict[str, Any]:
    t = r.table(data, "task", ("name", "backbone", "data", "min_hidden"))
    out: dict[str, Any] = {}
    if "name" in t:
        out["task"] = r.string(t["name"], "task.name", _known("gcsearch.tasks", "TASKS"))
    if "backbone" in t:
        out["backbone"] = r.string(
            t["backbone"], "task.backbone", _known("gcsearch.backbone_specs", "BACKBONES")
        )
    if "data" in t:
        out["data"] = r.string(t["data"], "task.data")
    if "min_hidden" in t:
        out["min_hidden"] = r.integer(t["min_hidden"], "task.min_hidden", 1, 4096)
    return out


@functools.lru_cache(maxsize=8)
def _stage_widths(backbone: str) -> dict[str, int]:
    """Stage -> output channels of its residual branch (what a block there sees)."""
    bb = importlib.import_module("gcsearch.backbone_specs")
    return dict(bb.get_backbone(backbone).widths)


def _check_widths(r: _Reader, space: Space) -> None:
    """A bottleneck ratio may not exceed the channels of a stage it is placed in."""
    for i, grid in enumerate(space.grids):
        if "bottleneck" not in grid.transform:
            continue
        widths = _stage_widths(space.backbone)
        for text in grid.stages:
            for stage in Placement("after_1x1", text).stages:
                bad = [q for q in grid.ratio if q > widths[stage]]
                if bad:
                    key = "axes.ratio" if len(space.grids) == 1 else f"axes[{i}].ratio"
                    ok = [q for q in RATIOS if q <= min(widths.values())]
                    raise r.fail(
                        key,
                        f"ratio {bad[0]} exceeds the {widths[stage]} channels of "
                        f"{space.backbone} stage {stage}",
                        f"{_join(ok)} at every stage, or drop {stage}",
                    )


def _check_stages(r: _Reader, space: Space) -> None:
    """Every stage named by a grid or reference exists in the backbone."""
    try:
        have = tuple(
            importlib.import_module("gcsearch.backbone_specs").backbone_stages(space.backbone)
        )
    except (ImportError, AttributeError):
        return
    except (UserError, KeyError, ValueError):
        raise r.fail("task.backbone", f"{space.backbone!r} is unknown") from None
    for i, grid in enumerate(space.grids):
        for text in grid.stages:
            missing = [s for s in Placement("after_1x1", text).stages if s not in have]
            if missing:
                key = "axes.stages" if len(space.grids) == 1 else f"axes[{i}].stages"
                raise r.fail(
                    key, f"{text!r}: {space.backbone} has no stage {missing[0]}", _join(have)
                )
    for ref in space.references():
        missing = [s for s in ref.placement.stages if s not in have] if not ref.is_baseline else []
        if missing:
            raise r.fail(
                "references.include",
                f"{ref.id!r}: {space.backbone} has no stage {missing[0]}",
                _join(have),
            )


def parse_space(text: str, file: str = "<space>") -> Space:
    """Parse and validate the text of a space file; any problem raises a one-line UserError."""
    r = _Reader(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise r.fail("toml", f"not valid TOML ({exc})") from None
    except (ValueError, RecursionError) as exc:  # e.g. a nesting too deep
        raise r.fail("toml", f"not readable ({type(exc).__name__})") from None
    r.table(data, "", _TOP_KEYS)
    kw: dict[str, Any] = {}
    kw["name"] = r.string(data.get("name", Path(file).stem), "name")
    if not kw["name"] or any(c in kw["name"] for c in "/\\\0") or kw["name"] in (".", ".."):
        raise r.fail(
            "name",
            f"{kw['name']!r} cannot name a run directory",
            "a non-empty name without slashes",
        )
    size = len(kw["name"].encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES or not kw["name"].isprintable():
        raise r.fail(
            "name",
            f"{kw['name'][:40]!r}... is {size} bytes in UTF-8"
            if size > MAX_NAME_BYTES
            else f"{kw['name']!r} holds control characters",
            f"a printable name of at most {MAX_NAME_BYTES} bytes in UTF-8, e.g. "
            f"{MAX_NAME_BYTES} ASCII or {MAX_NAME_BYTES // 2} two-byte letters",
        )
    kw["description"] = r.string(data.get("description", ""), "description")
    if "objectives" in data:
        kw["objectives"] = _read_objectives(r, data["objectives"])
    kw.update(_read_task(r, data.get("task", {})))
    kw["budget"] = _read_budget(r, data.get("budget", {}))
    axes = data.get("axes", {})
    if isinstance(axes, list):
        if not axes:
            raise r.fail("axes", "empty list of grids", "one [axes] table or [[axes]] tables")
        grids = tuple(_read_axes(r, a, f"axes[{i}]", i) for i, a in enumerate(axes))
        names = [g.name for g in grids]
        if len(set(names)) != len(names):
            raise r.fail("axes", "two grids share a name", "distinct names")
    else:
        grids = (_read_axes(r, axes, "axes", 0),)
    kw["grids"] = grids
    backbone = kw.get("backbone", Space.__dataclass_fields__["backbone"].default)
    kw["reference_ids"] = _read_references(r, data.get("references", {}), grids, backbone)
    kw["search"] = _read_search(r, data.get("search", {}))
    kw["fidelity"] = _read_fidelity(r, data.get("fidelity", {}))
    space = Space(path=file, **kw)
    _check_stages(r, space)
    _check_widths(r, space)
    if space.search.seeds == 2:
        warnings.warn(
            f"{file}: search.seeds = 2: intervals at n = 2 are not informative (a 95 % "
            "t interval is +-12.7 standard errors); use 3 or more seeds, or 1 for a "
            "quick look",
            InputWarning,
            stacklevel=2,
        )
    return space


def load_space(path: str | Path) -> Space:
    """Read and validate a space file (see module docstring)."""
    from gcsearch.spaces import resolve_space

    p = resolve_space(path)  # a file, or a shipped space by name ("quick")
    if p.exists() and not p.is_file():  # /dev/zero, a FIFO, a folder: never read to the end
        raise UserError(
            f"{path}: not a regular file (allowed: a .toml space file, or a "
            "shipped space by name, e.g. quick)"
        )
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise UserError(
                f"{path}: larger than {MAX_FILE_BYTES // 1024**2} MiB, not a space "
                f"file (allowed: a .toml space file of at most "
                f"{MAX_FILE_BYTES // 1024**2} MiB)"
            )
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (try --space quick)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return parse_space(text, str(path))


def space_task(space: Space) -> Task:
    """The space's task, checked to read its data before any work: a file task without
    ``[task] data`` (where it has no default), a missing path or unreadable files raise one
    line, ``<file>: task.data: <problem> (allowed: ...)``."""
    try:
        return open_task(space.task, space.data)
    except UserError as exc:
        raise UserError(f"{space.path}: task.data: {exc}") from None


# ------------------------------------------------------------------------------------- CLI
def run_space(args: Any) -> int:
    """``gcsearch space count|show|validate FILE``; validate also checks that a task that
    reads files can read its data (a task that reads none is checked by name when the space
    is parsed, so validating it imports no torch)."""
    space = load_space(args.file)
    reads = space.task in file_tasks()
    task = space_task(space) if args.action == "validate" and reads else None
    cands, refs = space.candidates(), space.references()
    if args.action == "count":
        print(
            f"{len(cands)} candidates + {len(refs)} reference rows "
            f"({', '.join(c.id for c in refs)})"
        )
    elif args.action == "validate":
        print(
            f"{args.file}: ok ({len(cands)} candidates, {len(refs)} reference rows, "
            f"{space.n_trials()} trials x {space.search.seeds} seed(s), "
            f"sampler {space.search.sampler}" + (f"; data: {task.summary()})" if task else ")")
        )
    else:
        print(space.to_toml())
        print("# candidates")
        for c in refs:
            print(f"#   {c.id}  (reference)")
        for c in cands:
            print(f"#   {c.id}")
    return 0


__all__ = [
    "Axes",
    "Fidelity",
    "SearchSettings",
    "Space",
    "load_space",
    "parse_space",
    "run_space",
    "space_task",
]
