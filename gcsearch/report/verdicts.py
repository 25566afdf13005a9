"""GCNet's findings, checked: one verdict line per conclusion of the paper.

GCNet (Cao et al., 2019, https://arxiv.org/abs/1904.11492) draws conclusions that a paper-space
run (``spaces/gcnet-paper*.toml``) can test. ``CONCLUSIONS`` is a table of them: which rows of
the run each compares, and how (``better``: a beats b, and with ``every_b`` a beats every
alternative; ``equivalent``: a and b within ± ``margin`` points; ``non_inferior``: a loses at
most ``margin`` points, optionally at a lower block cost; ``nl``: the NL analysis, see
``gcsearch.report.nl_summary``). ``check`` turns a ``Report`` (and optionally the JSON of
``gcsearch analyze fidelity`` and ``gcsearch analyze nl``) into ``Verdict`` records: **agree**,
**disagree** or **can't tell at this noise level**.

Rules. Δ = a - b over seeds: paired t over shared seeds, else Welch, with the sd of the
differences floored at the resolution of top-1 (100 / held-out images: 0.02 points at 5,000), so a
constant difference is never certainty. Each verdict is a one-sided t-test at 2.5 % against its
decision boundary (the 95 % interval clears it); its p-value is stated on the two-sided scale
(twice the one-sided p) and Holm-adjusted with the other conclusions as one family, and the
verdict holds when the adjusted p < 0.05. ``better``: agree if a > b, disagree if b > a.
``every_b`` (the stages): agree only if a beats *every* alternative (intersection-union test: the
largest of the one-sided p-values), disagree only if *some* alternative beats a (the smallest
one-sided p times the number of alternatives, Bonferroni). ``equivalent``: agree by TOST within
± margin, disagree beyond it. ``non_inferior``: agree if a > b - margin (a better a agrees),
disagree if a < b - margin; with ``cost``, a must also cost less. With equal true means (or a true
Δ on the boundary) each rule's false-verdict rate is at most 2.5 % per direction; the simulations
in ``gcsearch.bench.fixed_n`` measure it. Never a verdict with n = 1. Rows missing
from the run give "not in this run", pruned rows "can't tell (pruned at epoch k)". Every number
comes from the report or the JSON; the paper's side quotes /work/shared/PAPERS.md.

Example::

    gcsearch report runs/gcnet-paper --verdicts --fidelity f.json --nl nl.json --md r.md
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gcsearch.errors import UserError
from gcsearch.report.stats import (
    AGREE,
    CANT_TELL,
    DISAGREE,
    MARGIN,
    NO_INTERVAL,
    NOT_IN_RUN,
    Diff,
    compare,
    decide,
    holm,
    resolution,
)
from gcsearch.report.tables import ALPHA, Report, seed_map, stopped_rows
from gcsearch.spec import Candidate
from gcsearch.units import si

#: the top-1 step assumed when a run does not record its held-out image count (10,000 images)
ASSUMED_RESOLUTION = 0.01

_GC = "att-r16ln-add@after_1x1:c3c4c5"  # GCNet's block where the paper-space grids vary it


@dataclass(frozen=True)
class Conclusion:
    """One of the paper's conclusions and the rows of a run that test it.

    ``a`` and ``b`` are alternatives (tuples of candidate ids, matched position by position):
    the first pair present in the run is compared. ``every_b``: a is compared with every ``b``
    id present (the claim is that a beats each one). ``cost``: ``block_macs`` or
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
    every_b: bool = False


@dataclass(frozen=True)
class Verdict:
    """The verdict on one conclusion, with the evidence as text and as numbers."""

    id: str
    claim: str
    verdict: str
    evidence: str
    numbers: Mapping[str, Any] = field(default_factory=dict)


