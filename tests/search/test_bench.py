"""Benchmark replays: a table answers trials, rungs cut histories, fronts keep complete rows."""

from __future__ import annotations

import random
from typing import Any

from optuna.trial import TrialState

from gcsearch.search.bench import BENCH_SPACE, _front_hv, _points, replay
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space


def _table(seed: int = 0) -> dict[str, dict[int, dict[str, Any]]]:
    """Made-up full-budget curves for every candidate of the bench space (6 epochs)."""
    space = load_space(BENCH_SPACE)
    rng = random.Random(seed)
    table = {}
    for i, cand in enumerate(space.candidates() + space.references()):
        final = rng.uniform(45, 95)
        history = [{"epoch": e, "val_top1": 50 + (final - 50) * e / 6, "val_loss": 1.0,
                    "seconds": 2.0} for e in range(1, 7)]
        table[cand.id] = {0: {"candidate_id": cand.id, "seed": 0, "status": "complete",
                              "top1": history[-1]["val_top1"], "loss": 1.0, "epochs": 6,
                              "history": history, "params": 1000 + 10 * i,
                              "macs": 50_000 + 97 * (i % 7), "block_params": 10 * i,
                              "block_macs": 97 * (i % 7), "env": {}}}
    return table


def test_exhaustive_replay_recovers_the_whole_table() -> None:
    space = load_space(BENCH_SPACE)
    table = _table()
    study, ex = replay(space, table, sampler="grid", n_trials=None, seed=0, fidelity=False)
    assert {t.user_attrs["candidate_id"] for t in study.trials} == set(table)
    dups = [t for t in study.trials if TrialRecord.read(t).is_duplicate]
    # gc is att-r16ln-add at c3c4c5; r4 and r16 at c4 (32 channels) both build 8 wide
    assert len(dups) == 7 and "att-r16ln-add@after_1x1:c3c4c5" in {
        TrialRecord.read(t).candidate_id for t in dups}
    assert len(_points(study)) == len(table) - 7
    assert ex.epochs_trained == 6 * (len(table) - 7)


def test_fidelity_replay_saves_epochs_and_keeps_pruned_rows_off_the_front() -> None:
    space = load_space(BENCH_SPACE)
    table = _table()
    full, _ = replay(space, table, sampler="grid", n_trials=None, seed=0, fidelity=False)
    study, ex = replay(space, table, sampler="random", n_trials=None, seed=1, fidelity=True)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and ex.epochs_trained < 6 * len(table)
    for t in pruned:
        assert t.values is None and t.user_attrs["fidelity"]["epochs"] < 6
        assert t.user_attrs["fidelity"]["epochs"] in space.fidelity.rungs(6)
    refs = [t for t in study.trials if t.user_attrs.get("role") == "reference"]
    assert all(t.state == TrialState.COMPLETE for t in refs)  # never pruned
    senses = ["max", "min", "min"]
    ref = [0.0, 1e6, 1e5]
    assert 0 < _front_hv(_points(study), senses, ref) <= _front_hv(_points(full), senses, ref)


def test_sampler_replay_respects_the_budget() -> None:
    space = load_space(BENCH_SPACE)
    for sampler in ("nsga2", "random", "tpe"):
        study, _ = replay(space, _table(), sampler=sampler, n_trials=14, seed=0, fidelity=False)
        trained = [t for t in study.trials if not TrialRecord.read(t).is_duplicate]
        assert len(trained) == 14 + len(space.references()), sampler
