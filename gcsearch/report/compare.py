"""A rerun against committed results: do the per-candidate means agree within their intervals?

The same seed reproduces on one machine only (see ``gcsearch.tasks.machine``): another CPU
instruction set or GPU sums in another order, and a seed can end points apart, so a rerun is
checked against the distribution over seeds, never seed by seed. For each candidate complete
in both, the committed mean should lie inside the rerun's 95 % t-interval, and Welch's test of
the two means (both with at least two seeds) should not call them different. Welch p-values
are Holm-adjusted over the candidates compared (one family, as the report's Δ rows).

Example::

    gcsearch report runs/quick --compare reports/quick.csv
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gcsearch.errors import UserError
from gcsearch.report.frame import machine_label, machines
from gcsearch.report.stats import holm, welch_test
from gcsearch.report.tables import candidate_rows, seed_map
from gcsearch.search.record import DUPLICATE_OF

#: Columns a results CSV (``gcsearch report --csv``, ``results.csv``) must have to compare
REQUIRED = ("spec.id", "status", "metric.top1_mean")
#: Columns it may lack (older files): filled empty so candidate selection reads them
_OPTIONAL = (DUPLICATE_OF, "fidelity.epochs", "fidelity.max_epochs", "metric.top1_n")
ALPHA = 0.05


def read_results_csv(path: str | os.PathLike[str], flag: str = "--compare") -> pd.DataFrame:
    """A results CSV as a frame, or a one-line ``UserError`` saying why it is none."""
    p = Path(path)
    allowed = "allowed: a results CSV written by `gcsearch report --csv` or a run's results.csv"
    if p.is_dir():
        raise UserError(f"{flag} {path}: is a folder ({allowed})")
    if not p.exists():
        raise UserError(f"{flag} {path}: no such file ({allowed})")
    if not p.is_file():
        raise UserError(f"{flag} {path}: not a regular file ({allowed})")
    try:
        frame = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise UserError(f"{flag} {path}: the file is empty ({allowed})") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        why = " ".join(str(exc).split())[:160]
        raise UserError(f"{flag} {path}: not a readable CSV ({why}; {allowed})") from None
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise UserError(f"{flag} {path}: cannot read it ({why}; {allowed})") from None
    missing = [c for c in REQUIRED if c not in frame]
    if missing:
        raise UserError(
            f"{flag} {path}: not a gcsearch results CSV (no column {', '.join(missing)}; {allowed})"
        )
    given = frame["metric.top1_mean"]
    numbers = pd.to_numeric(given, errors="coerce")
    bad = given.notna() & numbers.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise UserError(
            f"{flag} {path}: metric.top1_mean holds {given.iloc[row]!r} in data row "
            f"{row + 1}, not a number ({allowed})"
        )
    frame["metric.top1_mean"] = numbers
    for col in _OPTIONAL:
        if col not in frame:
            frame[col] = math.nan
    if "trial" not in frame:
        frame["trial"] = range(len(frame))
    return frame


@dataclass
class Comparison:
    """Per-candidate means of a rerun beside the committed ones (``table``: one row each)."""

    source: str
    table: pd.DataFrame
    only_committed: list[str] = field(default_factory=list)
    only_rerun: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: why the two are not comparable (other epochs, another task): part of ``summary``
    warnings: list[str] = field(default_factory=list)

    @property
    def agree(self) -> int:
        return int((self.table["within"] == True).sum())  # noqa: E712 (None: no interval)

    @property
    def summary(self) -> str:
        """One line: how many candidates agree, and what the Welch tests say."""
        t, n = self.table, len(self.table)
        line = f"{self.agree} of {n} candidates agree within their intervals"
        if n:
            line += " (the committed mean inside the rerun's 95 % interval)"
        no_interval = int(t["within"].isna().sum()) if n else 0
        if no_interval:
            line += f"; {no_interval} without an interval (rerun n = 1)"
        tested = t["welch.p_holm"].notna() if n else pd.Series(dtype=bool)
        if tested.any():
            differ = int((t.loc[tested, "welch.p_holm"] < ALPHA).sum())
            line += (
                f"; Welch: {differ} of {int(tested.sum())} differ at Holm-adjusted p < {ALPHA:g}"
            )
        same = int((t["same_seeds"] == True).sum()) if n else 0  # noqa: E712
        if same:
            line += f"; per-seed values identical for {same} of {n}"
        return "; ".join([line, *(f"but {w}" for w in self.warnings)])


def _trained_budget(frame: pd.DataFrame) -> set[int]:
    col = frame.get("fidelity.max_epochs")
    if col is None:
        return set()
    return {int(v) for v in pd.to_numeric(col, errors="coerce").dropna()}


def _labels(frame: pd.DataFrame) -> str:
    found = machines(frame)
    labels = [machine_label(m) for m in found if m.get("cpu") or m.get("gpu")]
    if not labels:
        return "not recorded"
    return "; ".join(dict.fromkeys(labels))


def _count(value: object) -> int:
    """A seed count from a CSV cell (1 where it is empty or not a number)."""
    n = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return int(n) if pd.notna(n) and n >= 1 else 1


def compare(rerun: pd.DataFrame, committed: pd.DataFrame, source: str) -> Comparison:
    """Compare the rerun's results frame with a committed one (``read_results_csv``)."""
    rows_r = candidate_rows(rerun).set_index("spec.id", drop=False)
    rows_c = candidate_rows(committed).set_index("spec.id", drop=False)
    common = [i for i in rows_c.index if i in rows_r.index]
    records = []
    for cid in common:
        r, c = rows_r.loc[cid], rows_c.loc[cid]
        seeds_r, seeds_c = seed_map(r), seed_map(c)
        r_mean, r_half = float(r["metric.top1_mean"]), float(r["metric.top1_ci95"])
        c_mean = float(c["metric.top1_mean"])
        n_c = len(seeds_c) or _count(c.get("metric.top1_n"))
        within = abs(c_mean - r_mean) <= r_half if math.isfinite(r_half) else None
        welch = welch_test(list(seeds_r.values()), list(seeds_c.values()))
        shared = sorted(set(seeds_r) & set(seeds_c))
        records.append(
            {
                "spec.id": cid,
                "committed.mean": c_mean,
                "committed.n": n_c,
                "rerun.mean": r_mean,
                "rerun.ci95": r_half,
                "rerun.n": int(r["metric.top1_n"]),
                "delta": r_mean - c_mean,
                "within": within,
                "welch.delta": welch.mean,
                "welch.ci95": welch.half,
                "welch.p": welch.p,
                "same_seeds": all(seeds_r[s] == seeds_c[s] for s in shared) if shared else None,
            }
        )
    table = pd.DataFrame(
        records,
        columns=[
            "spec.id",
            "committed.mean",
            "committed.n",
            "rerun.mean",
            "rerun.ci95",
            "rerun.n",
            "delta",
            "within",
            "welch.delta",
            "welch.ci95",
            "welch.p",
            "same_seeds",
        ],
    )
    table["welch.p_holm"] = holm(table["welch.p"].to_list()) if len(table) else []
    notes = []
    if not common:
        notes.append("no candidate is complete in both (is the committed file from this space?)")
    ran_c, ran_r = _labels(committed), _labels(rerun)
    notes.append(f"committed on: {ran_c}; rerun on: {ran_r}")
    warnings = []
    epochs_c, epochs_r = _trained_budget(committed), _trained_budget(rerun)
    if epochs_c and epochs_r and epochs_c != epochs_r:
        warnings.append(
            f"the committed run trained {sorted(epochs_c)} epochs, the rerun "
            f"{sorted(epochs_r)}: their means are not comparable"
        )
    tasks = [
        sorted(map(str, f["env.task"].dropna().unique())) if "env.task" in f else []
        for f in (committed, rerun)
    ]
    if all(tasks) and tasks[0] != tasks[1]:
        warnings.append(
            f"the committed run is on task {', '.join(tasks[0])}, the rerun on "
            f"{', '.join(tasks[1])}: their means are not comparable"
        )
    return Comparison(
        source=source,
        table=table,
        only_committed=[i for i in rows_c.index if i not in rows_r.index],
        only_rerun=[i for i in rows_r.index if i not in rows_c.index],
        notes=notes,
        warnings=warnings,
    )


