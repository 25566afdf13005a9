"""Reports of a study: the tidy results frame, the Pareto front, ablation tables and rendering.

Everything starts from ``results_frame``: one flat row per Optuna trial (``spec.*``,
``metric.*``, ``cost.*``, ``fidelity.*``, ``status``, ``env.*``), read from the study storage
alone, so a report works offline and on an interrupted study. The Pareto front, the hypervolume
(computed here: Optuna's helper is private) and the ablation tables in the style of GCNet's
Table 2 (Cao et al., 2019, https://arxiv.org/abs/1904.11492) are functions of that frame;
rich, Markdown and HTML only render it.

Modules: ``frame`` (storage -> frame, objectives), ``stats`` (t and Welch intervals),
``pareto`` (front, hypervolume, reference point), ``tables`` (front ranking, ablations,
presets, ``build_report``), ``compare`` (a rerun's means against a committed results CSV),
``curves`` (per-epoch learning curves as a long table),
``verdict`` (whether any block beats the baseline), ``verdicts`` (GCNet's findings,
checked), ``sequential`` and ``sequential_verdicts`` (the group-sequential verdicts of a run
``gcsearch resolve`` added seeds to), ``storage_file`` (opening a storage file
or saying in one line why it is none), ``render`` (rich / Markdown / self-contained HTML) and
``plots`` (matplotlib).

Example::

    gcsearch report runs/quick --md reports/quick.md
    gcsearch report runs/quick --html quick.html --curves quick-curves.csv
    gcsearch report runs/quick --compare reports/quick.csv   # a rerun vs committed means
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from gcsearch.errors import UserError
from gcsearch.report.curves import CURVE_COLUMNS, curve_frame, curve_table
from gcsearch.report.frame import (
    OBJECTIVE_COLUMNS,
    Objective,
    frame_from_study,
    frame_objectives,
    load_study,
    machine_label,
    machines,
    results_frame,
    study_objectives,
)
from gcsearch.report.pareto import hypervolume, pareto_front, reference_point
from gcsearch.report.render import render_html, render_markdown, render_terminal
from gcsearch.report.stats import mean_ci, welch_diff
from gcsearch.report.tables import (
    AXES,
    PRESET_BLOCKS,
    Report,
    ablation_tables,
    build_report,
    candidate_rows,
    front_table,
    preset_table,
    seed_values,
    stopped_rows,
)
from gcsearch.report.verdict import no_block_verdict
from gcsearch.search.storage import RUN_STORAGE_FILES

__all__ = [
    "AXES",
    "CURVE_COLUMNS",
    "OBJECTIVE_COLUMNS",
    "PRESET_BLOCKS",
    "RUN_STORAGE_FILES",
    "Objective",
    "Report",
    "UserError",
    "ablation_tables",
    "build_report",
    "candidate_rows",
    "curve_frame",
    "curve_table",
    "frame_from_study",
    "frame_objectives",
    "front_table",
    "hypervolume",
    "load_study",
    "machine_label",
    "machines",
    "mean_ci",
    "no_block_verdict",
    "pareto_front",
    "preset_table",
    "reference_point",
    "render_html",
    "render_markdown",
    "render_terminal",
    "results_frame",
    "run_report",
    "seed_values",
    "stopped_rows",
    "study_objectives",
    "welch_diff",
    "write_frame",
]


def write_frame(frame: pd.DataFrame, path: str | os.PathLike[str], kind: str = "csv") -> Path:
    """Write the results frame as ``csv`` or ``parquet`` (pyarrow)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _add_verdicts(report: Report, args: argparse.Namespace) -> None:
    """GCNet's findings, checked: for a paper space, a resolved run, or when
    --verdicts/--fidelity/--nl ask."""
    from gcsearch.report import verdicts

    fidelity, nl = getattr(args, "fidelity", None), getattr(args, "nl", None)
    from gcsearch.report.sequential import PLAN_ATTR

    resolved = PLAN_ATTR in report.study  # seeds were added for the verdicts: show them
    asked = getattr(args, "verdicts", False) or fidelity or nl or resolved
    if asked or verdicts.is_paper_space(report):
        report.verdicts = verdicts.check(
            report, verdicts.load_json(fidelity, "--fidelity"), verdicts.load_json(nl, "--nl")
        )


def run_report(args: argparse.Namespace) -> int:
    """``gcsearch report``: print the tables, write the frame, the learning curves and the
    Markdown / self-contained HTML report."""
    committed = None
    if getattr(args, "compare", None):  # a bad file is one line before the study is read
        from gcsearch.report.compare import read_results_csv

        committed = read_results_csv(args.compare)
    study = load_study(args.run, getattr(args, "study", None))
    frame = frame_from_study(study)
    curves = curve_frame(study)
    written = []
    if getattr(args, "csv", None):
        written.append(write_frame(frame, args.csv))
    if getattr(args, "parquet", None):
        written.append(write_frame(frame, args.parquet, "parquet"))
    if getattr(args, "curves", None):
        written.append(write_frame(curves, args.curves))
    report = build_report(args.run, reference=getattr(args, "reference", None) or "gc", frame=frame)
    _add_verdicts(report, args)
    if committed is not None:
        from gcsearch.report.compare import compare

        report.comparison = compare(frame, committed, str(args.compare))
    render_terminal(report)
    plots: dict[tuple[Path, str], dict[str, Path]] = {}
    for option, render in (("md", render_markdown), ("html", render_html)):
        target = getattr(args, option, None)
        if target:
            key = (Path(target).parent, Path(target).stem)
            if key not in plots and option == "md":  # --md and --html share one set of plots
                from gcsearch.report.plots import write_plots

                plots[key] = write_plots(report, *key, curves=curves)
            written += render(report, target, plots.get(key), curves=curves)
    for path in dict.fromkeys(written):
        print(f"wrote {path}")
    return 0
