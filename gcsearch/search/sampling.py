"""From Optuna trials to candidates: define-by-run suggestion and the samplers.

``ratio`` and ``norm`` are suggested only when ``transform`` is ``bottleneck`` (Optuna's
define-by-run conditionals); a space with several ``[[axes]]`` grids first suggests ``grid`` and
then that grid's axes under prefixed names. ``candidate_params`` inverts the suggestion so a
known candidate can be enqueued (grid order, reference rows, the duplicate-streak fallback).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from optuna.samplers import NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from gcsearch.search.space import Space
from gcsearch.spec import AXES, PRESETS, BlockSpec, Candidate, Placement


def _in_grid(space: Space, cand: Candidate) -> int | None:
    for i, grid in enumerate(space.grids):
        if cand.id in {c.id for c in grid.candidates()}:
            return i
    return None


def suggest_candidate(trial: optuna.Trial, space: Space) -> Candidate:
    """Define-by-run suggestion of one candidate (ratio/norm only for a bottleneck)."""
    if len(space.grids) > 1:
        name = trial.suggest_categorical("grid", [g.name for g in space.grids])
        grid, prefix = next(g for g in space.grids if g.name == name), f"{name}."
    else:
        grid, prefix = space.grids[0], ""

    def pick(axis: str) -> Any:
        values = getattr(grid, axis)
        return values[0] if len(values) == 1 else trial.suggest_categorical(prefix + axis,
                                                                            list(values))

    pooling, transform = pick("pooling"), pick("transform")
    ratio, norm = (pick("ratio"), pick("norm")) if transform == "bottleneck" else (None, "none")
    block = BlockSpec(pooling, transform, ratio, norm, pick("fusion"))
    placement = Placement(pick("position"), pick("stages"), pick("density"))
    return Candidate(block=block, placement=placement)


def candidate_params(space: Space, cand: Candidate) -> dict[str, Any]:
    """The parameters under which ``suggest_candidate`` yields ``cand`` (for enqueueing)."""
    index = _in_grid(space, cand)
    if index is None or cand.block is None:
        raise ValueError(f"{cand.id} is not in the space")
    grid = space.grids[index]
    params: dict[str, Any] = {}
    prefix = ""
    if len(space.grids) > 1:
        params["grid"], prefix = grid.name, f"{grid.name}."
    values = {**cand.block.to_dict(), "position": cand.placement.position,
              "stages": "".join(cand.placement.stages), "density": cand.placement.density}
    for axis in AXES:  # the axis registry, in its order
        if axis in ("ratio", "norm") and cand.block.transform != "bottleneck":
            continue
        if len(getattr(grid, axis)) > 1:
            params[prefix + axis] = values[axis]
    return params


def _is_search_parent(t: FrozenTrial) -> bool:
    return t.user_attrs.get("role", "search") == "search" and "duplicate_of" not in t.user_attrs


class SearchNSGAIISampler(NSGAIISampler):
    """NSGA-II whose search space and parents come from searched, non-duplicate trials only.

    Reference rows carry no axis parameters; left in, they would empty Optuna's intersection
    search space (turning NSGA-II into random search) and could be drawn as parents.
    """

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, Any]:
        space: dict[str, Any] | None = None
        for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,),
                                   use_cache=True):
            if not _is_search_parent(t):
                continue
            if space is None:
                space = dict(t.distributions)
            else:
                space = {k: v for k, v in space.items() if t.distributions.get(k) == v}
        return {k: v for k, v in (space or {}).items() if not v.single()}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # Optuna assigns a generation on the first sampled parameter, which an enqueued trial
        # (grid order, the duplicate-streak fallback) never has: assign it here instead.
        super().before_trial(study, trial)
        if trial.user_attrs.get("role", "search") == "search":
            self.get_trial_generation(study, trial)

    def select_parent(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        pool = [t for t in self.get_population(study, generation - 1)
                + self.get_parent_population(study, generation - 1) if _is_search_parent(t)]
        return self._elite_population_selection_strategy(study, pool) if pool else []


def make_sampler(space: Space, n_trials: int) -> optuna.samplers.BaseSampler:
    """The sampler a space asks for (``grid`` enumerates through the driver; see module)."""
    s = space.search
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.sampler == "nsga2":
            pop = s.population or max(4, min(50, math.ceil(n_trials / 4)))
            return SearchNSGAIISampler(population_size=pop, seed=s.sampler_seed)
        if s.sampler == "tpe":
            return TPESampler(multivariate=True, group=True, constant_liar=True,
                              n_startup_trials=max(4, min(10, n_trials // 4)),
                              seed=s.sampler_seed)
    return RandomSampler(seed=s.sampler_seed)


def preset_block(preset: str) -> BlockSpec | None:
    """The ``BlockSpec`` a preset builds exactly (``gc`` is ``att-r16ln-add``, ``snl`` is
    ``att-1x1-add``: same module, same init), or None when it differs from every spec (NL,
    or SE/CBAM whose transforms are not zero-initialised); read from the preset registry."""
    record = PRESETS.get(preset)
    return record.equivalent_spec if record is not None else None


__all__ = ["SearchNSGAIISampler", "candidate_params", "make_sampler", "preset_block",
           "suggest_candidate"]
