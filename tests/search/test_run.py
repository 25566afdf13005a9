"""A search run end to end: encoding round trip, dedup, records, resume, one real Ray search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from _search_helpers import ROOT, tiny_space, trained_per_candidate
from optuna.trial import TrialState, create_trial

from gcsearch.checkpoint import checkpoint_name, load_checkpoint
from gcsearch.errors import UserError
from gcsearch.launch import search
from gcsearch.search.driver import objective_values
from gcsearch.search.local import InlineExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import candidate_params, suggest_candidate
from gcsearch.search.space import load_space
from gcsearch.search.storage import open_storage
from gcsearch.spec import Candidate


@pytest.mark.parametrize("name", ["quick", "gcnet-paper"])
def test_params_round_trip_every_candidate(name: str) -> None:
    space = load_space(ROOT / "spaces" / f"{name}.toml")
    study = optuna.create_study(directions=space.directions())
    for cand in space.candidates():
        study.enqueue_trial(candidate_params(space, cand))
        trial = study.ask()
        assert suggest_candidate(trial, space) == cand
        study.tell(trial, [1.0] * len(space.objectives))


def test_objective_values_mean_over_seeds() -> None:
    results = [{"top1": 50.0, "loss": 1.0}, {"top1": 60.0, "loss": 3.0}]
    cost = {"macs": 10, "params": 5, "block_macs": 1, "block_params": 1}
    assert objective_values(["top1:max", "macs:min", "loss:min"], results, cost) == [55.0, 10, 2.0]
    assert objective_values(["top1:max"], [{"top1": None}], cost) is None


def test_storage_choices(tmp_path: Path) -> None:
    _, url = open_storage(tmp_path, None)
    assert url == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    journal, where = open_storage(tmp_path, str(tmp_path / "j.log"))
    assert where.endswith("j.log") and journal is not None
    with pytest.raises(UserError, match="allowed"):
        open_storage(tmp_path, "study.txt")


# ------------------------------------------------------------------------- with a real trainer
def _study(outcome_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{outcome_dir / 'study.db'}")


def test_inline_search_dedups_records_and_resumes(tmp_path: Path) -> None:
    """Random sampler over 4 candidates with n_trials=all: repeats are answered from storage."""
    space = load_space(tiny_space(tmp_path, sampler="random"))
    run = tmp_path / "run"
    out = search(
        space,
        run,
        smoke=True,
        executor=InlineExecutor(parallel=1),
        progress=False,
        export=False,
        faults={"avg-1x1-mul@after_1x1:c4": "nan"},
    )
    study = _study(run)
    trained = trained_per_candidate(study)
    assert set(trained) == {c.id for c in space.candidates() + space.references()}
    assert set(trained.values()) == {1}, trained  # nothing trained twice
    attrs = study.user_attrs
    for key in (
        "objectives",
        "space",
        "backbone",
        "task",
        "input_shape",
        "budget",
        "gcsearch_version",
    ):
        assert key in attrs
    assert attrs["objectives"] == list(space.objectives)
    by_id = {
        t.user_attrs["candidate_id"]: t
        for t in study.trials
        if not TrialRecord.read(t).is_duplicate
    }
    nan = by_id["avg-1x1-mul@after_1x1:c4"]
    assert nan.state == TrialState.FAIL and nan.user_attrs["status"] == "failed"
    assert "non-finite" in nan.user_attrs["reason"]
    for cid, t in by_id.items():
        a = t.user_attrs
        assert Candidate.from_dict(a["candidate"]).id == cid
        assert a["fidelity"]["max_epochs"] == 2 and len(a["results"]) == 1
        if t.state == TrialState.COMPLETE:
            assert a["status"] == "complete"
            # the best seed's weights, in the one checkpoint format, rebuild the network
            rec = TrialRecord.read(t)
            assert rec.weights == f"weights/{checkpoint_name(rec.network)}"
            assert load_checkpoint(run / rec.weights).build() is not None
            assert set(a["cost"]) == {"params", "macs", "block_params", "block_macs"}
            assert t.values[0] == pytest.approx(a["results"][0]["top1"])
            assert t.values[1] == a["cost"]["macs"]
    dups = [t for t in study.trials if TrialRecord.read(t).is_duplicate]
    assert dups  # the random sampler proposed some candidates twice
    for d in dups:
        rec = TrialRecord.read(d)
        original = TrialRecord.read(study.trials[rec.duplicate_of])
        assert rec.candidate_id == original.candidate_id and rec.status == original.status
        assert rec.results == original.results
        # told as failed: no sampler sees a network twice
        assert d.state == TrialState.FAIL and d.values is None
    assert out.counts["duplicates"] == len(dups)
    assert out.counts["trials"] == len(study.trials)
    assert (run / "results.csv").is_file() and (run / "space.resolved.toml").is_file()
    assert not list((run / "weights").glob("seed*"))  # only the kept seed's file stays
    record = json.loads((run / "run.json").read_text())
    assert record["counts"] == out.counts and record["counts"]["failed"] == 1
    assert out.counts["complete"] + out.counts["pruned"] + out.counts["failed"] == len(trained)

    # resume of a finished study trains nothing
    again = search(
        space,
        run,
        smoke=True,
        resume=True,
        executor=InlineExecutor(parallel=1),
        progress=False,
        export=False,
    )
    assert again.epochs_trained == 0
    assert trained_per_candidate(_study(run)) == trained
    with pytest.raises(UserError, match="already exists"):
        search(space, run, smoke=True, executor=InlineExecutor(), progress=False)
    other = space.with_overrides(seeds=2)
    with pytest.raises(UserError, match="different space"):
        search(other, run, smoke=True, resume=True, executor=InlineExecutor(), progress=False)


def test_resume_asks_again_what_a_dead_driver_left_running(tmp_path: Path) -> None:
    space = load_space(tiny_space(tmp_path, sampler="grid", n_trials="1", fidelity=False))
    run = tmp_path / "run"
    kwargs = {"smoke": True, "progress": False, "export": False}
    first = search(space, run, executor=InlineExecutor(), **kwargs)
    done_before = set(trained_per_candidate(_study(run)))
    assert len(done_before) == 3 and first.epochs_trained == 3 * 2  # none, se, 1 candidate
    # the driver "dies" while training the next grid candidate: its trial stays RUNNING
    study = _study(run)
    victim = space.candidates()[1]
    study.add_trial(
        create_trial(
            state=TrialState.RUNNING,
            user_attrs={"candidate_id": victim.id, "candidate": victim.to_dict(), "role": "search"},
        )
    )
    full = space.with_overrides(n_trials=None)
    again = search(full, run, resume=True, executor=InlineExecutor(), **kwargs)
    study = _study(run)
    left = [t for t in study.trials if t.user_attrs.get("retryable")]
    assert len(left) == 1 and left[0].state == TrialState.FAIL
    assert left[0].user_attrs["reason"].startswith("driver died")
    trained = trained_per_candidate(study)
    assert set(trained.values()) == {1}  # nothing finished was trained twice
    assert set(trained) == {c.id for c in full.candidates() + full.references()}
    assert victim.id in trained
    assert again.epochs_trained == (len(trained) - len(done_before)) * 2


def test_ray_search_end_to_end(tmp_path: Path) -> None:
    """A real local-Ray search through the CLI path: 4 trainings, 2 at a time, front exported."""
    from gcsearch.cli import main

    space = tiny_space(tmp_path, sampler="nsga2", n_trials="2")
    run = tmp_path / "run"
    code = main(
        [
            "search",
            "--space",
            str(space),
            "--run-dir",
            str(run),
            "--smoke",
            "--parallel",
            "2",
            "--seeds",
            "1",
        ]
    )
    assert code == 0
    import ray

    from gcsearch.search import executor

    # Ray stopped on a thread while the outputs were written, and the command waited for it
    assert not ray.is_initialized() and executor._stopping is None
    study = _study(run)
    trained = trained_per_candidate(study)
    assert (
        sum(
            1
            for t in study.trials
            if (r := TrialRecord.read(t)).role == "reference" and not r.is_duplicate
        )
        == 2
    )  # none + se, always
    assert sum(trained.values()) == 4 and set(trained.values()) == {1}
    for t in study.trials:
        if t.state == TrialState.COMPLETE:
            env = t.user_attrs["env"]
            assert env["node"] and env["device"] == "cpu" and env["threads"] == 1
            assert math.isfinite(t.values[0])
    assert (run / "study.db").is_file() and (run / "results.csv").is_file()
    assert (run / "best_block.py").is_file() or all(
        t.user_attrs["candidate_id"] == "none" for t in study.best_trials
    )
    if (run / "best_block.py").is_file():  # the trained weights the search kept go with it
        assert (run / "best_block.pt").is_file()


@pytest.mark.parametrize("preset", ["gc", "snl"])
def test_preset_block_equivalence_is_exact(preset: str) -> None:
    import torch

    from gcsearch.blocks import build_block
    from gcsearch.search.sampling import preset_block

    spec = preset_block(preset)
    assert spec is not None
    torch.manual_seed(0)
    a = build_block(preset, 32)
    torch.manual_seed(0)
    b = build_block(spec, 32)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(2, 32, 4, 4)
    assert torch.equal(a(x), b(x))
    assert preset_block("se") is None and preset_block("nl-embedded") is None


def test_same_network_is_trained_once(tmp_path: Path) -> None:
    """r8 and r16 at c4 of ResNet-8 (32 channels) both floor to 8 hidden: one network; the gc
    reference is att-r16ln-add itself."""
    text = (
        tiny_space(tmp_path, fidelity=False)
        .read_text()
        .replace(
            'transform = ["1x1"]', 'transform = ["bottleneck"]\nratio = [8, 16]\nnorm = ["ln"]'
        )
        .replace('pooling = ["att", "avg"]', 'pooling = ["att"]')
        .replace('fusion = ["add", "mul"]', 'fusion = ["add"]')
        .replace('include = ["se"]', 'include = ["gc"]')
    )
    path = tmp_path / "fold.toml"
    path.write_text(text)
    space = load_space(path)
    out = search(
        space, tmp_path / "run", smoke=True, executor=InlineExecutor(), progress=False, export=False
    )
    study = _study(tmp_path / "run")
    ids = {t.user_attrs["candidate_id"]: t for t in study.trials}
    assert set(ids) == {
        "none",
        "gc@after_1x1:c4",
        "att-r8ln-add@after_1x1:c4",
        "att-r16ln-add@after_1x1:c4",
    }
    assert out.epochs_trained == 2 * 2  # none and one network for the three others
    assert sum(TrialRecord.read(t).is_duplicate for t in study.trials) == 2


def test_every_shipped_space_loads_with_a_known_task() -> None:
    """Each space file the package ships parses, names a task that exists and enumerates its
    candidates (a renamed task or preset fails here, not in a user's hour-long run)."""
    from gcsearch.spaces import shipped_spaces
    from gcsearch.tasks import TASKS

    names = shipped_spaces()
    assert {"quick", "gcnet-paper", "gcnet-paper-pairs", "gcnet-paper-graded"} <= set(names)
    for name in names:
        space = load_space(ROOT / "spaces" / f"{name}.toml")
        assert space.task in TASKS and space.candidates(), name


@pytest.mark.parametrize("strategy", ["ehvi", "nsga2", "tpe", "random", "grid"])
def test_every_strategy_runs_a_real_search_and_resumes(tmp_path: Path, strategy: str) -> None:
    """Each strategy against the installed Optuna: a real (smoke-budget) search of 3 networks
    over 8 candidates, then a resume to 5 that rebuilds the sampler's study from the stored
    trials (NSGA-II with a population of 2, so it breeds across generations); every network
    is trained once and the search's trials carry their parameters."""
    path = tiny_space(tmp_path, sampler=strategy, n_trials="3", fidelity=False)
    text = path.read_text().replace('stages = ["c4"]', 'stages = ["c4", "c5"]')
    path.write_text(text.replace("parallel = 2", "parallel = 2\npopulation = 2"))
    space = load_space(path)
    run = tmp_path / "run"
    kwargs = {"smoke": True, "progress": False, "export": False}
    search(space, run, executor=InlineExecutor(parallel=2), **kwargs)
    more = space.with_overrides(n_trials=5)
    search(more, run, resume=True, executor=InlineExecutor(parallel=2), **kwargs)
    study = _study(run)
    trained = trained_per_candidate(study)
    assert set(trained.values()) == {1}
    searched = [TrialRecord.read(t) for t in study.trials if TrialRecord.read(t).role == "search"]
    assert len({r.network for r in searched if r.trained}) == 5
    for t in study.trials:
        rec = TrialRecord.read(t)
        if rec.role == "search" and rec.candidate is not None:
            assert t.params == candidate_params(space, rec.candidate)


def test_promotions_resume_from_their_rung_and_equal_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    """Successive halving with a rung at epoch 2 of 4: each promoted candidate continues the
    state its rung run kept, so its seeds end exactly where a search without rungs ends them,
    the search charges each seed's furthest epoch once, and the states are removed after."""
    budget = "\n[budget]\ntrain_images = 256\nval_images = 128\nepochs = 4\nbatch_size = 64\n"
    path = tiny_space(tmp_path, sampler="grid", fidelity=True, extra=budget)
    text = path.read_text().replace("eta = 2", "eta = 2\nmin_epochs = 2")
    path.write_text(text)
    space = load_space(path)
    assert space.fidelity.rungs(4) == (2,)
    kwargs = {"progress": False, "export": False, "executor": InlineExecutor(parallel=2)}
    rung = search(space, tmp_path / "rung", **kwargs)
    whole = search(
        space.with_overrides(enabled=False),
        tmp_path / "whole",
        **{**kwargs, "executor": InlineExecutor(parallel=2)},
    )

    def finals(study: optuna.Study) -> dict[str, list[float]]:
        out = {}
        for t in study.trials:
            rec = TrialRecord.read(t)
            if rec.trained and rec.status == "complete":
                out[rec.candidate_id] = [r["top1"] for r in rec.results]
        return out

    promoted, full = finals(rung.study), finals(whole.study)
    searched = {c.id for c in space.candidates()}
    assert set(promoted) & searched  # some candidates went on past the rung
    for cid, tops in promoted.items():
        assert tops == full[cid], cid  # resumed = uninterrupted, seed by seed
    resumed = [
        r["env"].get("resumed")
        for t in rung.study.trials
        if (rec := TrialRecord.read(t)).trained
        and rec.status == "complete"
        and rec.candidate_id in searched
        for r in rec.results
    ]
    assert resumed and set(resumed) == {2}  # every promoted seed continued from epoch 2
    furthest = sum(
        int(r["epochs"])
        for t in rung.study.trials
        if (rec := TrialRecord.read(t)).trained
        for r in rec.results
    )
    assert rung.epochs_trained == furthest < whole.epochs_trained
    assert not (tmp_path / "rung" / "states").exists()
