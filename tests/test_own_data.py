"""A user's own data: ImageFolder and CIFAR-format folders the tests write, end to end.

Searches here run in this process (``InlineExecutor`` in place of Ray) at tiny budgets; the
documented recipe (docs/own-data.md) is executed as written.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from gcsearch.cli import main
from gcsearch.search.local import InlineExecutor

torch.set_num_threads(1)

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-data.md"


def write_images(folder: Path, per_class: int, size: tuple[int, int] = (12, 12)) -> Path:
    """Two classes an epoch can tell apart (dark and bright noise), ``size`` = (W, H) PNGs."""
    rng = np.random.default_rng(0)
    for c, level in enumerate((50, 200)):
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(level + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"class{c}" / f"{i}.png")
    return folder


def doc_blocks(lang: str) -> list[str]:
    """The fenced ``lang`` blocks of docs/own-data.md, in order."""
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def write_cifar(root: Path, n_train: int = 400, n_test: int = 40) -> Path:
    """A CIFAR-10-format folder under ``root``, written by the documented snippet."""
    rng = np.random.default_rng(1)
    labels = [i % 2 for i in range(n_train)]
    images = np.stack([np.full((32, 32, 3), 50 + 150 * y, np.uint8) for y in labels])
    images = np.clip(images + rng.normal(0, 20, images.shape), 0, 255).astype(np.uint8)
    test_labels = [i % 2 for i in range(n_test)]
    test_images = images[:n_test]
    (writer,) = [b for b in doc_blocks("python") if "cifar-10-batches-py" in b]
    code = writer.replace('"data/my-cifar', f'"{root}')
    exec(
        code,
        {
            "images": images,
            "labels": labels,
            "test_images": test_images,
            "test_labels": test_labels,
        },
    )
    return root


class _Interrupting(InlineExecutor):
    """Stops the search at its first wait, as Ctrl-C would."""

    def wait(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        raise KeyboardInterrupt


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``gcsearch search`` trains in this process instead of starting Ray."""
    import gcsearch.search.executor as executor

    monkeypatch.setattr(executor, "RayExecutor", lambda *a, **k: InlineExecutor(parallel=1))
    yield


TINY = """
name = "{name}"
[task]
name = "imagefolder"
backbone = "resnet8"
{data}
[budget]
{budget}
[axes]
pooling = ["att"]
transform = ["1x1"]
fusion = ["add"]
stages = ["c4"]
[search]
sampler = "grid"
"""


def tiny_space(path: Path, data: Path | None, budget: str = "", name: str = "tiny") -> Path:
    data_line = f'data = "{data}"' if data is not None else ""
    path.write_text(TINY.format(name=name, data=data_line, budget=budget))
    return path


def test_documented_recipe_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_ray: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/own-data.md as written: its space files, `tasks list`, `space validate` and the
    smoke searches, on a tiny ImageFolder and a tiny CIFAR-format folder."""
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "data" / "my-images" / "train", 200)
    write_images(tmp_path / "data" / "my-images" / "val", 5)
    write_cifar(tmp_path / "data" / "my-cifar")
    spaces = doc_blocks("toml")
    assert [s.splitlines()[0] for s in spaces] == ["# my-images.toml", "# my-cifar.toml"]
    assert all("[task]" in s and "\ndata = " in s for s in spaces)
    for text in spaces:
        (tmp_path / text.splitlines()[0][2:]).write_text(text)
    ran = []
    for block in doc_blocks("bash"):
        for line in block.splitlines():
            argv = shlex.split(line)[1:]
            runnable = argv[:1] in (["tasks"], ["space"]) or (
                argv[:1] == ["search"] and "--smoke" in argv
            )
            if runnable:
                assert main(argv) == 0, line
                ran.append(argv[0])
                out = capsys.readouterr().out
                if argv[0] == "tasks":  # the folder named is readable by its own task
                    task = "imagefolder" if "my-images" in line else "cifar10"
                    row = next(r for r in out.splitlines() if r.startswith(task + " "))
                    assert "CANNOT READ" not in row and "train" in row, row
    assert ran.count("search") == 2 and ran.count("space") == 2 and ran.count("tasks") == 2
    for run in ("my-images-smoke", "my-cifar-smoke"):
        assert (tmp_path / "runs" / run / "results.csv").is_file()


def test_study_counts_costs_at_its_image_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 48-px study: the cost table, every trial's cost, the hypervolume box (fraction > 0),
    the report's summary line, the export docstring and `train`'s header all say 48 x 48."""
    from rich.console import Console

    from gcsearch import report
    from gcsearch.cost import count_cost
    from gcsearch.launch import search
    from gcsearch.search.record import TrialRecord
    from gcsearch.search.space import load_space
    from gcsearch.spec import Candidate

    data = write_images(tmp_path / "imgs", 20, size=(40, 30))
    budget = "image_size = 48\ntrain_images = 24\nval_images = 12\nepochs = 2\nbatch_size = 8"
    space = load_space(tiny_space(tmp_path / "s48.toml", data, budget, name="s48"))
    run = tmp_path / "run"
    out = search(space, run, executor=InlineExecutor(), progress=False, export=False)
    assert out.counts["complete"] == 2
    attrs = out.study.user_attrs
    assert attrs["input_shape"] == [3, 48, 48]
    at48 = count_cost(Candidate.none(), "resnet8", (3, 48, 48), num_classes=2)
    assert attrs["hv_reference"]["macs"] > at48.macs  # the box spans the 48-px costs
    for trial in out.study.trials:
        rec = TrialRecord.read(trial)
        assert rec.cost["macs"] == attrs["network_costs"][rec.network]["macs"]
    assert attrs["network_costs"][TrialRecord.read(out.study.trials[0]).network]["macs"] == (
        at48.macs
    )
    rep = report.build_report(run, None)
    assert rep.hv > 0
    console = Console(width=200, record=True)
    report.render_terminal(rep, console)
    assert "input [3, 48, 48]" in console.export_text()
    assert (
        main(["export", str(run), "--id", "att-1x1-add@after_1x1:c4", "-o", str(tmp_path / "b.py")])
        == 0
    )
    assert "at input 3x48x48" in (tmp_path / "b.py").read_text()
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "none",
                "--task",
                "imagefolder",
                "--data",
                str(data),
                "--backbone",
                "resnet8",
                "--image-size",
                "16x64",
                "--epochs",
                "1",
                "--train-images",
                "8",
                "--val-images",
                "4",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    header = capsys.readouterr().out.splitlines()[0]
    assert "(3x16x64, resnet8" in header, header


