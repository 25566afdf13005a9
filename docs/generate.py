"""Fill every figure in README.md, docs/*.md and benchmarks/README.md from the committed records
the tool wrote.

A figure in a document is a marker pair around its text::

    <!-- fig gcsearch/tasks/measured/synthetic.json candidates/none/std|.2f -->0.33<!-- /fig -->

The first word is the committed file (repository-relative), the second what to read from it:

* a JSON file: a ``/``-separated key path, then ``|`` and a format spec (``.2f``, ``,``);
  a ``*`` in the path with ``[min]``, ``[max]``, ``[range]`` (``19–24``), ``[count]`` or
  ``[count>=99.5]`` after it aggregates that key over every entry at the ``*``;
* a report's Markdown (``reports/*.md``, written by ``gcsearch report``): ``SECTION/ROW/COLUMN``,
  the cell of that table copied as the report prints it;
* a JSON file, ``=NAME|format``: a figure computed from several of its values (``JSON_FIGURES``);
* an exhaustive table (``benchmarks/tables/*.jsonl``): ``network/ID/top1``, ``cheapest/N/top1``,
  ``spread/macs`` (see ``_table_figure``);
* a report's CSV (``reports/*.csv``, the results frame): ``=span_min``, the minutes between the
  first and the last trial's completion time (``env.time``, the report's "Trials ran from … to");
  ``=trials``, its row count; ``=status:S``, its rows of status S (``seed``: the seeds
  ``gcsearch resolve`` added); ``row=CANDIDATE_ID/COLUMN|format``, one cell.

A table regenerated whole sits between ``<!-- table NAME -->`` and ``<!-- /table -->``; NAME is a
function of this file (``TABLES``).

    python docs/generate.py            # rewrite the documents in place (make docs)
    python docs/generate.py --check    # exit 1, naming every figure that differs (the test)
    python docs/generate.py --count    # decimal figures per document: generated vs typed by hand

The script lives outside the package: it reads the repository's committed records, which an
installed gcsearch does not ship.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/*.md", "benchmarks/README.md")

FIG = re.compile(r"<!-- fig (\S+) (.+?) -->(.*?)<!-- /fig -->", re.S)
TABLE = re.compile(r"(<!-- table (\S+) -->\n)(.*?)(<!-- /table -->)", re.S)
TESTED = re.compile(r"<!-- tested-versions.*?<!-- /tested-versions -->", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")


class FigureError(ValueError):
    """A marker names a file or a key the records do not hold."""


# ------------------------------------------------------------------------------- sources
@cache
def _json(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text())


@cache
def _csv(root: Path, rel: str) -> tuple[dict[str, str], ...]:
    with (root / rel).open(newline="") as f:
        return tuple(csv.DictReader(f))


@cache
def _md_tables(root: Path, rel: str) -> dict[str, list[dict[str, str]]]:
    """Every table of a report's Markdown, by the heading above it."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, header = "", None
    for line in (root / rel).read_text().splitlines():
        if line.startswith("#"):
            heading, header = line.lstrip("#").strip(), None
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if header is None:
                header = cells
            elif not set(line) <= set("|- "):
                tables.setdefault(heading, []).append(dict(zip(header, cells, strict=False)))
        else:
            header = None
    return tables


def _walk(data: Any, path: str, where: str) -> Any:
    for key in path.split("/"):
        if isinstance(data, list):
            data = data[int(key)]
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            raise FigureError(f"{where}: no key {key!r}")
    return data


def _format(value: Any, spec: str) -> str:
    if spec == "":
        return str(value)
    return format(value, spec)


def _aggregate(values: list[Any], agg: str, spec: str, where: str) -> str:
    """min, max, range (``19–24``), count, or count>=X over the values at a ``*``."""
    if agg == "range":
        low, high = _format(min(values), spec), _format(max(values), spec)
        return low if low == high else f"{low}–{high}"
    if agg in ("min", "max"):
        return _format(min(values) if agg == "min" else max(values), spec)
    if agg == "count":
        return str(len(values))
    if agg.startswith("count>="):
        return str(sum(1 for v in values if v >= float(agg[7:])))
    raise FigureError(f"{where}: unknown aggregate [{agg}]")


def _late_rungs(bench: dict[str, Any]) -> list[dict[str, Any]]:
    """The successive-halving replays whose first rung is past epoch 1 (past chance)."""
    return [f for f in bench["fidelity"] if f["rungs"][0] >= 2]


#: Figures of benchmarks/bench-search.json that are a function of several of its values.
JSON_FIGURES: dict[str, Callable[[Any], float]] = {
    "late_rung_saving_max": lambda b: max(f["saving"] for f in _late_rungs(b)),
    "late_rung_saving_if_resumed_max": lambda b: max(
        f["saving_if_resumed"] for f in _late_rungs(b)
    ),
    "late_rung_hv_lost_max": lambda b: 1 - min(f["hv_fraction"] for f in _late_rungs(b)),
    # benchmarks/overhead-quick.json: the plain loop's own time outside training steps
    "plain_outside": lambda o: 1 - o["plain_loop"]["train_s"] / o["plain_loop"]["process_wall_s"],
}


@cache
def _networks(root: Path, rel: str, searched: bool = True) -> dict[str, dict[str, float]]:
    """An exhaustive table (JSONL): each network's mean over seeds of top-1 and its costs; with
    ``searched``, the reference rows' networks (``none``, GC) left out, as the benchmark scores."""
    lines = [json.loads(line) for line in (root / rel).read_text().splitlines() if line]
    header, results = lines[0], lines[1:]
    references = {
        net
        for net, ids in header["networks"].items()
        if any(i.split("@")[0] in header["references"] or i in header["references"] for i in ids)
    }
    by: dict[str, list[dict[str, Any]]] = {}
    for line in results:
        if not (searched and line["key"] in references):
            by.setdefault(line["key"], []).append(line["result"])
    return {
        net: {k: statistics.fmean(r[k] for r in rs) for k in ("top1", "macs", "block_macs")}
        for net, rs in by.items()
    }


