"""ehvi's prior from the exhaustive tables (``gcsearch.search.prior``) and its use in the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gcsearch.search import prior
from gcsearch.search.gp import GP
from gcsearch.search.strategy import EHVISettings, _features

ROOT = Path(__file__).resolve().parents[2]


def _rows(effect: dict[str, dict[str, float]], noise: float = 0.0) -> list:
    """Every combination of the axes in ``effect``, top-1 the sum of its values' effects."""
    import itertools

    rng = np.random.default_rng(0)
    axes = list(effect)
    out = []
    for combo in itertools.product(*(effect[a] for a in axes)):
        values = dict(zip(axes, combo, strict=True))
        top1 = 50 + sum(effect[a][v] for a, v in values.items()) + noise * rng.normal()
        out.append(({**values, "position": "after_1x1"}, top1))
    return out


def test_fit_recovers_main_effects_in_standard_deviations() -> None:
    """An additive table: the fitted effects order every axis's values as the truth does,
    their differences are the truth's over top-1's spread (shrunk a little by the ridge), and
    an axis with one value carries nothing."""
    truth = {"pooling": {"att": 0.0, "avg": -2.0, "avgmax": 3.0}, "fusion": {"add": 1.0, "mul": 0}}
    rows = _rows(truth) * 8  # 48 networks, as a table's 47: the ridge shrinks little
    eff = prior.fit_effects(rows)
    assert not any(n.startswith("position=") for n in eff)
    spread = np.std([t for _, t in rows])
    gap = eff["pooling=avgmax"] - eff["pooling=avg"]
    assert 0.9 * 5.0 / spread < gap <= 5.0 / spread
    assert eff["pooling=avgmax"] > eff["pooling=att"] > eff["pooling=avg"]
    assert eff["fusion=add"] > eff["fusion=mul"]
    assert prior.fit_effects(rows[:1]) == {}


def test_effects_average_the_tables_left_in() -> None:
    data = {
        "tables": {
            "a": {"effects": {"pooling=avg": 1.0, "fusion=add": 2.0}},
            "b": {"effects": {"pooling=avg": 3.0}},
        }
    }
    assert prior.effects(data=data) == {"fusion=add": 1.0, "pooling=avg": 2.0}
    assert prior.effects(["a"], data) == {"pooling=avg": 3.0}
    assert prior.effects(["a", "b"], data) == {}


def test_the_vector_follows_the_models_features() -> None:
    """The prior's entries line up with ``strategy._features``'s one-hot order; a space none
    of whose values has an effect gets no prior."""
    from gcsearch.search.space import load_space

    space = load_space("quick")
    choices = {"pooling": ["att", "avg"], "fusion": ["add", "mul"]}
    vec = prior.prior_vector(choices, {"pooling=avg": 0.5, "fusion=mul": -1.0})
    assert vec is not None and vec.tolist() == [0.0, 0.5, 0.0, -1.0]
    cand = next(c for c in space.candidates() if c.block and c.block.fusion == "mul")
    x = np.array(_features(cand, choices))
    assert x @ vec == pytest.approx(
        (0.5 if cand.block.pooling == "avg" else 0.0) - 1.0
    )  # its own values' effects
    assert prior.prior_vector(choices, {"stages=c4": 1.0}) is None


def test_the_model_believes_the_prior_where_it_fits_and_drops_it_where_it_does_not() -> None:
    """Told networks whose top-1 follows the effects: b = 1 and an untried network is
    predicted from its effects; told networks against them: b = 0 (a constant mean)."""
    eye = np.eye(6)
    beta = np.array([2.0, 1.0, 0.0, -1.0, -2.0, 0.5])
    x = eye[:5]
    along = 70 + 5 * (x @ beta)
    gp = GP(x, along, (0.0,), beta)
    assert gp.b == 1.0
    untried = eye[5:]
    mu = gp.predict(untried)[0][0]
    expected = 70 + 5 * 0.5  # the told mean plus the effect, in the told spread
    assert abs(mu - expected) < abs(mu - along.mean()) or abs(mu - expected) < 1.0
    against = GP(x, 70 - 5 * (x @ beta), (0.0,), beta)
    assert against.b == 0.0
    plain = GP(x, along, (0.0,))
    assert plain.b == 0.0 and plain.beta is None
    # the fast and screened predictions carry the same mean
    assert np.allclose(gp.predict_fast(untried)[0], gp.predict(untried)[0])
    assert np.allclose(gp.screen(untried)[0], gp.predict(untried)[0])


def test_settings_say_the_prior_and_a_space_can_turn_it_off(tmp_path: Path) -> None:
    on = EHVISettings.parse("prior=on")
    assert on.prior and on.label().endswith(",prior=on")
    assert EHVISettings.parse(on.label()) == on
    off = EHVISettings.parse("prior=off")
    assert off.label().endswith(",prior=off") and EHVISettings.parse(off.label()) == off
    with pytest.raises(ValueError, match="allowed: on, off"):
        EHVISettings.parse("prior=tables")

    from gcsearch.errors import UserError
    from gcsearch.search.space import load_space
    from gcsearch.search.strategy import make_strategy

    text = (ROOT / "spaces" / "quick.toml").read_text()
    path = tmp_path / "s.toml"
    path.write_text(text.replace('sampler = "grid"', 'sampler = "ehvi"\nprior = "off"'))
    space = load_space(path)
    assert space.search.prior == "off"
    attrs = {"hv_reference": {"top1": 0.0}, "hv_ideal": {"top1": 100.0}}
    made = make_strategy(space, {}, attrs, on)
    assert made is not None and not made.settings.prior and made._beta is None
    path.write_text(text.replace('sampler = "grid"', 'sampler = "ehvi"\nprior = "yes"'))
    with pytest.raises(UserError, match="tables, off"):
        load_space(path)


