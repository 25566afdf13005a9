"""An installed copy works from any folder: shipped spaces by name, package data, extras."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gcsearch.errors import UserError
from gcsearch.search.space import load_space
from gcsearch.spaces import SPACES_DIR, resolve_space, shipped_spaces

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """The test's own checkout first on the path, as the tests themselves run."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p)}


def test_shipped_spaces_live_in_the_package() -> None:
    assert SPACES_DIR == ROOT / "gcsearch" / "spaces"
    assert {"quick", "gcnet-paper", "full", "bench-small"} <= set(shipped_spaces())
    for name in shipped_spaces():
        assert load_space(name).name  # every shipped space validates by its name


@pytest.mark.parametrize("text", ["quick", "quick.toml", "spaces/quick.toml"])
def test_a_name_finds_the_shipped_file_from_any_folder(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_space(text) == SPACES_DIR / "quick.toml"


def test_a_users_file_wins_over_a_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "quick.toml"
    own.write_text((SPACES_DIR / "quick.toml").read_text().replace('"quick"', '"mine"', 1))
    assert resolve_space("quick.toml") == Path("quick.toml")
    assert load_space("quick.toml").name == "mine"


def test_an_unknown_space_names_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"no such space file .*quick"):
        load_space("quik")
    with pytest.raises(UserError, match="no such space file"):
        load_space("some/dir/quick.toml")  # a real path is never silently replaced


def test_the_checkout_link_points_at_the_package_folder() -> None:
    assert (ROOT / "spaces").resolve() == SPACES_DIR
    assert (ROOT / "spaces" / "quick.toml").is_file()


def test_space_command_runs_from_a_folder_outside_the_checkout(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gcsearch", "space", "validate", "quick"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "quick: ok" in out.stdout


@pytest.mark.slow
def test_smoke_search_runs_from_a_folder_outside_the_checkout(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gcsearch",
            "search",
            "--space",
            "quick",
            "--smoke",
            "--n-trials",
            "1",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "runs" / "quick" / "study.db").is_file()
    assert (tmp_path / "runs" / "quick" / "results.csv").is_file()


def test_pyproject_packages_the_spaces_and_the_extras() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = meta["tool"]["setuptools"]["package-data"]
    assert "*.toml" in data["gcsearch.spaces"] and "py.typed" in data["gcsearch"]
    assert (ROOT / "gcsearch" / "py.typed").is_file()
    deps = meta["project"]["dependencies"]
    optuna = next(d for d in deps if d.startswith("optuna"))
    assert "<" not in optuna  # Optuna 5 allowed; private API is guarded by a test instead
    assert not any(d.startswith("scikit-learn") for d in deps)  # only the digits task needs it
    extras = meta["project"]["optional-dependencies"]
    assert any(d.startswith("ray[default]") for d in extras["cluster"])
    assert any(d.startswith("optuna-dashboard") for d in extras["dashboard"])
    assert any(d.startswith("timm") for d in extras["frameworks"])
    assert any(d.startswith("scikit-learn") for d in extras["tasks"])


@pytest.mark.slow
def test_a_built_wheel_holds_the_spaces(tmp_path: Path) -> None:
    import zipfile

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("gcsearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gcsearch/spaces/quick.toml" in names
    assert "gcsearch/py.typed" in names


def test_digits_without_scikit_learn_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from gcsearch.tasks import digits

    digits._digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    try:
        with pytest.raises(UserError, match=r"gcsearch\[tasks\]"):
            digits._digits()
    finally:
        digits._digits.cache_clear()


# ------------------------------------------------------------------------- the lock
LOCKED = ("torch", "torchvision", "optuna", "ray", "fvcore", "numpy", "pandas", "timm")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version
    return pins


def _versions_line() -> str:
    """The README's tested-versions line, made from constraints.txt and its header."""
    pins = _lock()
    header = (ROOT / "constraints.txt").read_text().splitlines()[1]
    where = header.split(", ", 1)[1].rstrip(".").replace(" Python", ", Python")
    return " · ".join(f"{n} {pins[n]}" for n in LOCKED) + f" ({where})"


def test_the_lock_pins_every_dependency_and_the_readme_says_which() -> None:
    """make test installs constraints.txt: every requirement of the dev install is pinned there,
    and the README's tested versions are the lock's (never typed by hand twice)."""
    pins = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    for req in wanted:
        name = req.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
        assert name in pins, f"{name} is not pinned in constraints.txt (make lock)"
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- tested-versions", 1)[1].split("<!-- /tested-versions -->")[0]
    assert block.splitlines()[1] == _versions_line()
    assert "constraints.txt" in (ROOT / "Makefile").read_text()


def test_the_command_runs_main_then_exits_with_its_code_and_the_collector_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The installed ``gcsearch`` command is ``cli.run``: ``main``'s exit code, with
    ``gc.freeze`` between them so the interpreter's last collections skip torch's and Ray's
    objects (``main`` alone, as the tests call it, never freezes)."""
    import gc
    from importlib.metadata import entry_points

    from gcsearch import cli

    (script,) = entry_points(group="console_scripts", name="gcsearch")
    assert script.value == "gcsearch.cli:run"
    calls: list[str] = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 3)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as stop:
        cli.run()
    assert stop.value.code == 3 and calls == ["main", "freeze"]