def _table_figure(root: Path, source: str, selector: str, where: str) -> str:
    """``network/ID/top1``, ``cheapest/N/top1`` (the best of the N networks with the fewest
    block MACs), ``spread/macs`` (max − min over every network, % of the min)."""
    path, _, spec = selector.partition("|")
    kind, _, rest = path.partition("/")
    nets = _networks(root, source)
    if kind == "network":
        net, _, key = rest.rpartition("/")
        if net not in nets:
            raise FigureError(f"{where}: no searched network {net!r}")
        return _format(nets[net][key], spec)
    if kind == "cheapest":
        n, _, key = rest.partition("/")
        cheapest = sorted(nets.values(), key=lambda v: v["block_macs"])[: int(n)]
        return _format(max(v[key] for v in cheapest), spec)
    if kind == "spread":  # over every network of the table, the reference rows' too
        values = [v[rest] for v in _networks(root, source, searched=False).values()]
        return _format((max(values) - min(values)) / min(values) * 100, spec)
    raise FigureError(f"{where}: unknown table figure")


def figure(root: Path, source: str, selector: str) -> str:
    """The text of one figure, read from its committed source."""
    where = f"{source} {selector}"
    if not (root / source).is_file():
        raise FigureError(f"{where}: no such committed file")
    if source.endswith(".json") and selector.startswith("="):
        name, _, spec = selector[1:].partition("|")
        if name not in JSON_FIGURES:
            raise FigureError(f"{where}: unknown figure (known: {', '.join(JSON_FIGURES)})")
        return _format(JSON_FIGURES[name](_json(root, source)), spec)
    if source.endswith(".json"):
        path, _, spec = selector.partition("|")
        if path.endswith("]"):  # candidates/*/std[max]: over every key at the "*"
            path, _, agg = path[:-1].partition("[")
            head, _, tail = path.partition("/*/")
            found = _walk(_json(root, source), head.removesuffix("/*"), where)
            found = list(found.values()) if isinstance(found, dict) else list(found)
            values = [_walk(v, tail, where) for v in found] if tail else found
            return _aggregate(values, agg, spec, where)
        return _format(_walk(_json(root, source), path, where), spec)
    if source.endswith(".jsonl"):
        return _table_figure(root, source, selector, where)
    if source.endswith(".csv"):
        if selector == "=span_min":
            times = [
                datetime.fromisoformat(r["env.time"]) for r in _csv(root, source) if r["env.time"]
            ]
            return f"{(max(times) - min(times)).total_seconds() / 60:.1f}"
        if selector == "=trials":
            return str(len(_csv(root, source)))
        if selector.startswith("=status:"):  # rows of one status, e.g. =status:seed
            return str(sum(r["status"] == selector[8:] for r in _csv(root, source)))
        if selector.startswith("row="):  # row=CANDIDATE_ID/COLUMN|format
            path, _, spec = selector[4:].partition("|")
            cid, _, column = path.rpartition("/")
            for r in _csv(root, source):
                if r["spec.id"] == cid and column in r:
                    return _format(float(r[column]), spec)
            raise FigureError(f"{where}: no row {cid!r} with a column {column!r}")
        raise FigureError(f"{where}: unknown CSV figure")
    if source.endswith(".md"):
        section, row, column = selector.split("/", 2)
        for heading, rows in _md_tables(root, source).items():
            if heading.startswith(section):
                for r in rows:
                    if next(iter(r.values())) == row:
                        if column not in r:
                            raise FigureError(f"{where}: no column {column!r}")
                        return r[column]
        raise FigureError(f"{where}: no such row")
    raise FigureError(f"{where}: unknown kind of source")


# -------------------------------------------------------------------------------- tables
PAPER_REPORTS = (
    ("synthetic strip", "reports/gcnet-paper.md"),
    ("fashion-pairs", "reports/gcnet-paper-pairs.md"),
    ("synthetic-graded", "reports/gcnet-paper-graded.md"),
    ("synthetic-graded-wide", "reports/gcnet-paper-ratio.md"),
)
_DELTA = re.compile(r"Δ ([+-]?\d+\.\d+)(?: ± (\d+\.\d+))?")
_LOOK = re.compile(r"(?:at|after) look \d+ of \d+ \(n = (\d+)|open at the cap \(n = (\d+)")
_NOT_ASKED = "–"


def _verdict_cell(row: dict[str, str] | None) -> str:
    """The verdict with its Δ: ± the paired 95 % interval in a fixed-n report, or the seeds
    per candidate where a resolved report decided (or stopped at the cap)."""
    if row is None or row["verdict"] == "not in this run":
        return _NOT_ASKED
    verdict = row["verdict"].replace(" at this noise level", "")
    if verdict.startswith(("agree", "disagree")):
        verdict = f"**{verdict}**"
    delta, look = _DELTA.search(row["evidence"]), _LOOK.search(row["evidence"])
    if delta and delta.group(2):
        return f"{verdict} ({delta.group(1)} ± {delta.group(2)})"
    if delta and look:
        return f"{verdict} ({delta.group(1)}, n = {look.group(1) or look.group(2)})"
    return f"{verdict} ({delta.group(1)})" if delta else verdict