def _yes(value: object, yes: str = "yes", no: str = "no", none: str = "–") -> str:
    return none if value is None or pd.isna(value) else (yes if value else no)


def comparison_table(comp: Comparison) -> pd.DataFrame:
    """The comparison as rendered (terminal, Markdown, HTML): one row per candidate."""
    t = comp.table
    rerun = zip(t["rerun.mean"], t["rerun.ci95"], t["rerun.n"], strict=True)

    def pm(mean: float, half: float, n: int, signed: bool = False) -> str:
        text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
        if math.isfinite(half):
            return f"{text} ± {half:.2f}" + ("" if signed else f" (n = {n})")
        return f"{text} (n = {n}: no interval)" if not signed else f"{text} (no interval)"

    def p(value: float) -> str:
        return "–" if not math.isfinite(value) else f"{value:.3f}"

    return pd.DataFrame(
        {
            "candidate": t["spec.id"],
            "committed top-1 %": [
                f"{m:.2f} (n = {n})"
                for m, n in zip(t["committed.mean"], t["committed.n"], strict=True)
            ],
            "rerun top-1 % (95% CI)": [pm(m, h, n) for m, h, n in rerun],
            "committed in CI": [_yes(v, none="no interval") for v in t["within"]],
            "Welch Δ (rerun − committed)": [
                pm(m, h, 0, signed=True)
                for m, h in zip(t["welch.delta"], t["welch.ci95"], strict=True)
            ],
            "Welch p (Holm)": [
                f"{p(a)} ({p(b)})" if math.isfinite(a) else "–"
                for a, b in zip(t["welch.p"], t["welch.p_holm"], strict=True)
            ],
            "same per seed": [_yes(v) for v in t["same_seeds"]],
        }
    )


def comparison_note(comp: Comparison) -> str:
    """What the comparison section says above its table."""
    parts = [f"The rerun's per-candidate means against `{comp.source}`: {comp.summary}."]
    parts += [n[0].upper() + n[1:] + "." for n in comp.notes]
    for what, ids in (
        ("only in the committed file", comp.only_committed),
        ("only in the rerun", comp.only_rerun),
    ):
        if ids:
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            parts.append(f"Complete {what}: {shown}.")
    parts.append(
        "Per-seed values reproduce on the same machine only (CPU instruction set, GPU, "
        "CUDA, cuDNN and torch all equal); across machines, the means and intervals "
        "are what should agree."
    )
    return " ".join(parts)
