"""From Optuna trials to candidates: a uniform encoding, and the Optuna samplers.

Every candidate of a grid is one point of a flat product of axes: the transform is one token
(``1x1``, ``r4ln``, ``r16`` ...) instead of ``transform`` plus ``ratio``/``norm`` asked only
for a bottleneck, so each candidate carries the same parameters and a random draw is uniform
over candidates (the conditional encoding gave each 1x1 candidate the mass of all its
bottleneck siblings together). A space with several ``[[axes]]`` grids first suggests
``grid``. ``candidate_params`` inverts the suggestion so a known candidate can be enqueued.

Optuna's samplers see only searched, trained trials (``SearchOnly``): reference rows carry no
axis parameters and would empty the intersection search space of multivariate TPE, GPSampler
and NSGA-II and count toward ``n_startup_trials``; duplicates would count a network twice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from gcsearch.search.record import TrialRecord
from gcsearch.search.space import Axes, Space
from gcsearch.spec import PRESETS, BlockSpec, Candidate, Placement


def _in_grid(space: Space, cand: Candidate) -> int | None:
    for i, grid in enumerate(space.grids):
        if cand.id in {c.id for c in grid.candidates()}:
            return i
    return None


def transform_token(block: BlockSpec) -> str:
    """One token for transform, ratio and norm: ``1x1``, ``r16ln``, ``r4``."""
    if block.transform == "1x1":
        return "1x1"
    return f"r{block.ratio}{'ln' if block.norm == 'ln' else ''}"


def axis_values(cand: Candidate) -> dict[str, str]:
    """A searched candidate's value on every sampled axis (ratio and norm in one transform
    token): what the samplers, the strategy's features and the benchmark's shuffles read."""
    assert cand.block is not None
    p = cand.placement
    return {
        "pooling": cand.block.pooling,
        "transform": transform_token(cand.block),
        "fusion": cand.block.fusion,
        "position": p.position,
        "stages": "".join(p.stages),
        "density": p.density,
    }


def _tokens(grid: Axes) -> list[str]:
    seen: dict[str, None] = {}
    for b in (c.block for c in grid.candidates()):
        if b is not None:
            seen.setdefault(transform_token(b))
    return list(seen)


def block_from_token(pooling: str, token: str, fusion: str) -> BlockSpec:
    if token == "1x1":
        return BlockSpec(pooling, "1x1", None, "none", fusion)
    norm = "ln" if token.endswith("ln") else "none"
    return BlockSpec(pooling, "bottleneck", int(token[1:].removesuffix("ln")), norm, fusion)


def grid_values(grid: Axes) -> dict[str, list[Any]]:
    """Every flat axis of one grid with its values (single-valued axes included)."""
    return {
        "pooling": list(grid.pooling),
        "transform": _tokens(grid),
        "fusion": list(grid.fusion),
        "position": list(grid.position),
        "stages": list(grid.stages),
        "density": list(grid.density),
    }


def grid_choices(grid: Axes) -> dict[str, list[Any]]:
    """The flat, unconditional parameters of one grid (axes with more than one value)."""
    return {k: v for k, v in grid_values(grid).items() if len(v) > 1}


def suggest_candidate(trial: optuna.Trial, space: Space) -> Candidate:
    """Suggest one candidate: every candidate of a grid is one equally likely point."""
    if len(space.grids) > 1:
        name = trial.suggest_categorical("grid", [g.name for g in space.grids])
        grid, prefix = next(g for g in space.grids if g.name == name), f"{name}."
    else:
        grid, prefix = space.grids[0], ""
    choices = grid_choices(grid)

    def pick(axis: str, default: Any) -> Any:
        if axis in choices:
            return trial.suggest_categorical(prefix + axis, choices[axis])
        return default

    token = pick("transform", _tokens(grid)[0])
    block = block_from_token(
        pick("pooling", grid.pooling[0]), token, pick("fusion", grid.fusion[0])
    )
    placement = Placement(
        pick("position", grid.position[0]),
        pick("stages", grid.stages[0]),
        pick("density", grid.density[0]),
    )
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
    values = axis_values(cand)
    for axis in grid_choices(grid):
        params[prefix + axis] = values[axis]
    return params


def is_search_trial(t: FrozenTrial) -> bool:
    """A searched candidate trained in this trial (not a reference row, not a duplicate)."""
    rec = TrialRecord.read(t)
    return rec.role == "search" and not rec.is_duplicate


class _SearchView:
    """A study as a sampler should see it: only searched, non-duplicate trials.

    Optuna's samplers read trials through ``Study._get_trials`` (private) and
    ``Study.get_trials``; ``tests/search/test_sampling.py`` fails loudly if that changes.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [t for t in self._study._get_trials(*args, **kwargs) if is_search_trial(t)]

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(*args, **kwargs) if is_search_trial(t)]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class SearchOnly(BaseSampler):
    """Wraps an Optuna sampler so it sees searched trials only (see ``_SearchView``)."""

    def __init__(self, base: BaseSampler) -> None:
        self.base = base

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, Any]:
        return self.base.infer_relative_search_space(_SearchView(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self.base.sample_relative(_SearchView(study), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self.base.sample_independent(
            _SearchView(study), trial, param_name, param_distribution
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(_SearchView(study), trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(_SearchView(study), trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()


class _NSGAII(NSGAIISampler):
    """NSGA-II that gives an enqueued trial (the duplicate-streak fallback) a generation."""

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        if TrialRecord.read(trial).role == "search":
            self.get_trial_generation(study, trial)


#: Strategies ``make_sampler`` builds from Optuna; ``grid`` and ``ehvi`` are the driver's.
OPTUNA_SAMPLERS = ("nsga2", "tpe", "random")


def make_sampler(space: Space, n_trials: int) -> BaseSampler:
    """The Optuna sampler for ``nsga2``/``tpe``/``random``; a random one (never consulted for
    a proposal) for the driver's own strategies, ``grid`` and ``ehvi``."""
    s = space.search
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.sampler == "nsga2":
            pop = s.population or max(4, min(50, math.ceil(n_trials / 4)))
            return SearchOnly(_NSGAII(population_size=pop, seed=s.sampler_seed))
        if s.sampler == "tpe":
            return SearchOnly(
                TPESampler(
                    multivariate=True,
                    constant_liar=True,
                    n_startup_trials=max(4, min(10, n_trials // 4)),
                    seed=s.sampler_seed,
                )
            )
    return SearchOnly(RandomSampler(seed=s.sampler_seed))


def preset_block(preset: str) -> BlockSpec | None:
    """The ``BlockSpec`` a preset builds exactly (``gc`` is ``att-r16ln-add``, ``snl`` is
    ``att-1x1-add``: same module, same init), or None when it differs from every spec (NL,
    or SE/CBAM whose transforms are not zero-initialised); read from the preset registry."""
    record = PRESETS.get(preset)
    return record.equivalent_spec if record is not None else None


def network_key(cand: Candidate, backbone: str, min_hidden: int = 8) -> str:
    """The network a candidate builds (``backbones.module_key``), a preset that is exactly a
    spec counted as that spec: candidates with one key are trained once."""
    from gcsearch.backbones import module_key

    spec = preset_block(cand.preset) if cand.preset else None
    same = Candidate(block=spec, placement=cand.placement) if spec else cand
    return module_key(same, backbone, min_hidden)


__all__ = [
    "OPTUNA_SAMPLERS",
    "SearchOnly",
    "axis_values",
    "block_from_token",
    "candidate_params",
    "grid_choices",
    "is_search_trial",
    "make_sampler",
    "network_key",
    "preset_block",
    "suggest_candidate",
    "transform_token",
]