def gcnet_findings(root: Path) -> list[str]:
    """One row per GCNet conclusion, one column per committed paper report; a claim worded
    differently (a report made under other verdict rules) is a row of its own, and a report
    that does not ask a question shows a dash."""
    reports = []
    for _, rel in PAPER_REPORTS:
        rows = _md_tables(root, rel)["GCNet's findings, checked"]
        reports.append({r["conclusion"].split(" — ")[0]: r for r in rows})
    claims: dict[str, None] = {}
    for rep in sorted(reports, key=len, reverse=True):
        claims.update(dict.fromkeys(rep))
    lines = [
        "| conclusion | " + " | ".join(name for name, _ in PAPER_REPORTS) + " |",
        "|---" * (len(PAPER_REPORTS) + 1) + "|",
    ]
    for claim in claims:
        cells = [_verdict_cell(rep.get(claim)) for rep in reports]
        lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    return lines


_STRATEGIES = (
    ("**ehvi** (default)", "ehvi"),
    ("tpe", "tpe"),
    ("nsga2", "nsga2"),
    ("random", "random"),
    ("control: cheapest-first", "cheapest-first"),
    ("control: random-networks", "random-networks"),
)


def _strategies(root: Path, table: str) -> list[str]:
    data = _json(root, "benchmarks/bench-search.json")["strategies"][table]
    lines = [
        "| strategy | median HV fraction | IQR | P(HV ≥ 0.97) | s per replay |",
        "|---|---|---|---|---|",
    ]
    for label, key in _STRATEGIES:
        s = data["scores"][key]
        sec = data["seconds_per_replay"].get(key)
        lines.append(
            f"| {label} | {s['median']:.3f} | {s['q1']:.3f}–{s['q3']:.3f} | {s['p_ge']:.2f} | "
            + (f"{sec:.2f} |" if sec is not None else "– |")
        )
    return lines


def search_fidelity(root: Path) -> list[str]:
    """The successive-halving replays of benchmarks/bench-fidelity.json (resumed promotions)."""
    lines = [
        "| rungs (epochs) | η | table | epochs saved (×) | each seed's furthest epoch (×) "
        "| HV fraction kept |",
        "|---|---|---|---|---|---|",
    ]
    for f in _json(root, "benchmarks/bench-fidelity.json")["fidelity"]:
        lines.append(
            f"| {f['rungs']} | {f['eta']} | {f['table']} | {f['saving']:.2f} | "
            f"{f['saving_if_resumed']:.2f} | {f['hv_fraction']:.3f} |"
        )
    return lines


#: every exhaustive table's successive-halving replays (bench-small's is bench-fidelity.json)
_FIDELITY = (
    ("bench-small", "benchmarks/bench-fidelity.json"),
    ("bench-small-graded", "benchmarks/fidelity/bench-small-graded.json"),
    ("bench-small-pairs", "benchmarks/fidelity/bench-small-pairs.json"),
    ("bench-small-digits", "benchmarks/fidelity/bench-small-digits.json"),
)


def search_fidelity_tables(root: Path) -> list[str]:
    """Per exhaustive table: how early the ranking settles (Spearman of epoch e with the
    last), and the largest saving whose kept hypervolume stays >= 0.98 on the original table
    and on every shuffled one (benchmarks/bench-fidelity.json, benchmarks/fidelity/*.json)."""
    lines = [
        "| table | Spearman with the final top-1, by epoch | "
        "most saved, HV ≥ 0.98 on the original (rungs) | "
        "most saved, HV ≥ 0.98 on the original and every shuffle (rungs) | "
        "most saved at all (rungs, HV on the original) |",
        "|---|---|---|---|---|",
    ]
    for table, path in _FIDELITY:
        data = _json(root, path)
        runs = data["fidelity"]
        by_setting: dict[str, list[dict[str, Any]]] = {}
        for f in runs:
            by_setting.setdefault(f"{f['rungs']}, η {f['eta']}", []).append(f)

        def best(ok: Callable[[list[dict[str, Any]]], bool], rows=by_setting) -> str:
            fits = [(fs[0]["saving"], name) for name, fs in rows.items() if ok(fs)]
            if not fits:
                return "none"
            saving, name = max(fits)
            return f"{saving:.2f}× ({name})"

        def original(fs: list[dict[str, Any]]) -> dict[str, Any]:
            return next(f for f in fs if f["table"] == "original")

        top = max(by_setting.items(), key=lambda kv: kv[1][0]["saving"])
        sp = data["spearman"]
        lines.append(
            f"| {table} | {', '.join(f'{e}: {v:.2f}' for e, v in sp.items())} | "
            f"{best(lambda fs: original(fs)['hv_fraction'] >= 0.98)} | "
            f"{best(lambda fs: min(f['hv_fraction'] for f in fs) >= 0.98)} | "
            f"{top[1][0]['saving']:.2f}× ({top[0]}, {original(top[1])['hv_fraction']:.3f}) |"
        )
    return lines


_MEASURED = "gcsearch/tasks/measured"
_PROXY_ROWS = (
    ("`synthetic`", f"{_MEASURED}/synthetic.json"),
    ("`synthetic-distinct`", f"{_MEASURED}/synthetic-distinct.json"),
    ("`synthetic-graded` (AdamW), presets", f"{_MEASURED}/synthetic-graded.json"),
    ("`synthetic-graded` (AdamW), quick space", "benchmarks/proxy/synthetic-graded.json"),
    (
        "`synthetic-graded` (AdamW) at 1,500 × 6",
        "benchmarks/proxy/synthetic-graded-demo-budget.json",
    ),
    ("`synthetic-graded` with SGD", "benchmarks/proxy/synthetic-graded-sgd.json"),
    ("`synthetic-graded-wide` (ResNet-8 at 4× width)", f"{_MEASURED}/synthetic-graded-wide.json"),
    ("`digits`", f"{_MEASURED}/digits.json"),
    ("`fashion-mnist` (local control)", f"{_MEASURED}/fashion-mnist.json"),
    ("`fashion-pairs`", f"{_MEASURED}/fashion-pairs.json"),
    ("`fashion-pairs` with AdamW", "benchmarks/proxy/fashion-pairs-adamw.json"),
    ("`fashion-pairs-distinct`", f"{_MEASURED}/fashion-pairs-distinct.json"),
)


