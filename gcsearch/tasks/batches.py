"""In-memory mini-batches: the proxy data sets fit in memory, so a seeded permutation over
tensors already on the device replaces a ``DataLoader`` and its worker processes.

Images may be held as uint8 (a file task's decoded images, often a mapping shared by every
worker of the node) and normalised per batch on the device, or as float (generated tasks).
The order, the flips and the crop offsets are drawn by a generator on the data's device, so a
training step never waits on the host.

Also the helpers every file-backed task uses: a class-balanced subset of a split chosen by a
fixed seed, and per-channel statistics of the training images.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
import torch.nn.functional as F

#: zero padding of the random crop of ``augment='flip-crop'`` (pixels per side)
CROP_PAD = 2

#: per-channel (mean, std) of images scaled to [0, 1], each of shape (1, C, 1, 1)
Stats = tuple[torch.Tensor, torch.Tensor]

#: images per evaluation batch, unless the training batch is larger. Evaluation is per image (the
#: model is in eval mode), so the batch changes speed, not logits; on the 2-core CPU the demo
#: networks evaluate faster at 128 than at 256 (the batch's activations stay in cache):
#: ``gcsearch bench overhead``'s validation part (benchmarks/overhead-quick.json).
EVAL_BATCH = 128


def eval_batch(train_batch: int) -> int:
    """The evaluation batch of a task whose training batch is ``train_batch``."""
    return max(train_batch, EVAL_BATCH)


class TensorBatches:
    """Batches ``(x, y)``: float images (B, C, H, W), channels_last, and int64 labels (B,).

    ``x`` holds the images: float ones are yielded as they are; with ``stats`` (uint8 ones,
    usually) each batch is normalised on the device as ``(x / 255 - mean) / std`` and resized
    to ``size`` (H, W) when given. ``index`` picks the rows of ``x`` this set uses (``y`` is
    theirs), so a subset of a held array needs no copy of it on the host.

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
        index: torch.Tensor | None = None,
        stats: Stats | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        n = len(x) if index is None else len(index)
        if n != len(y):
            raise ValueError(f"{n} images but {len(y)} labels")
        # float data in torch's default dtype (float32 unless a test asks for float64 to compare
        # exactly); uint8 images stay uint8 and are normalised per batch
        self.x = x if stats is not None else x.to(torch.get_default_dtype())
        self.y, self.index, self.stats = y.long(), index, stats
        self.size = None if size is None or tuple(size) == tuple(x.shape[-2:]) else tuple(size)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed = seed
        self._gen = torch.Generator(device=x.device).manual_seed(seed)

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
        other.seed = seed
        other._gen = torch.Generator(device=self._gen.device).manual_seed(seed)
        return other

    def to(self, device: torch.device | str) -> TensorBatches:
        """Move the tensors (once, before the first pass) to ``device``.

        On the CPU a held uint8 array stays where it is (a mapping shared with the node's other
        workers; batches are gathered from it). On a GPU this set's rows are gathered into
        pinned memory and copied without blocking: one device copy per worker. Float images
        go over whole, in channels_last. The generator is re-seeded on the new device.
        """
        dev = torch.device(device)
        if self.stats is None:
            self.x = self.x.to(dev).contiguous(memory_format=torch.channels_last)
        elif dev != self.x.device:
            rows = self.x if self.index is None else self._gather_pinned(dev)
            self.x = rows.to(dev, non_blocking=True)
            self.index = None
        if self.stats is not None:
            self.stats = (self.stats[0].to(dev), self.stats[1].to(dev))
        self.y = self.y.to(dev, non_blocking=True)
        if self.index is not None:
            self.index = self.index.to(dev)
        if self._gen.device != dev:
            self._gen = torch.Generator(device=dev).manual_seed(self.seed)
        return self

    def _gather_pinned(self, dev: torch.device) -> torch.Tensor:
        """This set's rows of ``x`` in one host buffer (page-locked when bound for a GPU)."""
        assert self.index is not None
        pin = dev.type == "cuda" and torch.cuda.is_available()
        out = torch.empty((len(self.index), *self.x.shape[1:]), dtype=self.x.dtype, pin_memory=pin)
        return torch.index_select(self.x, 0, self.index, out=out)

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as yielded."""
        c, h, w = self.x.shape[1:]
        if self.size is not None:
            h, w = self.size
        return int(c), int(h), int(w)

    @property
    def n_images(self) -> int:
        """Images in this set."""
        return len(self.y)

    def __len__(self) -> int:
        n = self.n_images
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    @property
    def images_per_pass(self) -> int:
        return len(self) * self.batch_size if self.shuffle else self.n_images

    def images(self) -> torch.Tensor:
        """Every image of the set as yielded without augmentation (a float copy: for tests,
        analyses and the bare benchmark loop, never for training)."""
        return torch.cat([x for x, _ in self._ordered()]) if self.n_images else self.x[:0]

    def _ordered(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        for i in range(0, self.n_images, bs):
            rows = slice(i, i + bs) if self.index is None else self.index[i : i + bs]
            yield self._prepare(self.x[rows]), self.y[i : i + bs]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.shuffle:
            yield from self._ordered()
            return
        n, bs = self.n_images, self.batch_size
        order = torch.randperm(n, generator=self._gen, device=self.device)
        rows = order if self.index is None else self.index[order]
        for i in range(len(self)):
            idx = slice(i * bs, (i + 1) * bs)
            yield self._augment(self._prepare(self.x[rows[idx]])), self.y[order[idx]]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Held images -> normalised float (resized as asked), channels_last; float as given."""
        if self.stats is None:
            return x
        return normalise(x, self.stats, self.size).contiguous(memory_format=torch.channels_last)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.augment == "none":
            return x
        flip = torch.rand(len(x), generator=self._gen, device=x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if self.augment == "flip-crop":
            x = random_crop(x, CROP_PAD, self._gen)
        return x


def random_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``pad`` and crop back at a random offset per image, drawn by ``gen`` on
    ``x``'s device and applied by one gather: no value goes back to the host."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen, device=x.device)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels_last in memory


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


def channel_stats(x: torch.Tensor, index: torch.Tensor | None = None) -> Stats:
    """Per-channel mean and std (unbiased, at least 1e-3) of ``x[index]`` scaled to [0, 1]: the
    training images' statistics every split is normalised with.

    uint8 images are counted exactly (integer sums over chunks of rows: no float copy of the
    set), then rounded once to float32; float images (generated canvases) are reduced in
    float32 as a whole.
    """
    rows = torch.arange(len(x)) if index is None else index
    c = x.shape[1]
    if x.dtype != torch.uint8:
        ref = x[rows].float() / 255
        mean = ref.mean(dim=(0, 2, 3), keepdim=True)
        return mean, ref.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    total = torch.zeros(c, dtype=torch.int64)
    squares = torch.zeros(c, dtype=torch.int64)
    step = max(1, 2**18 // max(1, x[0].numel()))  # rows per chunk: ~1 MB of int32
    for i in range(0, len(rows), step):
        chunk = x[rows[i : i + step]].to(torch.int32)  # 255^2 fits; the sums are int64
        total += chunk.sum(dim=(0, 2, 3), dtype=torch.int64)
        squares += (chunk * chunk).sum(dim=(0, 2, 3), dtype=torch.int64)
    n = len(rows) * x.shape[2] * x.shape[3]
    sums = list(zip(total.tolist(), squares.tolist(), strict=True))
    mean = [s / (n * 255) for s, _ in sums]  # exact integers: one rounding each
    std = [((n * q - s * s) / (n * (n - 1) * 255**2)) ** 0.5 for s, q in sums]
    shape = (1, c, 1, 1)
    return (
        torch.tensor(mean, dtype=torch.float32).view(shape),
        torch.tensor(std, dtype=torch.float32).view(shape).clamp_min(1e-3),
    )


def normalise(x: torch.Tensor, stats: Stats, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Images (uint8, or float in [0, 255]) scaled with ``stats`` to zero mean and unit variance
    per channel, resized to ``size`` (H, W) when given (bilinear, antialiased)."""
    mean, std = stats
    # in place on one new float copy: the same values as (x / 255 - mean) / std, one transient
    out = x.to(torch.get_default_dtype(), copy=True).div_(255).sub_(mean).div_(std)
    if size is not None and tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out, size=size, mode="bilinear", antialias=True, align_corners=False)
    return out
