"""Checkpoints: a trained network round-trips through one weights-only file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gcsearch.backbones import build_model
from gcsearch.checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from gcsearch.errors import UserError
from gcsearch.spec import Candidate


def test_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    cand = Candidate.parse("att-r16ln-add@after_1x1:c4")
    torch.manual_seed(0)
    model = build_model(cand, "resnet8", num_classes=2, min_hidden=2).eval()
    with torch.no_grad():  # make the zero-initialised last conv non-zero, so the test can fail
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(
        tmp_path / "w" / checkpoint_name(cand.id),
        model,
        cand,
        backbone="resnet8",
        min_hidden=2,
        num_classes=2,
        input_shape=(3, 8, 48),
        meta={"seed": 3, "top1": 91.5, "ignored": [1, 2]},
    )
    ckpt = load_checkpoint(path)
    assert ckpt.candidate == cand and ckpt.min_hidden == 2
    assert ckpt.meta == {"seed": 3, "top1": 91.5}
    x = torch.randn(2, 3, 8, 48)
    with torch.no_grad():
        assert torch.equal(ckpt.build()(x), model(x))


def test_name_is_a_plain_file_name() -> None:
    assert checkpoint_name("gc@after_1x1:c3c4c5") == "gc_after_1x1_c3c4c5.pt"


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff" * 10, b"not a zip"])
def test_garbage_is_one_user_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a gcsearch weights file"):
        load_checkpoint(path)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such weights file"):
        load_checkpoint(tmp_path / "nope.pt")
