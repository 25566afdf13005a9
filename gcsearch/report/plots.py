"""PNG plots of a ``Report`` with matplotlib (Agg): the Pareto scatter and per-axis deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gcsearch.report.pareto import pareto_front
from gcsearch.report.render import _si
from gcsearch.report.tables import Report, with_stats


def write_plots(report: Report, folder: Path, stem: str) -> dict[str, Path]:
    """The Pareto scatter, one plot per ablation axis and one for presets, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = {"pareto": folder / f"{stem}-pareto.png"}
    fig = _pareto_figure(report, plt)
    fig.savefig(out["pareto"], dpi=110, bbox_inches="tight")
    plt.close(fig)
    for axis, table in report.ablations.items():
        table = table[table["complete"]]
        if len(table) < 2:
            continue
        out[axis] = folder / f"{stem}-{axis}.png"
        ref = table.iloc[0]
        fig = _delta_figure(
            table, f"{axis}: Δ top-1 to {ref['spec.id']} (95 % Welch CI)", "the reference", plt
        )
        fig.savefig(out[axis], dpi=110, bbox_inches="tight")
        plt.close(fig)
    if len(report.presets) > 1 and report.presets["delta.mean"].notna().any():
        out["presets"] = folder / f"{stem}-presets.png"
        table = report.presets.assign(
            value=report.presets["spec.block"],
            is_reference=report.presets["spec.kind"] == "baseline",
        )
        fig = _delta_figure(
            table,
            "presets: Δ top-1 to the network without blocks (95 % Welch CI)",
            "the baseline",
            plt,
        )
        fig.savefig(out["presets"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return out


def _pareto_figure(report: Report, plt: Any) -> Any:
    rows = with_stats(report.rows, None)
    fig, ax = plt.subplots(figsize=(8, 5.2))
    added = rows["cost.block_macs"].astype(float)
    scale, unit = (1e6, "M") if added.abs().max() >= 1e6 else (1e3, "K")
    x = added / scale
    base = float((rows["cost.macs"].astype(float) - added).median())
    params = rows["cost.params"].astype(float)
    span = params.max() - params.min()
    size = 25 + 220 * ((params - params.min()) / span if span > 0 else 0 * params)
    on_front = rows["trial"].isin(report.front["trial"])
    half = rows["top1.ci95"].fillna(0).to_numpy(float)
    mean = rows["top1.mean"].to_numpy(float)
    bars = np.vstack([np.minimum(half, mean), np.minimum(half, 100 - mean)])  # within 0..100 %
    ax.errorbar(x, mean, yerr=bars, fmt="none", ecolor="0.75", elinewidth=0.8, zorder=1)
    ax.scatter(
        x[~on_front],
        rows["top1.mean"][~on_front],
        s=size[~on_front],
        c="0.65",
        alpha=0.7,
        edgecolors="white",
        label="candidate",
        zorder=2,
    )
    ax.scatter(
        x[on_front],
        rows["top1.mean"][on_front],
        s=size[on_front],
        c="tab:red",
        alpha=0.9,
        edgecolors="black",
        label="Pareto front (all objectives)",
        zorder=3,
    )
    pts = np.column_stack([x, rows["top1.mean"]])
    idx = pareto_front(pts, ["min", "max"])
    stair = pts[idx][np.argsort(pts[idx][:, 0])]
    ax.step(
        stair[:, 0],
        stair[:, 1],
        where="post",
        color="tab:red",
        lw=1.2,
        alpha=0.8,
        label="front in (MACs, top-1)",
        zorder=2,
    )
    labels: dict[tuple[float, float], list[str]] = {}
    for _, r in rows[rows["spec.kind"].isin(["preset", "baseline"])].iterrows():
        key = (float(r["cost.block_macs"]) / scale, float(r["top1.mean"]))
        labels.setdefault(key, []).append(str(r["spec.block"]))
    for key, names in labels.items():
        ax.annotate(", ".join(names), key, textcoords="offset points", xytext=(7, 4), fontsize=8)
    ranks: dict[tuple[float, float], list[str]] = {}
    for _, r in report.front.iterrows():  # rank numbers as in the front table / export --rank
        key = (float(r["cost.block_macs"]) / scale, float(r["metric.top1_mean"]))
        ranks.setdefault(key, []).append(f"#{r['rank']}")
    for key, names in ranks.items():
        ax.annotate(
            ",".join(names),
            key,
            textcoords="offset points",
            xytext=(-4, -13),
            fontsize=7,
            color="tab:red",
            ha="center",
        )
    where = report.study.get("backbone", "the backbone")
    ax.set_xlabel(f"MACs the blocks add to {where} ({_si(base)} MACs without blocks), {unit}")
    ax.set_ylabel("top-1 % (mean over seeds; bars: 95 % CI if n ≥ 2, cut at 100)")
    ax.set_title(f"{report.study.get('name', '')}: accuracy vs added MACs (marker area ~ params)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _delta_figure(table: pd.DataFrame, title: str, against: str, plt: Any) -> Any:
    """Δ top-1 (Welch 95 % interval) of each row to the first, with the MACs each adds."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(table) + 2), 3.6))
    x = np.arange(len(table))
    ax.axhline(0, color="0.5", lw=0.8)
    colors = ["tab:blue" if ref else "tab:orange" for ref in table["is_reference"]]
    ax.errorbar(
        x,
        table["delta.mean"].fillna(0),
        yerr=table["delta.ci95"].fillna(0),
        fmt="none",
        ecolor="0.3",
        capsize=4,
    )
    ax.scatter(x, table["delta.mean"].fillna(0), c=colors, s=50, zorder=3)
    labels = [
        f"{v}\n+{_si(m)} MACs"
        for v, m in zip(table["value"], table["cost.block_macs"], strict=True)
    ]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.5, len(table) - 0.5)
    ax.set_ylabel(f"Δ top-1 to {against} (points)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig
