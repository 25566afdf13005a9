"""From Optuna trials to candidates: a uniform encoding, and the Optuna samplers.

Every candidate of a grid is one point of a flat product of axes: the transform is one token
(``1x1``, ``r4ln``, ``r16`` ...) instead of ``transform`` plus ``ratio``/``norm`` asked only
for a bottleneck, so each candidate carries the same parameters and a random draw is uniform
over candidates (the conditional encoding gave each 1x1 candidate the mass of all its
bottleneck siblings together). A space with several ``[[axes]]`` grids first suggests
``grid``. ``candidate_params`` inverts the suggestion so a known candidate can be enqueued.

Optuna's samplers propose from a study of their own (``SamplerStudy``) that holds only the
searched networks: reference rows carry no axis parameters and would empty the intersection
search space of multivariate TPE, GPSampler and NSGA-II and count toward ``n_startup_trials``;
duplicates would count a network twice.
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


class SamplerStudy:
    """A private in-memory study that an Optuna sampler proposes from.

    It holds one trial per searched network of the search (never a reference row, never a
    duplicate), in the order the search asked them, through public API only: a proposal is
    ``ask`` + ``suggest_candidate``; a candidate the driver chose itself (a retry, a grid or
    ``ehvi`` pick, the duplicate-streak fallback, another driver's network, a resumed
    search's history) is ``enqueue_trial`` + ``ask``; results are ``tell``. A sampler thus
    sees a real study whose trial numbers, states and generations keep Optuna's invariants
    (a filtered view of the search's own study broke NSGA-II in Optuna 5, which indexes
    ``trials[trial.number]``). Each trial is bound to the number of the search's trial it
    stands for.
    """

    def __init__(self, space: Space, sampler: BaseSampler) -> None:
        self.space = space
        self.study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            sampler=sampler,
            directions=space.directions(),
        )
        self.bound: dict[int, optuna.Trial] = {}  # search trial number -> open trial here
        self.told: set[int] = set()  # search trial numbers already mirrored

    def propose(self) -> tuple[optuna.Trial, Candidate]:
        """The sampler's next candidate; bind the trial with ``bind`` once it has a number."""
        trial = self.study.ask()
        return trial, suggest_candidate(trial, self.space)

    def fixed(self, cand: Candidate) -> optuna.Trial:
        """A trial for a candidate chosen outside the sampler (its parameters enqueued)."""
        self.study.enqueue_trial(candidate_params(self.space, cand))
        trial = self.study.ask()
        suggest_candidate(trial, self.space)  # records the fixed parameters on the trial
        return trial

    def bind(self, number: int, trial: optuna.Trial) -> None:
        self.bound[number] = trial

    def drop(self, number: int) -> None:
        """The search's trial ``number`` is a duplicate (or parked on another trial of its
        network): its proposal is told failed, which no sampler learns from."""
        trial = self.bound.pop(number, None)
        if trial is not None:
            self.study.tell(trial, None, state=TrialState.FAIL)

    def tell(
        self,
        number: int,
        cand: Candidate,
        values: Sequence[float] | None,
        state: TrialState,
    ) -> None:
        """Mirror the result of the search's trial ``number`` (once)."""
        if number in self.told:
            return
        self.told.add(number)
        trial = self.bound.pop(number, None) or self.fixed(cand)
        if state == TrialState.COMPLETE and values is not None:
            self.study.tell(trial, list(values))
        else:  # a COMPLETE trial without values cannot be told: no sampler learns from it
            done = TrialState.FAIL if state == TrialState.COMPLETE else state
            self.study.tell(trial, None, state=done)

    def learn(self, t: FrozenTrial) -> None:
        """Mirror a finished trial of the search's study if a sampler should see it."""
        rec = TrialRecord.read(t)
        if t.state.is_finished() and rec.candidate is not None and is_search_trial(t):
            self.tell(t.number, rec.candidate, t.values, t.state)


class _NSGAII(NSGAIISampler):
    """NSGA-II that gives an enqueued trial a generation too (Optuna assigns one only when a
    trial samples a parameter, and an enqueued trial's are all fixed)."""

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        self.get_trial_generation(study, trial)


#: Strategies ``make_sampler`` builds from Optuna; ``grid`` and ``ehvi`` are the driver's.
OPTUNA_SAMPLERS = ("nsga2", "tpe", "random")


def make_sampler(space: Space, n_trials: int) -> BaseSampler:
    """The Optuna sampler a ``SamplerStudy`` proposes from for ``nsga2``/``tpe``/``random``
    (a random one for any other name)."""
    s = space.search
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if s.sampler == "nsga2":
            pop = s.population or max(4, min(50, math.ceil(n_trials / 4)))
            return _NSGAII(population_size=pop, seed=s.sampler_seed)
        if s.sampler == "tpe":
            return TPESampler(
                multivariate=True,
                constant_liar=True,
                n_startup_trials=max(4, min(10, n_trials // 4)),
                seed=s.sampler_seed,
            )
    return RandomSampler(seed=s.sampler_seed)


def preset_block(preset: str) -> BlockSpec | None:
    """The ``BlockSpec`` a preset builds exactly (``gc`` is ``att-r16ln-add``, ``snl`` is
    ``att-1x1-add``: same module, same init), or None when it differs from every spec (NL,
    or SE/CBAM whose transforms are not zero-initialised); read from the preset registry."""
    record = PRESETS.get(preset)
    return record.equivalent_spec if record is not None else None


def network_key(cand: Candidate, backbone: str, min_hidden: int = 8) -> str:
    """The network a candidate builds (``backbones.module_key``), a preset that is exactly a
    spec counted as that spec: candidates with one key are trained once."""
    from gcsearch.backbone_specs import module_key

    spec = preset_block(cand.preset) if cand.preset else None
    same = Candidate(block=spec, placement=cand.placement) if spec else cand
    return module_key(same, backbone, min_hidden)


__all__ = [
    "OPTUNA_SAMPLERS",
    "SamplerStudy",
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
