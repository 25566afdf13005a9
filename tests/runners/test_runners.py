"""The runners/ files checked against the tools that read them: Ray's own cluster-config
loader and schema, bash and shellcheck, YAML, pyproject's extras, and gcsearch's CLI parser
for the `gcsearch search --address ...` command each one ends in."""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from gcsearch.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = ROOT / "runners"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def search_commands(text: str) -> list[list[str]]:
    """Every ``gcsearch search ...`` command in a file, as argv with shell variables filled
    in (``"$X"`` -> ``1``; the script's optional-argument arrays dropped)."""
    text = re.sub(r"\\\n\s*", " ", text)  # join continuation lines
    text = re.sub(r'"\$\{\w+\[@\]\}"|\$X\b', " ", text)
    text = re.sub(r'"?\$\{?\w+\}?"?', "1", text)
    return [
        ["search", *shlex.split(m.group(1))]
        for m in re.finditer(r"gcsearch search( --[^\n&;\"']*)", text)
    ]


def check_search_command(path: Path) -> None:
    commands = search_commands(path.read_text())
    assert commands, f"{path.name}: no `gcsearch search` command"
    for argv in commands:
        args = build_parser().parse_args(argv)  # exits (SystemExit) on an unknown flag
        assert args.address, f"{path.name}: `{' '.join(argv)}` does not pass --address"
        if not args.space.isdigit():  # a literal space file must exist in the repository
            assert (ROOT / args.space).is_file(), f"{path.name}: no {args.space}"


# ------------------------------------------------------------------------- Ray cluster launcher
def test_ray_cluster_yaml_passes_rays_own_config_loader() -> None:
    """What `ray up` does before touching a machine: fill defaults, then validate against the
    installed Ray's ray-schema.json (unknown keys are errors there)."""
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError as exc:  # private API: fail loudly when Ray moves it
        pytest.fail(
            f"Ray moved its cluster-config loader (ray.autoscaler._private.util."
            f"prepare_config/validate_config): {exc}; update this test"
        )
    raw = yaml.safe_load((RUNNERS / "ray-cluster.yaml").read_text())
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    assert prepared["provider"]["type"] == "local"
    for key in raw:  # every key the file sets reaches the validated config
        assert key in prepared or key == "min_workers", key
    starts = " ".join(prepared["head_start_ray_commands"] + prepared["worker_start_ray_commands"])
    assert "ray start --head" in starts and "ray start --address" in starts
    setup = " ".join(prepared["setup_commands"])
    for extra in re.findall(r"gcsearch\[([\w,]+)\]", setup):
        assert set(extra.split(",")) <= set(PYPROJECT["project"]["optional-dependencies"])


def test_ray_cluster_yaml_with_an_unknown_key_is_refused() -> None:
    """The check above can fail: Ray's schema refuses a key it does not know."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((RUNNERS / "ray-cluster.yaml").read_text())
    raw["head_start_ray_command"] = ["a typo of head_start_ray_commands"]
    with pytest.raises(Exception, match="head_start_ray_command"):
        validate_config(prepare_config(raw))


def test_ray_cluster_yaml_ends_in_a_search_through_address() -> None:
    check_search_command(RUNNERS / "ray-cluster.yaml")


# ------------------------------------------------------------------------- Slurm
@pytest.mark.parametrize(
    "script", ["runners/slurm.sbatch", "benchmarks/gpu_check.sh", ".ci/test-deps.sh"]
)
def test_shell_scripts_parse_and_pass_shellcheck(script: str) -> None:
    path = ROOT / script
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (Debian: apt-get install shellcheck); bash -n passed")
    proc = subprocess.run(["shellcheck", "-s", "bash", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_slurm_script_ends_in_a_search_through_address() -> None:
    check_search_command(RUNNERS / "slurm.sbatch")


def test_slurm_directives_are_known() -> None:
    directives = re.findall(r"^#SBATCH --([\w-]+)", (RUNNERS / "slurm.sbatch").read_text(), re.M)
    known = {
        "job-name",
        "nodes",
        "ntasks-per-node",
        "cpus-per-task",
        "gpus-per-node",
        "mem",
        "time",
        "signal",
        "requeue",
        "output",
        "error",
        "partition",
        "account",
    }
    assert directives and set(directives) <= known, set(directives) - known


# ------------------------------------------------------------------------- KubeRay
def _kuberay() -> list[dict]:
    return [d for d in yaml.safe_load_all((RUNNERS / "kuberay.yaml").read_text()) if d]


def test_kuberay_manifests_parse_and_name_the_image_the_dockerfile_builds() -> None:
    docs = _kuberay()
    assert {d["kind"] for d in docs} == {"PersistentVolumeClaim", "RayJob"}
    job = next(d for d in docs if d["kind"] == "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    images = {c["image"] for p in pods for c in p["template"]["spec"]["containers"]}
    assert len(images) == 1, images  # head and workers run the same image
    dockerfile = (RUNNERS / "Dockerfile").read_text()
    assert f"-t {images.pop()} " in dockerfile  # the build command tags exactly that image
    ray_version = re.search(r"ARG RAY_VERSION=([\d.]+)", dockerfile).group(1)
    assert cluster["rayVersion"] == ray_version
    extras = re.findall(r'"\.\[([\w,]+)\]"', dockerfile)
    assert extras and set(extras[0].split(",")) <= set(
        PYPROJECT["project"]["optional-dependencies"]
    )
    from packaging.specifiers import SpecifierSet

    ray_req = next(r for r in PYPROJECT["project"]["dependencies"] if r.startswith("ray"))
    assert ray_version in SpecifierSet(ray_req.removeprefix("ray")), (ray_version, ray_req)
    for src in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ROOT / src).exists(), src
    # the PVC the head mounts is the one the file declares
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    volumes = cluster["headGroupSpec"]["template"]["spec"]["volumes"]
    assert any(v["persistentVolumeClaim"]["claimName"] == claim for v in volumes)


def test_kuberay_entrypoint_ends_in_a_search_through_address() -> None:
    check_search_command(RUNNERS / "kuberay.yaml")
    job = next(d for d in _kuberay() if d["kind"] == "RayJob")
    commands = search_commands(job["spec"]["entrypoint"])
    assert [build_parser().parse_args(c).address for c in commands] == ["auto"]


@pytest.mark.parametrize(
    "text, flags",
    [
        (
            'gcsearch search --space s.toml --run-dir "$R" \\\n  --address "$A" "${extra[@]}" &',
            ["--space", "s.toml", "--run-dir", "1", "--address", "1"],
        ),
        (
            "x && gcsearch search --space s.toml --address auto && y",
            ["--space", "s.toml", "--address", "auto"],
        ),
    ],
)
def test_search_command_extraction(text: str, flags: list[str]) -> None:
    assert search_commands(text) == [["search", *flags]]


def test_rays_token_helper_is_where_the_executor_imports_it() -> None:
    """executor._enable_auth_token relies on this private Ray helper (Ray >= 2.5x)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError as exc:
        pytest.fail(
            f"Ray moved maybe_enable_token_auth_if_token_available ({exc}): update "
            "gcsearch/search/executor.py:_enable_auth_token"
        )
    assert callable(maybe_enable_token_auth_if_token_available)
