"""GCNet's findings, checked: one verdict line per conclusion of the paper.

GCNet (Cao et al., 2019, https://arxiv.org/abs/1904.11492) draws nine conclusions that a
paper-space run (``spaces/gcnet-paper*.toml``) can test. ``CONCLUSIONS`` is a table of them:
which rows of the run each compares, and how (``better``: a beats b; ``equivalent``: a and b
within ± ``margin`` points; ``non_inferior``: a loses at most ``margin`` points, optionally at a
lower block cost; ``nl``: the NL analysis' distances). ``check`` turns a ``Report`` (and
optionally the JSON of ``gcsearch analyze fidelity`` and ``gcsearch analyze nl``) into
``Verdict`` records: **agree**, **disagree** or **can't tell at this noise level**.

Rules: the difference a - b uses the 95 % interval of ``gcsearch.report.stats.compare``
(paired over shared seeds, else Welch); the verdicts' p-values are Holm-adjusted as one family.
A verdict is never agree / disagree when n = 1 or the interval includes the decision boundary
(0 for ``better``; ± margin for the others), and agree / disagree also needs the Holm-adjusted
p-value of the test that decides it (``decisive_p``: the two-sided test for ``better``, TOST or a
one-sided test against the margin for the others) below 0.05, all verdicts one family.
Rows missing from the run give "not in this run", pruned rows "can't tell (pruned at epoch k)".
Every number comes from the report or the JSON; the paper's side quotes /work/shared/PAPERS.md.

Example::

    gcsearch report runs/gcnet-paper --verdicts --fidelity f.json --nl nl.json --md r.md
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gcsearch.errors import UserError
from gcsearch.report.stats import NO_INTERVAL, Diff, compare, holm
from gcsearch.report.tables import ALPHA, Report, seed_map, stopped_rows
from gcsearch.spec import Candidate
from gcsearch.units import si

AGREE, DISAGREE, CANT_TELL, NOT_IN_RUN = (
    "agree",
    "disagree",
    "can't tell at this noise level",
    "not in this run",
)

#: equivalence / non-inferiority margin, in top-1 points
MARGIN = 1.0
#: NL query-independence: cosine distances at most SMALL are "nearly the same", at least LARGE
#: "different"; in between the verdict is can't tell
SMALL, LARGE = 0.1, 0.3

_GC = "att-r16ln-add@after_1x1:c3c4c5"  # GCNet's block where the paper-space grids vary it


@dataclass(frozen=True)
class Conclusion:
    """One of the paper's conclusions and the rows of a run that test it.

    ``a`` and ``b`` are alternatives (tuples of candidate ids, matched position by position):
    the first pair present in the run is compared. ``best_of_b``: b is the most accurate of all
    ``b`` ids present (the claim is that a beats every one). ``cost``: ``block_macs`` or
    ``block_params`` that a must undercut b by (the claim is about cost too).
    """

    id: str
    claim: str
    paper: str
    kind: str  # better | equivalent | non_inferior | nl
    a: tuple[str, ...] = ()
    b: tuple[str, ...] = ()
    margin: float = MARGIN
    cost: str = ""
    best_of_b: bool = False


@dataclass(frozen=True)
class Verdict:
    """The verdict on one conclusion, with the evidence as text and as numbers."""

    id: str
    claim: str
    verdict: str
    evidence: str
    numbers: Mapping[str, Any] = field(default_factory=dict)


_NA = "its COCO numbers are not available here"
CONCLUSIONS: tuple[Conclusion, ...] = (
    Conclusion(
        "pooling", "attention pooling beats average pooling",
        f"Table 2(f), att vs avg with add fusion ({_NA})", "better",
        (_GC,), ("avg-r16ln-add@after_1x1:c3c4c5",),
    ),
    Conclusion(
        "fusion", "add fusion beats scale (mul) fusion",
        f"Table 2(f), add vs scaling ({_NA})", "better",
        (_GC,), ("att-r16ln-mul@after_1x1:c3c4c5",),
    ),
    Conclusion(
        "layernorm", "LayerNorm in the bottleneck helps (r16 + LN vs r16)",
        f"Table 2(d) ({_NA})", "better",
        (_GC,), ("att-r16-add@after_1x1:c3c4c5",),
    ),
    Conclusion(
        "ratio", "r16 is the cost/accuracy trade-off: little accuracy lost vs r4, fewer params",
        "bottleneck: transform params C·C -> 2·C·C/r; official README (COCO, box AP): "
        "GC r16 c3–c5 39.4 vs GC r4 c3–c5 39.9, baseline 37.2", "non_inferior",
        (_GC,), ("att-r4ln-add@after_1x1:c3c4c5",), cost="block_params",
    ),
    Conclusion(
        "position", "after the last 1×1 and after the add are about equal",
        f"Table 2(b) ({_NA})", "equivalent",
        (_GC,), ("att-r16ln-add@after_add:c3c4c5",),
    ),
    Conclusion(
        "stages", "more stages (c3–c5) is best",
        f"Table 2(c) ({_NA}); official README: GC r16 c3–c5 39.4 box AP vs baseline 37.2",
        "better", (_GC,),
        tuple(f"att-r16ln-add@after_1x1:{s}" for s in ("c3", "c4", "c5", "c4c5")),
        best_of_b=True,
    ),
    Conclusion(
        "snl_vs_nl", "SNL ≈ NL at a fraction of the cost",
        "\"comparable performance to the NL block with significantly lower FLOPs\" "
        "(Tables 2(a), 4(a), 5)", "equivalent",
        ("snl@after_block:c4:penultimate", "snl@after_add:c4:last"),
        ("nl-embedded@after_block:c4:penultimate", "nl-embedded@after_add:c4:last"),
        cost="block_macs",
    ),
    Conclusion(
        "nl_query_independent", "NL's attention is query-independent",
        "Table 1: large cosine distance between inputs at different positions, small between "
        "outputs and between attention maps (COCO, Kinetics)", "nl",
    ),
    Conclusion(
        "gc_vs_se", "GC ≥ SE",
        "GCNet \"generally outperforms both simplified NLNet and SENet on major benchmarks\"",
        "non_inferior",
        ("gc@after_1x1:c3c4c5", _GC), ("se@after_1x1:c3c4c5", "se@after_1x1:c3c4c5"),
    ),
)


# ----------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class _Found:
    row: pd.Series | None  # a complete row
    why: str  # why there is none: "pruned at epoch k", "failed: ...", "no row"
    pruned: bool = False


def _find(report: Report, cid: str, stopped: pd.DataFrame) -> _Found:
    cid = Candidate.parse(cid).id
    hit = report.rows[report.rows["spec.id"] == cid]
    if len(hit):
        return _Found(hit.iloc[0], "")
    hit = stopped[stopped["spec.id"] == cid] if len(stopped) else stopped
    if len(hit):
        r = hit.iloc[0]
        return _Found(None, f"{cid} pruned at epoch {r['fidelity.epochs']}", pruned=True)
    f = report.frame
    tried = f[f["spec.id"] == cid] if "spec.id" in f else f.iloc[0:0]
    if len(tried):
        states = ", ".join(sorted(set(map(str, tried["status"]))))
        reasons = "; ".join(dict.fromkeys(str(r) for r in tried.get("reason", []) if r
                                          and str(r) != "nan"))
        return _Found(None, f"{cid} {states}" + (f" ({reasons[:80]})" if reasons else ""))
    return _Found(None, f"{cid} is not among the run's candidates")


def _pick(report: Report, c: Conclusion, stopped: pd.DataFrame) -> tuple[list[_Found], ...]:
    """The first (a, b) pair of alternatives with both sides complete, else the first pair."""
    pairs = []
    for a, b in zip(c.a, c.b if not c.best_of_b else (c.b,) * len(c.a), strict=True):
        fa = _find(report, a, stopped)
        fb = [_find(report, x, stopped) for x in (b if c.best_of_b else (b,))]
        pairs.append(([fa], fb))
        if fa.row is not None and any(f.row is not None for f in fb):
            return [fa], fb
    return pairs[0]


def _stat(row: pd.Series) -> tuple[float, float, int]:
    from gcsearch.report.stats import mean_ci

    return mean_ci(list(seed_map(row).values()))


# ----------------------------------------------------------------------------- rules
def _better(d: Diff, c: Conclusion, holm_sig: bool) -> tuple[str, str]:
    lo, hi = d.mean - d.half, d.mean + d.half
    if lo > 0 and holm_sig:
        return AGREE, "the interval lies above 0 and the Holm-adjusted p < 0.05"
    if hi < 0 and holm_sig:
        return DISAGREE, "the interval lies below 0 and the Holm-adjusted p < 0.05"
    if lo > 0 or hi < 0:
        return CANT_TELL, "the interval excludes 0 but not after Holm's adjustment"
    return CANT_TELL, "the interval includes 0"


def _held(verdict: str, where: str, holm_sig: bool, test: str = "p") -> tuple[str, str]:
    """``verdict`` when its decisive test survives Holm's adjustment, else can't tell."""
    if holm_sig:
        return verdict, f"{where} and the Holm-adjusted {test} < 0.05"
    return CANT_TELL, f"{where} but not after Holm's adjustment"


def _equivalent(d: Diff, c: Conclusion, holm_sig: bool) -> tuple[str, str]:
    lo, hi, m = d.mean - d.half, d.mean + d.half, c.margin
    if -m < lo and hi < m:
        where = f"the interval lies within the equivalence margin ±{m:g} points"
        return _held(AGREE, where, holm_sig, "TOST p")
    if lo >= m or hi <= -m:
        where = f"the interval lies outside the equivalence margin ±{m:g} points"
        return _held(DISAGREE, where, holm_sig)
    return CANT_TELL, f"the interval crosses the equivalence margin ±{m:g} points"


def _non_inferior(d: Diff, c: Conclusion, holm_sig: bool) -> tuple[str, str]:
    lo, hi, m = d.mean - d.half, d.mean + d.half, c.margin
    if lo > -m:
        where = f"the interval lies above the non-inferiority margin -{m:g} points"
        return _held(AGREE, where, holm_sig)
    if hi < -m:
        where = f"the interval lies below the non-inferiority margin -{m:g} points"
        return _held(DISAGREE, where, holm_sig)
    return CANT_TELL, f"the interval includes the non-inferiority margin -{m:g} points"


def decisive_p(d: Diff, c: Conclusion) -> float:
    """The p-value of the test that decides conclusion ``c`` (what Holm adjusts): "no
    difference" for ``better``; for ``equivalent`` the TOST p (the larger of the two one-sided
    p-values against ±margin) when the estimate lies inside the margin, else the one-sided p of
    lying beyond the margin on its side; for ``non_inferior`` the one-sided p of lying above
    -margin (or, when the estimate is below it, of lying below)."""
    m = c.margin
    if c.kind == "equivalent":
        if abs(d.mean) < m:
            return max(d.p_beyond(-m, above=True), d.p_beyond(m, above=False))
        return d.p_beyond(m, above=True) if d.mean > 0 else d.p_beyond(-m, above=False)
    if c.kind == "non_inferior":
        return d.p_beyond(-m, above=d.mean > -m)
    return d.p


RULES = {"better": _better, "equivalent": _equivalent, "non_inferior": _non_inferior}


def _fmt(mean: float, half: float) -> str:
    return f"{mean:.2f}" + (f" ± {half:.2f}" if math.isfinite(half) else "")


def fidelity_text(fidelity: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """"proxy fidelity: Kendall τ 0.80 [0.60, 0.93] (...)" from ``analyze fidelity --json``."""
    if not fidelity or "kendall_tau" not in fidelity:
        return "", {}
    tau, ci = float(fidelity["kendall_tau"]), list(fidelity.get("kendall_tau_ci") or [])
    have = len(ci) == 2 and all(math.isfinite(float(x)) for x in ci)
    interval = f"[{float(ci[0]):.2f}, {float(ci[1]):.2f}]" if have else "(no interval)"
    what = fidelity.get("input", "")
    text = (f"proxy fidelity: Kendall τ {tau:.2f} {interval} over "
            f"{fidelity.get('n_candidates', '?')} candidates" + (f", {what}" if what else ""))
    return text, {"fidelity.tau": tau, "fidelity.tau_ci": ci if have else None}


def _compare_verdict(
    report: Report, c: Conclusion, stopped: pd.DataFrame
) -> tuple[str, str, dict[str, Any], Diff | None, Any]:
    """(verdict, evidence, numbers, diff, finish) where finish(holm_sig) completes the verdict."""
    fa, fb = _pick(report, c, stopped)
    a = fa[0]
    bs = [f for f in fb if f.row is not None]
    if a.row is None or not bs:
        missing = [f for f in (a, *fb) if f.row is None]
        pruned = [f.why for f in missing if f.pruned]
        if pruned and (a.row is not None or a.pruned):
            return f"can't tell ({pruned[0]})", "; ".join(f.why for f in missing), {}, None, None
        why = "; ".join(f.why for f in missing)
        return NOT_IN_RUN, why, {}, None, None
    b = max(bs, key=lambda f: _stat(f.row)[0]) if c.best_of_b else bs[0]
    ra, rb = a.row, b.row
    d = compare(seed_map(ra), seed_map(rb))
    (ma, ha, na), (mb, hb, nb) = _stat(ra), _stat(rb)
    nums: dict[str, Any] = {
        "a": ra["spec.id"], "b": rb["spec.id"],
        "a.mean": ma, "a.ci95": ha, "a.n": na, "b.mean": mb, "b.ci95": hb, "b.n": nb,
        "delta.mean": d.mean, "delta.ci95": d.half, "delta.method": d.method,
        "delta.p": d.p, "n": d.n,
    }
    if c.kind != "better":
        nums["margin"] = c.margin
    text = (f"{ra['spec.id']} {_fmt(ma, ha)} (n = {na}) vs {rb['spec.id']} {_fmt(mb, hb)} "
            f"(n = {nb}); Δ {d.mean:+.2f}")
    notes = ""
    if c.best_of_b:
        notes += f"; b is the most accurate of the {len(bs)} alternatives in the run"
    skipped = [f.why for f in fb if f.row is None]
    if skipped:
        notes += f"; left out: {'; '.join(skipped)}"
    cost_ok: bool | None = True  # None: the cost the claim is about is not recorded
    cost_line = ""
    if c.cost:
        ca = float(pd.to_numeric(ra.get(f"cost.{c.cost}"), errors="coerce"))
        cb = float(pd.to_numeric(rb.get(f"cost.{c.cost}"), errors="coerce"))
        known = math.isfinite(ca) and math.isfinite(cb)
        nums.update({f"a.{c.cost}": ca, f"b.{c.cost}": cb,
                     "cost.ratio": ca / cb if known and cb else math.nan})
        cost_ok = (ca < cb) if known else None
        ratio = f" ({ca / cb:.2f}×)" if known and cb else ""
        what = c.cost.replace("_", " ")
        cost_line = (f"; {what} {si(ca)} vs {si(cb)}{ratio}" if known
                     else f"; {what} not recorded")

    def finish(p_holm: float) -> tuple[str, str]:
        sig = math.isfinite(p_holm) and p_holm < ALPHA
        nums["delta.p_holm"], nums["delta.significant"] = p_holm, sig
        if d.method == NO_INTERVAL or not math.isfinite(d.half):
            return CANT_TELL, f"{text} (n = 1: no interval){cost_line}{notes}"
        verdict, why = RULES[c.kind](d, c, sig)
        method = "paired" if d.method == "paired" else "Welch"
        test = {"better": "", "equivalent": " (equivalence)", "non_inferior": " (non-inferiority)"}
        body = (f"{text} ± {d.half:.2f} ({method} 95 %, n = {d.n}), Holm p{test[c.kind]} "
                f"{p_holm:.3g}{' (significant)' if sig else ''}{cost_line}{notes}; {why}")
        if cost_ok is None and verdict == AGREE:
            return CANT_TELL, f"{body}; but the cost is not recorded"
        if cost_ok is False:
            return DISAGREE, f"{body}; but a costs no less than b"
        return verdict, body

    return "", text, nums, d, finish


def _nl_verdict(nl: Sequence[Mapping[str, Any]] | None) -> tuple[str, str, dict[str, Any]]:
    if not nl:
        return NOT_IN_RUN, "no NL analysis given (gcsearch analyze nl RUN --json FILE)", {}
    rows = list(nl)
    att = max(float(r["attention"]) for r in rows)
    out = max(float(r["output"]) for r in rows)
    inp = min(float(r["input"]) for r in rows)
    jsds = [float(r["jsd"]) for r in rows if math.isfinite(float(r["jsd"]))]
    jsd = max(jsds) if jsds else math.nan  # dot/concat maps are not distributions: no JSD
    images = min(int(r.get("images", 0)) for r in rows)
    nums = {"blocks": len(rows), "images": images, "input.min": inp, "output.max": out,
            "attention.max": att, "jsd.max": jsd, "small": SMALL, "large": LARGE}
    text = (f"{len(rows)} NL blocks over {images} held-out images (means, no interval): cosine "
            f"distance of inputs ≥ {inp:.3f}, of outputs ≤ {out:.3f}, of attention maps ≤ "
            f"{att:.3f}; JSD ≤ {jsd:.3f} nats (max ln 2 = {math.log(2):.3f})")
    if images <= 1:
        return CANT_TELL, f"{text}; n = 1: no interval", nums
    if att <= SMALL and out <= SMALL and att < inp and out < inp:
        why = f"attention and outputs ≤ {SMALL:g}, below the inputs'"
        return AGREE, f"{text}; {why}", nums
    if att >= LARGE:
        return DISAGREE, f"{text}; attention maps differ (≥ {LARGE:g})", nums
    return CANT_TELL, f"{text}; between the thresholds {SMALL:g} and {LARGE:g}", nums


def check(
    report: Report,
    fidelity: Mapping[str, Any] | None = None,
    nl: Sequence[Mapping[str, Any]] | None = None,
    conclusions: Sequence[Conclusion] = CONCLUSIONS,
) -> list[Verdict]:
    """One ``Verdict`` per conclusion, in the table's order."""
    stopped = stopped_rows(report.frame, report.rows)
    fid_text, fid_nums = fidelity_text(fidelity)
    pending: list[tuple[Conclusion, tuple[str, str, dict[str, Any], Diff | None, Any]]] = []
    for c in conclusions:
        if c.kind == "nl":
            v, text, nums = _nl_verdict(nl)
            pending.append((c, (v, text, nums, None, None)))
        else:
            pending.append((c, _compare_verdict(report, c, stopped)))
    ps = [decisive_p(d, c) if d is not None else math.nan for c, (_, _, _, d, _) in pending]
    adjusted = holm(ps)
    out = []
    for (c, (verdict, text, nums, _, finish)), p_holm in zip(pending, adjusted, strict=True):
        if finish is not None:
            verdict, text = finish(p_holm)
        if fid_text and verdict != NOT_IN_RUN:
            text, nums = f"{text}; {fid_text}", {**nums, **fid_nums}
        out.append(Verdict(c.id, f"{c.claim} — paper: {c.paper}", verdict, text, nums))
    return out


