"""GCNet's findings, checked: verdicts on hand-made studies (no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_report import add_trial, new_study

from gcsearch import report
from gcsearch.cli import main
from gcsearch.report import verdicts as vd
from gcsearch.report.stats import NO_INTERVAL, PAIRED, Diff

GC = "att-r16ln-add@after_1x1:c3c4c5"
GC_SEEDS = [84.0, 85.0, 86.0]


def _run(
    tmp_path: Path, rows: dict[str, list[float]], name: str = "gcnet-paper", **kw: dict
) -> report.Report:
    study = new_study(tmp_path / "study.db", name)
    add_trial(study, "none", [80.0, 80.5, 81.0][: len(next(iter(rows.values())))])
    for cid, top1s in rows.items():
        add_trial(study, cid, top1s, **kw.get(cid, {}))
    return report.build_report(tmp_path)


def _by_id(vs: list[vd.Verdict]) -> dict[str, vd.Verdict]:
    return {v.id: v for v in vs}


def test_clear_paired_differences_agree_or_disagree(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {
            GC: GC_SEEDS,
            "avg-r16ln-add@after_1x1:c3c4c5": [82.0, 83.1, 83.9],  # gc better by ~2: agree
            "att-r16-add@after_1x1:c3c4c5": [86.0, 87.1, 87.9],  # no-LN better by ~2: disagree
            "att-r16ln-mul@after_1x1:c3c4c5": [84.5, 84.2, 86.8],  # spans 0: can't tell
        },
    )
    v = _by_id(vd.check(rep))
    assert v["pooling"].verdict == vd.AGREE
    assert v["pooling"].numbers["delta.method"] == PAIRED
    assert v["pooling"].numbers["delta.mean"] == pytest.approx(2.0)
    assert v["pooling"].numbers["n"] == 3 and v["pooling"].numbers["delta.significant"]
    assert "paired 95 %" in v["pooling"].evidence and "Holm p" in v["pooling"].evidence
    assert v["layernorm"].verdict == vd.DISAGREE
    assert v["layernorm"].numbers["delta.mean"] == pytest.approx(-2.0)
    assert v["fusion"].verdict == vd.CANT_TELL
    assert "includes 0" in v["fusion"].evidence
    assert "Table 2(f)" in v["pooling"].claim


def test_one_seed_is_never_a_verdict(tmp_path: Path) -> None:
    rep = _run(tmp_path, {GC: [90.0], "avg-r16ln-add@after_1x1:c3c4c5": [60.0]})
    v = _by_id(vd.check(rep))["pooling"]
    assert v.verdict == vd.CANT_TELL
    assert "n = 1: no interval" in v.evidence
    assert v.numbers["delta.method"] == NO_INTERVAL


@pytest.mark.parametrize(
    ("mean", "half", "expected"),
    [
        (0.1, 0.5, vd.AGREE),  # [-0.4, 0.6] inside ±1
        (0.5, 0.8, vd.CANT_TELL),  # [-0.3, 1.3] crosses +1
        (-3.0, 0.5, vd.DISAGREE),  # [-3.5, -2.5] outside ±1
        (1.5, 0.4, vd.DISAGREE),
    ],
)
def test_equivalence_margin(mean: float, half: float, expected: str) -> None:
    c = next(c for c in vd.CONCLUSIONS if c.id == "position")
    verdict, why = vd.RULES["equivalent"](Diff(mean, half, 3, PAIRED, 0.5), c, True)
    assert verdict == expected
    assert f"±{c.margin:g} points" in why
    # the same interval without a Holm-significant decisive test is never a verdict
    verdict, why = vd.RULES["equivalent"](Diff(mean, half, 3, PAIRED, 0.5), c, False)
    assert verdict == vd.CANT_TELL


def test_decisive_p_is_tost_or_one_sided_against_the_margin() -> None:
    """Hand-made paired differences, checked against scipy.stats' t distribution; every p is
    on the two-sided scale (twice the one-sided p)."""
    from scipy import stats as st

    from gcsearch.report.stats import paired_test

    eq = next(c for c in vd.CONCLUSIONS if c.kind == "equivalent")
    ni = next(c for c in vd.CONCLUSIONS if c.kind == "non_inferior")
    m = eq.margin
    d = paired_test([80.1, 80.2, 80.0], [80.0, 80.0, 80.0])  # differences 0.1, 0.2, 0.0
    se = 0.1 / 3**0.5
    tost = max(st.t.sf((0.1 + m) / se, 2), st.t.cdf((0.1 - m) / se, 2))
    assert vd.decisive_p(d, eq) == pytest.approx(2 * tost, rel=1e-9)
    assert vd.decisive_p(d, ni) == pytest.approx(2 * st.t.sf((0.1 + ni.margin) / se, 2), rel=1e-9)
    far = paired_test([85.0, 86.0, 84.0], [80.0, 80.0, 80.0])  # Δ 5 ± 1 sd: beyond +margin
    se_far = 1.0 / 3**0.5
    assert vd.decisive_p(far, eq) == pytest.approx(2 * st.t.sf((5 - m) / se_far, 2), rel=1e-9)
    better = next(c for c in vd.CONCLUSIONS if c.kind == "better")
    assert vd.decisive_p(far, better) == pytest.approx(far.p, rel=1e-12)


def test_about_equal_positions_from_a_study(tmp_path: Path) -> None:
    rep = _run(tmp_path, {GC: GC_SEEDS, "att-r16ln-add@after_add:c3c4c5": [84.1, 85.05, 85.9]})
    v = _by_id(vd.check(rep))["position"]
    assert v.verdict == vd.AGREE and v.numbers["margin"] == vd.MARGIN
    assert "equivalence margin ±1 points" in v.evidence


def test_missing_and_pruned_rows(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {GC: GC_SEEDS, "att-r4ln-add@after_1x1:c3c4c5": [70.0]},
        **{"att-r4ln-add@after_1x1:c3c4c5": {"status": "pruned", "epochs": 2}},
    )
    v = _by_id(vd.check(rep))
    assert v["snl_vs_nl"].verdict == vd.NOT_IN_RUN
    assert "snl@after_block:c4:penultimate is not among the run's candidates" in (
        v["snl_vs_nl"].evidence
    )
    assert v["ratio"].verdict.startswith("can't tell (")
    assert "pruned at epoch 2" in v["ratio"].verdict
    assert v["nl_query_independent"].verdict == vd.NOT_IN_RUN


def test_snl_vs_nl_states_the_cost_and_gc_vs_se_falls_back_to_the_block(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {
            GC: GC_SEEDS,
            "snl@after_add:c4:last": [84.0, 85.1, 85.9],
            "nl-embedded@after_add:c4:last": [84.1, 85.0, 86.0],
            "se@after_1x1:c3c4c5": [83.0, 84.1, 84.9],
        },
        **{
            "snl@after_add:c4:last": {"macs": 40_100_000},
            "nl-embedded@after_add:c4:last": {"macs": 40_400_000},
        },
    )
    v = _by_id(vd.check(rep))
    snl = v["snl_vs_nl"]
    assert snl.verdict == vd.AGREE
    assert snl.numbers["a.block_macs"] == 100_000 and snl.numbers["b.block_macs"] == 400_000
    assert snl.numbers["cost.ratio"] == pytest.approx(0.25) and "(0.25×)" in snl.evidence
    gc = v["gc_vs_se"]
    assert gc.numbers["a"] == GC and gc.verdict == vd.AGREE


def test_cost_claim_that_fails_disagrees(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {
            "snl@after_add:c4:last": [84.0, 85.1, 85.9],
            "nl-embedded@after_add:c4:last": [84.1, 85.0, 86.0],
        },
        **{
            "snl@after_add:c4:last": {"macs": 40_500_000},
            "nl-embedded@after_add:c4:last": {"macs": 40_400_000},
        },
    )
    v = _by_id(vd.check(rep))["snl_vs_nl"]
    assert v.verdict == vd.DISAGREE and "costs no less" in v.evidence


def test_stages_compare_with_the_best_alternative(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {
            GC: GC_SEEDS,
            "att-r16ln-add@after_1x1:c3": [80.0, 81.0, 82.1],
            "att-r16ln-add@after_1x1:c4c5": [82.0, 83.1, 83.9],
        },
    )
    v = _by_id(vd.check(rep))["stages"]
    assert v.numbers["b"] == "att-r16ln-add@after_1x1:c4c5"
    assert v.verdict == vd.AGREE
    assert "left out" in v.evidence  # c4 and c5 are not in the run


def _nl(
    att: float, out: float, inp: float = 0.3, models: int = 3, spread: float = 0.01, **extra: object
) -> list[dict]:
    """``models`` trained models of one NL instantiation in ``analyze nl --json``'s format."""
    from gcsearch.report.nl_summary import DEFINITION

    return [
        {
            "weights": f"seed{s}/nl.pt",
            "candidate": "nl-embedded@after_add:c4:last",
            "task": "synthetic",
            "block": "b",
            "mode": "embedded",
            "positions": 16,
            "images": 64,
            "definition": DEFINITION,
            "input": inp + spread * s,
            "output": out + spread * ((s * 7) % 3),
            "attention": att + spread * ((s * 5) % 3),
            "jsd": att / 2,
            "attention_zero_rows": 0.0,
            "inert": False,
            **extra,
        }
        for s in range(models)
    ]