_NA = "its COCO numbers are not available here"
_OUTPERFORMS = 'GCNet "generally outperforms both simplified NLNet and SENet on major benchmarks"'
CONCLUSIONS: tuple[Conclusion, ...] = (
    Conclusion(
        "pooling",
        "attention pooling beats average pooling",
        f"Table 2(f), att vs avg with add fusion ({_NA})",
        "better",
        (_GC,),
        ("avg-r16ln-add@after_1x1:c3c4c5",),
    ),
    Conclusion(
        "fusion",
        "add fusion beats scale (mul) fusion",
        f"Table 2(f), add vs scaling ({_NA})",
        "better",
        (_GC,),
        ("att-r16ln-mul@after_1x1:c3c4c5",),
    ),
    Conclusion(
        "layernorm",
        "LayerNorm in the bottleneck helps (r16 + LN vs r16)",
        f"Table 2(d) ({_NA})",
        "better",
        (_GC,),
        ("att-r16-add@after_1x1:c3c4c5",),
    ),
    Conclusion(
        "ratio",
        "r16 is the cost/accuracy trade-off: little accuracy lost vs r4, fewer params",
        "bottleneck: transform params C·C -> 2·C·C/r; official README (COCO, box AP): "
        "GC r16 c3–c5 39.4 vs GC r4 c3–c5 39.9, baseline 37.2",
        "non_inferior",
        (_GC,),
        ("att-r4ln-add@after_1x1:c3c4c5",),
        cost="block_params",
    ),
    Conclusion(
        "position",
        "after the last 1×1 and after the add are about equal",
        f"Table 2(b) ({_NA})",
        "equivalent",
        (_GC,),
        ("att-r16ln-add@after_add:c3c4c5",),
    ),
    Conclusion(
        "stages",
        "more stages (c3–c5) is best: c3–c5 beats every other stage set",
        f"Table 2(c) ({_NA}); official README: GC r16 c3–c5 39.4 box AP vs baseline 37.2",
        "better",
        (_GC,),
        tuple(f"att-r16ln-add@after_1x1:{s}" for s in ("c3", "c4", "c5", "c4c5")),
        every_b=True,
    ),
    Conclusion(
        "snl_vs_nl",
        "SNL is not worse than NL (non-inferiority) at a fraction of the cost",
        '"comparable performance to the NL block with significantly lower FLOPs" '
        "(Tables 2(a), 4(a), 5)",
        "non_inferior",
        ("snl@after_block:c4:penultimate", "snl@after_add:c4:last"),
        ("nl-embedded@after_block:c4:penultimate", "nl-embedded@after_add:c4:last"),
        cost="block_macs",
    ),
    Conclusion(
        "nl_query_independent",
        "NL's attention is query-independent",
        "Table 1: large cosine distance between inputs at different positions, small between "
        "outputs and between attention maps (COCO, Kinetics)",
        "nl",
    ),
    Conclusion(
        "gc_vs_se",
        "GC outperforms SE",
        _OUTPERFORMS,
        "better",
        ("gc@after_1x1:c3c4c5", _GC),
        ("se@after_1x1:c3c4c5", "se@after_1x1:c3c4c5"),
    ),
    Conclusion(
        "gc_vs_se_noninferior",
        f"GC ≥ SE - {MARGIN:g} point (non-inferiority: a weaker claim than the paper's)",
        _OUTPERFORMS,
        "non_inferior",
        ("gc@after_1x1:c3c4c5", _GC),
        ("se@after_1x1:c3c4c5", "se@after_1x1:c3c4c5"),
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
        reasons = "; ".join(
            dict.fromkeys(str(r) for r in tried.get("reason", []) if r and str(r) != "nan")
        )
        return _Found(None, f"{cid} {states}" + (f" ({reasons[:80]})" if reasons else ""))
    return _Found(None, f"{cid} is not among the run's candidates")


def _pick(report: Report, c: Conclusion, stopped: pd.DataFrame) -> tuple[list[_Found], ...]:
    """The first (a, b) pair of alternatives with both sides complete, else the first pair."""
    pairs = []
    for a, b in zip(c.a, c.b if not c.every_b else (c.b,) * len(c.a), strict=True):
        fa = _find(report, a, stopped)
        fb = [_find(report, x, stopped) for x in (b if c.every_b else (b,))]
        pairs.append(([fa], fb))
        if fa.row is not None and any(f.row is not None for f in fb):
            return [fa], fb
    return pairs[0]


def _stat(row: pd.Series) -> tuple[float, float, int]:
    from gcsearch.report.stats import mean_ci

    return mean_ci(list(seed_map(row).values()))


def run_resolution(report: Report) -> tuple[float, bool]:
    """(top-1 step in points, whether the run recorded it): 100 / the held-out images of the
    run's budget, else ``ASSUMED_RESOLUTION``."""
    budget = report.study.get("budget")
    if isinstance(budget, Mapping) and budget.get("eval_split", "val") == "val":
        step = resolution(budget.get("val_images"))
        if math.isfinite(step):
            return step, True
    return ASSUMED_RESOLUTION, False


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


def _every(ds: Sequence[Diff], holm_sig: bool) -> tuple[str, str]:
    """``better`` against every alternative: the text for the verdict ``decide`` reached."""
    k = len(ds)
    if all(d.mean - d.half > 0 for d in ds):
        where = f"every one of the {k} intervals lies above 0"
        return _held(AGREE, where, holm_sig, "intersection-union p")
    if any(d.mean + d.half < 0 for d in ds):
        where = "an alternative's interval lies below 0"
        return _held(DISAGREE, where, holm_sig, f"p (×{k} alternatives)")
    if all(d.mean > 0 for d in ds):
        return CANT_TELL, "a leads every alternative on the means, not every interval is above 0"
    return CANT_TELL, "an alternative is ahead on the means, but no interval lies below 0"


def decisive_p(d: Diff | Sequence[Diff], c: Conclusion) -> float:
    """The p-value that Holm adjusts for conclusion ``c`` (two-sided scale, see ``decide``)."""
    ds = [d] if isinstance(d, Diff) else list(d)
    p, _ = decide(c.kind, [x.mean for x in ds], [x.se for x in ds], [x.df for x in ds], c.margin)
    return float(p)


RULES: dict[str, Callable[[Diff, Conclusion, bool], tuple[str, str]]] = {
    "better": _better,
    "equivalent": _equivalent,
    "non_inferior": _non_inferior,
}


def _fmt(mean: float, half: float) -> str:
    return f"{mean:.2f}" + (f" ± {half:.2f}" if math.isfinite(half) else "")


def fidelity_text(fidelity: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """ "proxy fidelity: Kendall τ 0.80 [0.60, 0.93] (...)" from ``analyze fidelity --json``."""
    if not fidelity:
        return "", {}
    if not isinstance(fidelity, Mapping) or "kendall_tau" not in fidelity:
        raise UserError("--fidelity: not the JSON of gcsearch analyze fidelity (no kendall_tau)")
    tau, ci = float(fidelity["kendall_tau"]), list(fidelity.get("kendall_tau_ci") or [])
    have = len(ci) == 2 and all(math.isfinite(float(x)) for x in ci)
    none = fidelity.get("no_interval") or "no interval"
    interval = f"[{float(ci[0]):.2f}, {float(ci[1]):.2f}]" if have else f"({none})"
    what = fidelity.get("input", "")
    text = (
        f"proxy fidelity: Kendall τ {tau:.2f} {interval} over "
        f"{fidelity.get('n_candidates', '?')} candidates" + (f", {what}" if what else "")
    )
    return text, {"fidelity.tau": tau, "fidelity.tau_ci": ci if have else None}


_TEST = {"better": "", "equivalent": " (equivalence)", "non_inferior": " (non-inferiority)"}


def folded_stages(report: Report, a: str, b: str) -> str:
    """Where two bottleneck candidates at one placement build the same hidden width on the
    run's backbone (the ``min_hidden`` floor folds ratios together on narrow proxies), the
    note that says so: the comparison tests only the other stages. Empty otherwise."""
    from gcsearch.backbone_specs import stage_hidden

    study = report.study
    backbone, min_hidden = str(study.get("backbone")), int(study.get("min_hidden") or 8)
    ca, cb = Candidate.parse(a), Candidate.parse(b)
    if any(c.block is None or c.block.transform != "bottleneck" for c in (ca, cb)):
        return ""
    if ca.placement != cb.placement:
        return ""
    try:
        ha, hb = (stage_hidden(c, backbone, min_hidden) for c in (ca, cb))
    except UserError:  # an unknown backbone, a stage it lacks
        return ""
    same = [s for s in ha if ha[s] == hb[s]]
    if not same or len(same) == len(ha):
        return ""
    differ = ", ".join(s for s in ha if s not in same)
    return (
        f"; on {backbone} (min_hidden {min_hidden}) a and b build the same "
        f"bottleneck at {', '.join(same)}: they differ at {differ} only"
    )


def _compare_verdict(
    report: Report, c: Conclusion, stopped: pd.DataFrame, step: float
) -> tuple[str, str, dict[str, Any], list[Diff] | None, Any]:
    """(verdict, evidence, numbers, diffs, finish) where finish(p_holm) completes the verdict."""
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
    ra = a.row
    diffs = [compare(seed_map(ra), seed_map(f.row), floor=step) for f in bs]
    raw = [compare(seed_map(ra), seed_map(f.row)) for f in bs]
    floored = any(
        math.isfinite(x.half) and x.half > r.half for x, r in zip(diffs, raw, strict=True)
    )
    # the row shown: the most accurate alternative (the closest rival of a)
    shown = max(range(len(bs)), key=lambda i: _stat(bs[i].row)[0]) if c.every_b else 0
    rb, d = bs[shown].row, diffs[shown]
    (ma, ha, na), (mb, hb, nb) = _stat(ra), _stat(rb)
    nums: dict[str, Any] = {
        "a": ra["spec.id"],
        "b": rb["spec.id"],
        "a.mean": ma,
        "a.ci95": ha,
        "a.n": na,
        "b.mean": mb,
        "b.ci95": hb,
        "b.n": nb,
        "delta.mean": d.mean,
        "delta.ci95": d.half,
        "delta.method": d.method,
        "delta.p": d.p,
        "n": d.n,
        "resolution": step,
    }
    if c.kind != "better":
        nums["margin"] = c.margin
    text = (
        f"{ra['spec.id']} {_fmt(ma, ha)} (n = {na}) vs {rb['spec.id']} {_fmt(mb, hb)} "
        f"(n = {nb}); Δ {d.mean:+.2f}"
    )
    notes = ""
    if c.every_b:
        nums["alternatives"] = [
            {"b": f.row["spec.id"], "delta.mean": x.mean, "delta.ci95": x.half, "delta.p": x.p}
            for f, x in zip(bs, diffs, strict=True)
        ]
        each = ", ".join(
            f"{str(f.row['spec.id']).rsplit(':', 1)[-1]} {_fmt(x.mean, x.half)}"
            for f, x in zip(bs, diffs, strict=True)
        )
        notes += (
            f"; b is the most accurate of the {len(bs)} alternatives in the run; "
            f"Δ against each: {each}"
        )
    folded = folded_stages(report, str(ra["spec.id"]), str(rb["spec.id"]))
    if folded:
        notes += folded
        nums["folded"] = folded.removeprefix("; ")
    skipped = [f.why for f in fb if f.row is None]
    if skipped:
        notes += f"; left out: {'; '.join(skipped)}"
    if floored:
        notes += f"; sd of the differences floored at the top-1 resolution {step:g} points"
    cost_ok: bool | None = True  # None: the cost the claim is about is not recorded
    cost_line = ""
    if c.cost:
        ca = float(pd.to_numeric(ra.get(f"cost.{c.cost}"), errors="coerce"))
        cb = float(pd.to_numeric(rb.get(f"cost.{c.cost}"), errors="coerce"))
        known = math.isfinite(ca) and math.isfinite(cb)
        nums.update(
            {
                f"a.{c.cost}": ca,
                f"b.{c.cost}": cb,
                "cost.ratio": ca / cb if known and cb else math.nan,
            }
        )
        cost_ok = (ca < cb) if known else None
        ratio = f" ({ca / cb:.2f}×)" if known and cb else ""
        what = c.cost.replace("_", " ")
        cost_line = f"; {what} {si(ca)} vs {si(cb)}{ratio}" if known else f"; {what} not recorded"

    def finish(p_holm: float) -> tuple[str, str]:
        sig = math.isfinite(p_holm) and p_holm < ALPHA
        nums["delta.p_holm"], nums["delta.significant"] = p_holm, sig
        if any(x.method == NO_INTERVAL or not math.isfinite(x.half) for x in diffs):
            return CANT_TELL, f"{text} (n = 1: no interval){cost_line}{notes}"
        if c.every_b:
            verdict, why = _every(diffs, sig)
            test = (
                f" (intersection-union over {len(diffs)})"
                if all(x.mean > 0 for x in diffs)
                else f" (any of {len(diffs)}, Bonferroni)"
            )
        else:
            verdict, why = RULES[c.kind](d, c, sig)
            test = _TEST[c.kind]
        method = "paired" if d.method == "paired" else "Welch"
        body = (
            f"{text} ± {d.half:.2f} ({method} 95 %, n = {d.n}), Holm p{test} "
            f"{p_holm:.3g}{' (significant)' if sig else ''}{cost_line}{notes}; {why}"
        )
        if cost_ok is None and verdict == AGREE:
            return CANT_TELL, f"{body}; but the cost is not recorded"
        if cost_ok is False:
            return DISAGREE, f"{body}; but a costs no less than b"
        return verdict, body

    return "", text, nums, diffs, finish


def _nl_finish(
    nl: Sequence[Mapping[str, Any]] | None,
) -> tuple[str, str, dict[str, Any], float, Any]:
    """The NL conclusion as (verdict, text, numbers, p, finish) like the comparisons."""
    from gcsearch.report.nl_summary import nl_evidence

    verdict, text, nums, p, direction = nl_evidence(nl)
    if verdict:
        return verdict, text, nums, math.nan, None

    def finish(p_holm: float) -> tuple[str, str]:
        sig = math.isfinite(p_holm) and p_holm < ALPHA
        nums["p_holm"], nums["significant"] = p_holm, sig
        side = "farther apart than" if direction > 0 else "closer than"
        body = f"{text}, Holm p {p_holm:.3g}{' (significant)' if sig else ''}"
        if not sig:
            return CANT_TELL, f"{body}; not significant after Holm's adjustment"
        if direction > 0:
            return AGREE, f"{body}; the inputs are {side} attention maps and outputs"
        return (
            DISAGREE,
            f"{body}; in an instantiation attention maps or outputs differ more than the inputs",
        )

    return "", text, nums, p, finish


#: a conclusion before Holm: (conclusion, verdict if final, text, numbers, p, finish(p_holm))
Pending = tuple[Conclusion, str, str, dict[str, Any], float, Any]


def pending_verdicts(
    report: Report,
    nl: Sequence[Mapping[str, Any]] | None = None,
    conclusions: Sequence[Conclusion] = CONCLUSIONS,
) -> list[Pending]:
    """Each conclusion's evidence and decisive p, before the family's adjustment."""
    stopped = stopped_rows(report.frame, report.rows)
    step, _ = run_resolution(report)
    pending: list[Pending] = []
    for c in conclusions:
        if c.kind == "nl":
            pending.append((c, *_nl_finish(nl)))
            continue
        verdict, text, nums, diffs, finish = _compare_verdict(report, c, stopped, step)
        p = decisive_p(diffs, c) if diffs is not None else math.nan
        pending.append((c, verdict, text, nums, p, finish))
    return pending


def check(
    report: Report,
    fidelity: Mapping[str, Any] | None = None,
    nl: Sequence[Mapping[str, Any]] | None = None,
    conclusions: Sequence[Conclusion] = CONCLUSIONS,
) -> list[Verdict]:
    """One ``Verdict`` per conclusion, in the table's order."""
    step, _ = run_resolution(report)
    fid_text, fid_nums = fidelity_text(fidelity)
    pending = pending_verdicts(report, nl, conclusions)
    from gcsearch.report.sequential_verdicts import plan_of

    plan = plan_of(report)
    if plan is not None:  # seeds were added adaptively: the sequential family decides
        return _sequential(report, plan, pending, nl, step, fid_text, fid_nums)
    adjusted = holm([p for *_, p, _ in pending])
    out = []
    for (c, verdict, text, nums, _, finish), p_holm in zip(pending, adjusted, strict=True):
        if finish is not None:
            verdict, text = finish(p_holm)
        if fid_text and verdict != NOT_IN_RUN:
            text, nums = f"{text}; {fid_text}", {**nums, **fid_nums}
        out.append(Verdict(c.id, f"{c.claim} — paper: {c.paper}", verdict, text, nums))
    return out


def family(pending: Sequence[Pending]) -> list[tuple[Conclusion, list[str], bool | None]]:
    """The comparisons with both sides in the run: (conclusion, candidate ids a then the
    alternatives, whether a costs less: None unknown, True when the claim has no cost)."""
    out = []
    for c, _, _, nums, _, finish in pending:
        if c.kind == "nl" or finish is None:
            continue
        alts = [x["b"] for x in nums["alternatives"]] if c.every_b else [nums["b"]]
        cost_ok: bool | None = True
        if c.cost:
            ca, cb = nums[f"a.{c.cost}"], nums[f"b.{c.cost}"]
            cost_ok = bool(ca < cb) if math.isfinite(ca) and math.isfinite(cb) else None
        out.append((c, [nums["a"], *alts], cost_ok))
    return out


def _sequential(
    report: Report,
    plan: Any,
    pending: Sequence[Pending],
    nl: Sequence[Mapping[str, Any]] | None,
    step: float,
    fid_text: str,
    fid_nums: Mapping[str, Any],
) -> list[Verdict]:
    """``check`` for a run ``gcsearch resolve`` added seeds to: the sequential verdicts."""
    from gcsearch.report import sequential_verdicts as sv
    from gcsearch.report.nl_summary import nl_evidence

    found = family(pending)
    nl_word, _, _, nl_p, nl_dir = nl_evidence(nl)
    outcome = {
        s.id: s for s in sv.evaluate(report, plan, found, step, None if nl_word else (nl_p, nl_dir))
    }
    out = []
    for c, verdict, text, nums, _, finish in pending:
        s = outcome.get(c.id)
        if s is not None and c.kind == "nl":
            verdict = CANT_TELL if s.decided_at < 0 else AGREE if s.direction > 0 else DISAGREE
            text += "; one test in the sequential family, at the last look's boundary"
        elif s is not None:
            verdict, why = sv.verdict_of(s, plan)
            cost = ""
            if c.cost:
                what = c.cost.replace("_", " ")
                cost = f"; {what} {si(nums[f'a.{c.cost}'])} vs {si(nums[f'b.{c.cost}'])}"
            folded = f"; {nums['folded']}" if nums.get("folded") else ""
            text = f"{text}{cost}{folded}; {why}"
            nums = {**nums, "sequential": {**s.numbers, "decided_at_look": s.decided_at + 1}}
        elif finish is not None:  # a comparison no look reached
            verdict, text = CANT_TELL, f"{text}; no look of the plan reached"
        if fid_text and verdict != NOT_IN_RUN:
            text, nums = f"{text}; {fid_text}", {**nums, **fid_nums}
        out.append(Verdict(c.id, f"{c.claim} — paper: {c.paper}", verdict, text, nums))
    return out


def is_paper_space(report: Report) -> bool:
    """Whether the report's study ran a GCNet paper space (``spaces/gcnet-paper*.toml``)."""
    space = report.study.get("space")
    names = [
        report.study.get("name", ""),
        space.get("name", "") if isinstance(space, Mapping) else "",
    ]
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
    "noise level. Δ = a - b with a 95 % interval (paired over shared seeds, else Welch; the sd "
    "of the differences is floored at the top-1 resolution, 100 / held-out images, e.g. 0.02 "
    "points at 5,000, so a constant difference is never certainty). Each verdict is a one-sided "
    "t-test at 2.5 % against its boundary, its p stated two-sided (twice the one-sided p) and "
    "Holm-adjusted with the others as one family; agree/disagree needs that adjusted p < 0.05, "
    "never with n = 1. Directional claims: a better than b (both directions tested); 'c3–c5 is "
    "best' must beat every alternative (intersection-union), and disagrees only when some "
    "alternative is significantly better (Bonferroni over the alternatives). Equivalence within "
    f"±{MARGIN:g} points by TOST; non-inferiority at -{MARGIN:g} (a better a agrees). NL: the "
    "paper's distances averaged over trained models, attention (and outputs) tested against "
    "the inputs' distance; on this proxy only."
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
    "decide",
    "is_paper_space",
    "verdict_table",
]
