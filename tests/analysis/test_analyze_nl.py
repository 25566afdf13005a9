"""GCNet Table 1 distances on hand-made maps, on a hand-set NL block, and end to end."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from gcsearch.analysis.nl import (
    block_stats,
    jsd,
    mean_pairwise_cosine_distance,
    mean_pairwise_jsd,
    nl_blocks,
    zero_rows,
)
from gcsearch.blocks.nonlocal_ import NonLocal2d
from gcsearch.cli import main


def test_identical_maps_are_at_distance_zero() -> None:
    row = torch.softmax(torch.randn(10), 0)
    attn = row.expand(1, 10, 10).clone()  # every query attends the same way
    assert mean_pairwise_jsd(attn).item() == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_cosine_distance(attn).item() == pytest.approx(0.0, abs=1e-12)


def test_disjoint_one_hot_maps_reach_the_maximum() -> None:
    """Query i attends only to position i: JSD ln 2 nats and cosine distance (1 - 0)/2 for
    every pair i != j; the paper averages over all N² pairs, the N pairs i = j at 0."""
    attn = torch.eye(6).unsqueeze(0)
    assert jsd(attn[0, 0], attn[0, 1]).item() == pytest.approx(math.log(2))
    assert mean_pairwise_jsd(attn).item() == pytest.approx(5 / 6 * math.log(2))
    assert mean_pairwise_cosine_distance(attn).item() == pytest.approx(5 / 6 * 0.5)


def test_distances_match_scipy_over_all_pairs() -> None:
    """avg_dist = (1/N²) Σ_i Σ_j d(v_i, v_j) with scipy's cosine distance / 2 and scipy's
    Jensen-Shannon distance squared (natural log)."""
    from scipy.spatial.distance import cdist, jensenshannon

    v = torch.randn(2, 7, 5)
    ref = [cdist(v[b].numpy(), v[b].numpy(), "cosine").mean() / 2 for b in range(2)]
    assert mean_pairwise_cosine_distance(v).tolist() == pytest.approx(ref)
    p = torch.softmax(torch.randn(1, 7, 7), -1)
    js = [
        [jensenshannon(p[0, i].numpy(), p[0, j].numpy()) ** 2 for j in range(7)] for i in range(7)
    ]
    assert mean_pairwise_jsd(p).item() == pytest.approx(float(torch.tensor(js).mean()))


def test_all_zero_rows_are_left_out_and_counted() -> None:
    """A query-independent map with half its rows all zero: the non-zero rows agree, so the
    distance is 0 (it was 0.80 when a zero row counted as distance 1); the zero share is
    reported by block_stats, and the JSD of such a map is n/a (a zero row is no
    distribution)."""
    row = torch.softmax(torch.randn(8), 0)
    attn = row.expand(1, 8, 8).clone()
    attn[0, ::2] = 0
    assert zero_rows(attn).sum().item() == 4
    assert mean_pairwise_cosine_distance(attn).item() == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(mean_pairwise_jsd(attn).item())
    one = torch.zeros(1, 4, 3)
    one[0, 0, 0] = 1.0  # one non-zero row: no pair, no distance
    assert math.isnan(mean_pairwise_cosine_distance(one).item())


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
    expected = (n - 1) / n * math.log(2)
    assert mean_pairwise_jsd(torch.eye(n).unsqueeze(0)).item() == pytest.approx(expected)


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
    assert row["input"] > 0.25  # (1 - cos)/2 of random vectors: ~0.5 minus the i = j pairs
    assert row["attention"] == pytest.approx(0.0, abs=1e-6)
    assert row["jsd"] == pytest.approx(0.0, abs=1e-9)
    assert row["output"] == pytest.approx(0.0, abs=1e-5)
    assert not row["inert"] and row["definition"] == "gcnet-table1"


def test_a_block_whose_output_ignores_its_input_is_inert() -> None:
    """The last BatchNorm's scale at its zero init: the block adds its bias everywhere, so the
    output distance is ~0 whatever the attention does. Reported as inert, not as evidence."""
    torch.manual_seed(0)
    block = NonLocal2d(8, "concat")
    torch.nn.init.normal_(block.norm.bias)  # a constant, non-zero output
    [row] = block_stats(torch.nn.Sequential(block).eval(), [torch.randn(4, 8, 3, 5)])
    assert row["inert"] and row["output_spread"] < 1e-6
    assert row["output"] == pytest.approx(0.0, abs=1e-9)
    torch.nn.init.ones_(block.norm.weight)
    for m in block.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight)  # far from the 0.01 init: a live block
    [live] = block_stats(torch.nn.Sequential(block).eval(), [torch.randn(4, 8, 3, 5)])
    assert not live["inert"] and live["output_spread"] > 1e-3


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
    assert code == 0 and "attn" in out and "nl-embedded" in out
    assert "fewer than 3 models: no interval, no verdict" in out and "on this proxy" in out
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


def test_three_models_per_instantiation_give_intervals_and_a_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three checkpoints of one NL candidate in seed sub-folders: analyze nl pools them into
    means with intervals (a second copy of one seed counts once), and the report's verdict
    reads the JSON (on this proxy)."""
    from gcsearch.backbones import build_model
    from gcsearch.checkpoint import save_checkpoint
    from gcsearch.report.nl_summary import nl_evidence
    from gcsearch.spec import Candidate

    cand = Candidate.parse("nl-embedded@after_1x1:c4")
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model(cand, "resnet8", num_classes=10, in_chans=1)
        for m in model.modules():
            if isinstance(m, NonLocal2d):
                torch.nn.init.ones_(m.norm.weight)  # a live block
        save_checkpoint(
            tmp_path / "nl" / f"seed{seed}" / "nl.pt",
            model,
            cand,
            backbone="resnet8",
            min_hidden=8,
            num_classes=10,
            input_shape=(1, 8, 8),
            meta={"task": "digits", "seed": seed},
        )
    # the run's best-seed copy beside the seed folders (as a search keeps an NL row) counts once
    shutil.copyfile(tmp_path / "nl" / "seed1" / "nl.pt", tmp_path / "nl" / "best.pt")
    out_json = tmp_path / "nl.json"
    code = main(["analyze", "nl", str(tmp_path / "nl"), "--images", "16", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0 and "3 live of 3 models" in out and "±" in out
    import json

    rows = json.loads(out_json.read_text())
    assert sorted(r["seed"] for r in rows) == [0, 1, 1, 2]
    verdict, text, nums, p, direction = nl_evidence(rows)
    assert verdict == "" and nums["tested"] == 1 and math.isfinite(p) and direction in (1, -1)
    assert "on this proxy (digits" in text


def test_a_search_keeps_every_seed_of_an_nl_row_and_one_of_the_others(tmp_path: Path) -> None:
    """The run's weights keeper: an ``nl-*`` row keeps each seed's checkpoint (analyze nl
    averages over them) and a copy of the best; any other row keeps only its best seed; the
    end-of-search sweep removes other seed files (a pairs run lost its NL seeds to it)."""
    from gcsearch.checkpoint import checkpoint_name
    from gcsearch.search.run import WeightsKeeper, drop_seed_files
    from gcsearch.search.trial import seed_weights_path

    weights = tmp_path / "weights"
    keep = WeightsKeeper(tmp_path, weights)
    for cid, key in (("nl-dot@after_add:c4:last", "nl"), ("gc@after_1x1:c3c4c5", "gc")):
        results = [{"candidate_id": cid, "seed": s, "top1": 50.0 + s % 2} for s in range(3)]
        for r in results:
            path = seed_weights_path(weights, cid, int(r["seed"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{cid} seed {r['seed']}")
        assert keep(key, results) == f"weights/{checkpoint_name(key)}"
        assert (weights / checkpoint_name(key)).read_text() == f"{cid} seed 1"
        left = [seed_weights_path(weights, cid, s).is_file() for s in range(3)]
        assert left == ([True] * 3 if key == "nl" else [False] * 3)
    # the search's end-of-run sweep of seed folders spares what the keeper kept, and only that
    stray = seed_weights_path(weights, "se@after_1x1:c3c4c5", 0)  # a candidate that failed
    stray.write_text("unfinished")
    drop_seed_files(weights, keep.kept)
    assert not stray.exists()
    nl_seeds = [seed_weights_path(weights, "nl-dot@after_add:c4:last", s) for s in range(3)]
    assert all(p.is_file() for p in nl_seeds)
