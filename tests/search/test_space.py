"""Space files: the shipped spaces load, counts are right, bad files get one clear line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcsearch.errors import UserError
from gcsearch.search.space import AXIS_DEFAULTS, Space, load_space, parse_space
from gcsearch.spec import Candidate

ROOT = Path(__file__).resolve().parents[2]


def test_full_space_has_1134_candidates() -> None:
    space = load_space(ROOT / "spaces" / "full.toml")
    cands = space.candidates()
    assert len(cands) == 1134
    assert len({c.id for c in cands}) == 1134
    assert space.references()[0].is_baseline


def test_quick_space_is_small_and_has_references() -> None:
    space = load_space(ROOT / "spaces" / "quick.toml")
    assert 12 <= len(space.candidates()) + len(space.references()) <= 20
    refs = [c.id for c in space.references()]
    assert refs[0] == "none"
    assert {"gc@after_1x1:c3c4c5", "snl@after_1x1:c3c4c5", "se@after_1x1:c3c4c5"} <= set(refs)


def test_paper_space_unions_grids_without_duplicates() -> None:
    space = load_space(ROOT / "spaces" / "gcnet-paper.toml")
    ids = [c.id for c in space.candidates()]
    assert len(ids) == len(set(ids))
    # the GC block itself sits in every grid but is listed once
    assert ids.count("att-r16ln-add@after_1x1:c3c4c5") == 1
    assert "att-r16ln-add@after_add:c3c4c5" in ids
    assert "avg-r16ln-mul@after_1x1:c3c4c5" in ids
    assert "nl-embedded@after_block:c4:penultimate" in [c.id for c in space.references()]


def test_conditional_axes_only_combine_with_bottleneck() -> None:
    space = parse_space(
        '[axes]\ntransform = ["1x1", "bottleneck"]\nratio = [4, 16]\nnorm = ["none", "ln"]\n'
    )
    ids = sorted(c.block_id for c in space.candidates())
    assert ids == sorted(
        ["att-1x1-add", "att-r4-add", "att-r4ln-add", "att-r16-add", "att-r16ln-add"]
    )
    assert space.grids[0].choices() == {
        "transform": ("1x1", "bottleneck"),
        "ratio": (4, 16),
        "norm": ("none", "ln"),
    }


def test_defaults_are_the_gc_block() -> None:
    space = parse_space("")
    assert [c.id for c in space.candidates()] == ["att-r16ln-add@after_1x1:c3c4c5"]
    assert space.objectives == ("top1:max", "macs:min", "params:min")
    assert space.directions() == ["maximize", "minimize", "minimize"]


def test_resolved_config_round_trips_through_toml(tmp_path: Path) -> None:
    space = load_space(ROOT / "spaces" / "gcnet-paper.toml")
    out = tmp_path / "resolved.toml"
    out.write_text(space.to_toml())
    again = load_space(out)
    assert [c.id for c in again.candidates()] == [c.id for c in space.candidates()]
    assert again.references() == space.references()
    assert again.search == space.search and again.fidelity == space.fidelity
    assert json.loads(json.dumps(space.to_dict()))["counts"]["candidates"] == 13


def test_overrides_replace_settings() -> None:
    space = parse_space("[search]\nparallel = 4\n").with_overrides(
        parallel=1, eta=2, budget={"epochs": 2}
    )
    assert space.search.parallel == 1 and space.fidelity.eta == 2
    assert space.budget["epochs"] == 2


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ('[axes]\npoling = ["att"]\n', "axes.poling", "pooling"),
        ('[axes]\npooling = ["max"]\n', "axes.pooling[0]", "avg, att, avgmax"),
        ("[axes]\npooling = []\n", "axes.pooling", "avg, att, avgmax"),
        ('[axes]\ntransform = ["1x1"]\nratio = [16]\n', "axes.ratio", "bottleneck"),
        ("[axes]\nratio = [12]\n", "axes.ratio[0]", "4, 8, 16, 32"),
        ("[axes]\nratio = [32]\n", "axes.ratio", "4, 8, 16"),
        ('[axes]\nstages = ["c2"]\n', "axes.stages", "c3, c4, c5"),
        ('[axes]\nstages = ["c4c4"]\n', "axes.stages[0]", "all-subsets"),
        ('[search]\nsampler = "cmaes"\n', "search.sampler", "nsga2, tpe, random, grid"),
        ("[search]\nparallel = 0\n", "search.parallel", "integers 1"),
        ("[search]\ngpus_per_trial = -1\n", "search.gpus_per_trial", ">= 0"),
        ('[search]\nfuse_seeds = "yes"\n', "search.fuse_seeds", "off, on, auto"),
        ('[search]\ncompile = "cudagraphs"\n', "search.compile", "reduce-overhead"),
        ('objectives = ["top1:min"]\n', "objectives[0]", "top1:max"),
        ('objectives = ["macs:min"]\n', "objectives", "top1:max"),
        ('[references]\ninclude = ["gcnet"]\n', "references.include[0]", "presets"),
        ("[budget]\nepochs = 0\n", "budget.epochs", "integers >= 1"),
        ("[budget]\ndata_seed = -1\n", "budget.data_seed", "integers >= 0"),
        ('[budget]\noptimizer = "adam"\n', "budget.optimizer", "sgd, adamw"),
        ('[budget]\naugment = "mixup"\n', "budget.augment", "none, flip, flip-crop"),
        ("[fidelity]\neta = 1\n", "fidelity.eta", "integers 2..100"),
        ('[fidelity]\nspeculate = "yes"\n', "fidelity.speculate", "true, false"),
        ("colour = 1\n", "colour", "axes"),
        ("[axes\n", "toml", ""),
    ],
)
def test_bad_file_names_file_key_and_allowed(text: str, key: str, hint: str) -> None:
    with pytest.raises(UserError) as info:
        parse_space(text, "bad.toml")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"bad.toml: {key}: "), msg
    assert hint in msg
    if key != "toml":
        assert "(allowed: " in msg


def test_a_budget_may_name_its_default_data_seed() -> None:
    """data_seed 0 is the default, so a space that writes its whole budget out can say it."""
    assert parse_space("[budget]\ndata_seed = 0\n").budget["data_seed"] == 0


def test_cli_exit_code_2_and_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[axes]\nfusion = ["concat"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "gcsearch", "space", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "axes.fusion[0]" in proc.stderr and "add, mul, both" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "gcsearch", "space", "count", str(ROOT / "spaces" / "full.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("1134 candidates")


# ------------------------------------------------------------------ property-based: no tracebacks
def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _document(doc: dict[str, Any]) -> str:
    return "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in doc.items())


_AXIS_VALUES = [v for vals in AXIS_DEFAULTS.values() for v in vals] + [
    "avg",
    "avgmax",
    "1x1",
    "none",
    "mul",
    "both",
    "after_add",
    "last",
    "c4",
    "c2",
    "c3c5",
    "all-subsets",
    4,
    8,
    32,
    3,
    "nsga2",
    "grid",
    "top1:max",
    "macs:min",
    "gc",
    "nl-dot@after_add:c4",
]
_scalars = st.one_of(
    st.sampled_from(_AXIS_VALUES),
    st.integers(-3, 40),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=8),
)
_KEYS = st.sampled_from([*AXIS_DEFAULTS, "name", "x"])
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=8,
)
_SECTION_KEYS = {
    "axes": [*AXIS_DEFAULTS, "name", "bogus"],
    "search": [
        "sampler",
        "n_trials",
        "seeds",
        "parallel",
        "cpus_per_trial",
        "gpus_per_trial",
        "population",
        "sampler_seed",
    ],
    "fidelity": ["enabled", "eta", "min_epochs"],
    "references": ["include", "placement"],
    "task": ["name", "backbone", "data", "min_hidden"],
    "budget": ["epochs", "batch_size", "lr", "train_images", "nope"],
}
_sections = st.fixed_dictionaries(
    {},
    optional={
        sec: st.dictionaries(st.sampled_from(keys), _values, max_size=4)
        for sec, keys in _SECTION_KEYS.items()
    }
    | {
        "objectives": _values,
        "name": _values,
        "axes_list": st.lists(
            st.dictionaries(st.sampled_from(_SECTION_KEYS["axes"]), _values, max_size=3), max_size=3
        ),
    },
)


def _check_loads_or_user_error(text: str) -> None:
    try:
        space = parse_space(text, "fuzz.toml")
    except UserError as exc:
        msg = str(exc)
        assert msg.startswith("fuzz.toml: ") and "\n" not in msg
        return
    assert isinstance(space, Space)
    for cand in space.candidates() + space.references():
        assert Candidate.parse(cand.id) == cand


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sections)
def test_structured_random_toml_loads_or_raises_user_error(doc: dict[str, Any]) -> None:
    axes_list = doc.pop("axes_list", None)
    text = _document({k: v for k, v in doc.items() if k in ("objectives", "name")})
    for sec, table in doc.items():
        if isinstance(table, dict) and sec in _SECTION_KEYS:
            text += f"\n[{sec}]\n" + _document(table)
    if axes_list is not None and "axes" not in doc:
        for table in axes_list:
            text += "\n[[axes]]\n" + _document(table)
    _check_loads_or_user_error(text)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}=\"',.:#\n axespoling1x4-_tr")), max_size=60))
def test_garbage_text_loads_or_raises_user_error(text: str) -> None:
    _check_loads_or_user_error(text)
