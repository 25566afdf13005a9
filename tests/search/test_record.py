"""The trial record: one schema written to and read back from Optuna trials; one count."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from gcsearch.search.record import TrialRecord, count_line, counts
from gcsearch.spec import Candidate


def test_record_round_trips_through_an_optuna_trial() -> None:
    cand = Candidate.parse("att-r16ln-add@after_1x1:c4")
    rec = TrialRecord(
        candidate=cand,
        role="search",
        network="att-h8ln-add@after_1x1:c4",
        status="pruned",
        reason="stopped at rung epoch 2",
        results=[{"seed": 0, "top1": 60.0, "history": [{"epoch": 1}]}],
        rungs=[{"epoch": 2, "stop": True}],
        cost={"macs": 10, "params": 2},
        fidelity={"epochs": 2},
        env={"host": "h"},
        retries=[{"seed": 0, "attempts": 2}],
        weights=None,
    )
    study = optuna.create_study()
    trial = study.ask()
    rec.write(trial)
    study.tell(trial, state=TrialState.PRUNED)
    back = TrialRecord.read(study.trials[0])
    assert back == rec and back.candidate_id == cand.id and back.trained


def test_old_or_broken_records_still_read() -> None:
    trial = create_trial(state=TrialState.FAIL, user_attrs={"candidate_id": "not a spec"})
    rec = TrialRecord.read(trial)
    assert rec.candidate is None and rec.candidate_id == "not a spec"


def test_one_count_of_trials() -> None:
    study = optuna.create_study()
    cand = Candidate.parse("att-1x1-add@after_1x1:c4")
    for status, state, dup, retry in (
        ("complete", TrialState.COMPLETE, None, False),
        ("pruned", TrialState.PRUNED, None, False),
        ("failed", TrialState.FAIL, None, False),
        ("complete", TrialState.FAIL, 0, False),
        ("failed", TrialState.FAIL, None, True),
    ):
        t = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None)
        TrialRecord(candidate=cand, status=status, duplicate_of=dup, retryable=retry).write(t)
        study.add_trial(t)
    c = counts(study.trials)
    assert c == {
        "trials": 5,
        "complete": 1,
        "pruned": 1,
        "failed": 1,
        "duplicates": 1,
        "retried": 1,
        "running": 0,
    }
    assert count_line(c).startswith("5 trials: 1 complete, 1 pruned, 1 failed, 1 duplicates")
