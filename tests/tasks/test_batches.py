from __future__ import annotations

import pytest
import torch

from gcsearch.tasks.batches import TensorBatches, balanced_indices, channel_stats, normalise


def test_balanced_indices_disjoint_balanced_and_seeded() -> None:
    labels = torch.arange(10).repeat(20)  # 10 classes x 20
    train, val = balanced_indices(labels, (50, 30), seed=0)
    again = balanced_indices(labels, (50, 30), seed=0)
    assert torch.equal(train, again[0]) and torch.equal(val, again[1])
    assert not set(train.tolist()) & set(val.tolist())
    assert torch.bincount(labels[train], minlength=10).tolist() == [5] * 10
    assert not torch.equal(train, balanced_indices(labels, (50, 30), seed=1)[0])
    with pytest.raises(ValueError, match="class"):
        balanced_indices(labels, (200, 10), seed=0)


@pytest.mark.parametrize("augment", ["none", "flip", "flip-crop"])
def test_batches_shapes_and_determinism(augment: str) -> None:
    x, y = torch.randn(70, 3, 8, 8), torch.arange(70) % 7

    def passes(seed: int) -> list[torch.Tensor]:
        tb = TensorBatches(x, y, 16, shuffle=True, seed=seed, augment=augment)
        return [xb for _ in range(2) for xb, _ in tb]

    a, b = passes(0), passes(0)
    assert len(a) == 8 and all(t.shape == (16, 3, 8, 8) for t in a)  # drop_last: 4 per pass
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[4])  # a new permutation every pass
    ev = TensorBatches(x, y, 16)
    assert sum(len(yb) for _, yb in ev) == 70 and len(ev) == 5


def test_normalise_uses_reference_statistics_and_resizes() -> None:
    ref = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    other = torch.randint(0, 128, (20, 3, 8, 8), dtype=torch.uint8)
    out = normalise(ref, channel_stats(ref))
    assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-4
    assert normalise(other, channel_stats(ref)).mean() < -0.5  # the reference's statistics
    assert normalise(ref, channel_stats(ref), (16, 16)).shape == (20, 3, 16, 16)
