from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from gcsearch.result import TrialResult
from gcsearch.tasks import Budget, get_task
from gcsearch.tasks.train import make_optimizer, resolve_device, train

TINY = Budget(train_images=200, val_images=100, epochs=2, batch_size=50, warmup_epochs=0.5)


def test_same_seed_same_result_on_cpu() -> None:
    a = train("gc@after_1x1:c4c5", "digits", TINY, seed=1)
    b = train("gc@after_1x1:c4c5", "digits", TINY, seed=1)
    c = train("gc@after_1x1:c4c5", "digits", TINY, seed=2)
    assert a.status == "complete" and a.epochs == 2 and len(a.history) == 2
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert a.top1 == b.top1 and a.loss == b.loss
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


def test_result_fields() -> None:
    r = train("se", get_task("digits"), TINY, seed=0, threads=1)
    assert isinstance(r, TrialResult) and r.candidate_id == "se@after_1x1:c3c4c5"
    assert set(r.history[0]) == {"epoch", "val_top1", "val_loss", "train_loss", "seconds"}
    assert 0 <= r.top1 <= 100 and r.images_per_s > 0 and r.wall_s >= r.train_s > 0
    assert r.block_params and r.block_params > 0 and r.macs and r.macs > r.block_macs > 0
    assert r.env["backbone"] == "resnet8" and r.env["task"] == "digits"
    assert Budget.from_dict(r.budget) == TINY
    assert {"host", "device", "torch", "threads"} <= set(r.env) and r.env["device"] == "cpu"
    base = train("none", "digits", TINY.replace(epochs=1), seed=0)
    assert base.block_params == 0 and base.block_macs == 0
    assert base.params == r.params - r.block_params


def test_nan_loss_fails_at_once() -> None:
    r = train("none", "digits", TINY.replace(lr=1e30, epochs=3), seed=0)
    assert r.status == "failed" and "non-finite" in r.reason
    assert r.epochs == 0 and r.history == []  # stopped inside the first epoch


@pytest.mark.parametrize("stop_after", [1, 2])
def test_callback_prunes(stop_after: int) -> None:
    seen: list[dict[str, float]] = []

    def callback(record: dict[str, float]) -> bool:
        seen.append(record)
        return record["epoch"] >= stop_after

    r = train("snl", "digits", TINY.replace(epochs=3), seed=0, callback=callback)
    assert r.status == "pruned" and r.epochs == stop_after == len(seen)
    assert r.top1 == seen[-1]["val_top1"]


def test_callback_on_last_epoch_is_complete() -> None:
    r = train("none", "digits", TINY.replace(epochs=1), seed=0, callback=lambda rec: True)
    assert r.status == "complete"


def test_threads_restored() -> None:
    before = torch.get_num_threads()
    train("none", "digits", TINY.replace(epochs=1), seed=0, threads=2)
    assert torch.get_num_threads() == before


def test_schedule_warmup_then_cosine_to_zero() -> None:
    model = torch.nn.Linear(2, 2)
    opt, sched = make_optimizer(model, Budget(lr=0.4), steps=10, warmup=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2) and lrs[1] == pytest.approx(0.4)
    assert lrs[2] == pytest.approx(0.4) and all(a >= b for a, b in itertools.pairwise(lrs[1:]))
    assert lrs[-1] == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert opt.param_groups[1]["weight_decay"] == 0.0  # biases are not decayed


def test_adamw_budget_trains_with_decoupled_decay() -> None:
    """``optimizer='adamw'``: AdamW on the same groups and the same warmup + cosine schedule;
    it trains (loss falls) and the result records the optimizer."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8))
    budget = Budget(lr=0.01, weight_decay=0.05, optimizer="adamw")
    opt, _ = make_optimizer(model, budget, steps=10, warmup=2)
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["lr"] == pytest.approx(0.005)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert type(make_optimizer(model, Budget(), 10, 2)[0]) is torch.optim.SGD
    r = train("gc@after_1x1:c4c5", "digits", TINY.replace(optimizer="adamw", lr=0.01), seed=0)
    assert r.status == "complete" and r.budget["optimizer"] == "adamw"
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_validating_only_where_it_is_read_leaves_the_result_unchanged() -> None:
    """Validation measures and never trains: validating at epochs 2 and 4 (a rung and the last)
    gives the same final top-1, loss and training losses as validating after every epoch, and
    the skipped epochs record their training loss and time only."""
    budget = TINY.replace(epochs=4)
    every = train("gc@after_1x1:c4c5", "digits", budget, seed=1)
    some = train("gc@after_1x1:c4c5", "digits", budget, seed=1, validate_at=(2,))
    assert some.top1 == every.top1 and some.loss == every.loss and some.epochs == 4
    assert [h["train_loss"] for h in some.history] == [h["train_loss"] for h in every.history]
    assert [("val_top1" in h) for h in some.history] == [False, True, False, True]
    assert some.history[1]["val_top1"] == every.history[1]["val_top1"]
    assert set(some.history[0]) == {"epoch", "train_loss", "seconds"}


def test_a_search_validates_at_its_rungs_and_last_epoch() -> None:
    from gcsearch.search.space import parse_space

    space = parse_space("[fidelity]\nenabled = true\nmin_epochs = 2\neta = 2\n")
    rungs = space.fidelity.rungs(10)
    assert rungs == (2, 4, 8)
    assert space.search.validate_at(10, rungs) == (2, 4, 8, 10)
    every3 = parse_space("[search]\nvalidate_every = 3\n").search
    assert every3.validate_at(10, ()) == (3, 6, 9, 10)
    assert parse_space("[search]\nvalidate_every = 1\n").search.validate_at(3, ()) == (1, 2, 3)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_stopped_run_resumed_equals_one_uninterrupted_run(optimizer: str, tmp_path: Path) -> None:
    """A rung run stopped after epoch 2 with its state kept, then resumed to epoch 4, trains
    exactly what one run of the seed trains: same final top-1 and loss to the last digit and
    the same per-epoch history (CPU; the schedule, optimizer moments, data order and torch's
    random state all continue), with flip-crop augmentation drawing from the data generator."""
    budget = TINY.replace(epochs=4, optimizer=optimizer, augment="flip-crop")
    whole = train("gc@after_1x1:c4c5", "digits", budget, seed=3)
    state = tmp_path / "state.pt"
    first = train(
        "gc@after_1x1:c4c5",
        "digits",
        budget,
        seed=3,
        callback=lambda rec: rec["epoch"] >= 2,
        keep_state=state,
    )
    assert first.status == "pruned" and first.epochs == 2 and state.is_file()
    rest = train("gc@after_1x1:c4c5", "digits", budget, seed=3, resume_state=state)
    assert rest.status == "complete" and rest.epochs == 4
    assert (rest.top1, rest.loss) == (whole.top1, whole.loss)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in rest.history] == strip
    assert not list(tmp_path.glob("*.tmp"))


def test_a_cost_the_search_counted_is_recorded_not_counted_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver's cost table travels with the job: no fvcore trace in the worker."""
    import gcsearch.cost as cost_module

    counted = train("gc@after_1x1:c4c5", "digits", TINY.replace(epochs=1), seed=0)
    given = {k: getattr(counted, k) for k in ("params", "macs", "block_params", "block_macs")}

    def no_count(*args: object, **kwargs: object) -> None:
        raise AssertionError("counted again")

    monkeypatch.setattr(cost_module, "count_cost", no_count)
    again = train("gc@after_1x1:c4c5", "digits", TINY.replace(epochs=1), seed=0, cost=given)
    assert {k: getattr(again, k) for k in given} == given
    assert again.top1 == counted.top1
