"""Faults: a Ray worker killed mid-trial, the driver killed with SIGKILL, then --resume.

Each asserts that no finished trial is lost or trained twice. (A NaN candidate is covered in
the fast suite: ``test_study.py::test_inline_search_dedups_records_and_resumes``.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from _search_helpers import ROOT, smoke_search_argv, tiny_space, trained_per_candidate
from optuna.trial import TrialState

from gcsearch.launch import search
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space

pytestmark = pytest.mark.slow


def _study(run: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")


def test_worker_killed_mid_trial_is_retried_and_completes(tmp_path: Path) -> None:
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    victim = space.candidates()[0].id
    marker = tmp_path / "killed.pid"
    run = tmp_path / "run"
    search(
        space, run, smoke=True, progress=False, export=False, faults={victim: f"kill-once:{marker}"}
    )
    assert marker.is_file(), "the fault never fired"
    study = _study(run)
    trained = trained_per_candidate(study)
    assert set(trained.values()) == {1}
    assert set(trained) == {c.id for c in space.candidates() + space.references()}
    trial = next(t for t in study.trials if t.user_attrs["candidate_id"] == victim)
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["results"][0]["epochs"] == 2  # trained in full on the retry
    assert trial.user_attrs["env"]["pid"] != int(marker.read_text())  # another worker
    rec = TrialRecord.read(trial)
    assert rec.retries and rec.retries[0]["attempts"] == 2  # the Ray retry is on the row


def _count(db: Path, state: str) -> int:
    if not db.is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return con.execute("select count(*) from trials where state = ?", (state,)).fetchone()[
                0
            ]
    except sqlite3.Error:
        return 0


def test_driver_sigkill_then_resume_finishes_without_retraining(tmp_path: Path) -> None:
    space = tiny_space(tmp_path, sampler="grid", fidelity=False)
    run = tmp_path / "run"
    cmd = smoke_search_argv(space, run, "--parallel", "1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.time() + 300
        while _count(run / "study.db", "COMPLETE") < 2 or _count(run / "study.db", "RUNNING") < 1:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.time() < deadline, "no trial finished in time"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only; Ray's processes outlive it
        proc.wait(timeout=30)
        before = _study(run)
        finished_before = {
            t.user_attrs["candidate_id"]: t.number
            for t in before.trials
            if t.state == TrialState.COMPLETE
        }
        running_before = [t.number for t in before.trials if t.state == TrialState.RUNNING]
        assert len(finished_before) >= 2 and running_before
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what the dead driver left behind
    resume = subprocess.run(
        [*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert resume.returncode == 0, resume.stderr[-2000:]
    study = _study(run)
    trained = trained_per_candidate(study)
    assert set(trained.values()) == {1}, trained  # nothing trained twice
    assert set(trained) == {
        c.id for c in load_space(space).candidates() + load_space(space).references()
    }
    for cid, number in finished_before.items():  # finished trials kept as they were
        t = study.trials[number]
        assert t.state == TrialState.COMPLETE and t.user_attrs["candidate_id"] == cid
    for number in running_before:
        t = study.trials[number]
        assert t.state == TrialState.FAIL and t.user_attrs["retryable"]
