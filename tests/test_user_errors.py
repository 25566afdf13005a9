"""More errors a user can cause, each one line naming the problem and the allowed values, with
a non-zero exit and nothing lost: train flags and outputs, storage on a read-only file system,
a plain Optuna study, images beyond memory, space files that are no space files, seed ranges.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pytest

from gcsearch.cli import main

TINY_TRAIN = [
    "--task",
    "digits",
    "--epochs",
    "1",
    "--train-images",
    "64",
    "--val-images",
    "32",
    "--batch-size",
    "32",
    "--device",
    "cpu",
]


def _one_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"gcsearch {command}: error:") and "Traceback" not in err
    return err


def test_train_threads_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "gc", *TINY_TRAIN, "--threads", "0"]) == 2
    assert "--threads: 0 is out of range (allowed: integers >= 1)" in _one_line(capsys, "train")


def test_train_save_onto_a_folder_leaves_no_temp_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep")
    assert main(["train", "gc", *TINY_TRAIN, "--save", str(folder)]) == 2
    assert "--save" in _one_line(capsys, "train")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine.txt", "weights"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (read-only there)")
@pytest.mark.parametrize(
    "storage", ["/proc/self/gcsearch-new/study.log", "sqlite:////proc/self/gcsearch-new/study.db"]
)
def test_storage_in_a_new_folder_on_a_read_only_file_system(
    storage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "search",
        "--space",
        "quick",
        "--smoke",
        "--run-dir",
        str(tmp_path / "run"),
        "--storage",
        storage,
    ]
    assert main(argv) == 2
    assert "--storage" in _one_line(capsys, "search")


def test_storage_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """The library path too (``open_storage``), not only the CLI's check."""
    from gcsearch.errors import UserError
    from gcsearch.search.storage import open_storage

    blocker = tmp_path / "file"
    blocker.write_text("x")
    for storage in (str(blocker / "sub" / "s.log"), f"sqlite:///{blocker}/sub/s.db"):
        with pytest.raises(UserError, match="cannot create"):
            open_storage(tmp_path, storage)
    assert blocker.read_text() == "x"


def _plain_study(path: Path, candidates: list[str]) -> None:
    study = optuna.create_study(
        study_name="plain", storage=f"sqlite:///{path}", directions=["maximize", "minimize"]
    )
    for i, cand in enumerate(candidates):
        trial = study.ask()
        trial.set_user_attr("candidate", cand)  # a string, not gcsearch's spec dict
        study.tell(trial, [70.0 + i, 1000.0 - i])


@pytest.mark.parametrize("candidates", [["gc", "se", "none"], ["my-net-a", "my-net-b"]])
def test_report_on_a_plain_optuna_study(
    candidates: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcsearch.report import frame_from_study

    _plain_study(tmp_path / "study.db", candidates)
    csv = tmp_path / "frame.csv"
    assert main(["report", str(tmp_path), "--csv", str(csv)]) == 2
    err = _one_line(capsys, "report")
    assert f"{len(candidates)} complete trial(s)" in err and "allowed:" in err
    assert csv.is_file()  # the frame a user asked for is written all the same
    study = optuna.load_study(study_name="plain", storage=f"sqlite:///{tmp_path / 'study.db'}")
    frame = frame_from_study(study)
    assert list(frame["status"]) == ["complete"] * len(candidates)  # not called "failed"


def test_train_images_beyond_memory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gcsearch.tasks.train as train

    monkeypatch.setattr(train, "available_memory", lambda: 2 * 1024**3)  # a 2 GiB machine
    argv = ["train", "gc", "--task", "synthetic", "--train-images", "10000000", "--epochs", "1"]
    assert main(argv) == 2
    err = _one_line(capsys, "train")
    assert "--train-images 10000000" in err and "allowed: up to about" in err


def test_memory_check_allows_what_fits() -> None:
    from gcsearch.errors import UserError
    from gcsearch.tasks import Budget, get_task
    from gcsearch.tasks.train import check_memory, data_bytes

    task = get_task("synthetic")
    budget = Budget(train_images=1000, val_images=100)
    check_memory(task, budget, available=data_bytes(task, budget))
    with pytest.raises(UserError, match=r"MiB is available \(allowed: up to about 999 train"):
        check_memory(task, budget, available=data_bytes(task, budget) - 1)


# ------------------------------------------------------------------------ space files
@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("é" * 64, True),  # 128 bytes: fits
        ("é" * 65, False),  # 65 characters, 130 bytes: too long in bytes
        ("a" * 200, False),
        ("tab\there", False),
    ],
    ids=["64 two-byte letters", "65 two-byte letters", "200 ASCII letters", "a tab"],
)
def test_space_name_is_checked_in_bytes(
    name: str, ok: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(f"name = {json.dumps(name)}\n", encoding="utf-8")  # TOML basic string
    assert main(["space", "validate", str(path)]) == (0 if ok else 2)
    if not ok:
        err = _one_line(capsys, "space")
        assert "name" in err and "allowed: a printable name of at most 128 bytes" in err


@pytest.mark.parametrize("kind", ["dev-zero", "10 MB"])
def test_space_file_that_is_no_space_file(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "dev-zero":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        path = "/dev/zero"
    else:
        big = tmp_path / "big.toml"
        big.write_bytes(b"# " + b"x" * (10 * 1000**2) + b"\n")
        path = str(big)
    assert main(["space", "validate", path]) == 2
    assert "allowed: a .toml space file" in _one_line(capsys, "space")
    assert main(["search", "--space", path, "--run-dir", str(tmp_path / "run")]) == 2
    _one_line(capsys, "search")


def test_two_seeds_warn_that_intervals_are_not_informative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.toml"
    path.write_text('name = "two"\n[search]\nseeds = 2\n')
    assert main(["space", "validate", str(path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gcsearch space: warning:")
    assert "n = 2" in err[0] and "not informative" in err[0]
    path.write_text('name = "three"\n[search]\nseeds = 3\n')
    assert main(["space", "validate", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_bench_proxy_empty_seed_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "bench",
        "proxy",
        "--task",
        "digits",
        "--seeds",
        "5-1",
        "--out",
        str(tmp_path / "p.json"),
    ]
    assert main(argv) == 2
    err = _one_line(capsys, "bench")
    assert "'5-1' is an empty range" in err and "1-5" in err
    assert not os.path.exists(tmp_path / "p.json")
