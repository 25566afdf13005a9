from __future__ import annotations

import json
from pathlib import Path

import pytest

from gcsearch.cli import main
from gcsearch.tasks import TASKS


def test_tasks_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["task", "input", "classes"]
    for name in TASKS:
        assert any(line.startswith(name + " ") for line in lines), name
    assert "3x8x48" in out and "1x8x8" in out


def test_train_missing_data_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "none", "--task", "fashion-mnist", "--data", "/nonexistent"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "/nonexistent" in err


def test_train_bad_candidate_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "att-r7-add", "--task", "digits"]) == 2
    assert "ratio" in capsys.readouterr().err


def test_train_prints_result(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "c.json"
    spec.write_text(
        '{"block": {"pooling": "att", "transform": "1x1", "fusion": "add"}, '
        '"placement": {"position": "after_add", "stages": ["c5"]}}'
    )
    args = [
        "train",
        str(spec),
        "--task",
        "digits",
        "--epochs",
        "1",
        "--train-images",
        "100",
        "--val-images",
        "50",
        "--seeds",
        "0,1",
        "--json",
    ]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0]["candidate_id"] == "att-1x1-add@after_add:c5" and rows[0]["epochs"] == 1
    assert (
        main(
            [
                "train",
                "gc",
                "--task",
                "digits",
                "--epochs",
                "1",
                "--train-images",
                "100",
                "--val-images",
                "50",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "seed 0: complete" in out and "val_top1" in out and "params" in out


def test_bench_train_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "train", "--smoke", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "throughput ratio harness/bare" in out and "run 1 bare" in out


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_bench_trains_the_bare_loop_with_the_tasks_optimizer(
    optimizer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bare loop once always used SGD, so on an AdamW task it compared the harness against
    a run that stayed at chance: it now builds the task's optimizer and schedule."""
    import torch

    import gcsearch.tasks.train as harness
    from gcsearch.bench.train import bare_loop
    from gcsearch.spec import Candidate
    from gcsearch.tasks import get_task

    built = []
    make = harness.make_optimizer

    def spy(*args: object, **kwargs: object) -> object:
        opt, sched = make(*args, **kwargs)  # type: ignore[arg-type]
        built.append((type(opt).__name__, sched))
        return opt, sched

    monkeypatch.setattr(harness, "make_optimizer", spy)
    task = get_task("digits")
    budget = task.budget.replace(train_images=128, val_images=64, epochs=1, optimizer=optimizer)
    out = bare_loop(Candidate.none(), task, budget, 0, torch.device("cpu"), task.backbone, 1)
    assert out["images_per_s"] > 0
    assert [name for name, _ in built] == [{"sgd": "SGD", "adamw": "AdamW"}[optimizer]]
    assert built[0][1].last_epoch == len(range(128 // budget.batch_size))  # stepped each step


def test_tasks_list_reads_the_recorded_spread(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spread shown comes from the bench's JSON (here a hand-made one), never typed in."""
    import gcsearch.tasks as tasks

    monkeypatch.setattr(tasks, "MEASURED_DIR", tmp_path)
    budget = tasks.get_task("digits").budget.to_dict()
    cands = {
        "none": {"std": 0.4, "mdd_n3_median": 2.0, "seconds_per_trial": 3.0, "mean": 50.0},
        "gc@after_1x1:c3c4c5": {
            "std": 0.9,
            "mdd_n3_median": 2.5,
            "seconds_per_trial": 4.0,
            "mean": 99.6,
            "n": 3,
            "at_chance": 1,
        },
        "att-1x1-mul@after_1x1:c4": {
            "std": 7.0,
            "mdd_n3_median": 9.0,
            "seconds_per_trial": 4.0,
            "mean": 99.9,
        },
    }
    tau = {
        "kendall_tau": 0.87,
        "n_candidates": 20,
        "space": "spaces/quick.toml",
        "budget": {"train_images": 1500},
    }
    (tmp_path / "digits.json").write_text(
        json.dumps({"candidates": cands, "seeds": [0, 1, 2], "budget": budget, "split_tau": tau})
    )
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "seed std <= 0.90 pt over 2 presets (3 seeds)" in out  # the searched block is not one
    assert "split-seed τ 0.87 (20 candidates of quick, 1500 images)" in out
    assert "not measured (gcsearch bench proxy --task synthetic --record)" in out
    assert "measured at another budget" not in out
    assert "2 of 3 candidates at the ceiling (>= 99.5 %)" in out
    assert "(seeds at chance: gc 1 of 3)" in out  # a preset's seed that never learned
    del budget["optimizer"]  # figures recorded before the field existed: same budget (SGD)
    (tmp_path / "digits.json").write_text(json.dumps({"candidates": cands, "budget": budget}))
    assert main(["tasks", "list"]) == 0
    assert "measured at another budget" not in capsys.readouterr().out
