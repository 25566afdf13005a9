"""PNG plots of a ``Report`` with matplotlib (Agg): the Pareto scatter (pruned candidates and
labels included), per-axis deltas, the marginal effect of each axis, and learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gcsearch.report.pareto import pareto_front
from gcsearch.report.tables import AXES, Report, seed_values, stopped_rows, with_stats
from gcsearch.units import si

#: Searched points get a text label when the plot holds at most this many (front always).
LABEL_ALL_UP_TO = 30


def write_plots(
    report: Report, folder: Path, stem: str, curves: pd.DataFrame | None = None
) -> dict[str, Path]:
    """The Pareto scatter, the marginal effects, one plot per ablation axis, one for presets
    and the learning curves (given ``curves``, see ``report.curves``), as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = {"pareto": folder / f"{stem}-pareto.png"}
    fig = _pareto_figure(report, plt)
    fig.savefig(out["pareto"], dpi=110, bbox_inches="tight")
    plt.close(fig)
    fig = _marginal_figure(report, plt)
    if fig is not None:
        out["marginal"] = folder / f"{stem}-marginal.png"
        fig.savefig(out["marginal"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    if curves is not None and not curves.empty:
        out["curves"] = folder / f"{stem}-curves.png"
        fig = _curves_figure(report, curves, plt)
        fig.savefig(out["curves"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    for axis, table in report.ablations.items():
        table = table[table["complete"]]
        if len(table) < 2:
            continue
        out[axis] = folder / f"{stem}-{axis}.png"
        ref = table.iloc[0]
        fig = _delta_figure(table, f"{axis}: Δ top-1 to {ref['spec.id']}", "the reference", plt)
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
            "presets: Δ top-1 to the network without blocks",
            "the baseline",
            plt,
        )
        fig.savefig(out["presets"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return out


def _short(cid: str) -> str:
    """A plot label: the id without the study's usual ``@after_1x1:`` position prefix."""
    return cid.replace("@after_1x1:", "@")


def _pareto_figure(report: Report, plt: Any) -> Any:
    rows = with_stats(report.rows, None)
    stopped = stopped_rows(report.frame, report.rows)
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    added = rows["cost.block_macs"].astype(float)
    scale, unit = (1e6, "M") if added.abs().max() >= 1e6 else (1e3, "K")
    x = added / scale
    base = float((rows["cost.macs"].astype(float) - added).median())
    params = rows["cost.params"].astype(float)
    lo, span = params.min(), params.max() - params.min()

    def area(p: Any) -> Any:
        return 25 + 220 * ((p - lo) / span if span > 0 else 0 * p)

    size = area(params)
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
        label="complete candidate",
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
    if len(stopped):
        sx = stopped["cost.block_macs"].astype(float) / scale
        sy = stopped["metric.top1_mean"].astype(float)
        ax.scatter(
            sx,
            sy,
            s=area(stopped["cost.params"].astype(float)),
            facecolors="none",
            edgecolors="tab:blue",
            linestyles="--",
            label="pruned (top-1 when stopped)",
            zorder=2,
        )
        for (_, r), px, py in zip(stopped.iterrows(), sx, sy, strict=True):
            ax.annotate(
                f"{_short(str(r['spec.id']))} (ep {r['fidelity.epochs']})",
                (px, py),
                textcoords="offset points",
                xytext=(6, -9),
                fontsize=6,
                color="tab:blue",
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
    label_all = len(rows) <= LABEL_ALL_UP_TO
    labels: dict[tuple[float, float], list[str]] = {}
    for (_, r), front in zip(rows.iterrows(), on_front, strict=True):
        if r["spec.kind"] in ("preset", "baseline"):
            name = str(r["spec.block"])
        elif label_all or front:
            name = _short(str(r["spec.id"]))
        else:
            continue
        key = (float(r["cost.block_macs"]) / scale, float(r["top1.mean"]))
        labels.setdefault(key, []).append(name)
    for key, names in labels.items():
        ax.annotate(", ".join(names), key, textcoords="offset points", xytext=(7, 4), fontsize=7)
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
    ax.set_xlabel(f"MACs the blocks add to {where} ({si(base)} MACs without blocks), {unit}")
    ax.set_ylabel("top-1 % (mean over seeds; bars: 95 % CI if n ≥ 2, cut at 100)")
    ax.set_title(f"{report.study.get('name', '')}: accuracy vs added MACs")
    ax.grid(alpha=0.3)
    first = ax.legend(loc="best", fontsize=8, framealpha=0.85)
    ax.add_artist(first)
    marks = sorted({float(params.min()), float(params.median()), float(params.max())})
    handles = [
        ax.scatter([], [], s=float(area(np.float64(p))), c="0.65", edgecolors="0.3") for p in marks
    ]
    ax.legend(
        handles,
        [f"{si(p)} params" for p in marks],
        title="marker area",
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        fontsize=7,
        title_fontsize=7,
        labelspacing=1.2,
        borderpad=0.9,
    )
    return fig


def _marginal_figure(report: Report, plt: Any) -> Any | None:
    """Per axis, every complete searched candidate grouped by its value on that axis."""
    blocks = report.rows[report.rows["spec.kind"] == "block"]
    axes = []
    for axis, fields in AXES.items():
        col = f"spec.{fields[0]}"
        if col in blocks and blocks[col].nunique(dropna=True) >= 2:
            axes.append(axis)
    if not axes:
        return None
    fig, grid = plt.subplots(
        1, len(axes), figsize=(2.6 * len(axes) + 1, 3.8), sharey=True, squeeze=False
    )
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is reproducible
    for ax, axis in zip(grid[0], axes, strict=True):
        labels = blocks.apply(lambda r, a=axis: _axis_value(r, a), axis=1)
        values = sorted(labels.dropna().unique(), key=str)
        for i, value in enumerate(values):
            group = blocks[labels == value]
            means = []
            for _, r in group.iterrows():
                seeds = seed_values(r)
                jitter = rng.uniform(-0.18, 0.18)
                ax.scatter([i + jitter] * len(seeds), seeds, s=9, c="0.55", alpha=0.7, zorder=2)
                if seeds:
                    means.append(float(np.mean(seeds)))
                    ax.scatter(
                        [i + jitter],
                        [means[-1]],
                        marker="D",
                        s=22,
                        c="tab:orange",
                        edgecolors="black",
                        linewidths=0.4,
                        zorder=3,
                    )
            if means:
                ax.hlines(np.mean(means), i - 0.3, i + 0.3, colors="tab:red", lw=2, zorder=4)
        ax.set_xticks(range(len(values)), [str(v) for v in values], fontsize=8)
        ax.set_xlim(-0.6, len(values) - 0.4)
        ax.set_title(f"{axis} (n={len(blocks)})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    grid[0][0].set_ylabel("top-1 % (dots: seeds; ◆: candidates; bar: mean)")
    fig.suptitle("Marginal effect of each axis over all complete candidates", fontsize=10)
    return fig


def _axis_value(row: pd.Series, axis: str) -> str | None:
    if axis == "transform":
        if row.get("spec.transform") == "1x1":
            return "1x1"
        ratio = row.get("spec.ratio")
        return None if ratio is None or pd.isna(ratio) else f"r{int(ratio)}"
    value = row.get(f"spec.{axis}")
    return None if value is None or pd.isna(value) else str(value)


def _curves_figure(report: Report, curves: pd.DataFrame, plt: Any) -> Any:
    """Validation top-1 per epoch of every trial (seeds thin, the candidate mean bold)."""
    fig, ax = plt.subplots(figsize=(8.5, 5))
    front = set(report.front["spec.id"])
    color_of = {cid: plt.cm.tab10(i % 10) for i, cid in enumerate(sorted(front))}
    labelled: set[str] = set()
    curves = curves[curves["val_top1"].notna()]  # epochs that validated: a curve's points
    for (_, cid), g in curves.groupby(["trial", "spec.id"], sort=True):
        status = str(g["status"].iloc[0])
        color = color_of.get(cid, "0.6")
        style = "--" if status != "complete" else "-"
        for _, s in g.groupby("seed"):
            ax.plot(s["epoch"], s["val_top1"], style, color=color, lw=0.6, alpha=0.45)
        mean = g.groupby("epoch")["val_top1"].mean()
        label = cid in front and status == "complete" and cid not in labelled
        labelled.add(cid) if label else None
        ax.plot(
            mean.index,
            mean.values,
            style,
            color=color,
            lw=1.8 if cid in front else 1.0,
            label=_short(str(cid)) if label else None,
        )
    rungs = (report.study.get("fidelity") or {}).get("rungs") or []
    for i, epoch in enumerate(rungs):
        ax.axvline(
            float(epoch),
            color="tab:purple",
            lw=0.8,
            ls=":",
            label="rung (successive halving)" if i == 0 else None,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 %")
    ax.set_title("Learning curves: front members in colour, others grey; dashed = pruned/failed")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def _delta_figure(table: pd.DataFrame, title: str, against: str, plt: Any) -> Any:
    """Δ top-1 of each row to the first with its 95 % interval (paired over shared seeds, else
    Welch; none where n = 1, and the title says so), with the MACs each adds."""
    rows = table.iloc[1:]
    if rows["delta.ci95"].notna().any():
        title += "\n95 % CI: paired over shared seeds, else Welch"
    else:
        title += "\nn = 1: no interval"
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
        f"{v}\n+{si(m)} MACs" for v, m in zip(table["value"], table["cost.block_macs"], strict=True)
    ]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_xlim(-0.5, len(table) - 0.5)
    ax.set_ylabel(f"Δ top-1 to {against} (points)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig
