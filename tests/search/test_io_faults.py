"""I/O faults: a full disk, a read-only run directory, a study that takes no writes.

Each asserts that finished training is not thrown away (its results are on its row, which
``--resume`` retries), that the error is one line naming what failed and where, and that
``--resume`` once it is fixed trains what is missing.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from _search_helpers import tiny_space, trained_per_candidate
from optuna.trial import TrialState

from gcsearch import launch as run_module
from gcsearch.errors import IOFault, io_line
from gcsearch.launch import search
from gcsearch.search.local import InlineExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import Space, load_space
from gcsearch.search.trial import seed_weights_path

KW: dict[str, Any] = {"smoke": True, "progress": False}
EPOCHS = 2  # a smoke trial's epochs


def _study(run: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")


def _space(tmp_path: Path) -> Space:
    return load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))


def _everything(space: Space) -> set[str]:
    return {c.id for c in space.candidates() + space.references()}


def _check_outputs_agree(run: Path) -> dict[str, Any]:
    """results.csv and run.json exist and count the same trials; returns run.json."""
    record = json.loads((run / "run.json").read_text())
    rows = pd.read_csv(run / "results.csv")
    assert len(rows) == record["counts"]["trials"]
    assert (rows["state"] == "running").sum() == record["counts"].get("running", 0)
    return record


def _resume_trains_the_rest(space: Space, run: Path, missing: int) -> None:
    """``--resume`` with the fault gone trains exactly the ``missing`` networks, once each."""
    again = search(space, run, resume=True, executor=InlineExecutor(), **KW)
    assert again.epochs_trained == missing * EPOCHS
    trained = trained_per_candidate(_study(run))
    assert set(trained) == _everything(space) and set(trained.values()) == {1}
    assert again.counts["failed"] == 0 and again.counts["running"] == 0
    _check_outputs_agree(run)


def test_io_line_says_what_failed_and_where(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "runs" / "a.pt"))
    assert io_line(full) == "no space left on device writing runs/a.pt"
    assert io_line(OSError(errno.EROFS), path="/x") == "read-only file system writing /x"
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit")
    wrapped.__cause__ = sqlite3.OperationalError("database or disk is full")
    assert io_line(wrapped, path="the study sqlite:///s.db") == (
        "OperationalError: database or disk is full writing the study sqlite:///s.db"
    )


def test_a_full_disk_keeps_the_trained_result_and_resume_trains_the_rest(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A real ENOSPC: one seed's weights file is /dev/full, as on a disk that fills up."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    monkeypatch.chdir(tmp_path)
    space = _space(tmp_path)
    victim = space.candidates()[1]  # grid order: none, se, then candidates 0, 1, 2, 3
    run = tmp_path / "run"
    target = seed_weights_path(run / "weights", victim.id, 0)
    target.parent.mkdir(parents=True)
    target.with_suffix(target.suffix + ".tmp").symlink_to("/dev/full")
    with pytest.raises(IOFault) as err:
        search(space, run, executor=InlineExecutor(), **KW)
    line = str(err.value)
    assert line.startswith(f"no space left on device writing run/weights/seed0/{target.name};")
    assert "\n" not in line and line.endswith("--smoke --resume`") and err.value.exit_code == 1
    study = _study(run)
    row = next(t for t in study.trials if TrialRecord.read(t).candidate_id == victim.id)
    rec = TrialRecord.read(row)
    assert row.state == TrialState.FAIL and rec.retryable and rec.reason.startswith("I/O error")
    assert rec.results[0]["top1"] is not None  # the training's metrics are on its row
    assert set(trained_per_candidate(study)) == {
        "none",
        *(c.id for c in space.references()),
        space.candidates()[0].id,
    }
    assert _check_outputs_agree(run)["fault"].startswith("no space left on device")
    _resume_trains_the_rest(space, run, missing=3)  # the victim, candidates 2 and 3
    retry = next(
        TrialRecord.read(t)
        for t in _study(run).trials
        if TrialRecord.read(t).candidate_id == victim.id and TrialRecord.read(t).trained
    )
    assert retry.retries[0]["retry_of"] == row.number and retry.weights
    assert (run / retry.weights).is_file()


def _read_only(monkeypatch: Any, folder: Path, code: int = errno.EROFS) -> Callable[[], None]:
    """Writes under ``folder`` fail with ``code`` as on a read-only file system (chmod alone
    does not stop root, who runs these tests in CI); returns a function that lifts it."""
    folder = folder.resolve()
    os.chmod(folder, 0o555) if folder.is_dir() else None

    def guard(name: str) -> None:
        real = getattr(Path, name)

        def checked(self: Path, *args: Any, **kwargs: Any) -> Any:
            mode = (args[0] if args else kwargs.get("mode", "r")) if name == "open" else "w"
            inside = self.absolute().is_relative_to(folder)
            made = name == "mkdir" and self.is_dir()  # mkdir(exist_ok=True) writes nothing
            if inside and not made and any(c in str(mode) for c in "wax+"):
                raise OSError(code, os.strerror(code), str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, checked)

    for name in ("open", "mkdir", "replace", "rename", "unlink", "touch"):
        guard(name)

    def lift() -> None:
        monkeypatch.undo()
        os.chmod(folder, 0o755) if folder.is_dir() else None

    return lift


def _cli_search(monkeypatch: Any, space_file: Path, *extra: str) -> int:
    """``gcsearch search`` through ``cli.main``, trials trained in this process."""
    from gcsearch.cli import main

    real = run_module.search
    monkeypatch.setattr(
        run_module, "search", lambda *a, **kw: real(*a, executor=InlineExecutor(), **kw)
    )
    return main(["search", "--space", str(space_file), "--run-dir", "run", "--smoke", *extra])


def test_a_read_only_weights_folder_stops_with_one_line_and_resume_trains_the_rest(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    space_file = tiny_space(tmp_path, sampler="grid", fidelity=False)
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    lift = _read_only(monkeypatch, run / "weights")
    code = _cli_search(monkeypatch, space_file)
    lift()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert err.startswith("gcsearch search: error: read-only file system writing run/weights/")
    assert err.count("\n") == 1 and "--resume" in err
    study = _study(run)
    first = study.trials[0]  # the baseline: trained, its weights could not be written
    rec = TrialRecord.read(first)
    assert rec.retryable and rec.results[0]["top1"] is not None
    assert not trained_per_candidate(study)  # nothing lost: nothing else had finished
    _check_outputs_agree(run)
    _resume_trains_the_rest(load_space(space_file), run, missing=6)


def test_a_read_only_run_folder_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    """The study lives elsewhere (a journal file) and the run directory takes no writes: the
    search stops on its first write there, in one line, and keeps its study."""
    monkeypatch.chdir(tmp_path)
    space_file = tiny_space(tmp_path, sampler="grid", fidelity=False)
    (tmp_path / "run").mkdir()
    lift = _read_only(monkeypatch, tmp_path / "run", errno.EACCES)
    code = _cli_search(monkeypatch, space_file, "--storage", str(tmp_path / "study.log"))
    lift()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    assert err.startswith("gcsearch search: error: permission denied writing run/driver.lock;")
    assert err.count("\n") == 1


def test_a_study_that_takes_no_writes_leaves_its_trial_to_retry(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """SQLite on a full disk ("database or disk is full") when a finished trial is told: the
    search stops in one line, the trial stays running, and --resume retries it."""
    space = _space(tmp_path)
    run = tmp_path / "run"
    real = optuna.storages.RDBStorage.set_trial_state_values
    told = []

    def full(self: Any, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state == TrialState.COMPLETE:
            told.append(trial_id)
        if len(told) >= 3:  # the third finished trial finds the disk full
            error = optuna.exceptions.StorageInternalError("An exception is raised")
            raise error from sqlite3.OperationalError("database or disk is full")
        return real(self, trial_id, state, values)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", full)
    with pytest.raises(
        IOFault,
        match=r"^OperationalError: database or disk is full writing "
        r"the study sqlite:///\S+study\.db;",
    ):
        search(space, run, executor=InlineExecutor(), **KW)
    monkeypatch.undo()
    study = _study(run)
    assert [t.state for t in study.trials].count(TrialState.RUNNING) == 1
    assert len(trained_per_candidate(study)) == 2
    _resume_trains_the_rest(space, run, missing=4)


def test_outputs_that_cannot_be_written_are_named_and_resume_writes_them(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The run directory turns read-only after the last trial: every result is in the study,
    the one line names the files not written, and --resume writes them, training nothing."""
    from gcsearch.search.driver import Driver

    monkeypatch.chdir(tmp_path)
    space = _space(tmp_path)
    run = tmp_path / "run"
    real_run = Driver.run
    lifts = []

    def then_read_only(self: Driver) -> None:
        real_run(self)
        lifts.append(_read_only(monkeypatch, run))

    monkeypatch.setattr(Driver, "run", then_read_only)
    with pytest.raises(IOFault) as err:
        search(space, run, executor=InlineExecutor(), **KW)
    lifts[0]()
    line = str(err.value)
    assert line.startswith(
        "results.csv not written (read-only file system writing run/results.csv); the search "
        "finished (6 trials: 6 complete"
    )
    assert "run.json not written (read-only file system writing run/run.json)" in line
    assert not (run / "results.csv").exists() and not (run / "run.json").exists()
    assert set(trained_per_candidate(_study(run))) == _everything(space)
    (run / "driver.lock").unlink()  # read-only, it outlived its driver (whose pid is ours)
    _resume_trains_the_rest(space, run, missing=0)  # and writes results.csv and run.json