def test_nl_query_independence_from_the_analysis_json(tmp_path: Path) -> None:
    rep = _run(tmp_path, {GC: GC_SEEDS})
    small = _by_id(vd.check(rep, nl=_nl(0.01, 0.02)))["nl_query_independent"]
    assert small.verdict == vd.AGREE and small.numbers["tested"] == 1
    assert "on this proxy" in small.evidence and "over 3 models" in small.evidence
    large = _by_id(vd.check(rep, nl=_nl(0.5, 0.4)))["nl_query_independent"]
    assert large.verdict == vd.DISAGREE
    close = _by_id(vd.check(rep, nl=_nl(0.29, 0.05, spread=0.05)))["nl_query_independent"]
    assert close.verdict == vd.CANT_TELL


def test_nl_with_fewer_than_three_models_or_inert_blocks_gives_no_verdict(tmp_path: Path) -> None:
    rep = _run(tmp_path, {GC: GC_SEEDS})
    two = _by_id(vd.check(rep, nl=_nl(0.9, 0.9, models=2)))["nl_query_independent"]
    assert two.verdict == f"{vd.CANT_TELL} (fewer than 3 models per instantiation)"
    assert "2 model(s)" in two.evidence and "no verdict" in two.evidence
    inert = _by_id(vd.check(rep, nl=_nl(0.9, 0.0, inert=True)))["nl_query_independent"]
    assert inert.verdict.startswith(vd.CANT_TELL) and "inert" in inert.evidence
    # JSON from before the paper's definition (no "definition" key): no verdict, says why
    legacy = [{k: v for k, v in r.items() if k != "definition"} for r in _nl(0.01, 0.02)]
    old = _by_id(vd.check(rep, nl=legacy))["nl_query_independent"]
    assert "earlier" in old.verdict and "rerun" in old.evidence


