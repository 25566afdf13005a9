"""False-verdict rates of each verdict rule, by simulation, at the run's seed count (n = 3).

The simulations live in ``gcsearch.bench.fixed_n`` (``gcsearch bench sequential`` writes their
rates for the docs); these tests run them with their own seeds. Every rule is a one-sided test at
2.5 % per direction (see ``gcsearch.report.verdicts``), so with equal true means (or a true Δ on
a margin) a wrong verdict in a given direction should come up at most 2.5 % of the time, within
simulation error. A family of one conclusion: Holm leaves a single p as it is.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gcsearch.bench import fixed_n as fx
from gcsearch.report import verdicts as vd
from gcsearch.report.stats import paired_arrays

SIMS = 40_000
NOMINAL = fx.NOMINAL
TOL = 4 * math.sqrt(NOMINAL * (1 - NOMINAL) / SIMS)  # 4 simulation standard errors
_top1 = fx.top1


@pytest.mark.parametrize("conclusion", ["pooling", "fusion", "layernorm", "gc_vs_se"])
def test_directional_rule_at_equal_means(conclusion: str) -> None:
    """a better than b (and GC outperforms SE): each direction comes up ~2.5 % of the time."""
    c = next(c for c in vd.CONCLUSIONS if c.id == conclusion)
    assert c.kind == "better" and not c.every_b
    a, bs = fx.directional_runs(np.random.default_rng(1), SIMS)
    agree, disagree = fx.verdict_rates(c.kind, a, bs)
    assert agree == pytest.approx(NOMINAL, abs=TOL)
    assert disagree == pytest.approx(NOMINAL, abs=TOL)


def test_stages_with_all_five_stage_sets_equal() -> None:
    """The earlier best-of rule (a against the best-looking alternative only) says 'disagree'
    well above 2.5 % here; Bonferroni over the four alternatives keeps it at or below 2.5 %,
    and agree (a beats all four) is rarer still."""
    c = next(c for c in vd.CONCLUSIONS if c.id == "stages")
    assert len(c.b) == fx.K_STAGES
    a, bs = fx.stages_all_equal(np.random.default_rng(2), SIMS)
    agree, disagree = fx.verdict_rates(c.kind, a, bs)
    assert disagree <= NOMINAL + TOL
    assert disagree > NOMINAL / 4  # conservative, not blind
    assert agree <= NOMINAL + TOL
    assert fx.best_of_rates(a, bs)[1] > NOMINAL + TOL


def test_stages_with_one_noisy_equal_alternative() -> None:
    """The least favourable case for 'agree': one alternative equal to c3–c5 (and noisy), the
    others far behind. The intersection-union test stays at the one comparison's 2.5 %."""
    c = next(c for c in vd.CONCLUSIONS if c.id == "stages")
    a, bs = fx.stages_one_noisy_equal(np.random.default_rng(3), SIMS)
    agree, _ = fx.verdict_rates(c.kind, a, bs)
    assert agree == pytest.approx(NOMINAL, abs=TOL)


@pytest.mark.parametrize("conclusion", ["snl_vs_nl", "ratio", "gc_vs_se_noninferior"])
def test_non_inferiority_rule(conclusion: str) -> None:
    """Equal means: 'disagree' (a worse by more than the margin) is at most 2.5 %. A true Δ
    on the margin (-1 point): 'agree' comes up ~2.5 %; so does 'disagree'."""
    c = next(c for c in vd.CONCLUSIONS if c.id == conclusion)
    assert c.kind == "non_inferior"
    rng = np.random.default_rng(4)
    a, b = _top1(rng, 80.0, 1.0, (SIMS, 3)), _top1(rng, 80.0, 1.0, (SIMS, 3))
    assert fx.verdict_rates(c.kind, a, [b], c.margin)[1] <= NOMINAL + TOL
    a = _top1(rng, 80.0 - c.margin, 1.0, (SIMS, 3))
    agree, disagree = fx.verdict_rates(c.kind, a, [b], c.margin)
    assert agree == pytest.approx(NOMINAL, abs=TOL)
    assert disagree == pytest.approx(NOMINAL, abs=TOL)


def test_equivalence_rule() -> None:
    """Equal means: 'disagree' (beyond ±1) at most 2.5 %; a true Δ on the margin: 'agree'
    (TOST) at most 2.5 % (TOST is conservative when the interval is wide)."""
    c = next(c for c in vd.CONCLUSIONS if c.id == "position")
    rng = np.random.default_rng(5)
    b = _top1(rng, 80.0, 0.3, (SIMS, 3))
    assert fx.verdict_rates(c.kind, _top1(rng, 80.0, 0.3, (SIMS, 3)), [b])[1] <= NOMINAL + TOL
    agree, _ = fx.verdict_rates(c.kind, _top1(rng, 80.0 + c.margin, 0.3, (SIMS, 3)), [b])
    assert agree <= NOMINAL + TOL and agree > NOMINAL / 4


def test_nl_rule_with_equal_distances() -> None:
    """NL query-independence over 4 instantiations × 3 models: inputs, outputs and attention
    equally far apart in truth. 'disagree' (some distance above the inputs') at most 2.5 %."""
    rng = np.random.default_rng(6)
    inp = rng.normal(0.3, 0.05, (SIMS, 4, 3))
    gaps = [paired_arrays(inp - rng.normal(0.3, 0.05, (SIMS, 4, 3))) for _ in ("att", "out")]
    mean = np.concatenate([g[0] for g in gaps], axis=-1)
    se = np.concatenate([g[1] for g in gaps], axis=-1)
    p, direction = vd.decide("better", mean, se, np.full_like(mean, 2))
    assert np.mean((p < 0.05) & (direction < 0)) <= NOMINAL + TOL
    assert np.mean((p < 0.05) & (direction > 0)) <= NOMINAL + TOL


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 6, 12])
def test_directional_rule_at_other_seed_counts(n: int) -> None:
    """The directional rule's rate at other seed counts (n = 2 is where the floor matters)."""
    rng = np.random.default_rng(7)
    a, b = _top1(rng, 80.0, 1.0, (SIMS, n)), _top1(rng, 80.0, 1.0, (SIMS, n))
    agree, disagree = fx.verdict_rates("better", a, [b])
    assert agree == pytest.approx(NOMINAL, abs=TOL)
    assert disagree == pytest.approx(NOMINAL, abs=TOL)
