"""A real Ray cluster as the runners start one: `ray start --head` (dashboard on 127.0.0.1
only) plus a second `ray start --address` node on loopback, then `gcsearch search --smoke
--address` through it. Both Ray processes are this test's own and are stopped by pid (never
`ray stop`, which would stop every Ray on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "search"))
from _search_helpers import smoke_search_argv, tiny_space, trained_per_candidate  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(temp: Path, mode: bool = True) -> dict[str, str]:
    """This cluster's own token (as `ray start --head` on a machine with a token uses one);
    ``mode=False`` leaves RAY_AUTH_MODE unset, as a user's shell would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(RAY_AUTH_TOKEN_PATH=str(temp / "token"), RAY_USAGE_STATS_ENABLED="0")
    if mode:
        env["RAY_AUTH_MODE"] = "token"
    return env


def _ray(*args: str, temp: Path, log: str) -> subprocess.Popen:
    ray = Path(sys.executable).with_name("ray")
    return subprocess.Popen(
        [str(ray), "start", *args, "--block", "--disable-usage-stats"],
        stdout=(temp / log).open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=_env(temp),
    )


def _stop(proc: subprocess.Popen, marker: str) -> None:
    """SIGTERM the `ray start --block` process (it stops its node), then its process group,
    then anything left that names this test's own temp dir."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (pid_dir / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(pid_dir.name), signal.SIGKILL)


def _wait_nodes(address: str, n: int, temp: Path, timeout: float = 120) -> None:
    code = (
        "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
        "print(sum(bool(x['Alive']) for x in ray.nodes()))"
    )
    deadline = time.time() + timeout
    err = ""
    while time.time() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", code, address],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(temp),
        )
        if out.stdout.strip().endswith(str(n)):
            return
        err = out.stderr.strip().splitlines()[-1:] or err
        time.sleep(2)
    raise AssertionError(f"{n} Ray nodes not up at {address} after {timeout:.0f}s: {err}")


@pytest.fixture
def loopback_cluster() -> Iterator[tuple[str, int, Path]]:
    temp = Path(tempfile.mkdtemp(prefix="gcs-rs-", dir="/tmp"))  # short: socket path limit
    (temp / "token").write_text(secrets.token_hex(32))
    port, dash = _free_port(), _free_port()
    address = f"127.0.0.1:{port}"
    head = _ray(
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--temp-dir={temp}",
        temp=temp,
        log="head.out",
    )
    procs = [head]
    try:
        _wait_nodes(address, 1, temp)
        procs.append(
            _ray(
                f"--address={address}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=1",
                temp=temp,
                log="worker.out",
            )
        )
        _wait_nodes(address, 2, temp)
        yield address, dash, temp
    finally:
        for proc in reversed(procs):
            _stop(proc, str(temp))
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp*)."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:
                    out.add(
                        "loopback"
                        if addr
                        in ("0100007F", "0" * 24 + "0100007F", "00000000000000000000000001000000")
                        else addr
                    )
    return out


def test_search_through_address_on_a_ray_start_cluster(loopback_cluster, tmp_path: Path) -> None:
    address, dash, temp = loopback_cluster
    # the dashboard answers on 127.0.0.1 (to the cluster's token only) and listens nowhere else
    url = f"http://127.0.0.1:{dash}/api/version"
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(url, timeout=30)
    token = (temp / "token").read_text()
    ask = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(ask, timeout=30) as r:
        assert json.loads(r.read())["ray_version"]
    assert _listening(dash) == {"loopback"}, _listening(dash)

    space = tiny_space(tmp_path, sampler="grid", fidelity=False)
    run = tmp_path / "run"
    proc = subprocess.run(
        smoke_search_argv(space, run, "--address", address),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(temp, mode=False),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")
    trained = trained_per_candidate(study)
    assert len(trained) == 6 and set(trained.values()) == {1}
    nodes = {
        t.user_attrs["env"]["node"]
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }
    assert len(nodes) == 2, nodes  # trials ran on the head and on the worker
    record = json.loads((run / "run.json").read_text())
    assert record["cluster"]["nodes"] == 2 and record["cluster"]["address"] == address
