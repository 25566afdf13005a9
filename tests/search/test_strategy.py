"""The default strategy's inputs: exact costs of every network, and the hypervolume box."""

from __future__ import annotations

import math
from typing import Any

import pytest
from _search_helpers import ROOT

from gcsearch.cost import count_cost
from gcsearch.search.sampling import network_key
from gcsearch.search.space import load_space, parse_space
from gcsearch.search.strategy import hv_box, normalise, searched_networks, space_costs
from gcsearch.search.trial import resolve_budget

MIXED = """
name = "mixed"
[task]
name = "synthetic"
backbone = "resnet8"
[axes]
pooling = ["att", "avgmax"]
transform = ["1x1", "bottleneck"]
ratio = [4]
norm = ["ln", "none"]
fusion = ["add", "both"]
position = ["after_1x1", "after_add"]
stages = ["c3", "c4c5"]
density = ["all", "last"]
[references]
include = ["gc", "nl-embedded"]
"""


@pytest.mark.parametrize("text", ["quick", MIXED])
def test_costs_by_blocks_equal_whole_model_counts(text: str) -> None:
    space = (
        load_space(ROOT / "spaces" / "quick.toml")
        if text == "quick"
        else parse_space(text, "mixed.toml")
    )
    _, shape, classes = resolve_budget(space)
    fast = space_costs(space, shape, classes)
    cands = [*space.references(), *space.candidates()]
    if text != "quick":
        cands = cands[::7] + space.references()  # a spread of them: whole counts are slow
    for cand in cands:
        whole = count_cost(
            cand, space.backbone, shape, num_classes=classes, min_hidden=space.min_hidden
        ).to_dict()
        assert fast[network_key(cand, space.backbone, space.min_hidden)] == whole, cand.id


def test_box_spans_chance_to_perfect_and_the_space_costs() -> None:
    costs = {
        "none": {"macs": 100, "block_macs": 0},
        "a": {"macs": 120, "block_macs": 20},
        "b": {"macs": 110, "block_macs": 10},
    }
    ref, ideal = hv_box(["top1:max", "macs:min", "block_macs:min", "loss:min"], costs, 4)
    assert ref == {"top1": 25.0, "macs": 122.0, "block_macs": 22.0, "loss": math.log(4)}
    assert ideal == {"top1": 100.0, "macs": 100.0, "block_macs": 0.0, "loss": 0.0}
    objectives = ["top1:max", "macs:min"]
    assert normalise([100.0, 100.0], objectives, ref, ideal) == [0.0, 0.0]
    assert normalise([25.0, 122.0], objectives, ref, ideal) == [1.0, 1.0]


def test_reference_rows_never_stretch_the_box() -> None:
    """One costly reference row (an NL block) left the block-MACs axis five times longer and
    every searched network's share of it smaller; the box spans the searched networks and the
    plain backbone only."""
    costs = {
        "none": {"block_macs": 0},
        "a": {"block_macs": 20},
        "b": {"block_macs": 10},
        "nl": {"block_macs": 500},
    }
    ref, ideal = hv_box(["top1:max", "block_macs:min"], costs, 4, searched=["a", "b"])
    assert ref["block_macs"] == 22.0 and ideal["block_macs"] == 0.0
    assert hv_box(["block_macs:min"], costs, 4)[0]["block_macs"] == 550.0  # every row
    boxes = []
    for refs in ('["se"]', '["se", "nl-embedded"]'):
        text = MIXED.split("[references]")[0] + f"[references]\ninclude = {refs}\n"
        space = parse_space(text, "refs.toml")
        _, shape, classes = resolve_budget(space)
        costs = space_costs(space, shape, classes)
        boxes.append(hv_box(space.objectives, costs, classes, searched_networks(space)))
    assert boxes[0] == boxes[1]  # the NL row was counted, and moved nothing


OBJECTIVE_SETS = [
    ("top1:max",),
    ("loss:min",),
    ("top1:max", "loss:min"),
    ("top1:max", "macs:min", "params:min"),
    ("top1:max", "latency:min"),
    ("loss:min", "block_macs:min", "latency:min"),
    ("top1:max", "loss:min", "block_params:min", "latency:min"),
]


