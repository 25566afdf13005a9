"""The driver: per-candidate rung decisions, resume invariance, the private Optuna API it uses."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import pytest
from _bench_helpers import fake_table
from _search_helpers import tiny_space
from optuna.trial import TrialState

from gcsearch.bench.search import BENCH_SPACE, found_networks, replay
from gcsearch.bench.table import TableExecutor
from gcsearch.launch import search
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space


def test_two_seeds_that_disagree_at_a_rung_get_one_decision(tmp_path: Path) -> None:
    space = load_space(tiny_space(tmp_path, fidelity=True)).with_overrides(
        budget={"epochs": 6}, min_epochs=2, eta=3, seeds=2
    )  # one rung, at epoch 2
    table = fake_table(space, seeds=2)
    victim = "att-1x1-add@after_1x1:c4"
    key = table.key_of(victim)
    for seed, top in ((0, 95.0), (1, 51.0)):  # seed 0 leads at the rung, seed 1 trails
        for h in table.results[key][seed]["history"]:
            if h["epoch"] == 2:
                h["val_top1"] = top
    study, _ = replay(
        space, table, sampler="grid", n_trials=None, seed=0, fidelity=True, min_epochs=2, eta=3
    )
    recs = [TrialRecord.read(t) for t in study.trials]
    rec = next(r for r in recs if r.candidate_id == victim)
    assert len(rec.rungs) == 1  # one decision, on the candidate, from the mean of both seeds
    decision = rec.rungs[0]
    assert decision["epoch"] == 2 and decision["top1_seeds"] == [95.0, 51.0]
    assert decision["top1_mean"] == pytest.approx(73.0)
    # both seeds share the candidate's fate
    assert {r["status"] for r in rec.results} == {rec.status}
    if decision["stop"]:
        assert rec.status == "pruned" and all(r["epochs"] == 2 for r in rec.results)
    else:
        assert rec.status == "complete" and all(r["epochs"] == 6 for r in rec.results)
    searched = [r for r in recs if r.role == "search" and not r.is_duplicate]
    assert all(len(r.rungs) == 1 for r in searched)
    kept = sum(not r.rungs[0]["stop"] for r in searched)
    assert kept == max(1, len(searched) // 3)


def _front(study: optuna.Study) -> set[str]:
    """The searched networks on the front a study ends with (ids of complete networks)."""
    return set(found_networks(study))


@pytest.mark.parametrize(("sampler", "fidelity"), [("ehvi", False), ("grid", True)])
def test_interrupted_and_resumed_search_gives_the_same_front(sampler: str, fidelity: bool) -> None:
    space = load_space(BENCH_SPACE).with_overrides(
        sampler=sampler,
        sampler_seed=3,
        enabled=fidelity,
        min_epochs=2,
        eta=3,
        seeds=2,
        parallel=1,
        n_trials=None if fidelity else 10,
    )
    table = fake_table(space, seed=5, seeds=2)
    runs = table.by_candidate()
    costs = table.costs()
    kw = {"progress": False, "export": False, "weights": False, "network_costs": costs}
    with tempfile.TemporaryDirectory() as tmp:
        whole = search(space, Path(tmp) / "a", executor=TableExecutor(runs), **kw)
        run = Path(tmp) / "b"
        with pytest.raises(KeyboardInterrupt):
            search(space, run, executor=TableExecutor(runs, interrupt_after=15), **kw)
        again = search(space, run, resume=True, executor=TableExecutor(runs), **kw)
        assert again.counts["retried"] >= 1  # something was cut and asked again
        assert _front(again.study) == _front(whole.study)
        a = {
            TrialRecord.read(t).network: t.state
            for t in whole.study.trials
            if TrialRecord.read(t).trained
        }
        b = {
            TrialRecord.read(t).network: t.state
            for t in again.study.trials
            if TrialRecord.read(t).trained
        }
        assert a == b  # same networks, same complete/pruned outcome


def test_private_optuna_api_the_driver_and_samplers_use() -> None:
    """``recover_stale_trials`` fails another process's trial through ``Study._storage`` and
    ``FrozenTrial._trial_id``. Fails loudly when Optuna changes them."""
    study = optuna.create_study()
    trial = study.ask()
    frozen = study.get_trials()[0]
    assert isinstance(frozen._trial_id, int)
    storage = study._storage
    storage.set_trial_user_attr(frozen._trial_id, "k", 1)
    storage.set_trial_state_values(frozen._trial_id, state=TrialState.FAIL)
    assert study.get_trials()[0].state == TrialState.FAIL and trial.number == 0


def test_ehvi_with_parallel_trials_never_proposes_a_network_twice() -> None:
    """Two slots: the second proposal is made while the first network is in flight (the
    kriging-believer batch rule), and no network is asked twice."""
    space = load_space(BENCH_SPACE).with_overrides(sampler="ehvi", n_trials=10, seeds=1)
    table = fake_table(space, seeds=1)
    costs = table.costs()
    with tempfile.TemporaryDirectory() as tmp:
        out = search(
            space,
            Path(tmp),
            storage="memory",
            progress=False,
            export=False,
            weights=False,
            network_costs=costs,
            executor=TableExecutor(table.by_candidate(), parallel=2),
        )
    recs = [TrialRecord.read(t) for t in out.study.trials]
    searched = [r for r in recs if r.role == "search"]
    assert len(searched) == 10 and not any(r.is_duplicate for r in recs)
    assert len({r.network for r in searched}) == 10