@pytest.mark.parametrize(
    ("task", "data", "words"),
    [
        ("imagefolder", None, "no data folder"),
        ("imagefolder", "missing", "missing is not a directory"),
        ("cifar10", "missing", "missing is not a directory"),
        ("cifar10", None, "not found"),  # no ./data/cifar-10-batches-py either
        ("cifar100", "empty", "not found"),
    ],
)
def test_space_validate_rejects_missing_data(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    task: str,
    data: str | None,
    words: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    text = tiny_space(tmp_path / "s.toml", None).read_text().replace("imagefolder", task)
    if data is not None:
        text = text.replace("[budget]", f'data = "{data}"\n[budget]')
    (tmp_path / "s.toml").write_text(text)
    assert main(["space", "validate", "s.toml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "s.toml: task.data:" in err and words in err and "allowed" in err, err


def test_tasks_list_marks_tasks_that_cannot_read_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tasks list --data DIR` lists every task; those that cannot read DIR are marked."""
    from gcsearch.tasks import TASKS, file_tasks

    cifar = write_cifar(tmp_path / "cifar", n_train=20, n_test=10)
    assert main(["tasks", "list", "--data", str(cifar)]) == 0
    rows = {r.split()[0]: r for r in capsys.readouterr().out.splitlines() if r[:1].isalpha()}
    assert set(TASKS) <= set(rows)
    assert "20 train / 10 test" in rows["cifar10"] and "CANNOT READ" not in rows["cifar10"]
    for name in set(file_tasks()) - {"cifar10"}:
        assert f"CANNOT READ {cifar}:" in rows[name], rows[name]
    assert "CANNOT READ" not in rows["synthetic"]


def test_search_data_flag_replaces_the_space_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`search --data DIR`, which the data errors suggest, exists and is checked up front."""
    space = tiny_space(tmp_path / "s.toml", None)
    argv = ["search", "--space", str(space), "--run-dir", str(tmp_path / "run")]
    assert main([*argv, "--data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere is not a directory" in err and "--data DIR" in err
    assert main(argv) == 2
    assert "task.data: imagefolder: no data folder" in capsys.readouterr().err


def test_search_where_every_trial_fails_exits_1_with_the_first_reason(
    tmp_path: Path, no_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_images(tmp_path / "imgs", 6)  # 12 images: the smoke budget's 384 do not fit
    space = tiny_space(tmp_path / "s.toml", data)
    code = main(["search", "--space", str(space), "--run-dir", str(tmp_path / "run"), "--smoke"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert f"every trial failed (2 failed, none complete; run directory {tmp_path / 'run'})" in err
    assert (
        "the first, trial 0 (none): UserError: budget: 256 train + 128 val images do not fit "
        f"the 12 images of {data} (class 0 has 6 images, 128 needed for splits of (256, 128))"
        in err
    )  # in full: the progress line cut it at 80 characters


def test_interrupted_search_prints_a_resume_command_with_its_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed command repeats the flags that set the space, budget and seeds, and it
    resumes the run (a resume without them would be refused as another search)."""
    import gcsearch.search.executor as executor

    data = write_images(tmp_path / "imgs", 8)
    budget = "train_images = 8\nval_images = 4\nepochs = 1\nbatch_size = 4"
    space = tiny_space(tmp_path / "s.toml", None, budget)
    monkeypatch.setattr(executor, "RayExecutor", lambda *a, **k: _Interrupting())
    argv = [
        "search",
        "--space",
        str(space),
        "--data",
        str(data),
        "--seeds",
        "2",
        "--sampler",
        "random",
        "--run-dir",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 130
    out = " ".join(capsys.readouterr().out.split())
    hint = re.search(r"resume with `([^`]*)`", out)
    assert hint is not None, out
    assert shlex.split(hint.group(1)) == ["gcsearch", *argv, "--resume"]
    monkeypatch.setattr(executor, "RayExecutor", lambda *a, **k: InlineExecutor())
    assert main(shlex.split(hint.group(1))[1:]) == 0