def is_paper_space(report: Report) -> bool:
    """Whether the report's study ran a GCNet paper space (``spaces/gcnet-paper*.toml``)."""
    space = report.study.get("space")
    names = [report.study.get("name", ""), space.get("name", "") if isinstance(space, Mapping)
             else ""]
    return any(str(n).startswith("gcnet-paper") for n in names)


def load_json(path: str | Path | None, what: str) -> Any:
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{what} {path}: cannot read JSON ({type(exc).__name__})") from None


def verdict_table(verdicts: Sequence[Verdict]) -> pd.DataFrame:
    """The rendered section: one row per conclusion."""
    return pd.DataFrame(
        {
            "conclusion": [v.claim for v in verdicts],
            "verdict": [v.verdict for v in verdicts],
            "evidence": [v.evidence for v in verdicts],
        },
        columns=["conclusion", "verdict", "evidence"],
    )


SECTION = "GCNet's findings, checked"
NOTE = (
    "One line per conclusion of GCNet (Cao et al., 2019): agree / disagree / can't tell at this "
    "noise level. Δ = a - b with a 95 % interval (paired over shared seeds, else Welch); the "
    "p-value of the test that decides each verdict (no difference; equivalence within or beyond "
    f"±{MARGIN:g} points by TOST or one-sided t; non-inferiority at -{MARGIN:g}) is Holm-adjusted "
    "with the others as one family; agree/disagree needs that adjusted p < 0.05 and an interval "
    "clear of the decision boundary, never with n = 1. "
    f"NL: cosine distances ≤ {SMALL:g} count as query-independent, ≥ {LARGE:g} as not."
)

__all__ = [
    "AGREE",
    "CANT_TELL",
    "CONCLUSIONS",
    "DISAGREE",
    "NOT_IN_RUN",
    "Conclusion",
    "Verdict",
    "check",
    "is_paper_space",
    "verdict_table",
]
