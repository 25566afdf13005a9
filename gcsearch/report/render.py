"""Rendering of a ``Report``: rich tables in the terminal, Markdown and HTML files.

Renderers only format the report's frames (a tidy table first, pretty output second); the
PNG plots come from ``gcsearch.report.plots`` and sit beside the written file.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gcsearch.report.curves import curve_table, validated_epochs
from gcsearch.report.frame import machine_label, machines
from gcsearch.report.tables import Report, with_stats
from gcsearch.report.verdict import no_block_verdict
from gcsearch.search.record import DUPLICATE_OF, SEED, count_line
from gcsearch.spec import PRESETS
from gcsearch.units import si

#: Rows of the all-candidates table printed in a terminal (files always hold every row).
TERMINAL_ROWS = 40


def _pm(mean: float, half: float, signed: bool = False, star: bool = False) -> str:
    """``mean ± half``; "n = 1: no interval" without one; `*` where ``star`` (Holm-significant)."""
    if mean is None or pd.isna(mean):
        return "–"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    if half is not None and pd.notna(half):
        text += f" ± {half:.2f}"
        if star:
            text += " *"
    else:
        text += " (n = 1: no interval)" if not signed else " (no interval)"
    return text


def _common_columns(t: pd.DataFrame, delta_name: str) -> dict[str, list[str]]:
    done = t["complete"] if "complete" in t else pd.Series(True, index=t.index)
    top1 = [_pm(m, h) for m, h in zip(t["top1.mean"], t["top1.ci95"], strict=True)]
    stars = t["delta.significant"] if "delta.significant" in t else [False] * len(t)
    delta = [
        _pm(m, h, signed=True, star=bool(s))
        for m, h, s in zip(t["delta.mean"], t["delta.ci95"], stars, strict=True)
    ]
    for i, (ok, (_, r)) in enumerate(zip(done, t.iterrows(), strict=True)):
        if not ok:  # pruned: its top-1 is from fewer epochs, so no difference is given
            top1[i] += f" (pruned, epoch {r['fidelity.epochs']}/{r['fidelity.max_epochs']})"
            delta[i] = "pruned"
    return {
        "params": [si(v) for v in t["cost.params"]],
        "MACs": [si(v) for v in t["cost.macs"]],
        "top-1 % (95% CI)": top1,
        "seeds": [str(int(n)) for n in t["top1.n"]],
        delta_name: delta,
    }


def _display_front(report: Report) -> pd.DataFrame:
    t = with_stats(report.front, None)
    cols = {
        "rank": [str(r) for r in t["rank"]],
        "candidate": list(t["spec.id"]),
        **_common_columns(t, "_"),
    }
    cols.pop("_")
    cols["block params"] = [si(v) for v in t["cost.block_params"]]
    cols["block MACs"] = [si(v) for v in t["cost.block_macs"]]
    cols["trial"] = [
        str(v) if pd.isna(d) else f"{v} (= {d}: same network)"  # answered from trial d
        for v, d in zip(t["trial"], t[DUPLICATE_OF], strict=True)
    ]
    return pd.DataFrame(cols)


def _display_ablation(table: pd.DataFrame, axis: str) -> pd.DataFrame:
    cols = {
        axis: [
            f"{v} (ref)" if r else v
            for v, r in zip(table["value"], table["is_reference"], strict=True)
        ],
        "candidate": list(table["spec.id"]),
        **_common_columns(table, "Δ vs ref"),
    }
    return pd.DataFrame(cols)


def _display_presets(report: Report) -> pd.DataFrame:
    t = report.presets
    return pd.DataFrame(
        {
            "preset": list(t["spec.block"]),
            "candidate": list(t["spec.id"]),
            **_common_columns(t, "Δ vs baseline"),
            # what each preset follows and where it deviates: gcsearch.spec.PRESETS
            "deviations": [
                "; ".join(PRESETS[b].deviations) if b in PRESETS else "" for b in t["spec.block"]
            ],
        }
    )


def _seed_text(row: pd.Series) -> str:
    """``s0 84.12 · s1 83.90``: every seed's top-1, in seed order."""
    cols = sorted(
        (c for c in row.index if c.startswith("metric.top1.s") and pd.notna(row[c])),
        key=lambda c: int(c.removeprefix("metric.top1.s")) if c[13:].isdigit() else 0,
    )
    return " · ".join(f"{c.removeprefix('metric.top1.')} {float(row[c]):.2f}" for c in cols)


