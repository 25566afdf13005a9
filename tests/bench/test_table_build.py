"""build_table trains the missing (network, seed) pairs in parallel worker processes."""

from __future__ import annotations

from pathlib import Path

from gcsearch.bench.table import build_table, load_table
from gcsearch.search.space import load_space

SPACE = """
name = "tiny-table"
objectives = ["top1:max", "macs:min", "params:min"]
[task]
name = "digits"
backbone = "resnet8"
[budget]
train_images = 128
val_images = 64
epochs = 2
batch_size = 32
[axes]
pooling = ["att"]
transform = ["1x1"]
fusion = ["add"]
stages = ["c4"]
[search]
sampler = "grid"
"""


def test_build_table_in_two_workers_then_load(tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    space = load_space(path)
    table_path = tmp_path / "table.jsonl"
    lines: list[str] = []
    build_table(space, table_path, [0, 1], parallel=2, log=lines.append)
    table = load_table(table_path, space, [0, 1])  # complete and matching, else refused
    assert len(table_path.read_text().splitlines()) == 1 + 2 * 2  # header + 2 networks x 2 seeds
    assert table is not None and any("2 networks x 2 seeds" in line for line in lines)