def test_a_file_a_trial_cannot_read_stops_the_search_and_resume_retries_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """An image that cannot be decoded (PIL's error is an OSError) says nothing about the
    candidate: the search stops in one line, and once the file is fixed, --resume retries."""
    from PIL import UnidentifiedImageError

    from gcsearch.tasks import train as train_module

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise UnidentifiedImageError("cannot identify image file 'data/cat/1.png'")

    space = _space(tmp_path)
    run = tmp_path / "run"
    monkeypatch.setattr(train_module, "train", unreadable)
    with pytest.raises(
        IOFault,
        match=r"^UnidentifiedImageError: cannot identify image file "
        r"'data/cat/1\.png' at test_io_faults\.py:\d+; the search "
        r"stopped \(1 trials",
    ):
        search(space, run, executor=InlineExecutor(), **KW)
    monkeypatch.undo()
    rec = TrialRecord.read(_study(run).trials[0])
    assert rec.retryable and rec.reason.startswith("I/O error: UnidentifiedImageError")
    _resume_trains_the_rest(space, run, missing=6)


def test_a_data_cache_it_cannot_write_stops_the_search_and_resume_retries_it(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The node's data cache cannot be written (a full disk, a file in the way): nothing about
    the candidate, so the trial is an I/O error that stops the search, retried on --resume."""
    from gcsearch.tasks import train as train_module

    def full(*args: Any, **kwargs: Any) -> Any:
        raise IOFault("data cache: no space left on device writing cache/x.npy")

    space = _space(tmp_path)
    run = tmp_path / "run"
    monkeypatch.setattr(train_module, "train", full)
    with pytest.raises(IOFault, match=r"^data cache: no space left on device writing cache"):
        search(space, run, executor=InlineExecutor(), **KW)
    monkeypatch.undo()
    rec = TrialRecord.read(_study(run).trials[0])
    assert rec.retryable and rec.reason.startswith("I/O error: data cache: no space left")
    _resume_trains_the_rest(space, run, missing=6)