def test_fidelity_figure_is_quoted(tmp_path: Path) -> None:
    rep = _run(tmp_path, {GC: GC_SEEDS, "avg-r16ln-add@after_1x1:c3c4c5": [82.0, 83.1, 83.9]})
    fid = {
        "kendall_tau": 0.8,
        "kendall_tau_ci": [0.6, 0.93],
        "n_candidates": 9,
        "input": "runs/x: epoch 3 vs 8",
    }
    v = _by_id(vd.check(rep, fidelity=fid))["pooling"]
    assert "Kendall τ 0.80 [0.60, 0.93] over 9 candidates" in v.evidence
    assert v.numbers["fidelity.tau"] == 0.8
    no_ci = vd.fidelity_text({**fid, "kendall_tau_ci": [math.nan, math.nan]})[0]
    assert "(no interval)" in no_ci


def test_reports_render_the_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rep = _run(tmp_path, {GC: GC_SEEDS, "avg-r16ln-add@after_1x1:c3c4c5": [82.0, 83.1, 83.9]})
    assert vd.is_paper_space(rep)
    rep.verdicts = vd.check(rep)
    md = report.render_markdown(rep, tmp_path / "r.md", images={})[0].read_text()
    assert f"## {vd.SECTION}" in md and "attention pooling beats average pooling" in md
    html = report.render_html(rep, tmp_path / "r.html", images={})[0].read_text()
    assert "findings, checked" in html
    nl = tmp_path / "nl.json"
    nl.write_text(json.dumps(_nl(0.01, 0.02)))
    assert main(["report", str(tmp_path), "--nl", str(nl)]) == 0
    out = capsys.readouterr().out
    assert vd.SECTION in out and "query-independent" in out


