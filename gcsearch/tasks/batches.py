"""In-memory mini-batches: the proxy data sets fit in memory, so a seeded permutation over
tensors already on the device replaces a ``DataLoader`` and its worker processes.

Also the two helpers every file-backed task uses: a class-balanced subset of a split chosen by
a fixed seed, and per-channel normalisation with statistics of the training images.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F

#: zero padding of the random crop of ``augment='flip-crop'`` (pixels per side)
CROP_PAD = 2


class TensorBatches:
    """Batches ``(x, y)`` of float images (N, C, H, W) and int64 labels (N,).

    With ``shuffle`` each pass draws a new permutation from a generator seeded once with
    ``seed``, so the order is the same on every run, and drops the last incomplete batch
    (BatchNorm statistics of a 3-image batch are noise). Without it, batches keep the stored
    order and the last one may be short (evaluation sees every image).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        augment: str = "none",
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        # torch's default dtype (float32 unless a test asks for float64 to compare exactly)
        self.x, self.y = x.to(torch.get_default_dtype()), y.long()
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self._gen = torch.Generator().manual_seed(seed)

    def rng_state(self) -> torch.Tensor:
        """The shuffling generator's state: where the next pass's order comes from."""
        return self._gen.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        """Continue the pass orders of a run that stopped (``rng_state`` of that run)."""
        self._gen.set_state(state)

    def reseeded(self, seed: int) -> TensorBatches:
        """The same images (shared, not copied) in the pass order of ``seed``: what a task's
        ``loaders(seed, budget)`` gives, since the training data depends on ``data_seed`` only
        and ``seed`` seeds the order alone (several seeds fused, ``tasks.fused``)."""
        other = copy.copy(self)
        other._gen = torch.Generator().manual_seed(seed)
        return other

    def to(self, device: torch.device | str) -> TensorBatches:
        """Move the tensors (once) to ``device``, images in channels_last."""
        self.x = self.x.to(device).contiguous(memory_format=torch.channels_last)
        self.y = self.y.to(device)
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    @property
    def images_per_pass(self) -> int:
        return len(self) * self.batch_size if self.shuffle else len(self.x)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.x), self.batch_size
        if not self.shuffle:
            for i in range(0, n, bs):
                yield self.x[i : i + bs], self.y[i : i + bs]
            return
        order = torch.randperm(n, generator=self._gen).to(self.x.device)
        for i in range(len(self)):
            idx = order[i * bs : (i + 1) * bs]
            yield self._augment(self.x[idx]), self.y[idx]

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.augment == "none":
            return x
        flip = torch.rand(len(x), generator=self._gen).to(x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.augment == "flip-crop":
            x = _random_crop(x, CROP_PAD, self._gen)
        return x


def _random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop back at a random offset per image (grouped by offset)."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=gen)
    out = torch.empty_like(x)
    for dy, dx in torch.unique(offsets, dim=0).tolist():
        rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().view(-1).to(x.device)
        out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


def balanced_indices(
    labels: torch.Tensor, counts: tuple[int, ...], seed: int
) -> tuple[torch.Tensor, ...]:
    """Disjoint class-balanced index sets of the given sizes, drawn with a fixed ``seed``.

    Each set takes ``n // classes`` images of every class (the remainder from the first
    classes); the sets never share an image, so a validation set held out this way is unseen.
    """
    classes = torch.unique(labels)
    gen = torch.Generator().manual_seed(seed)
    pools = [(labels == c).nonzero().view(-1) for c in classes.tolist()]
    pools = [p[torch.randperm(len(p), generator=gen)] for p in pools]
    taken = [0] * len(pools)
    out = []
    for n in counts:
        picks = []
        for k, pool in enumerate(pools):
            want = n // len(pools) + (1 if k < n % len(pools) else 0)
            if taken[k] + want > len(pool):
                raise ValueError(
                    f"class {classes[k].item()} has {len(pool)} images, "
                    f"{taken[k] + want} needed for splits of {counts}"
                )
            picks.append(pool[taken[k] : taken[k] + want])
            taken[k] += want
        chosen = torch.cat(picks)
        out.append(chosen[torch.randperm(len(chosen), generator=gen)])
    return tuple(out)


def normalise(
    x: torch.Tensor, reference: torch.Tensor, size: int | tuple[int, int] | None = None
) -> torch.Tensor:
    """Scale uint8 images to zero mean and unit variance per channel (statistics of
    ``reference``, the training images), resized to ``size`` (S x S, or (H, W)) when given."""
    ref = reference.float() / 255
    mean = ref.mean(dim=(0, 2, 3), keepdim=True)
    std = ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    out = (x.float() / 255 - mean) / std
    hw = (size, size) if isinstance(size, int) else None if size is None else tuple(size)
    if hw is not None and tuple(out.shape[-2:]) != hw:
        out = F.interpolate(out, size=hw, mode="bilinear", antialias=True, align_corners=False)
    return out