def _wall(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.0f}"


def latency_column(frame: pd.DataFrame) -> str | None:
    """The frame column holding measured latency (ms), if the study measured it."""
    for col in ("cost.latency_ms", "obj.latency"):
        if col in frame and pd.to_numeric(frame[col], errors="coerce").notna().any():
            return col
    return None


def _display_candidates(report: Report) -> pd.DataFrame:
    """Every complete candidate, most accurate first, with per-seed values and wall time."""
    t = with_stats(report.rows, None)
    t = t.sort_values(["top1.mean", "cost.macs", "trial"], ascending=[False, True, True])
    ranks = dict(zip(report.front["trial"], report.front["rank"], strict=True))
    cols: dict[str, list[str]] = {
        "candidate": list(t["spec.id"]),
        "kind": list(t["spec.kind"]),
        "front": [f"#{ranks[v]}" if v in ranks else "" for v in t["trial"]],
        "params": [si(v) for v in t["cost.params"]],
        "MACs": [si(v) for v in t["cost.macs"]],
        "block MACs": [si(v) for v in t["cost.block_macs"]],
    }
    lat = latency_column(t)
    if lat:
        cols["latency ms"] = [
            "–" if pd.isna(v) else f"{float(v):.3g}" for v in pd.to_numeric(t[lat])
        ]
    cols["top-1 % (95% CI)"] = [
        _pm(m, h) for m, h in zip(t["top1.mean"], t["top1.ci95"], strict=True)
    ]
    cols["top-1 per seed"] = [_seed_text(r) for _, r in t.iterrows()]
    cols["epochs"] = ["–" if pd.isna(e) else str(e) for e in t["fidelity.epochs"]]
    cols["wall s"] = [_wall(v) for v in t.get("time.wall_s", pd.Series(math.nan, t.index))]
    cols["trial"] = [str(v) for v in t["trial"]]
    return pd.DataFrame(cols)


def _display_problems(report: Report) -> pd.DataFrame:
    """Failed, pruned and unfinished trials: one row per candidate with all its seeds (the
    seeds ``gcsearch resolve`` added are in their candidate's row)."""
    f = report.frame[~report.frame["status"].isin(["complete", SEED])]  # seeds: in their row
    complete = set(report.rows["spec.id"])
    out: list[dict[str, str]] = []
    for cid, g in f.groupby("spec.id", sort=False):
        g = g.sort_values("trial")
        counts = g["status"].value_counts()
        status = ", ".join(f"{k} x{v}" if v > 1 else str(k) for k, v in counts.items())
        if cid in complete:
            status += " (complete in another trial)"
        seeds = (
            sorted(
                {s for text in g["metric.seeds"].dropna() for s in str(text).split(",") if s},
                key=lambda s: (len(s), s),
            )
            if "metric.seeds" in g
            else []
        )
        epochs = [
            ("–" if pd.isna(e) else str(e)) + ("" if pd.isna(m) else f"/{m}")
            for e, m in zip(g["fidelity.epochs"], g["fidelity.max_epochs"], strict=True)
        ]
        reasons = list(dict.fromkeys(str(r) for r in g["reason"] if r and str(r) != "nan"))
        wall = pd.to_numeric(g.get("time.wall_s", pd.Series(dtype=float)), errors="coerce")
        out.append(
            {
                "candidate": str(cid),
                "status": status,
                "trials": ", ".join(str(v) for v in g["trial"]),
                "seeds": ",".join(seeds) or "–",
                "top-1 per seed (when stopped)": " | ".join(
                    t for t in (_seed_text(r) for _, r in g.iterrows()) if t
                )
                or "–",
                "epochs": ", ".join(dict.fromkeys(epochs)),
                "wall s": _wall(wall.sum()) if wall.notna().any() else "–",
                "reason": "; ".join(reasons)[:160],
            }
        )
    return pd.DataFrame(
        out,
        columns=[
            "candidate",
            "status",
            "trials",
            "seeds",
            "top-1 per seed (when stopped)",
            "epochs",
            "wall s",
            "reason",
        ],
    )


