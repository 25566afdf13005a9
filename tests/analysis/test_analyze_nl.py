"""GCNet Table 1 distances on hand-made maps, on a hand-set NL block, and end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gcsearch.analysis.nl import (
    block_stats,
    jsd,
    mean_pairwise_cosine_distance,
    mean_pairwise_jsd,
    nl_blocks,
)
from gcsearch.blocks.nonlocal_ import NonLocal2d
from gcsearch.cli import main


def test_identical_maps_are_at_distance_zero() -> None:
    row = torch.softmax(torch.randn(10), 0)
    attn = row.expand(1, 10, 10).clone()  # every query attends the same way
    assert mean_pairwise_jsd(attn).item() == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_cosine_distance(attn).item() == pytest.approx(0.0, abs=1e-12)


def test_disjoint_one_hot_maps_reach_the_maximum() -> None:
    """Query i attends only to position i: JSD = ln 2 nats (1 bit), cosine distance 1."""
    attn = torch.eye(6).unsqueeze(0)
    assert jsd(attn[0, 0], attn[0, 1]).item() == pytest.approx(math.log(2))
    assert mean_pairwise_jsd(attn).item() == pytest.approx(math.log(2))
    assert mean_pairwise_cosine_distance(attn).item() == pytest.approx(1.0)


def test_maps_with_negative_weights_have_no_jsd() -> None:
    """dot/concat affinities can be negative: not distributions, so no JSD for that image
    (the other images of the batch keep theirs)."""
    good = torch.softmax(torch.randn(5, 5), -1)
    bad = good.clone()
    bad[2, 3] = -0.1
    out = mean_pairwise_jsd(torch.stack([good, bad]))
    assert math.isfinite(out[0].item()) and math.isnan(out[1].item())


def test_sampled_pairs_above_the_exact_limit() -> None:
    n = 100  # above EXACT_UP_TO: random query pairs, still ln 2 for one-hot rows
    assert mean_pairwise_jsd(torch.eye(n).unsqueeze(0)).item() == pytest.approx(math.log(2))


def test_cosine_distance_matches_brute_force() -> None:
    v = torch.randn(2, 7, 5)
    brute = []
    for b in range(2):
        d = [
            1 - torch.cosine_similarity(v[b, i], v[b, j], dim=0).item()
            for i in range(7)
            for j in range(7)
            if i != j
        ]
        brute.append(sum(d) / len(d))
    assert mean_pairwise_cosine_distance(v).tolist() == pytest.approx(brute)


def test_query_independent_block_scores_zero_on_attention_and_output() -> None:
    """theta = 0 makes embedded-Gaussian attention uniform for every query (the GCNet finding
    made exact): attention and output distances vanish while the inputs still differ."""
    torch.manual_seed(0)
    block = NonLocal2d(8, "embedded")
    torch.nn.init.zeros_(block.theta.weight)
    torch.nn.init.zeros_(block.theta.bias)
    torch.nn.init.ones_(block.norm.weight)  # a non-zero output
    model = torch.nn.Sequential(block).eval()
    [row] = block_stats(model, [torch.randn(4, 8, 3, 5)])
    assert row["positions"] == 15 and row["images"] == 4
    assert row["input"] > 0.5
    assert row["attention"] == pytest.approx(0.0, abs=1e-6)
    assert row["jsd"] == pytest.approx(0.0, abs=1e-9)
    assert row["output"] == pytest.approx(0.0, abs=1e-5)


def test_query_dependent_block_scores_above_zero() -> None:
    torch.manual_seed(0)
    block = NonLocal2d(8, "gaussian")
    torch.nn.init.ones_(block.norm.weight)
    [row] = block_stats(torch.nn.Sequential(block), [torch.randn(2, 8, 4, 4) * 3])
    assert row["attention"] > 0.1 and row["jsd"] > 0.05 and row["output"] > 0.01


def test_train_save_then_analyze_nl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gcsearch train ... --save` writes a checkpoint that `gcsearch analyze nl` reads."""
    weights = tmp_path / "run" / "weights" / "nl.pt"
    code = main(
        [
            "train",
            "nl-embedded@after_1x1:c4",
            "--task",
            "digits",
            "--train-images",
            "128",
            "--val-images",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--seeds",
            "0,1",
            "--device",
            "cpu",
            "--save",
            str(weights),
        ]
    )
    assert code == 0 and weights.is_file()
    assert not list(weights.parent.glob(".*tmp"))  # the other seed's file is gone
    out_json = tmp_path / "nl.json"
    code = main(["analyze", "nl", str(tmp_path / "run"), "--images", "16", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0 and "cos input" in out and "nl-embedded" in out
    assert out_json.is_file()


def test_analyze_nl_without_nl_blocks_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcsearch.backbones import build_model
    from gcsearch.checkpoint import save_checkpoint
    from gcsearch.spec import Candidate

    cand = Candidate.parse("gc")
    model = build_model(cand, "resnet8", num_classes=10, in_chans=1)
    assert nl_blocks(model) == []
    path = save_checkpoint(
        tmp_path / "gc.pt",
        model,
        cand,
        backbone="resnet8",
        min_hidden=8,
        num_classes=10,
        input_shape=(1, 8, 8),
        meta={"task": "digits"},
    )
    assert main(["analyze", "nl", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Non-local block" in err
    assert main(["analyze", "nl", str(tmp_path / "missing")]) == 2