@pytest.mark.parametrize("strategy", ["ehvi", "nsga2", "tpe", "random", "grid"])
@pytest.mark.parametrize("objectives", OBJECTIVE_SETS, ids=lambda o: "+".join(o))
def test_every_objective_set_works_with_every_strategy(
    objectives: tuple[str, ...], strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every combination the spec allows, with each strategy, through the real driver on a
    recorded table: the values told are the objectives' own (loss is loss, latency the median
    of the seeds' measurements), and ehvi fits one model per measured objective (latency once
    raised KeyError; top-1 with loss never fitted and fell back to random picks)."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from _bench_helpers import fake_table

    from gcsearch.bench.table import TableExecutor
    from gcsearch.launch import search
    from gcsearch.search import strategy as strat
    from gcsearch.search.record import TrialRecord

    fits: list[str] = []
    real_fit = strat.EHVIStrategy._fit

    def counting_fit(self: Any, x: Any, y: Any, name: str, box: Any) -> Any:
        fits.append(name)
        return real_fit(self, x, y, name, box)

    monkeypatch.setattr(strat.EHVIStrategy, "_fit", counting_fit)
    base = load_space("bench-small").with_overrides(sampler=strategy, n_trials=6, seeds=2)
    space = dataclasses.replace(base, objectives=objectives)
    table = fake_table(space, seeds=2)
    for seeds in table.results.values():
        for seed, r in seeds.items():
            r["loss"] = (100.0 - r["top1"]) / 50.0
            r["latency"] = {"ms": 1.0 + r["block_macs"] / 1000 + seed / 10}
    with tempfile.TemporaryDirectory() as tmp:
        out = search(
            space,
            Path(tmp),
            storage="memory",
            progress=False,
            export=False,
            weights=False,
            network_costs=table.costs(),
            executor=TableExecutor(table.by_candidate(), parallel=2),
        )
    told = [t for t in out.study.trials if t.values is not None]
    searched = [t for t in told if TrialRecord.read(t).role == "search"]
    assert len({TrialRecord.read(t).network for t in searched}) == 6
    for t in told:
        results = TrialRecord.read(t).results
        for name, value in zip(objectives, t.values, strict=True):
            metric = name.split(":")[0]
            if metric == "loss":
                assert value == pytest.approx(sum(r["loss"] for r in results) / len(results))
            elif metric == "latency":
                ms = sorted(r["latency"]["ms"] for r in results)
                assert value == pytest.approx((ms[0] + ms[-1]) / 2)  # median of two seeds
            elif metric == "top1":
                assert value == pytest.approx(sum(r["top1"] for r in results) / len(results))
    measured = [o for o in objectives if o.split(":")[0] in ("top1", "loss", "latency")]
    if strategy == "ehvi":  # a model per measured objective once settings.starts networks are in
        assert fits and len(fits) % len(measured) == 0
        assert set(fits) == {o.split(":")[0] for o in measured}
    else:
        assert not fits


def test_prior_and_conditioned_models_behave_as_the_batch_rules_need() -> None:
    import numpy as np

    from gcsearch.search.gp import GP

    eye = np.eye(4)
    prior = GP.prior(eye[:1], 75.0, 12.5)
    mu, sd = prior.predict(eye)
    assert np.allclose(mu, 75.0)
    assert sd[0] < 0.2 * 12.5 and np.allclose(sd[1:], sd[1]) and sd[1] > sd[0]
    gp = GP(eye[:3], np.array([60.0, 70.0, 80.0]))
    lied = gp.conditioned(eye[3:], np.array([50.0]))
    assert (lied.ell, lied.noise, lied.mean, lied.scale) == (gp.ell, gp.noise, gp.mean, gp.scale)
    mu2, sd2 = lied.predict(eye[3:])
    assert mu2[0] < gp.predict(eye[3:])[0][0] and sd2[0] < gp.predict(eye[3:])[1][0]


def test_additive_kernel_carries_main_effects_to_an_untried_network() -> None:
    """Two axes of two values, (a1, b0) and (a0, b1) each better than (a0, b0): the additive
    part predicts the untried (a1, b1) above every told network; the product kernel alone
    (every interaction) does not extrapolate there. The kernel's diagonal stays 1."""
    import numpy as np

    from gcsearch.search.gp import GP
    from gcsearch.search.strategy import EHVISettings

    def row(a: int, b: int) -> list[float]:
        return [float(a == 0), float(a == 1), float(b == 0), float(b == 1)]

    x = np.array([row(0, 0), row(1, 0), row(0, 1)])
    y = np.array([60.0, 70.0, 70.0])
    additive = GP(x, y, (0.9,))
    product = GP(x, y, (0.0,))
    untried = np.array([row(1, 1)])
    assert additive.predict(untried)[0][0] > 70.0 > product.predict(untried)[0][0]
    assert np.allclose(np.diag(additive._kernel(x)), 1.0)
    # the setting round-trips and is refused with the allowed values when wrong
    on = EHVISettings.parse("additive=on")
    assert on.additive and EHVISettings.parse(on.label()) == on
    with pytest.raises(ValueError, match="allowed: on, off"):
        EHVISettings.parse("additive=yes")