def test_the_packaged_prior_is_what_bench_prior_fits_on_the_committed_tables(
    tmp_path: Path,
) -> None:
    """One source: ``gcsearch/search/prior.json`` is rewritten by ``gcsearch bench prior``
    from ``benchmarks/tables``; a table changed without refitting fails here."""
    from gcsearch.cli import main

    out = tmp_path / "prior.json"
    assert main(["bench", "prior", "--out", str(out)]) == 0
    fresh = json.loads(out.read_text())
    packaged = json.loads(prior.PRIOR_PATH.read_text())
    assert fresh["tables"] == packaged["tables"]
    assert set(packaged["tables"]) == {
        "bench-small",
        "bench-small-graded",
        "bench-small-pairs",
        "bench-small-digits",
    }


def test_a_replay_leaves_its_own_table_out_of_the_prior(monkeypatch: pytest.MonkeyPatch) -> None:
    """A table never informs its own replay: the strategy's prior is the mean of the other
    tables' effects (bench select's held-out figures depend on it)."""
    from gcsearch.bench.search import replay
    from gcsearch.bench.select import table_path
    from gcsearch.bench.table import load_table
    from gcsearch.search import strategy
    from gcsearch.search.space import load_space

    seen: list[EHVISettings] = []
    real = strategy.EHVIStrategy.__init__

    def spy(self, space, costs, reference, ideal, settings=None) -> None:  # type: ignore[no-untyped-def]
        seen.append(settings)
        real(self, space, costs, reference, ideal, settings)

    monkeypatch.setattr(strategy.EHVIStrategy, "__init__", spy)
    space = load_space("bench-small-digits")
    table = load_table(table_path(space), space)
    replay(space, table, sampler="ehvi", n_trials=3, seed=0, ehvi=EHVISettings(prior=True))
    assert seen and seen[0].prior_without == ("bench-small-digits",)
    replay(space, table, sampler="ehvi", n_trials=3, seed=0)  # the shipped settings too
    assert seen[-1].prior_without == ("bench-small-digits",)


def test_the_mixture_keeps_both_beliefs_until_the_results_decide() -> None:
    """Two told networks cannot tell whether the effects hold: ``Mixture.fit`` keeps one fit
    per prior weight, weighted by evidence, and predicts their moment-matched normal (mean
    the weighted mean, variance the weighted second moment less the squared mean, so never
    below the narrower part's); with many told networks along the effects the weight of the
    other fit vanishes and the plain fit for b = 1 comes back. Conditioning keeps the
    weights; the screened sd bounds the exact one."""
    from gcsearch.search.gp import PRIOR_WEIGHTS, Mixture

    rng = np.random.default_rng(1)
    x = (
        np.eye(8)[[0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]]
        + np.eye(8)[[4, 5, 6, 7, 0, 1, 2, 3, 1, 2, 3, 4]]
    )
    beta = rng.normal(size=8)
    few = Mixture.fit(x[:2], np.array([70.0, 74.0]), (0.0,), beta)
    assert isinstance(few, Mixture) and len(few.parts) == len(PRIOR_WEIGHTS)
    assert abs(few.weights.sum() - 1.0) < 1e-12 and (few.weights > 0.05).all()
    assert [p.b for p in few.parts] == list(PRIOR_WEIGHTS)
    xs = x[2:]
    outs = [p.predict(xs) for p in few.parts]
    mu, sd = few.predict(xs)
    w = few.weights
    assert np.allclose(mu, sum(wi * m for wi, (m, _) in zip(w, outs, strict=True)))
    var = sum(wi * (s**2 + (m - mu) ** 2) for wi, (m, s) in zip(w, outs, strict=True))
    assert np.allclose(sd**2, var)
    assert (sd >= np.minimum(*(s for _, s in outs)) - 1e-12).all()
    assert np.allclose(few.predict_fast(xs)[0], mu) and np.allclose(few.predict_fast(xs)[1], sd)
    smu, ssd = few.screen(xs)
    assert np.allclose(smu, mu) and (ssd >= sd - 1e-9).all()
    told = few.conditioned(xs[:1], mu[:1])
    assert isinstance(told, Mixture) and np.array_equal(told.weights, few.weights)
    assert told.predict(xs[:1])[1][0] < sd[0]  # a network told is known better
    many = Mixture.fit(x, 70 + 5 * (x @ beta), (0.0,), beta)
    assert isinstance(many, GP) and many.b == 1.0
    alone = GP(x, 70 + 5 * (x @ beta), (0.0,), beta, (1.0,))
    assert np.allclose(many.predict(xs)[0], alone.predict(xs)[0])


def test_average_is_a_setting_said_only_with_the_prior() -> None:
    on = EHVISettings.parse("prior=on,average=on")
    assert on.average and on.label().endswith(",average=on,prior=on")
    assert EHVISettings.parse(on.label()) == on
    assert ",average" not in EHVISettings.parse("prior=off,average=on").label()
    with pytest.raises(ValueError, match="average=on\\|off"):
        EHVISettings.parse("mix=on")
