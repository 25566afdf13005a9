"""The uniform encoding and what Optuna's samplers are allowed to see."""

from __future__ import annotations

from collections import Counter

import optuna
from _search_helpers import ROOT
from optuna.trial import TrialState, create_trial

from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import (
    SearchOnly,
    _SearchView,
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


def _ref(value: float) -> optuna.trial.FrozenTrial:
    rec = TrialRecord(candidate=Candidate.none(), role="reference", status="complete")
    trial = create_trial(values=[value, 1.0, 1.0], params={}, distributions={})
    rec.write(trial)
    return trial


def test_samplers_see_searched_trained_trials_only() -> None:
    space = load_space(ROOT / "spaces" / "quick.toml").with_overrides(sampler="tpe")
    sampler = make_sampler(space, 16)
    assert isinstance(sampler, SearchOnly)
    study = optuna.create_study(directions=space.directions(), sampler=sampler)
    for v in (50.0, 60.0, 70.0):
        study.add_trial(_ref(v))
    cand = space.candidates()[0]
    trial = study.ask(fixed_distributions=None)
    study.tell(trial, state=TrialState.FAIL)
    searched = create_trial(values=[80.0, 2.0, 2.0], params={}, distributions={})
    TrialRecord(candidate=cand, role="search", status="complete").write(searched)
    study.add_trial(searched)
    dup = create_trial(state=TrialState.FAIL)
    TrialRecord(candidate=cand, role="search", status="complete", duplicate_of=4).write(dup)
    study.add_trial(dup)
    view = _SearchView(study)
    seen = view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=False)
    assert [TrialRecord.read(t).candidate_id for t in seen] == [cand.id]
    assert len(view.get_trials(deepcopy=False)) == 2  # the searched one and the failed ask
    assert len(study.get_trials(deepcopy=False)) == 6
