"""Weights files a user can get wrong are one line in ``export`` and ``analyze nl``: empty,
truncated, corrupt, a key missing, weights that do not fit their own ``num_classes`` or input
shape, and a ``--task`` whose images the weights were not trained on."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from gcsearch.backbones import build_model, module_key
from gcsearch.checkpoint import checkpoint_name, save_checkpoint
from gcsearch.cli import main
from gcsearch.spec import Candidate
from gcsearch.tasks.train import TrialResult

NL = Candidate.parse("nl-embedded@after_1x1:c4")


def _save(
    path: Path,
    *,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    built_classes: int = 10,
    built_chans: int = 3,
) -> Path:
    """A checkpoint whose stated settings may differ from the network it holds."""
    model = build_model(NL, "resnet8", num_classes=built_classes, in_chans=built_chans)
    return save_checkpoint(
        path,
        model,
        NL,
        backbone="resnet8",
        min_hidden=8,
        num_classes=num_classes,
        input_shape=input_shape,
        meta={"task": "synthetic"},
    )


def _without_candidate(path: Path) -> None:
    data = torch.load(path, weights_only=True)
    del data["candidate"]
    torch.save(data, path)


def _bad_candidate(path: Path) -> None:
    data = torch.load(path, weights_only=True)
    data["candidate"] = '{"preset": "no-such-block"}'
    torch.save(data, path)


#: name -> what turns a good checkpoint at a path into a bad one
DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "random bytes": lambda p: p.write_bytes(os.urandom(4096)),
    "text": lambda p: p.write_text("not weights\n"),
    "no candidate key": _without_candidate,
    "unreadable candidate": _bad_candidate,
    "wrong num_classes": lambda p: _save(p, num_classes=7),
    "wrong input shape": lambda p: _save(p, input_shape=(1, 32, 32)),
    "malformed input shape": lambda p: _save(p, input_shape=(3, 32)),  # type: ignore[arg-type]
}


def _one_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"gcsearch {command}: error:") and "Traceback" not in err
    return err


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_analyze_nl_on_bad_weights_is_one_line(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save(tmp_path / "nl.pt")
    DAMAGE[damage](path)
    assert main(["analyze", "nl", str(path), "--images", "8"]) == 2
    assert str(path) in _one_line(capsys, "analyze")


def test_analyze_nl_with_a_task_the_weights_do_not_fit_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save(tmp_path / "nl.pt")  # 3x32x32 images (synthetic)
    assert main(["analyze", "nl", str(path), "--task", "digits", "--images", "8"]) == 2
    err = _one_line(capsys, "analyze")
    assert "--task digits" in err and "allowed: a task with 3-channel images" in err


def _run_with_weights(tmp_path: Path) -> tuple[Path, Path]:
    """A run directory with one complete trial of NL and its weights where the search keeps
    them; returns (run, weights)."""
    run = tmp_path / "run"
    run.mkdir()
    study = optuna.create_study(
        study_name="s",
        storage=f"sqlite:///{run / 'study.db'}",
        directions=["maximize", "minimize", "minimize"],
    )
    study.set_user_attr("objectives", ["top1:max", "macs:min", "params:min"])
    for key, value in (
        ("backbone", "resnet8"),
        ("task", "synthetic"),
        ("min_hidden", 8),
        ("input_shape", [3, 32, 32]),
    ):
        study.set_user_attr(key, value)
    results = [TrialResult(NL.id, s, top1=80.0 + s, epochs=2).to_dict() for s in (0, 1)]
    cost = {"params": 2000, "macs": 200_000, "block_params": 500, "block_macs": 50_000}
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            values=[80.5, 200_000.0, 2000.0],
            user_attrs={
                "candidate": NL.to_dict(),
                "candidate_id": NL.id,
                "results": results,
                "status": "complete",
                "reason": "",
                "cost": cost,
                "fidelity": {"epochs": 2, "max_epochs": 2, "rung": 0},
            },
        )
    )
    weights = run / "weights" / checkpoint_name(module_key(NL, "resnet8", 8))
    return run, _save(weights)


def test_export_with_good_weights_still_writes_them(tmp_path: Path) -> None:
    run, _ = _run_with_weights(tmp_path)
    assert main(["export", str(run), "--rank", "1", "-o", str(tmp_path / "b.py")]) == 0
    assert (tmp_path / "b.pt").is_file()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_export_on_bad_weights_is_one_line(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, weights = _run_with_weights(tmp_path)
    DAMAGE[damage](weights)
    out = tmp_path / "b.py"
    assert main(["export", str(run), "--rank", "1", "-o", str(out)]) == 2
    assert str(weights) in _one_line(capsys, "export")
    assert not out.exists() and not out.with_suffix(".pt").exists()  # nothing half written


def test_analyze_nl_json_under_a_file_fails_before_the_analysis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gcsearch.analysis.nl as nl

    def never(*args: object, **kw: object) -> None:
        raise AssertionError("the analysis ran before the output path was checked")

    monkeypatch.setattr(nl, "analyze", never)
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    argv = ["analyze", "nl", str(_save(tmp_path / "nl.pt")), "--json", str(blocker / "nl.json")]
    assert main(argv) == 2
    assert "--json" in _one_line(capsys, "analyze") and blocker.read_text() == "keep me"