def test_other_spaces_get_no_section_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(tmp_path, {GC: GC_SEEDS}, name="quick")
    assert main(["report", str(tmp_path)]) == 0
    assert vd.SECTION not in capsys.readouterr().out
    assert main(["report", str(tmp_path), "--verdicts"]) == 0
    assert vd.SECTION in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mean", "half", "holm_sig", "expected"),
    [
        (2.0, 0.5, True, vd.AGREE),
        (2.0, 0.5, False, vd.CANT_TELL),  # clear of 0, but not after Holm
        (-2.0, 0.5, True, vd.DISAGREE),
        (0.2, 0.5, False, vd.CANT_TELL),
    ],
)
def test_directional_claims_need_the_interval_and_holm(
    mean: float, half: float, holm_sig: bool, expected: str
) -> None:
    c = next(c for c in vd.CONCLUSIONS if c.id == "pooling")
    assert vd.RULES["better"](Diff(mean, half, 3, PAIRED, 0.01), c, holm_sig)[0] == expected


def test_conclusions_are_a_table_of_distinct_ids() -> None:
    ids = [c.id for c in vd.CONCLUSIONS]
    assert len(ids) == len(set(ids)) == 10
    assert all(c.kind in vd.RULES or c.kind == "nl" for c in vd.CONCLUSIONS)


def test_stages_need_every_alternative_beaten(tmp_path: Path) -> None:
    """c3–c5 clearly beats the most accurate alternative (c4c5) but not c3 (noisy): the
    intersection-union test can't tell, where the best-of rule agreed."""
    rep = _run(
        tmp_path,
        {
            GC: GC_SEEDS,
            "att-r16ln-add@after_1x1:c4c5": [82.0, 83.1, 83.9],
            "att-r16ln-add@after_1x1:c3": [78.0, 85.5, 79.0],
        },
    )
    v = _by_id(vd.check(rep))["stages"]
    assert v.numbers["b"] == "att-r16ln-add@after_1x1:c4c5"
    assert v.verdict == vd.CANT_TELL and "intersection-union over 2" in v.evidence
    assert [x["b"].rsplit(":", 1)[-1] for x in v.numbers["alternatives"]] == ["c3", "c4c5"]
    assert "Δ against each: c3 " in v.evidence


def test_stages_disagree_needs_an_alternative_significantly_better(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {
            GC: GC_SEEDS,
            "att-r16ln-add@after_1x1:c4": [89.0, 90.1, 90.9],  # better by 5
            "att-r16ln-add@after_1x1:c3": [80.0, 81.0, 82.1],
        },
    )
    v = _by_id(vd.check(rep))["stages"]
    assert v.verdict == vd.DISAGREE and "any of 2, Bonferroni" in v.evidence


def test_a_much_better_snl_agrees_and_gc_outperforms_se_is_directional(tmp_path: Path) -> None:
    rep = _run(
        tmp_path,
        {
            GC: GC_SEEDS,
            "snl@after_add:c4:last": [90.0, 91.1, 91.9],  # +6 over NL: non-inferior, agrees
            "nl-embedded@after_add:c4:last": [84.1, 85.0, 86.0],
            "se@after_1x1:c3c4c5": [84.1, 84.9, 86.1],  # equal to GC
        },
        **{
            "snl@after_add:c4:last": {"macs": 40_100_000},
            "nl-embedded@after_add:c4:last": {"macs": 40_400_000},
        },
    )
    v = _by_id(vd.check(rep))
    assert v["snl_vs_nl"].verdict == vd.AGREE and "(0.25×)" in v["snl_vs_nl"].evidence
    assert v["gc_vs_se"].verdict == vd.CANT_TELL  # equal: GC does not outperform SE here
    weak = v["gc_vs_se_noninferior"]
    assert "weaker claim" in weak.claim and weak.verdict == vd.AGREE


def test_a_constant_difference_is_not_certainty(tmp_path: Path) -> None:
    """Two seeds that differ by the same 0.02 points: the sd is floored at the resolution of
    top-1 on the run's held-out images (100 / 5,000), so p is not 0 and the interval not 0."""
    from gcsearch.report.stats import compare

    d = compare({0: 80.02, 1: 81.02}, {0: 80.0, 1: 81.0}, floor=0.02)
    assert d.half > 0.1 and d.p > 0.3
    assert compare({0: 80.02, 1: 81.02}, {0: 80.0, 1: 81.0}).p == 0.0  # what the floor fixes
    study = new_study(tmp_path / "study.db", "gcnet-paper")
    study.set_user_attr("budget", {"val_images": 5000, "eval_split": "val"})
    add_trial(study, GC, [80.02, 81.02])
    add_trial(study, "avg-r16ln-add@after_1x1:c3c4c5", [80.0, 81.0])
    rep = report.build_report(tmp_path)
    assert vd.run_resolution(rep) == (0.02, True)
    v = _by_id(vd.check(rep))["pooling"]
    assert v.verdict == vd.CANT_TELL and v.numbers["delta.ci95"] > 0.1
    assert "floored at the top-1 resolution 0.02 points" in v.evidence


