"""Statistics of the report on hand-made data: paired vs Welch, n = 1, Holm, detectable size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gcsearch.report import stats
from gcsearch.report.tables import adjust_holm, interval_note, with_stats


def test_known_paired_difference() -> None:
    """b = a + 2 + a small per-seed wobble: the paired interval is tight around 2, while
    Welch on the same numbers drowns it in the seed-to-seed spread of a."""
    a = [60.0, 90.0, 75.0, 82.0]
    b = [x + 2 + e for x, e in zip(a, [0.1, -0.1, 0.2, -0.2], strict=True)]
    d = stats.paired_test(b, a)
    assert d.method == stats.PAIRED and d.n == 4
    assert d.mean == pytest.approx(2.0)
    # sd of the wobble [0.1,-0.1,0.2,-0.2] = sqrt(0.1/3); t(0.975, 3) = 3.182446
    assert d.half == pytest.approx(3.182446 * math.sqrt(0.1 / 3) / 2, rel=1e-5)
    assert d.excludes_zero and d.p < 0.001
    w = stats.welch_test(b, a)
    assert w.method == stats.WELCH and not w.excludes_zero and w.p > 0.5


def test_compare_pairs_only_when_the_seeds_match() -> None:
    a = {0: 80.0, 1: 82.0, 2: 81.0}
    assert stats.compare({0: 81.0, 1: 83.5, 2: 81.5}, a).method == stats.PAIRED
    assert stats.compare({0: 81.0, 1: 83.5, 5: 81.5}, a).method == stats.WELCH
    assert stats.compare({0: 81.0, 1: 83.5}, a).method == stats.WELCH


def test_paired_matches_scipy_ttest_rel() -> None:
    from scipy import stats as sps

    a, b = [84.0, 84.6, 83.9, 85.1], [80.0, 80.9, 79.5, 82.2]
    ref = sps.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    d = stats.paired_test(a, b)
    assert d.half == pytest.approx((ci.high - ci.low) / 2)
    assert d.p == pytest.approx(ref.pvalue)


def test_welch_p_matches_scipy() -> None:
    from scipy import stats as sps

    a, b = [84.0, 84.6, 83.9], [80.0, 80.9, 79.5, 80.2]
    assert stats.welch_test(a, b).p == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)


@pytest.mark.parametrize("test", [stats.paired_test, stats.welch_test])
def test_one_seed_gives_no_interval_and_no_test(test) -> None:  # type: ignore[no-untyped-def]
    d = test([90.0], [50.0])
    assert d.mean == 40.0 and math.isnan(d.half) and math.isnan(d.p)
    assert d.method == stats.NO_INTERVAL and not d.excludes_zero


def test_holm_by_hand() -> None:
    # sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06, monotone), 0.5 (x1)
    assert stats.holm([0.03, 0.5, 0.01, 0.02, math.nan]) == pytest.approx(
        [0.06, 0.5, 0.04, 0.06, math.nan], nan_ok=True
    )
    assert stats.holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 capped at 1; monotone


def test_min_detectable_difference_by_simulation() -> None:
    """At the returned size a paired t-test over n = 3 rejects in ~80 % of simulated runs."""
    mdd = stats.min_detectable_difference(1.0, n=3)
    assert 3.0 < mdd < 3.6  # (t_0.975 + t_0.8) / sqrt(3) = 3.10 by the central-t shortcut
    rng = np.random.default_rng(0)
    d = rng.normal(mdd, 1.0, size=(20000, 3))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(3))
    crit = 4.302653  # t(0.975, 2)
    assert np.mean(np.abs(t) > crit) == pytest.approx(0.8, abs=0.015)
    assert stats.min_detectable_difference(2.0, n=3) == pytest.approx(2 * mdd)
    assert math.isnan(stats.min_detectable_difference(1.0, n=1))


def _row(cid: str, seeds: dict[int, float]) -> dict[str, object]:
    return {"spec.id": cid, **{f"metric.top1.s{s}": v for s, v in seeds.items()}}


def test_tables_with_one_seed_mark_nothing_and_say_so() -> None:
    rows = pd.DataFrame([_row("ref", {0: 50.0}), _row("a", {0: 95.0}), _row("b", {0: 10.0})])
    table = with_stats(rows, rows.iloc[0])
    tests = adjust_holm([table])
    assert tests == 0 and not table["delta.significant"].any()
    assert table["top1.ci95"].isna().all() and table["delta.ci95"].isna().all()
    assert interval_note([table], tests).startswith("n = 1: no interval")


def test_holm_decides_the_star_across_tables() -> None:
    ref = {0: 80.0, 1: 81.0, 2: 82.0}
    big = {s: v + 5 + 0.1 * s for s, v in ref.items()}  # paired p tiny
    small = {0: 80.4, 1: 81.6, 2: 81.9}  # within the noise
    t1 = with_stats(pd.DataFrame([_row("r", ref), _row("big", big)]), pd.Series(_row("r", ref)))
    t2 = with_stats(pd.DataFrame([_row("small", small)]), pd.Series(_row("r", ref)))
    assert adjust_holm([t1, t2]) == 3  # the reference row against itself is a test too
    assert bool(t1.loc[1, "delta.significant"]) and not bool(t2.loc[0, "delta.significant"])
    assert t1.loc[1, "delta.p_holm"] >= t1.loc[1, "delta.p"]
    note = interval_note([t1, t2], 3)
    assert "paired t" in note and "Holm" in note and "3 Δ tests" in note


def test_rendered_cells_say_n_1_and_star_only_where_holm_says() -> None:
    from gcsearch.report.render import _pm

    assert _pm(80.0, math.nan) == "80.00 (n = 1: no interval)"
    assert _pm(5.0, math.nan, signed=True) == "+5.00 (no interval)"
    assert _pm(5.0, 1.0, signed=True, star=False) == "+5.00 ± 1.00"  # excludes 0, not Holm
    assert _pm(5.0, 1.0, signed=True, star=True) == "+5.00 ± 1.00 *"


def test_array_tests_match_scipy_and_the_scalar_tests() -> None:
    from scipy import stats as sps

    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, (5, 4))
    mean, se, df = stats.paired_arrays(d)
    for row, m, s in zip(d, mean, se, strict=True):
        ref = sps.ttest_1samp(row, 0.3, alternative="greater")
        assert stats.one_sided_p(m, s, df, 0.3, above=True) == pytest.approx(ref.pvalue)
        assert stats.paired_test(row, np.zeros(4)).se == pytest.approx(s)
    assert stats.one_sided_p(1.0, 0.0, 2, 0.0, above=True) == 0.0  # no spread: the sign decides
    assert math.isnan(stats.one_sided_p(1.0, math.nan, 2, 0.0, above=True))  # no interval


def test_the_floor_bounds_the_sd_of_differences() -> None:
    """A constant difference gives sd 0: p = 0 and a zero-width interval without a floor; with
    the floor (the resolution of top-1) the test acts as if the sd were the floor."""
    a, b = [80.04, 81.04, 79.04], [80.0, 81.0, 79.0]
    assert stats.paired_test(a, b).p == 0.0
    floored = stats.paired_test(a, b, floor=0.02)
    ref = stats.paired_test([0.04, 0.06, 0.02], [0.0, 0.0, 0.0])  # sd exactly 0.02
    assert floored.half == pytest.approx(ref.half) and floored.p == pytest.approx(ref.p)
    assert stats.welch_test([1.0, 1.0], [0.0, 0.0], floor=0.1).p > 0
    assert stats.resolution(5000) == pytest.approx(0.02) and math.isnan(stats.resolution(None))
