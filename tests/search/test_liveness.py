"""Driver liveness on one study: heartbeats, stale trials, claims, and drivers side by side."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from _search_helpers import tiny_space, trained_per_candidate
from optuna.trial import TrialState

from gcsearch.launch import search
from gcsearch.search import liveness
from gcsearch.search.liveness import Heartbeat, claim, claim_conflict, stale_trials
from gcsearch.search.local import InlineExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.sampling import network_key
from gcsearch.search.space import load_space
from gcsearch.search.storage import open_storage


def _journal(tmp_path: Path) -> optuna.Study:
    storage, _ = open_storage(tmp_path, str(tmp_path / "study.log"))
    return optuna.create_study(storage=storage, study_name="s")


def _fake_driver(study: optuna.Study, driver: str, age: float, stopped: bool = False) -> None:
    study._storage.set_study_system_attr(
        study._study_id,
        liveness.DRIVER_PREFIX + driver,
        {"beat": time.time() - age, "stopped": stopped},
    )


def _running(study: optuna.Study, driver: str | None, key: str | None = None) -> Any:
    trial = study.ask()
    if driver:
        claim(study, trial, driver)
    if key:
        trial.set_user_attr("module_key", key)
    return trial


def test_optuna_private_api_liveness_relies_on() -> None:
    """Study._storage/_study_id, Trial._trial_id and the system-attribute calls: if Optuna
    renames them, this fails (and liveness.py must follow)."""
    study = optuna.create_study()
    trial = study.ask()
    study._storage.set_study_system_attr(study._study_id, "k", {"v": 1})
    assert study._storage.get_study_system_attrs(study._study_id)["k"] == {"v": 1}
    study._storage.set_trial_system_attr(trial._trial_id, "o", "x")
    assert study.trials[0].system_attrs["o"] == "x"


def test_heartbeat_records_and_stops(tmp_path: Path) -> None:
    study = _journal(tmp_path)
    with Heartbeat(study, interval=0.05, info={"run_dir": "a"}) as beat:
        first = liveness.drivers(study)[beat.driver_id]["beat"]
        time.sleep(0.3)
        rec = liveness.drivers(study)[beat.driver_id]
        assert rec["beat"] > first and rec["run_dir"] == "a" and not rec["stopped"]
        assert liveness.live_drivers(study, grace=5) == {beat.driver_id}
    assert liveness.drivers(study)[beat.driver_id]["stopped"]
    assert liveness.live_drivers(study, grace=5) == set()


def test_stale_trials_spare_live_drivers(tmp_path: Path) -> None:
    study = _journal(tmp_path)
    _fake_driver(study, "alive", age=1)
    _fake_driver(study, "dead", age=1000)
    _fake_driver(study, "quit", age=1, stopped=True)
    live = _running(study, "alive")
    dead = _running(study, "dead")
    quit_ = _running(study, "quit")
    orphan = _running(study, None)
    mine = _running(study, "me")
    got = {t.number: why for t, why in stale_trials(study, grace=60, own="me")}
    assert set(got) == {dead.number, quit_.number}  # the orphan: "alive" may be claiming it
    assert "no heartbeat for 1000s" in got[dead.number] and "stopped" in got[quit_.number]
    assert live.number not in got and mine.number not in got
    _fake_driver(study, "alive", age=1000)  # now nobody else is alive: the orphan is stale
    got = {t.number for t, _ in stale_trials(study, grace=60, own="me")}
    assert got == {live.number, dead.number, quit_.number, orphan.number}


def test_a_driver_whose_process_is_gone_on_this_machine_is_dead_at_once(tmp_path: Path) -> None:
    import socket

    study = _journal(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs (a SIGKILLed driver, say)
    for name, pid in (("gone", gone.pid), ("here", os.getpid())):
        study._storage.set_study_system_attr(
            study._study_id,
            liveness.DRIVER_PREFIX + name,
            {"beat": time.time(), "stopped": False, "host": socket.gethostname(), "pid": pid},
        )
    assert liveness.live_drivers(study, grace=60) == {"here"}  # no need to wait out the grace
    trial = _running(study, "gone")
    got = {t.number: why for t, why in stale_trials(study, grace=60, own="me")}
    assert "is gone" in got[trial.number]


def test_claim_conflict_yields_to_the_lower_live_trial(tmp_path: Path) -> None:
    study = _journal(tmp_path)
    _fake_driver(study, "other", age=0)
    _fake_driver(study, "me", age=0)

    def key_of(t: Any) -> str | None:
        return t.user_attrs.get("module_key")

    theirs = _running(study, "other", key="K")
    mine = _running(study, "me", key="K")
    later = _running(study, "other", key="K")
    assert claim_conflict(study, mine.number, "K", key_of, "me", 60).number == theirs.number
    # the higher-numbered claim never makes the lower one yield
    assert claim_conflict(study, theirs.number, "K", key_of, "other", 60) is None
    # a driver skips its own trials (it dedupes those itself) but yields to lower others
    assert claim_conflict(study, later.number, "K", key_of, "other", 60).number == mine.number
    assert claim_conflict(study, mine.number, "J", key_of, "me", 60) is None
    # an unclaimed lower trial of a live driver is waited for (its key may be ours) ...
    study2 = _journal(tmp_path / "2")
    _fake_driver(study2, "other", age=0)
    pending = _running(study2, "other")
    me2 = _running(study2, "me", key="K")
    threading.Timer(0.3, lambda: pending.set_user_attr("module_key", "K")).start()
    assert claim_conflict(study2, me2.number, "K", key_of, "me", 60, wait=5).number == 0
    # ... but a dead driver's claim is not
    _fake_driver(study, "other", age=1000)
    assert claim_conflict(study, mine.number, "K", key_of, "me", 60) is None


def _two_drivers(tmp_path: Path, storage: str) -> tuple[optuna.Study, list[Any]]:
    """Two search() drivers on one study at the same time (threads; own run dirs)."""
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    space = space.with_overrides(seeds=2)
    kw = {"smoke": True, "progress": False, "export": False, "storage": storage, "weights": False}
    outcomes: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(name: str, resume: bool) -> None:
        try:
            outcomes[name] = search(
                space, tmp_path / name, resume=resume, executor=InlineExecutor(), **kw
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    first = threading.Thread(target=run, args=("a", False))
    first.start()
    reader, _ = open_storage(tmp_path, storage)
    deadline = time.time() + 120
    while time.time() < deadline:  # the second driver joins once the study exists
        if "tiny" in optuna.study.get_all_study_names(reader):
            study = optuna.load_study(study_name="tiny", storage=reader)
            if study.trials:
                break
        time.sleep(0.05)
    second = threading.Thread(target=run, args=("b", True))
    second.start()
    first.join(600)
    second.join(600)
    assert not errors, errors
    return optuna.load_study(study_name="tiny", storage=reader), [outcomes["a"], outcomes["b"]]


def _check_two_drivers(study: optuna.Study, outcomes: list[Any], space_ids: set[str]) -> None:
    trained = trained_per_candidate(study)
    assert set(trained) == space_ids  # every result present
    assert set(trained.values()) == {1}, trained  # nothing trained twice
    for t in study.trials:
        rec = TrialRecord.read(t)
        assert t.state != TrialState.RUNNING
        assert "driver died" not in rec.reason, (t.number, rec.reason)  # nobody failed a live one
        assert rec.status != "failed", (t.number, rec.reason)
    owners = {t.system_attrs.get(liveness.OWNER) for t in study.trials}
    assert len(owners) == 2 and None not in owners  # both drivers asked trials
    assert all(o.epochs_trained >= 0 for o in outcomes)


def test_two_drivers_on_one_journal_study(tmp_path: Path) -> None:
    study, outcomes = _two_drivers(tmp_path, str(tmp_path / "shared" / "study.log"))
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    _check_two_drivers(study, outcomes, {c.id for c in space.candidates() + space.references()})


@pytest.mark.db
def test_two_drivers_on_one_postgresql_study(tmp_path: Path, postgres_db: str) -> None:
    study, outcomes = _two_drivers(tmp_path, postgres_db)
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    _check_two_drivers(study, outcomes, {c.id for c in space.candidates() + space.references()})


def test_a_dead_drivers_trials_are_retried_a_live_ones_left_alone(
    tmp_path: Path, monkeypatch: Any
) -> None:
    # out of work, a driver waits for a live one's trial until it has beaten for the grace
    # period: a short one keeps the test short
    monkeypatch.setenv("GCSEARCH_LIVENESS", "0.2,1.5")
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    storage = str(tmp_path / "shared.log")
    kw = {
        "smoke": True,
        "progress": False,
        "export": False,
        "storage": storage,
        "weights": False,
        "executor": InlineExecutor(),
    }
    search(space.with_overrides(n_trials=1), tmp_path / "a", **kw)
    reader, _ = open_storage(tmp_path, storage)
    study = optuna.load_study(study_name="tiny", storage=reader)
    victim, busy = space.candidates()[1], space.candidates()[2]
    _fake_driver(study, "deadbeef", age=1000)  # killed: its beat stopped long ago
    left = _running(study, "deadbeef")
    TrialRecord(candidate=victim, role="search").write(left, only=["candidate", "role"])
    with Heartbeat(study, interval=0.2) as other:  # a live driver training `busy`
        held = _running(study, other.driver_id)
        key = network_key(busy, space.backbone, space.min_hidden)
        TrialRecord(candidate=busy, role="search", network=key).write(
            held, only=["candidate", "role", "network"]
        )
        search(space, tmp_path / "b", resume=True, **kw)
        study = optuna.load_study(study_name="tiny", storage=reader)
        assert study.trials[held.number].state == TrialState.RUNNING  # left alone
    dead = TrialRecord.read(study.trials[left.number])
    assert study.trials[left.number].state == TrialState.FAIL and dead.retryable
    assert "deadbeef died (no heartbeat" in dead.reason
    trained = trained_per_candidate(study)
    assert set(trained.values()) == {1} and victim.id in trained and busy.id not in trained
    retry = next(
        TrialRecord.read(t)
        for t in study.trials
        if TrialRecord.read(t).candidate_id == victim.id and TrialRecord.read(t).trained
    )
    assert retry.retries and retry.retries[0]["retry_of"] == left.number
    assert "deadbeef" in retry.retries[0]["reason"]


KILLED_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {helpers!r})
from _search_helpers import tiny_space
from gcsearch.search.local import InlineExecutor
from gcsearch.launch import search
from gcsearch.search.sampling import network_key
from gcsearch.search.space import load_space
space = load_space(tiny_space(Path({tmp!r}), sampler="grid", fidelity=False))
victim = space.candidates()[1].id
# InlineExecutor trains in this process: the kill-once fault SIGKILLs the driver itself
search(space, Path({tmp!r}) / "a", smoke=True, progress=False, export=False, weights=False,
       storage={storage!r}, executor=InlineExecutor(),
       faults={{victim: "kill-once:" + {marker!r}}})
"""


