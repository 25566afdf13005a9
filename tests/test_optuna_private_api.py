"""The private Optuna API gcsearch relies on, checked so an Optuna release that changes it fails
here, loudly, instead of an upper pin on ``optuna`` (Optuna 5 is allowed).

Uses (grep ``\\._`` on study/trial/storage objects in gcsearch):
- ``search/sampling.py`` uses public API only: Optuna's samplers propose from a study of their
  own (``SamplerStudy``: ``ask``/``enqueue_trial``/``tell``); NSGA-II's public
  ``get_trial_generation`` gives an enqueued trial its generation (checked below).
- ``search/claims.py``, ``search/telling.py`` and ``search/liveness.py``: ``Study._storage``,
  ``Study._study_id`` and ``Trial._trial_id``/``FrozenTrial._trial_id`` to mark a dead
  driver's trials failed, to keep per-driver heartbeats in the study's system attributes and
  to store a result whose trial another driver already failed (a study has no public way to
  change another process's trial).
"""

from __future__ import annotations

import re
from pathlib import Path

import optuna
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]


def test_study_storage_and_trial_id_still_exist() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    study.tell(trial, [1.0, 2.0])
    frozen = study.get_trials(deepcopy=False)[0]
    storage = study._storage
    assert isinstance(storage, optuna.storages.BaseStorage)
    assert isinstance(frozen._trial_id, int)
    # the calls storage.mark_dead_driver_trials makes, on a RUNNING trial
    running = study.ask()
    storage.set_trial_user_attr(running._trial_id, "status", "failed")
    storage.set_trial_state_values(running._trial_id, state=TrialState.FAIL)
    assert study.get_trials()[1].state == TrialState.FAIL


def test_study_id_and_live_trial_id_still_exist() -> None:
    """What liveness.py and the driver's result-keeping path call on the storage."""
    study = optuna.create_study(directions=["maximize"])
    trial = study.ask()
    assert isinstance(study._study_id, int) and isinstance(trial._trial_id, int)
    study._storage.set_study_system_attr(study._study_id, "driver:x", {"beat": 1.0})
    study._storage.set_trial_system_attr(trial._trial_id, "owner", "x")
    assert study._storage.get_study_system_attrs(study._study_id)["driver:x"] == {"beat": 1.0}
    template = optuna.trial.create_trial(state=TrialState.COMPLETE, values=[1.0])
    tid = study._storage.create_new_trial(study._study_id, template_trial=template)
    assert study._storage.get_trial(tid).values == [1.0]


def test_nsga2_trial_generation_is_still_there() -> None:
    sampler = optuna.samplers.NSGAIISampler(seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    frozen = study._storage.get_trial(trial._trial_id)
    assert isinstance(sampler.get_trial_generation(study, frozen), int)


def test_the_list_above_is_complete() -> None:
    """A new private Optuna use in gcsearch must be added to this file's checks."""
    pattern = re.compile(r"\b(study|trial|t|frozen|storage|sampler)\._[a-z]\w*")
    known = {"study._storage", "study._study_id", "t._trial_id", "trial._trial_id"}
    found = set()
    for path in (ROOT / "gcsearch").rglob("*.py"):
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(0))
    assert found <= known, f"private Optuna API not covered here: {sorted(found - known)}"