def _short(candidate: str) -> str:
    return candidate.removesuffix("@after_1x1:c3c4c5").removesuffix(":c3c4c5")


_PRESETS = ("none", "se@after_1x1:c3c4c5", "snl@after_1x1:c3c4c5", "gc@after_1x1:c3c4c5")


def proxy_table(root: Path) -> list[str]:
    """Each proxy's recorded spread: one row per committed `gcsearch bench proxy` summary."""
    lines = [
        "| task | budget (images × epochs) | candidates × seeds | std: none · SE · SNL · GC "
        "| largest std of the others | seeds at chance (not `none`) | at ≥ 99.5 % "
        "| median MDD n = 3 | s / trial | split-seed τ (budget) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, rel in _PROXY_ROWS:
        d = _json(root, rel)
        b, cands = d["budget"], d["candidates"]
        seeds = "/".join(str(n) for n in sorted({c["n"] for c in cands.values()}))
        stds = " · ".join(f"{cands[k]['std']:.2f}" if k in cands else "–" for k in _PRESETS)
        others = {k: c for k, c in cands.items() if k not in _PRESETS}
        if others:
            worst = max(others, key=lambda k: others[k]["std"])
            modes = ", seeds split" if others[worst].get("modes") else ""
            other = f"{others[worst]['std']:.2f} ({_short(worst)}{modes})"
        else:
            other = "–"
        split = [_short(k) for k in _PRESETS if k in cands and cands[k].get("modes")]
        if split:
            stds += f" ({', '.join(split)}: seeds split)"
        chance = sum(c.get("at_chance") or 0 for k, c in cands.items() if k != "none")
        ceiling = sum(1 for c in cands.values() if c["mean"] >= 99.5)
        mdd = statistics.median(
            c["mdd_n3_median"] for c in cands.values() if c.get("mdd_n3_median")
        )
        secs = [c["seconds_per_trial"] for c in cands.values()]
        tau = d.get("split_tau")
        tau_text = (
            f"{tau['kendall_tau']:.2f} ({tau['budget']['train_images']:,} × "
            f"{tau['budget']['epochs']})"
            if tau
            else "–"
        )
        lines.append(
            f"| {label} | {b['train_images']:,} × {b['epochs']} | {len(cands)} × {seeds} "
            f"| {stds} | {other} | {chance} | {ceiling} of {len(cands)} "
            f"| {mdd:.2f} | {min(secs):.0f}–{max(secs):.0f} | {tau_text} |"
        )
    return lines


def search_asks(root: Path) -> list[str]:
    """One ehvi ask's CPU time and memory by pool size (benchmarks/bench-asks.json)."""
    data = _json(root, "benchmarks/bench-asks.json")["sizes"]
    lines = [
        "| candidates | told | ask, CPU s (median / max) | first ask, CPU s | peak traced MiB "
        "| unscreened ask, CPU s | same proposal |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, r in data.items():
        exact = f"{r['exact_ask_s']:.2f}" if "exact_ask_s" in r else "–"
        same = {True: "yes", False: "no"}.get(r.get("same_as_exact"), "–")
        lines.append(
            f"| {int(n):,} | {r['told']} | {r['ask_s_median']:.3f} / {r['ask_s_max']:.3f} | "
            f"{r['first_ask_s']:.2f} | {r['peak_mib']:.0f} | {exact} | {same} |"
        )
    return lines


def _flight_rows(data: dict[str, Any], label: str, seeds: str) -> list[str]:
    lines = []
    for k, sec in data.items():
        for table in ("original", "shuffled"):
            s = sec[table]["scores"]["ehvi"]
            lines.append(
                f"| {label} | {seeds} | {k} | {table} | {s['median']:.3f} | "
                f"{s['q1']:.3f}–{s['q3']:.3f} | {s['p_ge']:.2f} | {s['n']} |"
            )
    return lines


_FLIGHT_HEAD = [
    "| batch rule | seeds | in flight | table | median HV fraction | IQR | P(HV ≥ 0.97) "
    "| replays |",
    "|---|---|---|---|---|---|---|---|",
]


def _seeds(command: str | list[str], replays: int) -> str:
    text = command if isinstance(command, str) else command[0]
    m = re.search(r"--first-seed (\d+)", text)
    first = int(m[1]) if m else 0
    return f"{first}–{first + replays - 1}"


def _flights(root: Path, rel: str) -> list[str]:
    data = _json(root, rel)
    runs = data["in_flight"]
    n = next(iter(runs.values()))["original"]["scores"]["ehvi"]["n"]
    return _flight_rows(
        runs, f"`{data['ehvi_batch']}`", _seeds(data.get("command") or data["commands"], n)
    )


def search_inflight(root: Path) -> list[str]:
    """ehvi with candidates in flight on the held-out seeds: the rule shipped before
    (benchmarks/bench-inflight-kb.json) and now (benchmarks/bench-inflight.json)."""
    return (
        _FLIGHT_HEAD
        + _flights(root, "benchmarks/bench-inflight-kb.json")
        + _flights(root, "benchmarks/bench-inflight.json")
    )


def search_inflight_tuning(root: Path) -> list[str]:
    """The batch rules on the tuning seeds (benchmarks/tuning/inflight-*.json)."""
    lines = list(_FLIGHT_HEAD)
    for path in sorted((root / "benchmarks" / "tuning").glob("inflight-*.json")):
        lines += _flights(root, str(path.relative_to(root)))
    return lines


def _setting(label: str, shipped: str) -> str:
    """A settings label without the shipped batch rule (which every setting of the grid shares),
    marked where it was the default when the selection ran and where it is the default now
    (``strategy.SHIPPED``: a selection's winner becomes the default after it)."""
    from dataclasses import replace

    from gcsearch.search.strategy import SHIPPED

    rule = next(p for p in shipped.split(",") if p.startswith("batch_rule="))
    short = label.replace(f",{rule}", "")
    marks = ["default when selected"] if label == shipped else []
    marks += ["default now"] if label == SHIPPED.label() else []
    base = replace(SHIPPED, average=False, amplitude=0)
    if label != SHIPPED.label() and label == base.label():
        extra = [p for p in SHIPPED.label().split(",") if p not in label.split(",")]
        marks += [f"default now with `{','.join(extra)}`"]
    return f"`{short}`" + (f" ({', '.join(marks)})" if marks else "")


def search_select_folds(root: Path) -> list[str]:
    """Leave-one-table-out: each held-out table's choice and its test-seed scores
    (benchmarks/bench-select.json)."""
    data = _json(root, "benchmarks/bench-select.json")
    flights = data["test_in_flight"]
    lines = [
        "| held-out table | settings | chosen on | table | "
        + " | ".join(f"P(HV ≥ 0.97), {k} in flight (median)" for k in flights)
        + " | cheapest-first / random networks, 0 in flight |",
        "|---|---|---|---|" + "---|" * len(flights) + "---|",
    ]
    for f in data["folds"]:
        others = ", ".join(t for t in data["tables"] if t != f["held_out"])
        rows = [("chosen", f["chosen"], f"{others} (kept)")]
        if f["chosen"] == data["shipped"]:
            rows[0] = ("chosen", f["chosen"], f"{others}: kept, the best did not win by the margin")
        if f["best_on_tuning"] != f["chosen"]:
            rows.append(("best_on_tuning", f["best_on_tuning"], f"{others}: best on tuning"))
        if data["shipped"] not in {f["chosen"], f["best_on_tuning"]}:
            rows.append(("shipped", data["shipped"], "shipped before"))
        for which, label, on in rows:
            for kind in ("original", "shuffled"):
                by_k = f["held_out_scores"][which][kind]
                cells = [
                    f"{by_k[str(k)]['ehvi']['p_ge']:.2f} ({by_k[str(k)]['ehvi']['median']:.3f})"
                    for k in flights
                ]
                first = by_k[str(flights[0])]
                controls = (
                    f"{first['cheapest-first']['p_ge']:.2f} / "
                    f"{first['random-networks']['p_ge']:.2f}"
                )
                lines.append(
                    f"| {f['held_out']} | {_setting(label, data['shipped'])} | {on} | {kind} | "
                    + " | ".join(cells)
                    + f" | {controls} |"
                )
    return lines


def search_select_tuning(root: Path) -> list[str]:
    """Every setting on every table with the tuning seeds (benchmarks/bench-select.json)."""
    data = _json(root, "benchmarks/bench-select.json")
    flights = data["tune_in_flight"]
    lines = [
        "| settings | table | "
        + " | ".join(f"original, {k} in flight" for k in flights)
        + " | "
        + " | ".join(f"shuffled, {k} in flight" for k in flights)
        + " |",
        "|---|---|" + "---|" * (2 * len(flights)),
    ]
    for label in data["grid"]:
        for table, by_label in data["tuning"].items():
            t = by_label[label]
            cells = [f"{p:.2f}" for p in t["original"]] + [f"{p:.2f}" for p in t["shuffled"]]
            lines.append(
                f"| {_setting(label, data['shipped'])} | {table} | " + " | ".join(cells) + " |"
            )
    return lines


def search_select_budgets(root: Path) -> list[str]:
    """The setting chosen on all tables at other budgets, test seeds, every table
    (benchmarks/bench-select.json)."""
    data = _json(root, "benchmarks/bench-select.json")
    lines = [
        "| budget | table | kind | ehvi: median, P(HV ≥ 0.97) | cheapest-first | "
        "random networks | ehvi ahead of both (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for fr, tables in data["budgets"].items():
        for table, kinds in tables.items():
            for kind, sc in kinds.items():
                e, c, r = sc["ehvi"], sc["cheapest-first"], sc["random-networks"]
                lines.append(
                    f"| {float(fr):.0%} | {table} | {kind} | {e['median']:.3f}, {e['p_ge']:.2f} | "
                    f"{c['median']:.3f}, {c['p_ge']:.2f} | {r['median']:.3f}, {r['p_ge']:.2f} | "
                    f"{_ahead(e, c, r)} |"
                )
    return lines


def search_overhead(root: Path) -> list[str]:
    """Where the demo search's slot-time went (benchmarks/overhead-quick.json)."""
    data = _json(root, "benchmarks/overhead-quick.json")
    total = data["slots"] * data["search_wall_s"]
    lines = ["| part | slot-s | share |", "|---|---|---|"]
    for name, seconds in data["parts_slot_s"].items():
        lines.append(f"| {name} | {seconds:.1f} | {100 * seconds / total:.1f} % |")
    lines.append(f"| **all but training steps** | | **{100 * data['outside_share']:.1f} %** |")
    return lines


def search_tune100(root: Path) -> list[str]:
    """P(HV >= 0.97) of the shipped settings and the local step with the additive kernel on
    100 tuning replays per table (benchmarks/tuning/tune100-*.json)."""
    lines = [
        "| table | shipped, 0 / 2 in flight | local step + additive kernel, 0 / 2 in flight |",
        "|---|---|---|",
    ]
    for table in ("bench-small", "bench-small-graded", "bench-small-pairs", "bench-small-digits"):
        cells = []
        for setting in ("shipped", "local-additive"):
            flights = _json(root, f"benchmarks/tuning/tune100-{table}-{setting}.json")["in_flight"]
            cells.append(
                " / ".join(
                    f"{flights[k]['original']['scores']['ehvi']['p_ge']:.2f}" for k in ("0", "2")
                )
            )
        lines.append(f"| {table} | {cells[0]} | {cells[1]} |")
    return lines


def search_needles(root: Path) -> list[str]:
    """The fewest networks of each exhaustive table that reach 0.97 of its hypervolume, with
    their ranks by top-1 and block cost (benchmarks/needles/*.json)."""
    lines = [
        "| table | on the front | fewest | the sets of fewest: network (rank by top-1 / by cost) |",
        "|---|---|---|---|",
    ]
    for table in ("bench-small", "bench-small-graded", "bench-small-pairs", "bench-small-digits"):
        n = _json(root, f"benchmarks/needles/{table}.json")["needles"]
        sets = "; ".join(
            ", ".join(
                f"`{x['id']}` ({x['accuracy_rank']} / {x['cost_rank']})" for x in g["networks"]
            )
            for g in n["sets"]
        )
        lines.append(f"| {table} | {n['front']} of {n['searched']} | {n['fewest']} | {sets} |")
    return lines


#: The tables and settings of the small-budget replays (benchmarks/small-budget/), in order.
_SMALL_TABLES = ("bench-small", "bench-small-graded", "bench-small-pairs", "bench-small-digits")
_SMALL_SETTINGS = {
    "shipped": "shipped before (`local_every=3,prior=on`)",
    "average": "`+ average=on`",
    "amplitude": "`+ amplitude=2`",
    "amp2-average": "`+ amplitude=2,average=on`",
    "amp1-average": "`+ amplitude=1,average=on`",
    "additive": "`+ additive=on`",
    "additive-average": "`+ additive=on,average=on`",
}


def _small_runs(root: Path, kind: str) -> Iterable[tuple[str, str, str, dict[str, Any]]]:
    """(table, budget, setting, figures) of benchmarks/small-budget/KIND-TABLE-PCT-SETTING.json."""
    for table in _SMALL_TABLES:
        for pct in ("15", "25", "40"):
            for setting in _SMALL_SETTINGS:
                rel = f"benchmarks/small-budget/{kind}-{table}-{pct}-{setting}.json"
                if (root / rel).exists():
                    yield table, pct, setting, _json(root, rel)


def _paired(a: Sequence[float], b: Sequence[float]) -> str:
    """``ahead / behind, mean difference`` of paired replays ``a`` against ``b``."""
    up = sum(x > y + 1e-9 for x, y in zip(a, b, strict=True))
    down = sum(x < y - 1e-9 for x, y in zip(a, b, strict=True))
    return f"{up} / {down}, {statistics.mean(x - y for x, y in zip(a, b, strict=True)):+.3f}"


def search_small_tuning(root: Path) -> list[str]:
    """ehvi's settings for small budgets on the tuning seeds, paired against the settings
    shipped before (benchmarks/small-budget/tune-*.json)."""
    from gcsearch.bench.select import by_in_flight

    lines = [
        "| table | budget | in flight | settings | seeds | original: median, P(HV ≥ 0.97) | "
        "against shipped before (ahead / behind, mean) | shuffled: median, P(HV ≥ 0.97) | "
        "against shipped before (ahead / behind, mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    runs = list(_small_runs(root, "tune"))
    base = {(t, p): d for t, p, s, d in runs if s == "shipped"}
    for table, pct, setting, data in runs:
        for k, by_kind in by_in_flight(data).items():
            ref = by_in_flight(base[table, pct])[k]
            cells = []
            for kind in ("original", "shuffled"):
                e = by_kind[kind]["scores"]["ehvi"]
                cells.append(f"{e['median']:.3f}, {e['p_ge']:.2f}")
                against = ref[kind]["scores"]["ehvi"]["values"]
                cells.append("–" if setting == "shipped" else _paired(e["values"], against))
            first = data["command"].split("--first-seed ")[1].split()[0]
            seeds = f"{first}–{int(first) + e['n'] - 1}"
            lines.append(
                f"| {table} | {pct}% | {k} | {_SMALL_SETTINGS[setting]} | {seeds} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


#: The setting now shipped, as the small-budget files name it (test-*-NAME.json).
_SMALL_DEFAULT = "amp1-average"
_SMALL_GLOB = "benchmarks/small-budget/tune-*.json"


def _ahead(e: dict[str, Any], c: dict[str, Any], r: dict[str, Any]) -> str:
    """ "yes" / "no" / "tie": ehvi's median against the better control's, to the digits shown."""
    top = max(c["median"], r["median"])
    if f"{e['median']:.3f}" == f"{top:.3f}":
        return "tie"
    return "yes" if e["median"] > top else "no"


def search_small_choice(root: Path) -> list[str]:
    """What ``choose_small_budget`` reads of each challenger in
    benchmarks/small-budget/tune-*.json, over benchmarks/bench-select.json's choice."""
    from gcsearch.bench.select import choose_small_budget

    incumbent = _json(root, "benchmarks/bench-select.json")["chosen_on_all"]
    runs = [_json(root, str(p.relative_to(root))) for p in sorted(root.glob(_SMALL_GLOB))]
    out = choose_small_budget(runs, incumbent)
    lines = ["| settings | eligible | score | chosen |", "|---|---|---|---|"]
    for label, c in sorted(out["challengers"].items(), key=lambda x: -(x[1]["score"] or 0)):
        ok = "yes" if c["eligible"] is True else f"no: {c['eligible']}"
        score = "–" if c["score"] is None else f"{c['score']:+.3f}"
        lines.append(
            f"| `{label}` | {ok} | {score} | {'**yes**' if label == out['chosen'] else ''} |"
        )
    if out["chosen"] == incumbent:
        lines.append(f"| `{incumbent}` (kept) | – | – | **yes** |")
    return lines


def search_small_folds(root: Path) -> list[str]:
    """Leave-one-table-out for the small-budget rule: what ``choose_small_budget`` chooses on
    the other tables' tuning replays, and that choice's test-seed figures on the held-out
    table (benchmarks/small-budget/test-TABLE-*-SETTING.json)."""
    from gcsearch.bench.select import by_in_flight, choose_small_budget

    incumbent = _json(root, "benchmarks/bench-select.json")["chosen_on_all"]
    runs = [_json(root, str(p.relative_to(root))) for p in sorted(root.glob(_SMALL_GLOB))]
    tests = {(t, pct, d["ehvi"]): d for t, pct, _, d in _small_runs(root, "test")}
    lines = [
        "| held-out table | chosen on the other tables | original: P(HV ≥ 0.97) at 25 %, "
        "0 / 2 / 8 in flight | shuffled, 15 %: median against cheapest-first / random "
        "networks |",
        "|---|---|---|---|",
    ]
    for table in _SMALL_TABLES:
        others = [r for r in runs if Path(r["table"]["path"]).stem != table]
        chosen = choose_small_budget(others, incumbent)["chosen"]
        short = chosen.removeprefix("sd_scale=1.5,starts=2,batch_rule=kb-fixed+prior,")
        at25, at15 = tests.get((table, "25", chosen)), tests.get((table, "15", chosen))
        if at25 is None or at15 is None:
            lines.append(f"| {table} | `{short}` | not replayed | not replayed |")
            continue
        p = " / ".join(
            f"{by_in_flight(at25)[k]['original']['scores']['ehvi']['p_ge']:.2f}"
            for k in ("0", "2", "8")
        )
        sc = by_in_flight(at15)["0"]["shuffled"]["scores"]
        e, c, r = sc["ehvi"], sc["cheapest-first"], sc["random-networks"]
        lines.append(
            f"| {table} | `{short}` | {p} | {e['median']:.3f} against {c['median']:.3f} / "
            f"{r['median']:.3f} ({_ahead(e, c, r)}) |"
        )
    return lines


def search_small_heldout(root: Path) -> list[str]:
    """The default now against the one shipped before on the test seeds, every table and
    budget, with the controls (benchmarks/small-budget/test-*.json against
    benchmarks/bench-select.json's budgets: the same replays, paired)."""
    from gcsearch.bench.select import by_in_flight

    before = _json(root, "benchmarks/bench-select.json")["budgets"]
    lines = [
        "| budget | table | kind | default now: median, P(HV ≥ 0.97) | shipped before | "
        "now against before (ahead / behind, mean) | cheapest-first | random networks | "
        "now ahead of both (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for table, pct, setting, data in _small_runs(root, "test"):
        if setting == _SMALL_DEFAULT:
            for kind in ("original", "shuffled"):
                sc = by_in_flight(data)["0"][kind]["scores"]
                old = before[str(int(pct) / 100)][table][kind]["ehvi"]
                e, c, r = sc["ehvi"], sc["cheapest-first"], sc["random-networks"]
                rows.append(
                    (
                        pct,
                        table,
                        f"| {pct}% | {table} | {kind} | {e['median']:.3f}, {e['p_ge']:.2f} | "
                        f"{old['median']:.3f}, {old['p_ge']:.2f} | "
                        f"{_paired(e['values'], old['values'])} | "
                        f"{c['median']:.3f}, {c['p_ge']:.2f} | "
                        f"{r['median']:.3f}, {r['p_ge']:.2f} | {_ahead(e, c, r)} |",
                    )
                )
    return lines + [row for *_, row in sorted(rows, key=lambda x: (x[0], x[1]))]


def search_small_flight(root: Path) -> list[str]:
    """P(HV >= 0.97) at 25 % with 0 / 2 / 8 in flight on the test seeds: the default now
    (benchmarks/small-budget/test-*-25-*.json) and the one shipped before, held out in its
    fold (benchmarks/bench-select.json)."""
    from gcsearch.bench.select import by_in_flight

    folds = {f["held_out"]: f for f in _json(root, "benchmarks/bench-select.json")["folds"]}
    lines = [
        "| table | kind | default now: 0 / 2 / 8 in flight (median, 0 in flight) | "
        "shipped before |",
        "|---|---|---|---|",
    ]
    for table, pct, setting, data in _small_runs(root, "test"):
        if setting != _SMALL_DEFAULT or pct != "25":
            continue
        for kind in ("original", "shuffled"):
            now = {k: v[kind]["scores"]["ehvi"] for k, v in by_in_flight(data).items()}
            old = {k: v["ehvi"] for k, v in folds[table]["held_out_scores"]["chosen"][kind].items()}
            cells = [
                " / ".join(f"{e[k]['p_ge']:.2f}" for k in ("0", "2", "8"))
                + f" ({e['0']['median']:.3f})"
                for e in (now, old)
            ]
            lines.append(f"| {table} | {kind} | {cells[0]} | {cells[1]} |")
    return lines


def search_small_wide(root: Path) -> list[str]:
    """Shuffled bench-small-graded at 15 % on 1,000 more held-out seeds
    (benchmarks/small-budget/wide-*.json): medians with a paired bootstrap 95 % interval of
    each difference (2,000 resamples of the replays, seed 0)."""
    import numpy as np

    runs = {
        s: _json(root, f"benchmarks/small-budget/wide-bench-small-graded-15-{s}.json")
        for s in ("shipped", _SMALL_DEFAULT)
    }
    sc = {s: d["strategies"]["shuffled"]["scores"] for s, d in runs.items()}
    now = np.array(sc[_SMALL_DEFAULT]["ehvi"]["values"])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(now), (2000, len(now)))
    lines = [
        "| strategy | replays | median | P(HV ≥ 0.97) | "
        "default now less this: median (95 % interval) | ahead / behind |",
        "|---|---|---|---|---|---|",
    ]
    rows = [
        ("ehvi, default now", sc[_SMALL_DEFAULT]["ehvi"]),
        ("ehvi, shipped before", sc["shipped"]["ehvi"]),
        ("control: cheapest-first", sc[_SMALL_DEFAULT]["cheapest-first"]),
        ("control: random-networks", sc[_SMALL_DEFAULT]["random-networks"]),
    ]
    for label, e in rows:
        v = np.array(e["values"])
        diff = np.median(now) - np.median(v)
        boot = np.median(now[idx], axis=1) - np.median(v[idx], axis=1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        cell = "–" if v is now or label.endswith("now") else f"{diff:+.3f} ({lo:+.3f} to {hi:+.3f})"
        pair = (
            "–"
            if label.endswith("now")
            else f"{int((now > v + 1e-9).sum())} / {int((now < v - 1e-9).sum())}"
        )
        lines.append(
            f"| {label} | {len(v)} | {np.median(v):.3f} | {(v >= 0.97).mean():.2f} | "
            f"{cell} | {pair} |"
        )
    return lines


TABLES: dict[str, Callable[[Path], list[str]]] = {
    "gcnet-findings": gcnet_findings,
    "search-original": lambda root: _strategies(root, "original"),
    "search-shuffled": lambda root: _strategies(root, "shuffled"),
    "search-fidelity": search_fidelity,
    "search-fidelity-tables": search_fidelity_tables,
    "search-asks": search_asks,
    "search-overhead": search_overhead,
    "search-tune100": search_tune100,
    "search-needles": search_needles,
    "search-inflight": search_inflight,
    "search-inflight-tuning": search_inflight_tuning,
    "search-select-folds": search_select_folds,
    "search-select-tuning": search_select_tuning,
    "search-select-budgets": search_select_budgets,
    "search-small-tuning": search_small_tuning,
    "search-small-choice": search_small_choice,
    "search-small-folds": search_small_folds,
    "search-small-heldout": search_small_heldout,
    "search-small-flight": search_small_flight,
    "search-small-wide": search_small_wide,
    "proxies": proxy_table,
}


# ------------------------------------------------------------------------------ documents
def documents(root: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in DOCUMENTS:
        found += sorted(root.glob(pattern))
    return found


def render(text: str, root: Path = ROOT) -> str:
    """The document with every marked figure and table filled from its source."""

    def fig(m: re.Match[str]) -> str:
        return f"<!-- fig {m[1]} {m[2]} -->{figure(root, m[1], m[2])}<!-- /fig -->"

    def table(m: re.Match[str]) -> str:
        if m[2] not in TABLES:
            raise FigureError(f"unknown table {m[2]!r} (known: {', '.join(TABLES)})")
        return m[1] + "\n".join(TABLES[m[2]](root)) + "\n" + m[4]

    return FIG.sub(fig, TABLE.sub(table, text))


def differences(before: str, after: str) -> Iterable[str]:
    """The figures and tables whose text differs from the record, one line each."""
    for old, new in zip(FIG.finditer(before), FIG.finditer(after), strict=True):
        if old[3] != new[3]:
            yield f"{old[1]} {old[2]}: the document says {old[3]!r}, the record {new[3]!r}"
    for old, new in zip(TABLE.finditer(before), TABLE.finditer(after), strict=True):
        if old[3] != new[3]:
            yield f"table {old[2]}: differs from the record (make docs rewrites it)"


def count(text: str) -> tuple[int, int]:
    """Decimal figures (e.g. 0.33, 28.5) outside generated markers, and inside them."""
    text = TESTED.sub("", text)
    inside = sum(len(DECIMAL.findall(m[3])) for m in FIG.finditer(text))
    inside += sum(len(DECIMAL.findall(m[3])) for m in TABLE.finditer(text))
    bare = TABLE.sub("", FIG.sub("", text))
    return len(DECIMAL.findall(bare)), inside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 on a difference"
    )
    parser.add_argument("--count", action="store_true", help="decimal figures per document")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    stale = 0
    for path in documents(args.root):
        rel = path.relative_to(args.root)
        text = path.read_text()
        if args.count:
            typed, generated = count(text)
            words = len(COMMENT.sub("", text).split())
            print(
                f"{rel}: {words} words (comments left out), {typed} decimal figures typed by hand, "
                f"{generated} generated"
            )
            continue
        try:
            new = render(text, args.root)
        except FigureError as err:
            print(f"{rel}: {err}", file=sys.stderr)
            return 2
        if new == text:
            continue
        stale += 1
        if args.check:
            for line in differences(text, new):
                print(f"{rel}: {line}")
        else:
            path.write_text(new)
            print(f"{rel}: figures updated from the records")
    if args.check and stale:
        print("run `make docs` to fill them from the records", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
