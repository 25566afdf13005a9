"""Which candidate to ask next: reference rows, then retries, then the search's strategy.

* Reference rows (the ``none`` baseline and the space's presets) are asked first and always
  trained at the full budget.
* Then the candidates a dead driver or an interrupt left (``Ledger.retry_first``), in their
  original order.
* Then the strategy: ``grid`` (every candidate in space order; one whose network is known
  costs nothing), ``ehvi`` (``strategy.py``: expected hypervolume improvement over the
  distinct networks), or Optuna's ``nsga2``, ``tpe`` and ``random``, proposing from a private
  study of the searched networks only (``sampling.SamplerStudy``). ``ehvi`` and ``grid``
  never propose a known network; after ``MAX_DUPLICATE_STREAK`` duplicates in a row from an
  Optuna sampler an unseen network is enqueued, so a small space is never stuck.

Every trial of the search's study is enqueued with its candidate's parameters, so the study's
own sampler is never consulted; ``n_trials`` counts distinct networks trained.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from gcsearch.search.ledger import Ledger
from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import (
    OPTUNA_SAMPLERS,
    SamplerStudy,
    candidate_params,
    make_sampler,
    suggest_candidate,
)
from gcsearch.search.space import Space
from gcsearch.spec import Candidate

MAX_DUPLICATE_STREAK = 10


class Proposal:
    """Asks the next candidate's trial in the search's study and keeps the sampler's study in
    step with what the search trains."""

    def __init__(
        self,
        space: Space,
        study: optuna.Study,
        ledger: Ledger,
        ask: Callable[[], optuna.Trial],
        *,
        n_trials: int,
        strategy: Any,
        trials: Iterable[FrozenTrial],
    ) -> None:
        """``ask`` is ``study.ask`` with this driver's claim; ``trials``, the study's so far,
        rebuild the sampler's study on a resume."""
        self.space, self.study, self.ledger, self._ask = space, study, ledger, ask
        self.n_trials, self.strategy = n_trials, strategy
        self.rng = random.Random(space.search.sampler_seed)
        self.streak = 0  # duplicates in a row
        self.sampler = (
            SamplerStudy(space, make_sampler(space, n_trials))
            if space.search.sampler in OPTUNA_SAMPLERS
            else None
        )
        for t in trials:
            self.learn(t)
        self.refs = [c for c in space.references() if c.id not in ledger.seen_ids]

    def _next_fixed(self) -> Candidate | None:
        """Grid order: a candidate whose network is known costs nothing; a new one needs
        budget."""
        budget = self.ledger.trained_search() < self.n_trials
        for cand in self.ledger.unseen():
            if self.ledger.known(cand) or budget:
                return cand
        return None

    def can_ask(self) -> bool:
        """Whether there is a candidate left to ask within the budget."""
        if self.refs:
            return True
        if self.space.search.sampler == "grid":
            return self._next_fixed() is not None
        return self.ledger.trained_search() < self.n_trials and any(
            not self.ledger.known(c) for c in self.ledger.unseen()
        )

    def ask(self) -> tuple[optuna.Trial, Candidate, str]:
        """The next trial, its candidate and role (``reference`` or ``search``)."""
        if self.refs:
            cand = self.refs.pop(0)
            return self._enqueue(cand, "reference"), cand, "reference"
        fresh = [c for c in self.ledger.retry_first if not self.ledger.known(c)]
        self.ledger.retry_first = fresh[1:]
        if fresh:
            return self._enqueue(fresh[0], "search"), fresh[0], "search"
        sampler = self.space.search.sampler
        if sampler == "grid":
            cand = self._next_fixed()
            assert cand is not None
        elif sampler not in OPTUNA_SAMPLERS:
            cand = self.strategy.propose(self.ledger)
        elif self.streak >= MAX_DUPLICATE_STREAK:
            cand = self.rng.choice([c for c in self.ledger.unseen() if not self.ledger.known(c)])
            self.streak = 0
        else:
            assert self.sampler is not None
            proposal, cand = self.sampler.propose()
            return self._enqueue(cand, "search", proposal), cand, "search"
        return self._enqueue(cand, "search"), cand, "search"

    def _enqueue(
        self, cand: Candidate, role: str, proposal: optuna.Trial | None = None
    ) -> optuna.Trial:
        """Enqueue ``cand`` and ask it: the trial carries the candidate's parameters (what
        optuna-dashboard shows); a searched one is bound to its trial in the sampler's study
        (``proposal``, or a new enqueued one there)."""
        params = {} if role == "reference" else candidate_params(self.space, cand)
        attrs = TrialRecord(candidate=cand, role=role).attrs(only=("candidate", "role"))
        self.study.enqueue_trial(params, user_attrs=attrs)
        trial = self._ask()
        if role == "search":
            suggest_candidate(trial, self.space)
            if self.sampler is not None:
                self.sampler.bind(trial.number, proposal or self.sampler.fixed(cand))
        return trial

    def placed(self, trial: optuna.Trial, trains: bool) -> None:
        """The asked ``trial`` trains here (``trains``) or is answered or parked: a duplicate,
        which the sampler's study never learns from."""
        if trains:
            self.streak = 0
            return
        self.streak += 1
        if self.sampler is not None:
            self.sampler.drop(trial.number)

    def learn(self, t: FrozenTrial) -> None:
        """Let the sampler's study see a finished trial of the search (once; searched,
        non-duplicate trials only)."""
        if self.sampler is not None:
            self.sampler.learn(t)

    def told(
        self, number: int, cand: Candidate, values: Sequence[float] | None, state: TrialState
    ) -> None:
        """Mirror a searched trial this driver trained into the sampler's study."""
        if self.sampler is not None:
            self.sampler.tell(number, cand, values, state)


__all__ = ["MAX_DUPLICATE_STREAK", "Proposal"]
