"""``gcsearch flops``: the cost table and one-line errors with exit code 2."""

from __future__ import annotations

import pytest
import torch

from gcsearch.backbones import preset_placement
from gcsearch.cli import main
from gcsearch.cost import count_cost
from gcsearch.spec import PRESETS, Candidate

torch.set_num_threads(1)


def _rows(text: str) -> dict[str, list[str]]:
    """First table cell -> the other cells, for every table row of the output."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 6:
            rows[cells[0]] = cells[1:]
    return rows


def test_default_lists_baseline_and_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--backbone", "resnet8", "--input", "16"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert list(rows) == ["baseline"] + [
        f"{p}@{preset_placement(p, 'resnet8').id}" for p in PRESETS
    ]
    # resnet8 has one residual block per stage: NL goes after it ("last"), SE at c3-c5 (no c2)
    assert "nl-embedded@after_block:c4:last" in rows and "se@after_1x1:c3c4c5" in rows
    gc = count_cost(Candidate.parse("gc@after_1x1:c3c4c5"), "resnet8", (3, 16, 16))
    assert rows["baseline"][0] == f"{gc.base_params:,}"
    assert rows["gc@after_1x1:c3c4c5"][:2] == [f"{gc.params:,}", f"+{gc.block_params:,}"]
    assert rows["gc@after_1x1:c3c4c5"][2] == f"{gc.macs / 1e6:.3f}"


def test_candidates_take_the_placement_unless_they_name_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "flops",
        "--backbone",
        "resnet20",
        "--placement",
        "after_add:c4:last",
        "nl-dot",
        "avg-r4-mul",
        "att-1x1-add@after_1x1:c5",
    ]
    assert main(argv) == 0
    rows = _rows(capsys.readouterr().out)
    assert list(rows)[1:] == [
        "nl-dot@after_add:c4:last", "avg-r4-mul@after_add:c4:last", "att-1x1-add@after_1x1:c5",
    ]  # fmt: skip
    assert all(float(cells[-1].rstrip("%")) > 0 for cells in list(rows.values())[1:])


def test_resnet50_gc_row(capsys: pytest.CaptureFixture[str]) -> None:
    """The acceptance row: 25,557,032 -> 28,078,773 params (+2,521,741), about +0.3 % MACs."""
    assert main(["flops", "--backbone", "resnet50", "gc"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert "input 3x224x224, 1000 classes" in out
    assert rows["baseline"][:3] == ["25,557,032", "", "4.112"]
    params, added, _, _, percent = rows["gc@after_1x1:c3c4c5"]
    assert (params, added) == ("28,078,773", "+2,521,741")
    assert 0.2 < float(percent) < 0.4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backbone", "resnet9"], "backbone: 'resnet9' is not known (choose from resnet18"),
        (["--backbone", "resnet20", "gc@after_1x1:c2"], "c2 is not a stage of resnet20"),
        (["--backbone", "resnet20", "att-r3-add"], "ratio: 3 is not allowed"),
        (["--backbone", "resnet20", "--placement", "before:c4"], "position: 'before'"),
        (["--backbone", "resnet8", "avg-r32-add@after_1x1:c3"], "ratio: 32 is larger than"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flops", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("gcsearch flops: error: ")
    assert message in captured.err
