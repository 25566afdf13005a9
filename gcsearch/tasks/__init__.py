"""Proxy tasks behind one small interface, and the budget a trial trains under.

A task has a ``name``, an ``input_shape`` (C, H, W) at its native size (``shape_at(budget)``
is the shape under a budget's ``image_size``), ``num_classes``, the ``backbone`` its
default ``budget`` was measured with, and ``loaders(seed, budget)``: deterministic train and
evaluation batches held in memory (the proxies are small, so no ``DataLoader`` workers). The
training data depends on ``budget.data_seed`` only, so every candidate and every trial seed
sees the same images; ``seed`` drives the shuffling order (and, in ``train``, the init).

Example:
    >>> task = get_task("synthetic")
    >>> train_batches, val_batches = task.loaders(seed=0, budget=task.budget)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gcsearch.errors import UserError

if TYPE_CHECKING:
    from gcsearch.tasks.batches import TensorBatches

__all__ = [
    "AUGMENTS",
    "BUDGET_CHOICES",
    "COMPILE_MODES",
    "DEFAULT_TASK",
    "EVAL_SPLITS",
    "FUSE_MODES",
    "OPTIMIZERS",
    "TASKS",
    "Budget",
    "Task",
    "TaskEntry",
    "data_problem",
    "file_tasks",
    "get_task",
    "open_task",
    "run_tasks",
    "sized",
]

AUGMENTS = ("none", "flip", "flip-crop")
EVAL_SPLITS = ("val", "test")
OPTIMIZERS = ("sgd", "adamw")
#: ``[search] fuse_seeds``: a candidate's seeds trained as one fused network (``tasks.fused``)
#: off (the default), on, or auto (where ``gcsearch bench fuse --record`` measured it faster)
FUSE_MODES = ("off", "on", "auto")
#: ``torch.compile`` modes of the training step (``train(compile=...)``, ``[search] compile``):
#: off (eager, the default), default, reduce-overhead (CUDA graphs on a GPU), max-autotune
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
#: Budget's string fields and their allowed values (checked here and by the space parser)
BUDGET_CHOICES: dict[str, tuple[str, ...]] = {
    "augment": AUGMENTS,
    "eval_split": EVAL_SPLITS,
    "optimizer": OPTIMIZERS,
}


#: what ``budget.image_size`` may be (the space parser and ``Budget`` say the same)
IMAGE_SIZE_ALLOWED = "an integer >= 4 for S x S, or [H, W] of integers >= 4"


def _image_size_ok(size: Any) -> bool:
    pair = isinstance(size, tuple | list)
    sides = tuple(size) if pair else (size,)
    return (not pair or len(sides) == 2) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 4 for s in sides
    )


def sized(
    shape: tuple[int, int, int], image_size: int | tuple[int, int] | None
) -> tuple[int, int, int]:
    """(C, H, W) of images of native ``shape`` under a budget's ``image_size``: None keeps
    ``shape``, S gives S x S, (H, W) gives H x W (the rule of every task that resizes)."""
    if image_size is None:
        return shape
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    return shape[0], int(h), int(w)


@dataclass(frozen=True)
class Budget:
    """How much training one trial gets; each task's ``budget`` is its measured default.

    ``image_size`` None keeps the task's native size; an integer S asks for S x S (for the
    synthetic task, a strip S wide); a pair [H, W] for H x W (non-square images keep their
    aspect). ``shape_at`` turns it into the (C, H, W) every cost is counted at.
    ``eval_split`` 'val' holds out ``val_images`` from the training split (what a search
    ranks on); 'test' evaluates on the task's official test split (the final measure).
    ``warmup_epochs`` ramps the learning rate linearly before the cosine decay to zero.
    ``optimizer``: 'sgd' (Nesterov momentum ``momentum``, L2 ``weight_decay``) or 'adamw'
    (decoupled ``weight_decay``; ``momentum`` unused), both without decay on norms and biases.
    """

    train_images: int = 2000
    val_images: int = 1000
    epochs: int = 6
    batch_size: int = 64
    lr: float = 0.1
    image_size: int | tuple[int, int] | None = None
    weight_decay: float = 5e-4
    momentum: float = 0.9
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    augment: str = "none"
    data_seed: int = 0
    eval_split: str = "val"
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        for name in ("train_images", "val_images", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"budget.{name}: {value!r} is not a positive integer")
        if isinstance(self.image_size, list | tuple):  # [H, W] from TOML or JSON
            object.__setattr__(self, "image_size", tuple(self.image_size))
        if self.image_size is not None and not _image_size_ok(self.image_size):
            raise UserError(
                f"budget.image_size: {self.image_size!r} is not allowed "
                f"(allowed: {IMAGE_SIZE_ALLOWED})"
            )
        for name in ("lr", "weight_decay", "momentum", "label_smoothing", "warmup_epochs"):
            if not isinstance(getattr(self, name), int | float) or getattr(self, name) < 0:
                raise UserError(f"budget.{name}: {getattr(self, name)!r} is not a number >= 0")
        if self.label_smoothing >= 1:
            raise UserError(f"budget.label_smoothing: {self.label_smoothing} is not below 1")
        for name, choices in BUDGET_CHOICES.items():
            if getattr(self, name) not in choices:
                raise UserError(
                    f"budget.{name}: {getattr(self, name)!r} (choose from {', '.join(choices)})"
                )

    def replace(self, **changes: Any) -> Budget:
        """A copy with some fields changed (None values are ignored: 'keep the default')."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            names = ", ".join(f.name for f in dataclasses.fields(self))
            raise UserError(f"budget: unknown field {unknown[0]!r} (allowed: {names})")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        return cls().replace(**dict(data))


