"""One call for notebooks: run (or open) a search and get its results as Python objects.

``gcsearch.run`` does what ``gcsearch search`` does (a shipped space by name or a file, flags as
keyword arguments) and returns a ``SearchRun``: the results frame, the ranked Pareto front, the
learning curves, the Optuna study and ``export()``; ``gcsearch.open_run`` gives the same object
for a finished run directory. Everything is read from the study storage, as ``gcsearch report``
reads it, so the notebook and the CLI agree.

Example::

    import gcsearch
    run = gcsearch.run("quick", seeds=3, smoke=True)
    run.front[["rank", "spec.id", "metric.top1_mean", "cost.macs"]]
    run.export("my_block.py")          # the front's rank 1, as gcsearch export --rank 1
"""

from __future__ import annotations

import argparse
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gcsearch.errors import UserError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from gcsearch.report.tables import Report
    from gcsearch.search.space import Space


@dataclass
class SearchRun:
    """A search's results: a view over its storage (nothing is copied or recomputed twice)."""

    run_dir: Path
    study: optuna.Study
    where: str = ""  #: the storage as given (run directory, file or URL); default run_dir
    space: Space | None = None

    def __post_init__(self) -> None:
        self.where = self.where or str(self.run_dir)

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """One row per trial (``gcsearch.report.results_frame``)."""
        from gcsearch.report import frame_from_study

        return frame_from_study(self.study)

    @functools.cached_property
    def report(self) -> Report:
        """The ``Report`` ``gcsearch report`` renders (front, ablations, presets, hypervolume)."""
        from gcsearch.report import build_report

        return build_report(self.where, self.study.study_name, frame=self.frame)

    @property
    def front(self) -> pd.DataFrame:
        """The Pareto front, ranked: rank 1 is what ``export()`` writes by default."""
        return self.report.front

    @property
    def candidates(self) -> pd.DataFrame:
        """Every complete candidate, one row each."""
        return self.report.rows

    @functools.cached_property
    def curves(self) -> pd.DataFrame:
        """Per-epoch records of every trial, one row per trial, seed and epoch."""
        from gcsearch.report import curve_frame

        return curve_frame(self.study)

    def export(
        self,
        path: str | os.PathLike[str] = "best_block.py",
        *,
        rank: int = 1,
        id: str | None = None,
        channels: int = 256,
        size: int = 14,
    ) -> Path:
        """Write the ``rank``-th front member (or the candidate ``id``) as a standalone module,
        exactly as ``gcsearch export`` does; returns the module's path."""
        from gcsearch.export import run_export

        args = argparse.Namespace(
            run=self.where,
            rank=rank,
            id=id,
            output=str(path),
            study=self.study.study_name,
            class_name=None,
            channels=channels,
            size=size,
        )
        run_export(args)
        return Path(path)

    def _repr_html_(self) -> str:
        """Jupyter: the summary line and the ranked front."""
        import html

        cols = [
            c
            for c in (
                "rank",
                "spec.id",
                "metric.top1_mean",
                "metric.top1_n",
                "cost.macs",
                "cost.params",
            )
            if c in self.front
        ]
        n = len(self.candidates)
        head = html.escape(
            f"gcsearch run {self.study.study_name} in {self.run_dir}: "
            f"{n} complete candidates, {len(self.front)} on the front"
        )
        return f"<p>{head}</p>" + self.front[cols].to_html(index=False)


def run(
    space: str | os.PathLike[str] = "quick",
    *,
    seeds: int | None = None,
    smoke: bool = False,
    run_dir: str | os.PathLike[str] | None = None,
    n_trials: int | str | None = None,
    parallel: int | None = None,
    sampler: str | None = None,
    resume: bool = False,
    storage: str | None = None,
    address: str | None = None,
    device: str = "auto",
    progress: bool = True,
    executor: Any = None,
) -> SearchRun:
    """Run (or ``resume``) the search ``space`` describes and return its ``SearchRun``.

    ``space`` is a shipped space's name (``quick``, ``gcnet-paper``, ...) or a TOML file; the
    keyword arguments are ``gcsearch search``'s flags. ``executor="inline"`` trains in this
    process without Ray (one trial at a time), handy for debugging in a notebook.
    """
    from gcsearch.launch import search
    from gcsearch.search.space import load_space

    spec = load_space(space)
    overrides: dict[str, Any] = {}
    if seeds is not None:
        if seeds < 1:
            raise UserError(f"seeds: {seeds} is out of range (allowed: integers >= 1)")
        overrides["seeds"] = seeds
    if n_trials is not None:
        overrides["n_trials"] = None if n_trials == "all" else int(n_trials)
    if parallel is not None:
        overrides["parallel"] = parallel
    if sampler is not None:
        overrides["sampler"] = sampler
    if overrides:
        spec = spec.with_overrides(**overrides)
    folder = Path(run_dir) if run_dir is not None else Path("runs") / spec.name
    from gcsearch.cli import check_folder

    check_folder(folder, "run_dir")
    if executor == "inline":
        from gcsearch.search.local import InlineExecutor

        executor = InlineExecutor(parallel=1)
    outcome = search(
        spec,
        folder,
        storage=storage,
        resume=resume,
        address=address,
        device=device,
        smoke=smoke,
        executor=executor,
        parallel=parallel,
        progress=progress,
    )
    where = storage if storage and storage != "memory" else str(folder)
    return SearchRun(run_dir=folder, study=outcome.study, where=where, space=spec)


def open_run(target: str | os.PathLike[str], study: str | None = None) -> SearchRun:
    """The ``SearchRun`` of a finished (or interrupted) run directory, storage file or URL."""
    from gcsearch.report import load_study

    loaded = load_study(target, study)
    folder = Path(target) if Path(str(target)).is_dir() else Path(str(target)).parent
    return SearchRun(run_dir=folder, study=loaded, where=str(target))


__all__ = ["SearchRun", "open_run", "run"]
