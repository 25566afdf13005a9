"""Seeds trained as one fused network equal the same seeds trained alone.

Tolerance: these tests train in float64 (torch's default dtype, which ``TensorBatches`` and the
built networks follow), where fused and lone runs differ only by the order of float sums (a
vmapped grouped convolution against a channels_last one, a per-sample loss mean against
``cross_entropy``'s): measured <= 1e-11 absolute on losses after two epochs with AdamW and
<= 3e-16 with SGD, so 1e-9 leaves a 100x margin, while a real difference (another data order,
init, BatchNorm statistics, decay group or schedule) moves them by 1e-3 or more. In float32 the
same reorderings (1e-6 on the first logits) grow through training (AdamW normalises the tiny
gradients of the GC block's zero-initialised last layer): train losses measured 1e-3 apart after
16 steps, so float32 is no test of equality; float64 is.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch

from gcsearch.errors import UserError
from gcsearch.result import TrialResult
from gcsearch.tasks import Budget, Task, get_task
from gcsearch.tasks import fused as fused_mod
from gcsearch.tasks.fused import fusable, train_fused
from gcsearch.tasks.train import train

TOL = 1e-9
#: and a relative one: BatchNorm's running variances (order 5-8) and validation losses (order
#: 25) on digits differ by float64 reorderings of up to ~1e-8 absolute after two epochs of
#: AdamW (<= 3e-9 relative); a wrong seed, order or statistic differs by more than 1e-3
RTOL = 1e-8
SEEDS = (0, 1, 2)


def _budget(**changes: object) -> tuple[Task, Budget]:
    task = get_task("digits")
    base = {"train_images": 128, "val_images": 64, "epochs": 2, "batch_size": 32}
    return task, task.budget.replace(**{**base, **changes})


def _weights(
    store: dict[int, dict[str, torch.Tensor]],
) -> Callable[[torch.nn.Module, TrialResult], None]:
    def keep(model: torch.nn.Module, result: TrialResult) -> None:
        store[result.seed] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    return keep


def _same(lone: TrialResult, fused: TrialResult) -> None:
    assert (fused.seed, fused.status, fused.epochs) == (lone.seed, lone.status, lone.epochs)
    assert fused.top1 == lone.top1
    assert len(fused.history) == len(lone.history)
    for a, b in zip(lone.history, fused.history, strict=True):
        assert set(a) == set(b)
        for key in ("train_loss", "val_loss", "val_top1"):
            if key in a:
                assert b[key] == pytest.approx(a[key], abs=TOL, rel=RTOL), (
                    lone.seed,
                    a["epoch"],
                    key,
                )


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_fused_seeds_equal_lone_trainings(float64: None, optimizer: str) -> None:
    """Per seed: the same losses, top-1 and final weights (BatchNorm statistics included)."""
    task, budget = _budget(optimizer=optimizer, label_smoothing=0.1, warmup_epochs=1.0)
    lone_w: dict[int, dict[str, torch.Tensor]] = {}
    fused_w: dict[int, dict[str, torch.Tensor]] = {}
    lone = [train("gc", task, budget, s, on_trained=_weights(lone_w)) for s in SEEDS]
    fused = train_fused("gc", task, budget, SEEDS, on_trained=_weights(fused_w))
    assert [r.env["fused"] for r in fused] == [3, 3, 3]
    for a, b in zip(lone, fused, strict=True):
        _same(a, b)
        assert set(fused_w[a.seed]) == set(lone_w[a.seed])
        for name, tensor in lone_w[a.seed].items():
            assert torch.allclose(fused_w[a.seed][name], tensor, rtol=RTOL, atol=TOL), name
    # the seeds differ from one another (each its own init and data order)
    assert len({r.history[0]["train_loss"] for r in fused}) == 3


def test_a_fused_rung_state_continues_alone_and_back(float64: None, tmp_path) -> None:
    """A fused rung run's per-seed states resume as lone runs (and lone states as a fused
    run), each equal to an uninterrupted lone run of its seed."""
    task, budget = _budget(optimizer="adamw", epochs=3)
    full = [train("gc", task, budget, s) for s in SEEDS]
    stop = lambda record: record["epoch"] >= 1  # noqa: E731 - the search's rung callback
    paths = [tmp_path / f"fused{s}.pt" for s in SEEDS]
    rung = train_fused("gc", task, budget, SEEDS, callback=stop, keep_state=paths)
    assert [r.status for r in rung] == ["pruned"] * 3
    for s, path, whole in zip(SEEDS, paths, full, strict=True):
        _same(whole, train("gc", task, budget, s, resume_state=path))
    lone_paths = [tmp_path / f"lone{s}.pt" for s in SEEDS]
    for s, path in zip(SEEDS, lone_paths, strict=True):
        assert train("gc", task, budget, s, callback=stop, keep_state=path).status == "pruned"
    resumed = train_fused("gc", task, budget, SEEDS, resume_state=lone_paths)
    for whole, r in zip(full, resumed, strict=True):
        _same(whole, r)


def test_a_diverging_seed_fails_alone(float64: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed whose loss turns non-finite fails with its lone run's reason; the other seeds
    are unaffected."""
    task, budget = _budget(optimizer="sgd", epochs=1)
    built = fused_mod.seeded_model

    def poisoned(*args: object, **kw: object) -> torch.nn.Module:
        model = built(*args, **kw)
        if args[5] == 1:  # seed 1
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return model

    monkeypatch.setattr(fused_mod, "seeded_model", poisoned)
    out = train_fused("gc", task, budget, SEEDS)
    assert [r.status for r in out] == ["complete", "failed", "complete"]
    assert out[1].reason.startswith("non-finite training loss (nan) at epoch 1 step 1")
    for s in (0, 2):
        _same(train("gc", task, budget, s), out[s])


def test_fp16_autocast_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU without bf16 trains fp16 with a loss scaler that would skip every seed's step when
    one overflows: fusing there is refused, in one line."""
    monkeypatch.setattr(fused_mod, "amp_dtype", lambda dev, amp=True: torch.float16)
    assert "fp16" in (fusable("cpu") or "")
    with pytest.raises(UserError, match="cannot fuse"):
        train_fused("gc", "digits", None, SEEDS)


def test_repeated_seeds_are_refused() -> None:
    with pytest.raises(UserError, match="distinct"):
        train_fused("gc", "digits", None, (0, 0))


def test_reseeded_batches_are_the_tasks_own() -> None:
    """Fused seeds share one copy of the images; each seed's order is its lone run's."""
    task, budget = _budget()
    base, _ = task.loaders(0, budget)
    for seed in (1, 2):
        own, _ = task.loaders(seed, budget)
        mine = base.reseeded(seed)
        assert mine.x is base.x
        for (xa, ya), (xb, yb) in zip(own, mine, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_train_fuse_prints_each_seed(capsys: pytest.CaptureFixture[str]) -> None:
    """``gcsearch train --seeds 0,1 --fuse``: one fused run, a result per seed."""
    from gcsearch.cli import main

    argv = ["train", "gc", "--task", "digits", "--seeds", "0,1", "--fuse", "--device", "cpu"]
    budget = ["--epochs", "1", "--train-images", "128", "--val-images", "64", "--json"]
    assert main(argv + budget) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["seed"], r["status"], r["env"]["fused"]) for r in rows] == [
        (0, "complete", 2),
        (1, "complete", 2),
    ]
    assert main(["train", "gc", "--task", "digits", "--seeds", "0", "--fuse"]) == 2
    assert "--fuse: 1 seed given" in capsys.readouterr().err