@runtime_checkable
class Task(Protocol):
    """What the training loop and the search need from a proxy task."""

    name: str
    description: str
    input_shape: tuple[int, int, int]
    num_classes: int
    backbone: str
    budget: Budget

    def shape_at(self, budget: Budget) -> tuple[int, int, int]:
        """(C, H, W) of the images ``loaders`` yields under ``budget``: the one shape every
        cost (cost table, hypervolume box, trial, checkpoint, headers) is counted at."""
        ...

    def loaders(self, seed: int, budget: Budget) -> tuple[TensorBatches, TensorBatches]:
        """Train batches (shuffled by ``seed``) and evaluation batches (``budget.eval_split``)."""
        ...

    def summary(self) -> str:
        """One line on the data behind the task (sizes, source, or what is missing)."""
        ...


@dataclass(frozen=True)
class TaskEntry:
    """Where a task's class lives (``"module:Class"``, imported when the task is asked for) and
    whether it reads files (then it takes ``data``, a folder)."""

    target: str
    reads_files: bool = False


#: The task registry: task name -> its entry. Adding a task is one row here.
TASKS: dict[str, TaskEntry] = {
    "synthetic": TaskEntry("gcsearch.tasks.synthetic:LongRangeMatch"),
    "synthetic-distinct": TaskEntry("gcsearch.tasks.synthetic:DistinctHueMatch"),
    "synthetic-graded": TaskEntry("gcsearch.tasks.synthetic:GradedHueMatch"),
    "synthetic-graded-wide": TaskEntry("gcsearch.tasks.synthetic:WideGradedHueMatch"),
    "digits": TaskEntry("gcsearch.tasks.digits:Digits"),
    "fashion-mnist": TaskEntry("gcsearch.tasks.fashion_mnist:FashionMNIST", reads_files=True),
    "fashion-pairs": TaskEntry("gcsearch.tasks.fashion_pairs:FashionPairs", reads_files=True),
    "fashion-pairs-distinct": TaskEntry(
        "gcsearch.tasks.fashion_pairs:FashionPairsApart", reads_files=True
    ),
    "cifar10": TaskEntry("gcsearch.tasks.cifar:Cifar10", reads_files=True),
    "cifar100": TaskEntry("gcsearch.tasks.cifar:Cifar100", reads_files=True),
    "imagefolder": TaskEntry("gcsearch.tasks.imagefolder:ImageFolderTask", reads_files=True),
}


def file_tasks() -> list[str]:
    """The registered tasks that read files (and so take ``data``)."""
    return [name for name, entry in TASKS.items() if entry.reads_files]


#: the task a space, ``gcsearch train`` and ``gcsearch bench`` use unless told otherwise: the
#: one proxy measured both quiet (presets' seed std <= 0.95 point over 12 seeds) and ranking
#: (split-seed τ 0.86 over the quick space)
DEFAULT_TASK = "synthetic-graded"
#: ``gcsearch bench proxy --record`` writes each task's measured figures here (package data)
MEASURED_DIR = Path(__file__).resolve().parent / "measured"

#: mean top-1 from which ``tasks list`` counts a measured candidate as at the ceiling
CEILING = 99.5


def get_task(name: str, data: str | None = None) -> Task:
    """The task ``name``; ``data`` is the folder for tasks that read files."""
    if name not in TASKS:
        raise UserError(f"task: {name!r} is not known (choose from {', '.join(TASKS)})")
    entry = TASKS[name]
    if data is not None and not entry.reads_files:
        raise UserError(
            f"--data: task {name!r} reads no files (--data is for {', '.join(file_tasks())})"
        )
    module, cls = entry.target.split(":")
    factory = getattr(importlib.import_module(module), cls)
    return factory(data=data) if entry.reads_files else factory()