def test_report_reads_the_committed_analysis_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The NL JSON committed beside the reports (one model per instantiation, the earlier
    distance) gives no NL verdict and says why; the report still renders."""
    root = Path(__file__).resolve().parents[1] / "reports"
    _run(tmp_path, {GC: GC_SEEDS, "avg-r16ln-add@after_1x1:c3c4c5": [82.0, 83.1, 83.9]})
    md = tmp_path / "r.md"
    code = main(
        [
            "report",
            str(tmp_path),
            "--verdicts",
            "--nl",
            str(root / "gcnet-paper-nl.json"),
            "--fidelity",
            str(root / "gcnet-paper-graded-fidelity.json"),
            "--md",
            str(md),
        ]
    )
    text = md.read_text()
    assert code == 0 and "earlier distance definition" in text and "Kendall τ 0.77" in text
    assert "rerun gcsearch analyze nl" in text


@pytest.mark.parametrize(
    ("flag", "content"), [("--nl", '{"a": 1}'), ("--nl", '[{"x": 1}]'), ("--fidelity", "[1, 2]")]
)
def test_wrong_analysis_json_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, content: str
) -> None:
    _run(tmp_path, {GC: GC_SEEDS})
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["report", str(tmp_path), "--verdicts", flag, str(bad)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag}: not the JSON of gcsearch analyze" in err


def test_decide_intersection_union_and_bonferroni_by_hand() -> None:
    """Against scipy's t: agree p = 2 × the largest one-sided p (every Δ > 0), disagree p =
    2 × k × the smallest one-sided p (some Δ < 0); p is capped at 1."""
    from scipy import stats as st

    se, df = [0.5, 1.0, 0.8], [2, 2, 2]
    p, direction = vd.decide("better", [2.0, 3.0, 1.5], se, df)
    assert direction == 1
    assert p == pytest.approx(
        2 * max(st.t.sf(m / s, 2) for m, s in zip([2.0, 3.0, 1.5], se, strict=True))
    )
    p, direction = vd.decide("better", [2.0, -3.0, 1.5], se, df)
    assert direction == -1 and p == pytest.approx(min(1.0, 2 * 3 * st.t.cdf(-3.0, 2)))
    p, _ = vd.decide("better", [[0.1]], [[math.nan]], [[2]])
    assert math.isnan(p[0])  # no interval, no test


def test_a_ratio_pair_the_floor_folds_says_where_it_differs(tmp_path: Path) -> None:
    """On the 16/32/64-wide ResNet-20 with min_hidden 8, r16 and r4 build one 8-wide
    bottleneck at c3 and c4: the ratio line says it tests c5 only; on the 4x wide backbone
    with min_hidden 2 every stage differs and the line says nothing of it."""
    r4 = "att-r4ln-add@after_1x1:c3c4c5"
    (tmp_path / "narrow").mkdir()
    rep = _run(tmp_path / "narrow", {GC: GC_SEEDS, r4: [84.5, 85.2, 86.1]})
    v = _by_id(vd.check(rep))["ratio"]
    assert "(min_hidden 8) a and b build the same bottleneck at c3, c4: they differ at c5 only" in (
        v.evidence
    )
    assert v.numbers["folded"].startswith("on resnet20 (min_hidden 8)")
    wide = tmp_path / "wide"
    wide.mkdir()
    study = new_study(wide / "study.db", "gcnet-paper")
    study.set_user_attr("backbone", "resnet8w4")
    study.set_user_attr("min_hidden", 2)
    for cid, top1s in (("none", [80.0, 80.5, 81.0]), (GC, GC_SEEDS), (r4, [84.5, 85.2, 86.1])):
        add_trial(study, cid, top1s)
    v = _by_id(vd.check(report.build_report(wide)))["ratio"]
    assert "folded" not in v.numbers and "build the same bottleneck" not in v.evidence