def test_a_killed_driver_is_retried_by_the_next(tmp_path: Path, monkeypatch) -> None:
    """A real driver process SIGKILLed mid-trial: its heartbeat stops, its trial stays
    RUNNING; the next driver (another run directory) fails it as stale and retrains it, and
    the retry is on the new row."""
    storage = str(tmp_path / "shared.log")
    env = {"GCSEARCH_LIVENESS": "0.2,1.5", "PYTHONPATH": str(Path(__file__).parents[2])}
    code = KILLED_DRIVER.format(
        helpers=str(Path(__file__).parent),
        tmp=str(tmp_path),
        storage=storage,
        marker=str(tmp_path / "killed"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILL, mid-trial
    reader, _ = open_storage(tmp_path, storage)
    study = optuna.load_study(study_name="tiny", storage=reader)
    left = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert len(left) == 1
    time.sleep(1.6)  # the grace period passes without a beat
    monkeypatch.setenv("GCSEARCH_LIVENESS", "0.2,1.5")
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    search(
        space,
        tmp_path / "b",
        resume=True,
        smoke=True,
        progress=False,
        export=False,
        weights=False,
        storage=storage,
        executor=InlineExecutor(),
    )
    study = optuna.load_study(study_name="tiny", storage=reader)
    dead = TrialRecord.read(study.trials[left[0].number])
    assert study.trials[left[0].number].state == TrialState.FAIL and dead.retryable
    assert "is gone" in dead.reason  # same machine: its pid, not the grace period, says so
    trained = trained_per_candidate(study)
    assert set(trained) == {c.id for c in space.candidates() + space.references()}
    assert set(trained.values()) == {1}  # nothing lost, nothing trained twice
    retry = next(
        TrialRecord.read(t)
        for t in study.trials
        if TrialRecord.read(t).candidate_id == dead.candidate_id and TrialRecord.read(t).trained
    )
    assert retry.retries[0]["retry_of"] == left[0].number


def test_a_result_is_kept_when_another_driver_failed_its_trial(tmp_path: Path) -> None:
    """A driver presumed dead (its heartbeat stalled past the grace period) whose trial another
    driver failed: its tell raises UpdateFinishedTrialError inside Optuna; the result is stored
    as a new trial carrying the record, not lost, and the driver goes on."""
    from gcsearch.search.display import Display, Progress
    from gcsearch.search.driver import Driver

    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    study = _journal(tmp_path)
    display = Display(Progress("t", 1, 1, list(space.objectives)), enabled=False)
    with Heartbeat(study, interval=5) as beat:
        driver = Driver(
            space,
            study,
            InlineExecutor(),
            budget={"epochs": 2},
            device="cpu",
            rungs=(),
            faults={},
            display=display,
            n_trials=1,
            threads=1,
            liveness=beat,
        )
        trial = driver.claims.ask()
        cand = space.candidates()[0]
        rec = TrialRecord(
            candidate=cand,
            role="search",
            network="k",
            status="complete",
            results=[{"seed": 0, "top1": 70.0}],
        )
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        kept = driver.teller.tell(trial, rec, [70.0, 1.0, 2.0], TrialState.COMPLETE)
        assert kept.number != trial.number and kept.state == TrialState.COMPLETE
        assert kept.values == [70.0, 1.0, 2.0]
        back = TrialRecord.read(kept)
        assert back.candidate_id == cand.id and back.results[0]["top1"] == 70.0
        assert back.retries[-1]["retry_of"] == trial.number
        assert kept.system_attrs[liveness.OWNER] == beat.driver_id


HUNG_DRIVER = """
import time
from pathlib import Path
import optuna
from gcsearch.search.liveness import Heartbeat, claim
from gcsearch.search.record import TrialRecord
from gcsearch.search.storage import open_storage
from gcsearch.spec import Candidate
storage, _ = open_storage(Path({tmp!r}), {storage!r})
study = optuna.load_study(study_name="tiny", storage=storage)
beat = Heartbeat(study, interval=0.2, info={{"run_dir": {run!r}}}).start()
trial = study.ask()
claim(study, trial, beat.driver_id)
TrialRecord(candidate=Candidate.parse({victim!r}), role="search", network={key!r}).write(
    trial, only=["candidate", "role", "network"])
print(trial.number, flush=True)
time.sleep(600)  # "training": until SIGSTOP hangs it, heartbeat thread and all
"""


def test_a_hung_driver_is_waited_for_then_its_trial_retried(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Driver c holds a trial and beats while driver b trains the rest; c hangs (SIGSTOP) as b
    runs out of work. b does not exit: it waits out c's grace period, retries c's trial and
    only then exits, with results.csv and run.json agreeing on a study with nothing running."""
    import json
    import signal

    import pandas as pd

    monkeypatch.setenv("GCSEARCH_LIVENESS", "0.2,3")
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    storage = str(tmp_path / "shared.log")
    kw: dict[str, Any] = {
        "smoke": True,
        "progress": False,
        "export": False,
        "weights": False,
        "storage": storage,
        "executor": InlineExecutor(),
    }
    search(space.with_overrides(n_trials=1), tmp_path / "a", **kw)
    victim = space.candidates()[1]
    code = HUNG_DRIVER.format(
        tmp=str(tmp_path),
        storage=storage,
        run=str(tmp_path / "c"),
        victim=victim.id,
        key=network_key(victim, space.backbone, space.min_hidden),
    )
    hung = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    stopped = threading.Event()
    try:
        held = int(hung.stdout.readline())  # type: ignore[union-attr]
        reader, _ = open_storage(tmp_path, storage)
        study = optuna.load_study(study_name="tiny", storage=reader)
        rest = {c.id for c in space.candidates() + space.references()} - {victim.id}

        def hang_once_the_rest_is_trained() -> None:
            while not rest <= set(trained_per_candidate(study)):
                time.sleep(0.05)
            os.kill(hung.pid, signal.SIGSTOP)
            stopped.set()

        threading.Thread(target=hang_once_the_rest_is_trained, daemon=True).start()
        out = search(space, tmp_path / "b", resume=True, **kw)
    finally:
        hung.kill()  # SIGKILL ends a stopped process too
        hung.wait()
    assert stopped.is_set()  # c was alive while b trained, and hung before b exited
    study = optuna.load_study(study_name="tiny", storage=reader)
    left = TrialRecord.read(study.trials[held])
    assert study.trials[held].state == TrialState.FAIL and left.retryable
    assert "no heartbeat" in left.reason
    trained = trained_per_candidate(study)
    assert set(trained) == rest | {victim.id} and set(trained.values()) == {1}
    retry = next(
        rec
        for t in study.trials
        if (rec := TrialRecord.read(t)).candidate_id == victim.id and rec.trained
    )
    assert retry.retries[0]["retry_of"] == held
    assert out.counts["running"] == 0
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    rows = pd.read_csv(tmp_path / "b" / "results.csv")
    assert record["counts"] == out.counts and len(rows) == out.counts["trials"]
    assert not (rows["state"] == "running").any()


def test_the_best_block_is_exported_with_the_weights_another_driver_kept(
    tmp_path: Path,
) -> None:
    """Driver a trains every network and keeps the weights in its run directory; drivers b and
    c join the finished study from their own. b exports the best block with a's weights; c,
    once a's weights are gone, exports it without them and says so in one line."""
    import json

    storage = str(tmp_path / "shared.log")
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    kw: dict[str, Any] = {"smoke": True, "progress": False, "storage": storage}
    # the baseline fails (NaN), so a block leads the front whatever smoke training gives
    a = search(space, tmp_path / "a", executor=InlineExecutor(), faults={"none": "nan"}, **kw)
    assert (tmp_path / "a" / "best_block.pt").is_file()
    b = search(space, tmp_path / "b", resume=True, executor=InlineExecutor(), **kw)
    assert b.epochs_trained == 0 and not (tmp_path / "b" / "weights").exists()
    assert b.files["best_block"] == tmp_path / "b" / "best_block.py" and not b.notes
    assert (tmp_path / "b" / "best_block.pt").read_bytes() == (
        tmp_path / "a" / "best_block.pt"
    ).read_bytes()
    (tmp_path / "a" / "weights").rename(tmp_path / "a" / "moved")
    c = search(space, tmp_path / "c", resume=True, executor=InlineExecutor(), **kw)
    assert (tmp_path / "c" / "best_block.py").is_file()
    assert not (tmp_path / "c" / "best_block.pt").exists()
    assert len(c.notes) == 1 and c.notes[0].startswith("best_block.py exported without weights")
    assert str(tmp_path / "a" / "weights") in c.notes[0]
    record = json.loads((tmp_path / "c" / "run.json").read_text())
    assert record["notes"] == c.notes and record["counts"] == a.counts == c.counts