def data_problem(task: Task) -> str | None:
    """Why ``task`` cannot read its data, in one line, or None when it can (or reads no
    files): every file task answers ``counts()`` or raises a ``UserError`` saying what is
    missing and what is allowed."""
    counts = getattr(task, "counts", None)
    try:
        if callable(counts):
            counts()
    except UserError as exc:
        return str(exc)
    return None


def open_task(name: str, data: str | None = None) -> Task:
    """``get_task``, then a one-line ``UserError`` unless the task can read its data (a file
    task without data, a path that is missing, files it cannot read): before any work."""
    task = get_task(name, data)
    problem = data_problem(task)
    if problem:
        raise UserError(problem)
    return task


def measured(name: str) -> dict[str, Any] | None:
    """The figures ``gcsearch bench proxy --task NAME --record`` measured (None if never)."""
    path = MEASURED_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def spread_text(task: Task) -> str:
    """The measured seed spread of ``task`` in one phrase, or how to measure it."""
    from gcsearch.spec import PRESETS

    m = measured(task.name)
    if m is None:
        return f"not measured (gcsearch bench proxy --task {task.name} --record)"
    cands = m.get("candidates", {})
    presets = {c: v for c, v in cands.items() if c.split("@")[0] in (*PRESETS, "none")} or cands
    stds = [
        v["std"] for v in presets.values() if v.get("std") is not None and math.isfinite(v["std"])
    ]
    mdds = [
        v["mdd_n3_median"]
        for v in cands.values()
        if math.isfinite(v.get("mdd_n3_median", math.nan))
    ]
    secs = [v["seconds_per_trial"] for v in cands.values()]
    text = (
        f"seed std <= {max(stds):.2f} pt over {len(presets)} presets"
        f" ({len(m.get('seeds', []))} seeds)"
        if stds
        else "no std"
    )
    stuck = [
        f"{c.split('@')[0]} {v['at_chance']} of {v['n']}"
        for c, v in presets.items()
        if 0 < (v.get("at_chance") or 0) < v.get("n", 0)
    ]
    if stuck:  # bimodal: some seeds never learned the task
        text += f" (seeds at chance: {', '.join(stuck)})"
    if mdds:
        text += f", MDD(n=3) median {sorted(mdds)[len(mdds) // 2]:.2f} pt"
    if secs:
        text += f", {max(secs):.0f} s/trial max"
    means = [v["mean"] for v in cands.values() if math.isfinite(v.get("mean", math.nan))]
    top = sum(m >= CEILING for m in means)
    if top > 1:  # a quiet task every block solves ranks nothing between those blocks
        text += f", {top} of {len(means)} candidates at the ceiling (>= {CEILING:g} %)"
    tau = m.get("split_tau")
    if tau:
        where = Path(tau["space"]).stem if tau.get("space") else "its candidates"
        imgs = (tau.get("budget") or {}).get("train_images", "?")
        text += (
            f", split-seed τ {tau['kendall_tau']:.2f} ({tau['n_candidates']} candidates of "
            f"{where}, {imgs} images)"
        )
    if Budget.from_dict(m.get("budget") or {}) != task.budget:
        text += " [measured at another budget: rerun]"
    return text


def run_tasks(args: argparse.Namespace) -> int:
    """``gcsearch tasks list``: every task with what it measures, its input, classes,
    default budget, data and its measured seed spread (from ``bench proxy --record``)."""
    header = ("task", "input", "classes", "backbone", "budget (images x epochs)", "data")
    rows = [header]
    extra: list[tuple[str, str]] = []
    data = getattr(args, "data", None)
    for name in TASKS:
        given = data if TASKS[name].reads_files else None
        try:  # with --data, each file task says whether it can read DIR (none fails the list)
            task = get_task(name, given)
            problem = data_problem(task) if given else None
        except UserError as exc:
            task, problem = get_task(name), str(exc)
        b = task.budget
        shape = "x".join(map(str, task.input_shape))
        rows.append(
            (
                name,
                shape,
                str(task.num_classes or "-"),
                task.backbone,
                f"{b.train_images} x {b.epochs}",
                f"CANNOT READ {given}: {problem}" if problem else task.summary(),
            )
        )
        extra.append((task.description, spread_text(task)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    pad = " " * (widths[0] + 2)
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
        if i:
            print(f"{pad}measures: {extra[i - 1][0]}")
            print(f"{pad}measured: {extra[i - 1][1]}")
    return 0