def _seeds_section(report: Report) -> list[tuple[str, pd.DataFrame, str]]:
    """The adaptive seeds a run got (``gcsearch resolve``): method, looks, seeds per
    candidate; nothing for a run without them."""
    from gcsearch.report import sequential_verdicts as sv

    plan = sv.plan_of(report)
    if plan is None:
        return []
    return [("Adaptive seeds (gcsearch resolve)", sv.seeds_table(report), sv.note(plan, report))]


def _box(point: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {si(v) if k != 'top1' else f'{v:g} %'}" for k, v in point.items())


def _summary_lines(report: Report) -> list[str]:
    s, frame = report.study, report.frame
    counts = frame["status"].value_counts()
    status = ", ".join(f"{counts[k]} {k}" for k in counts.index)
    ref = ", ".join(
        f"{k} {si(v) if k != 'top1' else f'{v:g} %'}" for k, v in report.reference_point.items()
    )
    source = (
        "recorded by the search"
        if s.get("hv_reference")
        else "top-1 0 %, costs 1.1 x the largest recorded in the study"
    )
    lines = [
        f"Study `{s.get('name', '?')}` in `{report.where}`",
        f"Task `{s.get('task', '?')}`, backbone `{s.get('backbone', '?')}`, "
        f"input {s.get('input_shape', '?')}, objectives {', '.join(s.get('objectives', []))}",
        f"Trials: {count_line(frame.attrs['counts']) if 'counts' in frame.attrs else status}; "
        f"{len(report.rows)} distinct complete candidates, "
        f"{len(report.front)} on the Pareto front",
        (
            f"Hypervolume fraction {report.hv:.4f} of the box the search recorded (reference "
            f"point {ref}; ideal {_box(s['hv_ideal'])})"
            if s.get("hv_ideal")
            else f"Hypervolume {report.hv:.4g} with reference point ({ref}) — {source}"
        ),
        report.interval_note,
    ]
    if "budget" in s:
        lines.insert(2, f"Budget: {_budget_text(s['budget'])}")
    search = [f"{k} {s[k]}" for k in ("sampler", "seeds") if k in s]
    if isinstance(s.get("fidelity"), Mapping) and s["fidelity"].get("enabled"):
        search.append(f"rungs at epochs {s['fidelity'].get('rungs')}")
    if isinstance(s.get("reference_ci"), Mapping):  # reference rows' seeds follow intervals
        r = s["reference_ci"]
        search.append(
            f"reference rows add seeds to a ±{r['ci']:g}-point interval (at most {r['max_seeds']})"
        )
    if search:
        lines.insert(
            3, "Search: " + ", ".join(search) + (" (smoke budget)" if s.get("smoke") else "")
        )
    if isinstance(s.get("versions"), Mapping):
        lines.append(
            "Versions: " + ", ".join(f"{k} {v}" for k, v in s["versions"].items() if v is not None)
        )
    times = frame["env.time"].dropna().astype(str) if "env.time" in frame else []
    if len(times):
        lines.append(f"Trials ran from {min(times)} to {max(times)}")
    envs = frame.filter(like="env.").drop_duplicates()
    for col, label in (("env.device", "devices"), ("env.torch", "torch"), ("env.node", "nodes")):
        if col in envs and envs[col].notna().any():
            lines.append(f"{label}: {', '.join(sorted(map(str, envs[col].dropna().unique())))}")
    ran_on = [machine_label(m) for m in machines(frame) if m.get("cpu") or m.get("gpu")]
    if ran_on:
        lines.append(
            "machines (a seed reproduces on the same one only): " + "; ".join(dict.fromkeys(ran_on))
        )
    verdict = no_block_verdict(report.rows, report.front)
    if verdict:
        lines.append(verdict[0].upper() + verdict[1:])
    if report.comparison is not None:
        lines.append(f"Compared with `{report.comparison.source}`: {report.comparison.summary}")
    return lines + report.notes


def _budget_text(budget: Any) -> str:
    if isinstance(budget, Mapping):
        return ", ".join(f"{k}={v}" for k, v in budget.items())
    return str(budget)


def render_terminal(report: Report, console: Any = None) -> None:
    """Print the summary, the front, every complete candidate, the ablation tables, the presets
    and the failed/pruned candidates with rich."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
            console = Console(width=160)

    def show(title: str, table: pd.DataFrame) -> None:
        rt = Table(title=title, title_justify="left", show_lines=False)
        for col in table.columns:
            left = col in ("candidate", "reason", "kind", "status", "top-1 per seed")
            rt.add_column(str(col), justify="left" if left else "right")
        for _, r in table.iterrows():
            rt.add_row(*(str(v) for v in r))
        console.print(rt)

    for line in _summary_lines(report):
        console.print(line.replace("`", ""), highlight=False)
    show("Pareto front (rank 1 = export --rank 1)", _display_front(report))
    every = _display_candidates(report)
    title = f"All {len(every)} complete candidates (most accurate first)"
    if len(every) > TERMINAL_ROWS:
        title += f"; the first {TERMINAL_ROWS} here, all in --md/--html/--csv"
    show(title, every.head(TERMINAL_ROWS))
    ref_id = report.reference["spec.id"] if report.reference is not None else "–"
    for axis, table in report.ablations.items():
        show(f"Ablation: {axis} (reference {ref_id})", _display_ablation(table, axis))
    if len(report.presets):
        show("Presets", _display_presets(report))
    if report.verdicts:
        from gcsearch.report.verdicts import SECTION, verdict_table

        show(SECTION, verdict_table(report.verdicts))
    for title, table, note in _seeds_section(report):
        show(title, table)
        console.print(note, highlight=False)
    problems = _display_problems(report)
    if len(problems):
        show("Failed, pruned and unfinished candidates (one row each, all their trials)", problems)
    if report.comparison is not None:
        from gcsearch.report.compare import comparison_note, comparison_table

        show(f"Rerun vs {report.comparison.source}", comparison_table(report.comparison))
        console.print(comparison_note(report.comparison).replace("`", ""), highlight=False)


def _md_table(table: pd.DataFrame, index: bool = False) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            v = "–" if math.isnan(v) else f"{v:.2f}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    if index:
        table = table.reset_index()
    head = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


Section = tuple[str, str, pd.DataFrame, str]  # title, image, table, note


def _sections(
    report: Report, images: Mapping[str, str], curves: pd.DataFrame | None = None
) -> list[Section]:
    ref_id = report.reference["spec.id"] if report.reference is not None else "–"
    out: list[Section] = [("Pareto front", images.get("pareto", ""), _display_front(report), "")]
    out.append(
        (
            "All complete candidates",
            "",
            _display_candidates(report),
            "Every complete candidate, most accurate first; `front` is its rank on the Pareto "
            "front (= `export --rank`). Top-1 per seed is each seed's validation top-1; "
            "wall s sums the "
            "seeds' training time.",
        )
    )
    if images.get("marginal"):
        out.append(
            (
                "Marginal effect of each axis",
                images["marginal"],
                pd.DataFrame(),
                "Every complete searched candidate, grouped by its value on one axis (all other "
                "axes free): dots are seeds, diamonds candidate means, bars the mean over "
                "candidates.",
            )
        )
    for axis, table in report.ablations.items():
        out.append(
            (
                f"Ablation: {axis} (reference `{ref_id}`)",
                images.get(axis, ""),
                _display_ablation(table, axis),
                "",
            )
        )
    if len(report.presets):
        out.append(("Presets", images.get("presets", ""), _display_presets(report), ""))
    if report.verdicts:
        from gcsearch.report.verdicts import NOTE, SECTION, verdict_table

        out.append((SECTION, "", verdict_table(report.verdicts), NOTE))
    out += [(title, "", table, note) for title, table, note in _seeds_section(report)]
    if curves is not None and not curves.empty:
        rows = report.rows
        shown = set(report.front["spec.id"]) | set(
            rows.loc[rows["spec.kind"].isin(["baseline", "preset"]), "spec.id"]
        )
        wide = curve_table(curves, shown).round(2)
        epochs = ", ".join(str(e) for e in validated_epochs(curves))
        out.append(
            (
                "Learning curves",
                images.get("curves", ""),
                wide.rename_axis("candidate"),
                "Validation top-1 per epoch (mean over the seeds validated there: a reference "
                "row's added seeds validate at the last epoch only; the longest trial of each "
                "candidate) "
                f"of the front and the reference rows, at the epochs validated: {epochs} (a search "
                "validates at its rungs and last epoch, and every `validate_every`-th if set); "
                "every trial, seed and epoch is in the long table `gcsearch report RUN --curves "
                "FILE` writes.",
            )
        )
    problems = _display_problems(report)
    if len(problems):
        out.append(
            (
                "Failed, pruned and unfinished candidates",
                "",
                problems,
                "One row per candidate, with every trial and seed it had.",
            )
        )
    if report.comparison is not None:
        from gcsearch.report.compare import comparison_note, comparison_table

        out.append(
            (
                f"Rerun vs `{report.comparison.source}`",
                "",
                comparison_table(report.comparison),
                comparison_note(report.comparison),
            )
        )
    return out


def render_markdown(
    report: Report,
    path: str | os.PathLike[str],
    images: Mapping[str, Path] | None = None,
    curves: pd.DataFrame | None = None,
) -> list[Path]:
    """Write ``path`` and its PNG plots beside it; returns the files written."""
    path = Path(path)
    if images is None:
        from gcsearch.report.plots import write_plots

        images = write_plots(report, path.parent, path.stem, curves=curves)
    parts = [f"# gcsearch report: {report.study.get('name', '')}", ""]
    parts += [f"- {line}" for line in _summary_lines(report)]
    for title, image, table, note in _sections(
        report, {k: p.name for k, p in images.items()}, curves
    ):
        parts += ["", f"## {title}", ""]
        if note:
            parts += [note, ""]
        if image:
            parts += [f"![{Path(image).stem}]({image})", ""]
        if len(table.columns):
            parts.append(_md_table(table, index=title == "Learning curves"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return [path, *images.values()]


_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.title = 'click to sort'; th.style.cursor = 'pointer';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), up = th.dataset.dir !== 'up';
    table.querySelectorAll('th').forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = up ? 'up' : 'down';
    function key(row) {
      var cell = row.cells[th.cellIndex], t = cell ? cell.textContent.trim() : '';
      var m = t.match(/^[#+]?(-?[0-9.]+)\\s*([KMG]?)/);
      if (!m) return [1, t];
      return [0, parseFloat(m[1]) * ({K: 1e3, M: 1e6, G: 1e9}[m[2]] || 1)];
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render_html(
    report: Report,
    path: str | os.PathLike[str],
    images: Mapping[str, Path] | None = None,
    curves: pd.DataFrame | None = None,
) -> list[Path]:
    """Write one self-contained HTML page: plots embedded as base64 PNG, tables sortable by a
    click on their header (a few lines of inline script); returns the files written."""
    import tempfile

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        if images is None:
            from gcsearch.report.plots import write_plots

            images = write_plots(report, Path(tmp), path.stem, curves=curves)
        uris = {k: _data_uri(p) for k, p in images.items()}
    esc = html.escape
    title = f"gcsearch report: {report.study.get('name', '')}"
    body = [f"<h1>{esc(title)}</h1>", "<ul>"]
    body += [f"<li>{esc(line.replace('`', ''))}</li>" for line in _summary_lines(report)]
    body.append("</ul>")
    for head, image, table, note in _sections(report, uris, curves):
        body.append(f"<h2>{esc(head.replace('`', ''))}</h2>")
        if note:
            body.append(f"<p>{esc(note.replace('`', ''))}</p>")
        if image:
            body.append(f'<img src="{image}" alt="{esc(head)}" style="max-width:100%">')
        if len(table.columns):
            body.append(
                table.to_html(
                    index=head == "Learning curves",
                    escape=True,
                    border=0,
                    classes="sortable",
                    na_rep="–",
                    float_format="{:.2f}".format,
                )
            )
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:auto}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}"
        "tr:nth-child(even){background:#f4f4f4}th[data-dir=up]::after{content:' ▲'}"
        "th[data-dir=down]::after{content:' ▼'}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}"
        f"<script>{_SORT_JS}</script></body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return [path]
