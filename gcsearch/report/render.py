"""Rendering of a ``Report``: rich tables in the terminal, Markdown and HTML files.

Renderers only format the report's frames (a tidy table first, pretty output second); the
PNG plots come from ``gcsearch.report.plots`` and sit beside the written file.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gcsearch.report.tables import Report, with_stats
from gcsearch.search.record import DUPLICATE_OF, count_line


def _si(value: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    v = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}" if abs(v) / scale < 100 else f"{v / scale:.0f}{unit}"
    return f"{v:.0f}"


def _pm(mean: float, half: float, signed: bool = False) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    if half is not None and pd.notna(half):
        text += f" ± {half:.2f}"
        if signed and abs(mean) > half:
            text += " *"
    return text


def _common_columns(t: pd.DataFrame, delta_name: str) -> dict[str, list[str]]:
    done = t["complete"] if "complete" in t else pd.Series(True, index=t.index)
    top1 = [_pm(m, h) for m, h in zip(t["top1.mean"], t["top1.ci95"], strict=True)]
    delta = [_pm(m, h, signed=True) for m, h in zip(t["delta.mean"], t["delta.ci95"], strict=True)]
    for i, (ok, (_, r)) in enumerate(zip(done, t.iterrows(), strict=True)):
        if not ok:  # pruned: its top-1 is from fewer epochs, so no difference is given
            top1[i] += f" (pruned, epoch {r['fidelity.epochs']}/{r['fidelity.max_epochs']})"
            delta[i] = "pruned"
    return {
        "params": [_si(v) for v in t["cost.params"]],
        "MACs": [_si(v) for v in t["cost.macs"]],
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
    cols["block params"] = [_si(v) for v in t["cost.block_params"]]
    cols["block MACs"] = [_si(v) for v in t["cost.block_macs"]]
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
        }
    )


def _display_problems(report: Report) -> pd.DataFrame:
    f = report.frame[report.frame["status"] != "complete"]
    return pd.DataFrame(
        {
            "trial": [str(v) for v in f["trial"]],
            "candidate": list(f["spec.id"]),
            "status": list(f["status"]),
            "epochs": [
                ("–" if pd.isna(e) else str(e)) + ("" if pd.isna(m) else f"/{m}")
                for e, m in zip(f["fidelity.epochs"], f["fidelity.max_epochs"], strict=True)
            ],
            "reason": [str(r or "")[:120] for r in f["reason"]],
        }
    )


def _box(point: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {_si(v) if k != 'top1' else f'{v:g} %'}" for k, v in point.items())


def _summary_lines(report: Report) -> list[str]:
    s, frame = report.study, report.frame
    counts = frame["status"].value_counts()
    status = ", ".join(f"{counts[k]} {k}" for k in counts.index)
    ref = ", ".join(
        f"{k} {_si(v) if k != 'top1' else f'{v:g} %'}" for k, v in report.reference_point.items()
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
        (f"Hypervolume fraction {report.hv:.4f} of the box the search recorded (reference "
         f"point {ref}; ideal {_box(s['hv_ideal'])})" if s.get("hv_ideal")
         else f"Hypervolume {report.hv:.4g} with reference point ({ref}) — {source}"),
        "Means are over seeds with a 95 % t-interval; Δ uses a Welch interval, "
        "`*` where it excludes 0.",
    ]
    if "budget" in s:
        lines.insert(2, f"Budget: {_budget_text(s['budget'])}")
    search = [f"{k} {s[k]}" for k in ("sampler", "seeds") if k in s]
    if isinstance(s.get("fidelity"), Mapping) and s["fidelity"].get("enabled"):
        search.append(f"rungs at epochs {s['fidelity'].get('rungs')}")
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
    return lines + report.notes


def _budget_text(budget: Any) -> str:
    if isinstance(budget, Mapping):
        return ", ".join(f"{k}={v}" for k, v in budget.items())
    return str(budget)


def render_terminal(report: Report, console: Any = None) -> None:
    """Print the summary, the front, the ablation tables and the presets with rich."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
            console = Console(width=160)

    def show(title: str, table: pd.DataFrame) -> None:
        rt = Table(title=title, title_justify="left", show_lines=False)
        for col in table.columns:
            rt.add_column(str(col), justify="left" if col in ("candidate", "reason") else "right")
        for _, r in table.iterrows():
            rt.add_row(*(str(v) for v in r))
        console.print(rt)

    for line in _summary_lines(report):
        console.print(line.replace("`", ""), highlight=False)
    show("Pareto front (rank 1 = export --rank 1)", _display_front(report))
    ref_id = report.reference["spec.id"] if report.reference is not None else "–"
    for axis, table in report.ablations.items():
        show(f"Ablation: {axis} (reference {ref_id})", _display_ablation(table, axis))
    if len(report.presets):
        show("Presets", _display_presets(report))
    problems = _display_problems(report)
    if len(problems):
        show("Failed, pruned and unfinished trials", problems)


def _md_table(table: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _sections(report: Report, images: Mapping[str, str]) -> list[tuple[str, str, pd.DataFrame]]:
    ref_id = report.reference["spec.id"] if report.reference is not None else "–"
    out = [("Pareto front", images.get("pareto", ""), _display_front(report))]
    for axis, table in report.ablations.items():
        out.append(
            (
                f"Ablation: {axis} (reference `{ref_id}`)",
                images.get(axis, ""),
                _display_ablation(table, axis),
            )
        )
    if len(report.presets):
        out.append(("Presets", images.get("presets", ""), _display_presets(report)))
    problems = _display_problems(report)
    if len(problems):
        out.append(("Failed, pruned and unfinished trials", "", problems))
    return out


def render_markdown(
    report: Report, path: str | os.PathLike[str], images: Mapping[str, Path] | None = None
) -> list[Path]:
    """Write ``path`` and its PNG plots beside it; returns the files written."""
    path = Path(path)
    if images is None:
        from gcsearch.report.plots import write_plots

        images = write_plots(report, path.parent, path.stem)
    parts = [f"# gcsearch report: {report.study.get('name', '')}", ""]
    parts += [f"- {line}" for line in _summary_lines(report)]
    for title, image, table in _sections(report, {k: p.name for k, p in images.items()}):
        parts += ["", f"## {title}", ""]
        if image:
            parts += [f"![{Path(image).stem}]({image})", ""]
        parts.append(_md_table(table))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return [path, *images.values()]


def render_html(
    report: Report, path: str | os.PathLike[str], images: Mapping[str, Path] | None = None
) -> list[Path]:
    """Write an HTML page with its PNG plots beside it; returns the files written."""
    path = Path(path)
    if images is None:
        from gcsearch.report.plots import write_plots

        images = write_plots(report, path.parent, path.stem)
    esc = html.escape
    title = f"gcsearch report: {report.study.get('name', '')}"
    body = [f"<h1>{esc(title)}</h1>", "<ul>"]
    body += [f"<li>{esc(line.replace('`', ''))}</li>" for line in _summary_lines(report)]
    body.append("</ul>")
    for head, image, table in _sections(report, {k: p.name for k, p in images.items()}):
        body.append(f"<h2>{esc(head.replace('`', ''))}</h2>")
        if image:
            body.append(f'<img src="{esc(image)}" alt="{esc(head)}" style="max-width:100%">')
        body.append(table.to_html(index=False, escape=True, border=0))
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}"
        "tr:nth-child(even){background:#f4f4f4}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return [path, *images.values()]
