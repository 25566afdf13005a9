"""The uniform encoding and what Optuna's samplers are allowed to see."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
from _search_helpers import ROOT
from optuna.trial import FrozenTrial, TrialState, create_trial

from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import (
    OPTUNA_SAMPLERS,
    SamplerStudy,
    candidate_params,
    make_sampler,
    suggest_candidate,
)
from gcsearch.search.space import load_space
from gcsearch.spec import Candidate


def test_every_candidate_carries_the_same_parameters() -> None:
    space = load_space(ROOT / "spaces" / "bench-small.toml")
    names = {frozenset(candidate_params(space, c)) for c in space.candidates()}
    assert names == {frozenset({"pooling", "transform", "fusion", "stages"})}


def test_random_draws_are_uniform_over_candidates() -> None:
    """The conditional encoding gave a 1x1 candidate the mass of its two bottleneck siblings
    together; the flat one gives each candidate 1/54."""
    space = load_space(ROOT / "spaces" / "bench-small.toml")
    study = optuna.create_study(
        directions=space.directions(), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    counts: Counter[str] = Counter()
    draws = 5400
    for _ in range(draws):
        trial = study.ask()
        counts[suggest_candidate(trial, space).id] += 1
        study.tell(trial, state=TrialState.FAIL)
    assert set(counts) == {c.id for c in space.candidates()}
    one_by_one = sum(v for k, v in counts.items() if "-1x1-" in k) / draws
    assert abs(one_by_one - 18 / 54) < 0.03  # conditional encoding: 0.5
    chi2 = sum((v - 100) ** 2 / 100 for v in counts.values())
    assert chi2 < 110  # 53 degrees of freedom: p ~ 1e-5 at 110


def _frozen(
    number: int, cand: Candidate, role: str, state: TrialState, **extra: object
) -> FrozenTrial:
    """A finished trial of the search's study, as the driver reads it."""
    values = [80.0, 2.0, 2.0] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, values=values, params={}, distributions={})
    trial.number = number
    TrialRecord(candidate=cand, role=role, status="complete", **extra).write(trial)  # type: ignore[arg-type]
    return trial


def _numbers_index_trials(study: optuna.Study) -> bool:
    """Optuna's invariant that NSGA-II (Optuna 5) relies on: ``trials[t.number] is t``."""
    return all(t.number == i for i, t in enumerate(study.get_trials(deepcopy=False)))


@pytest.mark.parametrize("sampler", OPTUNA_SAMPLERS)
def test_sampler_study_holds_the_searched_networks_only(sampler: str) -> None:
    """Reference rows and duplicates never reach the sampler's study; proposals, fixed picks
    and results do, and the study keeps Optuna's numbering (the filtered view it replaces
    broke NSGA-II in Optuna 5)."""
    space = load_space(ROOT / "spaces" / "quick.toml").with_overrides(sampler=sampler)
    ss = SamplerStudy(space, make_sampler(space, 16))
    cands = space.candidates()
    ss.learn(_frozen(0, Candidate.none(), "reference", TrialState.COMPLETE))
    ss.learn(_frozen(1, cands[0], "search", TrialState.COMPLETE))
    ss.learn(_frozen(2, cands[0], "search", TrialState.FAIL, duplicate_of=1))
    ss.learn(_frozen(3, cands[1], "search", TrialState.PRUNED))
    ss.learn(_frozen(3, cands[1], "search", TrialState.PRUNED))  # learnt once
    proposal, cand = ss.propose()
    ss.bind(10, proposal)
    ss.bind(11, ss.fixed(cands[2]))
    ss.bind(12, ss.fixed(cands[3]))
    ss.drop(12)  # a duplicate: told failed, never learnt from
    ss.tell(10, cand, [70.0, 1.0, 1.0], TrialState.COMPLETE)
    ss.tell(11, cands[2], None, TrialState.COMPLETE)  # complete without values: failed
    ss.tell(11, cands[2], [1.0, 1.0, 1.0], TrialState.COMPLETE)  # told once only
    trials = ss.study.get_trials(deepcopy=False)
    assert _numbers_index_trials(ss.study)
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.FAIL,
    ]
    assert trials[2].params == candidate_params(space, cand)
    assert trials[3].params == candidate_params(space, cands[2])  # a fixed pick's parameters
    if sampler == "nsga2":  # an enqueued trial has a generation too
        key = type(ss.study.sampler)._get_generation_key()
        assert all(key in t.system_attrs for t in trials)


def test_nsga2_breeds_from_a_study_with_reference_rows_and_duplicates() -> None:
    """The Optuna 5 failure: a population of 2 over several generations, with a reference row
    and a duplicate between the searched trials, proposes without an IndexError."""
    space = load_space(ROOT / "spaces" / "bench-small.toml").with_overrides(
        sampler="nsga2", population=2
    )
    ss = SamplerStudy(space, make_sampler(space, 40))
    ss.learn(_frozen(0, Candidate.none(), "reference", TrialState.COMPLETE))
    seen: set[str] = set()
    for number in range(1, 41):
        proposal, cand = ss.propose()
        ss.bind(number, proposal)
        if cand.id in seen:
            ss.drop(number)
            continue
        seen.add(cand.id)
        ss.tell(number, cand, [float(len(seen)), 1.0, float(number)], TrialState.COMPLETE)
    key = type(ss.study.sampler)._get_generation_key()
    generations = {t.system_attrs[key] for t in ss.study.get_trials(deepcopy=False)}
    assert max(generations) >= 3 and _numbers_index_trials(ss.study)
