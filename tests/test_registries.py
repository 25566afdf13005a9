"""The registries finish: a new objective is one row of ``spec.METRICS`` and a new task one
row of ``tasks.TASKS``, and a search runs with both, its report reading the new column."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import torch

from gcsearch import report, spec, tasks
from gcsearch.errors import InputWarning
from gcsearch.launch import search
from gcsearch.search.local import InlineExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import parse_space
from gcsearch.tasks import Budget, TaskEntry
from gcsearch.tasks.files import ArrayTask


@dataclass
class ToyStripes(ArrayTask):
    """Horizontal against vertical stripes on 8x8 grey images: a toy task for this test."""

    name: str = "toy-stripes"
    description: str = "stripes, horizontal or vertical (a test's toy task)"
    num_classes: int = 2
    input_shape: tuple[int, int, int] = (1, 8, 8)
    backbone: str = "resnet8"
    budget: Budget = field(
        default_factory=lambda: Budget(train_images=96, val_images=32, epochs=2, batch_size=32)
    )

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        y = torch.randint(0, 2, (200,), generator=g)
        phase = torch.randint(0, 2, (200,), generator=g)
        line = (torch.arange(8) + phase[:, None]) % 2  # (N, 8) stripes
        img = torch.where(
            y[:, None, None] == 0,
            line[:, :, None].expand(-1, 8, 8),
            line[:, None, :].expand(-1, 8, 8),
        )
        x = (img * 200 + 20).to(torch.uint8).unsqueeze(1)
        return x[:160], y[:160], x[160:], y[160:]


SPACE = """
name = "toy"
objectives = ["top1:max", "wall:min", "block_params:min"]
[task]
name = "toy-stripes"
[axes]
pooling = ["att", "avg"]
transform = ["1x1"]
fusion = ["add", "mul"]
stages = ["c4"]
[search]
sampler = "ehvi"
n_trials = 3
seeds = 2
"""


def test_a_toy_objective_and_task_each_added_in_one_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        spec.METRICS, "wall", spec.Metric("wall", "min", "trained", "obj.wall", "wall_s")
    )
    monkeypatch.setitem(tasks.TASKS, "toy-stripes", TaskEntry(f"{__name__}:ToyStripes"))
    with pytest.warns(InputWarning, match="n = 2"):  # two seeds keep the test short
        space = parse_space(SPACE, "toy.toml")
    out = search(
        space, tmp_path / "run", executor=InlineExecutor(parallel=2), progress=False, export=False
    )
    study = out.study
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4  # the baseline and 3 searched networks
    for t in done:
        walls = [r["wall_s"] for r in TrialRecord.read(t).results]
        assert t.values[1] == pytest.approx(sum(walls) / len(walls))  # the new objective
    frame = report.frame_from_study(study)
    assert "obj.wall" in frame.columns and frame["obj.wall"].notna().any()
    rep = report.build_report(tmp_path / "run", frame=frame)
    assert [o.name for o in rep.objectives] == ["top1", "wall", "block_params"]