def test_amplitude_keeps_a_haystack_at_chance_from_looking_flat() -> None:
    """Six told networks all at chance: the plain fit reads their spread (a few tenths of a
    point) as the signal's, so an untried network looks as sure to be at chance as the told
    ones; with pseudo-results of a quarter of the box the untried network keeps an sd of
    points. The pooled spread is the variance's conjugate update and gives way to the
    results' spread as they come. The setting round-trips."""
    import numpy as np

    from gcsearch.search.gp import GP, _amplitude
    from gcsearch.search.strategy import EHVISettings

    eye = np.eye(8)
    y = np.array([50.1, 49.9, 50.0, 50.2, 49.8, 50.0])
    plain = GP(eye[:6], y)
    pooled = GP(eye[:6], y, amplitude=(12.5, 2.0))
    assert plain.predict(eye[6:])[1].max() < 0.5
    assert pooled.predict(eye[6:])[1].min() > 2.0
    assert abs(pooled.predict(eye[6:])[0] - 50.0).max() < 0.5  # the mean is the results'
    assert _amplitude(y, None) == pytest.approx(y.std())
    assert _amplitude(y, (12.5, 2.0)) == pytest.approx(math.sqrt((6 * y.var() + 2 * 12.5**2) / 8))
    many = np.random.default_rng(0).normal(60.0, 8.0, 400)
    assert _amplitude(many, (12.5, 2.0)) == pytest.approx(many.std(), rel=0.02)
    on = EHVISettings.parse("amplitude=2")
    assert on.amplitude == 2 and EHVISettings.parse(on.label()) == on
    assert "amplitude" not in EHVISettings().label()
    with pytest.raises(ValueError, match="amplitude=x \\(allowed: integers >= 0\\)"):
        EHVISettings.parse("amplitude=x")


def test_settings_travel_with_the_search_never_through_module_state() -> None:
    """A benchmark's pool process replays many settings one after another: each replay is
    handed its own (SearchConfig.ehvi -> make_strategy), there is no module-wide setting a
    replay could leave to the next (bench select's cache once held starts=4 replays made with
    the previous batch's local_every=3), and a label leaves unsaid fields at the defaults."""
    from gcsearch.search import strategy

    assert not hasattr(strategy, "SETTINGS")
    space = load_space("quick")
    _, shape, classes = resolve_budget(space)
    costs = space_costs(space, shape, classes)
    ref, ideal = hv_box(space.objectives, costs, classes, searched_networks(space))
    attrs = {"hv_reference": ref, "hv_ideal": ideal}
    space = space.with_overrides(sampler="ehvi")
    mine = strategy.EHVISettings.parse("local_every=3,additive=on")
    assert strategy.make_strategy(space, costs, attrs, mine).settings is mine
    assert strategy.make_strategy(space, costs, attrs).settings == strategy.SHIPPED
    again = strategy.EHVISettings.parse("sd_scale=1.5,starts=4,batch_rule=kb-fixed+prior")
    assert again.local_every == 0 and not again.additive and again.starts == 4


def test_the_local_step_keeps_exactly_the_networks_one_axis_from_the_best() -> None:
    """The local step's vectorised one-hot distance picks the same networks as comparing axis
    values (at most one differs from one of the best measured), on a real space."""
    import numpy as np

    from gcsearch.search import strategy
    from gcsearch.search.sampling import axis_values

    space = load_space("bench-small")
    _, shape, classes = resolve_budget(space)
    costs = space_costs(space, shape, classes)
    ref, ideal = hv_box(space.objectives, costs, classes, searched_networks(space))
    s = strategy.EHVIStrategy(space, costs, ref, ideal, strategy.SHIPPED)
    pool = {network_key(c, space.backbone, space.min_hidden): c for c in space.candidates()}
    keys = sorted(pool)
    rows = s._rows_of(keys, [pool[k] for k in keys])
    told = [(k, pool[k], {"top1": float(i % 7)}) for i, k in enumerate(keys[:9])]
    mask = s._local(rows, told)
    best = [c for _, c, _ in sorted(told, key=lambda e: (-e[2]["top1"], e[0]))[:2]]
    near = [axis_values(c) for c in best]
    expected = [
        any(sum(axis_values(pool[k])[a] != b[a] for a in b) <= 1 for b in near) for k in keys
    ]
    assert mask.tolist() == expected and 1 < int(np.sum(mask)) < len(keys)
