"""A search that cannot start says why in one line, in seconds, and leaves nothing that blocks
the rerun: a dead ``--address``, an interrupt before the first trial, SIGTERM while Ray starts,
a run directory whose name is long in bytes (Ray's socket paths)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from _search_helpers import ROOT, tiny_space

from gcsearch.errors import UserError
from gcsearch.launch import search
from gcsearch.search.local import InlineExecutor
from gcsearch.search.space import load_space

#: A hang guard for the subprocesses below (the bug was a 20-minute hang), not a speed check.
HANG_S = 180


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gcsearch(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "gcsearch", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_address_where_nothing_listens_is_one_line_and_leaves_no_study(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = _gcsearch(
        "search",
        "--space",
        str(tiny_space(tmp_path)),
        "--smoke",
        "--run-dir",
        str(run),
        "--address",
        f"127.0.0.1:{_free_port()}",
        cwd=tmp_path,
    )
    try:
        _, err = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"gcsearch search --address to a dead port still running after {HANG_S}s")
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcsearch search: error: --address"), err
    assert "nothing answers" in lines[0] and "allowed:" in lines[0]
    db = run / "study.db"
    assert not db.exists() or optuna.get_all_study_names(f"sqlite:///{db}") == []


def test_probe_address_names_the_allowed_values() -> None:
    from gcsearch.search.executor import probe_address

    with pytest.raises(UserError, match=r"not a port.*allowed: auto"):
        probe_address("127.0.0.1:http")
    probe_address("auto")  # left to Ray


def test_interrupt_before_the_first_trial_leaves_no_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or SIGTERM) while the costs are counted: the rerun starts without --resume."""
    import gcsearch.search.strategy as strategy

    space = load_space(tiny_space(tmp_path, fidelity=False))
    run = tmp_path / "run"
    real = strategy.space_costs

    def interrupted(*args: object, **kw: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(strategy, "space_costs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(space, run, smoke=True, executor=InlineExecutor(), progress=False, export=False)
    monkeypatch.setattr(strategy, "space_costs", real)
    out = search(space, run, smoke=True, executor=InlineExecutor(), progress=False, export=False)
    assert out.counts["complete"] >= 1


def test_failed_start_leaves_no_study_but_a_resumed_one_is_kept(tmp_path: Path) -> None:
    """Only the study this run created (and left empty) goes; a resumed one is kept."""

    class Broken(InlineExecutor):
        def describe(self) -> dict[str, object]:
            raise RuntimeError("executor broke")

    space = load_space(tiny_space(tmp_path, fidelity=False))
    run = tmp_path / "run"
    names = f"sqlite:///{run / 'study.db'}"
    kw = {"smoke": True, "progress": False, "export": False}
    with pytest.raises(RuntimeError):
        search(space, run, executor=Broken(), **kw)
    assert optuna.get_all_study_names(names) == []
    search(space, run, executor=InlineExecutor(), **kw)  # no --resume needed
    with pytest.raises(RuntimeError):
        search(space, run, resume=True, executor=Broken(), **kw)
    assert optuna.get_all_study_names(names) == ["tiny"]


def _ray_processes(marker: str) -> list[int]:
    """Pids of processes whose command line names ``marker`` (the run's Ray temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd and int(entry.name) != os.getpid():
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_sigterm_while_ray_starts_exits_with_a_line_and_no_ray_left(tmp_path: Path) -> None:
    from gcsearch.search.executor import short_temp_dir

    run = tmp_path / "run"
    run.mkdir()
    temp = str(short_temp_dir(run))  # where this run's Ray keeps its sockets and logs
    proc = _gcsearch(
        "search",
        "--space",
        str(tiny_space(tmp_path)),
        "--smoke",
        "--run-dir",
        str(run),
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the header line printed just before ray.init
            if "starting Ray" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "gcsearch search: interrupted", err
    assert "Traceback" not in err
    deadline = time.monotonic() + 60  # Ray's processes are stopped, not left to linger
    while _ray_processes(temp) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _ray_processes(temp)
    for pid in left:  # clean up before failing
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"Ray processes left running: {left}"
    assert optuna.get_all_study_names(f"sqlite:///{run / 'study.db'}") == []


def test_a_stopped_run_stops_and_joins_its_cost_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget and the cost count run on a thread while Ray starts; a run stopped there
    (SIGTERM, Ctrl-C) must not exit with that thread inside torch (the process aborts in
    torch's C++ teardown, seen as -6 on the SIGTERM test above in 3 of 8 runs before this
    join). The thread's budget waits for the stop, so the count starts after it, whatever
    the machine's load (unheld, a fast budget could count every network first)."""
    import threading

    from gcsearch.search import run as run_module
    from gcsearch.search.run import SearchConfig, _Prepared
    from gcsearch.search.strategy import space_costs

    space = load_space(tiny_space(tmp_path))
    assert space_costs(space, (3, 32, 32), 10, stop=lambda: True) == {}  # asked before each
    made: list[_Prepared] = []
    budget = run_module.resolve_budget

    def after_the_stop(*args: object, **kw: object) -> object:
        while not made:
            time.sleep(0.01)
        assert made[0].stop.wait(60)
        return budget(*args, **kw)

    monkeypatch.setattr(run_module, "resolve_budget", after_the_stop)
    config = SearchConfig(progress=False)
    with contextlib.ExitStack() as stack:
        made.append(_Prepared(space, config, stack))
        assert any(t.name == "gcsearch-prepare" for t in threading.enumerate())
    assert not [t for t in threading.enumerate() if t.name == "gcsearch-prepare"]
    assert "budget" in made[0].box  # the thread ran on past the stop ...
    assert not made[0].box.get("costs")  # ... and its count stopped before its first network


def test_ray_temp_dir_counts_bytes_not_characters(tmp_path: Path) -> None:
    """A run directory short in characters but long in bytes (multi-byte name) gets the short
    /tmp session directory: Ray's 107-byte socket limit counts bytes."""
    from gcsearch.search.executor import MAX_TEMP_DIR, short_temp_dir

    base = Path("/tmp") / f"gc-{os.getpid()}"
    name = "é" * (MAX_TEMP_DIR - len(str(base)) - len("//ray"))
    run = base / name
    assert len(str(run / "ray")) <= MAX_TEMP_DIR < len(os.fsencode(run / "ray"))
    try:
        run.mkdir(parents=True)
        temp = short_temp_dir(run)
        assert len(os.fsencode(temp)) <= MAX_TEMP_DIR
        assert temp != run / "ray"
    finally:
        import shutil

        if (run / "ray").is_symlink():
            (run / "ray").unlink()
        shutil.rmtree(base, ignore_errors=True)
        if "temp" in locals() and temp.parent == Path("/tmp"):
            shutil.rmtree(temp, ignore_errors=True)


def _killed_start(space_path: Path, run: Path) -> optuna.Study:
    """What a start killed with SIGKILL (no clean-up runs) leaves: a created, empty study."""
    from gcsearch.search.sampling import make_sampler
    from gcsearch.search.storage import open_storage, open_study

    space = load_space(space_path)
    store, where = open_storage(run, None)
    attrs = {"fingerprint": "killed"}
    return open_study(space, store, where, space.name, False, make_sampler(space, 1), attrs)


def test_a_killed_starts_empty_study_does_not_block_the_rerun(tmp_path: Path) -> None:
    path = tiny_space(tmp_path, fidelity=False)
    run = tmp_path / "run"
    _killed_start(path, run)
    out = search(
        load_space(path), run, smoke=True, executor=InlineExecutor(), progress=False, export=False
    )
    assert out.counts["complete"] >= 1


def test_an_empty_study_with_a_live_driver_is_kept(tmp_path: Path) -> None:
    """Another driver starting on the same study (its heartbeat alive) is not pre-empted."""
    from gcsearch.search.liveness import Heartbeat

    path = tiny_space(tmp_path, fidelity=False)
    run = tmp_path / "run"
    study = _killed_start(path, run)
    Heartbeat(study).beat()  # a live driver of this process
    with pytest.raises(UserError, match="already exists"):
        search(load_space(path), run, smoke=True, executor=InlineExecutor(), progress=False)
