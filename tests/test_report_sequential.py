"""Group-sequential verdicts: the boundaries against published values, and the false-verdict
rates of the sequential rules checked by simulation (vectorised; ``slow`` for the large run)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gcsearch.report import sequential as sq

ALPHA = 0.05


def _bound(rate: float, studies: int) -> float:
    """The largest rate consistent with ``rate`` being the truth: + 3 simulation SEs, those of
    this simulation and of the small-sample calibration (2 x ``CALIBRATION_STUDIES`` paths)."""
    var = rate * (1 - rate)
    return rate + 3 * math.sqrt(var / studies + var / (2 * sq.CALIBRATION_STUDIES))


def test_z_boundaries_are_the_published_lan_demets_obrien_fleming_ones() -> None:
    # K = 4 equally spaced looks, one-sided 0.025 (gsDesign / Jennison & Turnbull table 2.x)
    got = sq.z_bounds((0.25, 0.5, 0.75, 1.0), 0.025)
    assert got == pytest.approx((4.3326, 2.9631, 2.3590, 2.0141), abs=2e-3)
    # one look spends the whole level: the fixed-sample z quantile
    assert sq.z_bounds((1.0,), 0.025)[0] == pytest.approx(1.95996, abs=1e-4)


def test_spending_reaches_the_level_at_the_last_look_and_grows() -> None:
    t = np.linspace(0.05, 1.0, 20)
    a = sq.spent(t, 0.025)
    assert a[-1] == pytest.approx(0.025)
    assert np.all(np.diff(a) > 0) and a[0] < 1e-6


def test_small_samples_need_the_correction_and_it_only_tightens() -> None:
    looks = tuple(range(3, 13))
    from scipy.special import ndtr

    plain = ndtr(-np.asarray(sq.z_bounds(tuple(n / 12 for n in looks), 0.025)))
    calibrated = sq.nominal_p(looks, 0.025)
    assert np.all(calibrated <= plain)
    assert calibrated[0] < 0.97 * plain[0]  # three seeds a look: the plain conversion overshoots


@pytest.mark.parametrize("looks", [(3, 6, 9, 12), (3, 4, 5, 6, 7, 8, 9, 10, 11, 12), (2, 4, 6)])
def test_type_one_error_of_one_comparison_over_20000_studies(looks: tuple[int, ...]) -> None:
    studies = 20_000
    plan = sq.Plan(looks, ALPHA)
    out = sq.simulate(plan, [sq.hypothesis("x", "better", 1, 1.0)], studies, seed=7)
    rate = float(out.decided.mean())
    assert rate <= _bound(ALPHA, studies)
    assert rate >= ALPHA / 2  # not a procedure that never decides
    # either direction about equally often (a two-sided test at α)
    up, down = (out.direction == 1).mean(), (out.direction == -1).mean()
    assert max(up, down) <= _bound(ALPHA / 2, studies)


def test_false_verdict_rate_of_each_rule_at_its_boundary() -> None:
    """Equal true means (or a true Δ on the rule's boundary): each rule's wrong verdict at most
    α / 2 per direction."""
    studies, m = 10_000, 1.0
    plan = sq.Plan((3, 6, 9, 12), ALPHA)
    cases = [
        # stages: a equals every one of 4 alternatives; agree (beats all) or disagree both wrong
        (sq.hypothesis("stages", "better", 4, m), [0.0] * 4, (1, -1)),
        # equivalence with the true Δ on the margin: agree is wrong
        (sq.hypothesis("position", "equivalent", 1, m), [m], (1,)),
        # non-inferiority with the true Δ on the margin: agree is wrong
        (sq.hypothesis("ratio", "non_inferior", 1, m), [-m], (1,)),
        # ... and disagree is wrong too
        (sq.hypothesis("snl", "non_inferior", 1, m), [-m], (-1,)),
    ]
    for h, effects, wrong in cases:
        out = sq.simulate(plan, [h], studies, effects=[effects], seed=11)
        for direction in wrong:
            rate = float((out.direction == direction).mean())
            assert rate <= _bound(ALPHA / 2, studies), (h.id, direction, rate)


def test_familywise_error_of_eight_conclusions_with_holm_recycling() -> None:
    studies = 5_000
    plan = sq.Plan((3, 6, 9, 12), ALPHA)
    hs = [sq.hypothesis(f"h{j}", "better", 1, 1.0) for j in range(8)]
    out = sq.simulate(plan, hs, studies, seed=3)
    assert float(out.decided.any(axis=1).mean()) <= _bound(ALPHA, studies)


def test_recycling_lets_the_others_use_a_decided_conclusions_level() -> None:
    """One true effect decides early; a borderline second one then passes at α / 1 instead of
    α / 2, which the p-values show exactly."""
    plan = sq.Plan((3, 6), ALPHA)
    full, half = sq.nominal_p(plan.looks, ALPHA / 2), sq.nominal_p(plan.looks, ALPHA / 4)
    p_second = (half[1] + full[1]) / 2  # passes at α, not at α / 2
    pa = np.array([[[1e-12, 1e-12], [0.5, p_second]]])
    pd_ = np.ones_like(pa)
    out = sq.replay(plan, pa, pd_, [1, 1])
    assert out.look.tolist() == [[0, 1]] and out.direction.tolist() == [[1, 1]]
    alone = sq.replay(plan, pa[:, 1:], pd_[:, 1:], [1])
    assert alone.look.tolist() == [[1]]  # alone it has the full α too
    with_open = sq.replay(plan, np.array([[[0.5, 0.5], [0.5, p_second]]]), pd_, [1, 1])
    assert with_open.look.tolist() == [[-1, -1]]  # an open rival keeps it at α / 2


def test_a_real_effect_is_decided() -> None:
    plan = sq.Plan((3, 6, 9, 12), ALPHA)
    out = sq.simulate(plan, [sq.hypothesis("x", "better", 1, 1.0)], 2_000, effects=[[1.5]])
    assert float((out.direction == 1).mean()) > 0.9


def test_seeds_needed_at_an_observed_effect() -> None:
    n = sq.seeds_needed(1.0, 1.0, 0.025)
    assert n is not None and 9 <= n <= 11  # the textbook ~10 for d = 1, one-sided 2.5 %, 80 %
    assert sq.seeds_needed(0.5, 1.0, 0.025) > n
    assert sq.seeds_needed(-0.2, 1.0, 0.025) is None


def test_plans_are_checked_and_round_trip() -> None:
    plan = sq.Plan.schedule(3, 3, 12)
    assert plan.looks == (3, 6, 9, 12)
    assert sq.Plan.schedule(3, 4, 12).looks == (3, 7, 11, 12)
    assert sq.Plan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError):
        sq.Plan((3, 3))
    with pytest.raises(ValueError):
        sq.Plan((1, 4))


@pytest.mark.slow
def test_type_one_error_over_200000_studies() -> None:
    studies = 200_000
    for looks in [(3, 6, 9, 12), (3, 5, 7, 9, 11, 13, 15), (3, 6, 12, 24)]:
        out = sq.simulate(sq.Plan(looks), [sq.hypothesis("x", "better", 1, 1.0)], studies, seed=5)
        assert float(out.decided.mean()) <= _bound(ALPHA, studies), looks
