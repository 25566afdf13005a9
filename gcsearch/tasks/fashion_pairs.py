"""A real-image long-range task: are the two garments at the two ends of a wide canvas of the
same Fashion-MNIST class?

Each image is a 1 x 16 x 64 canvas holding two Fashion-MNIST garments (Xiao et al., 2017,
https://arxiv.org/abs/1708.07747), each shrunk to 14 x 14 and jittered inside a 16 x 16 cell at
either end; the label is 1 when the two garments belong to the same class (half the images)
and 0 otherwise. It is the synthetic strip's same-different relation (``tasks/synthetic.py``)
on real objects: the attribute compared is a garment class, which must first be recognised.

Why it needs global context: the closest pixels of the two end cells are 33 columns apart,
while the theoretical receptive field of ResNet-8 (this task's backbone) is 25 pixels, so no
unit before the global average pool sees both garments (a gradient test checks it) and the
baseline's logits are a sum of a left and a right term, which cannot express "same class".
Plain ``fashion-mnist`` stays the local control, where context should matter little.

``fashion-pairs-distinct`` draws a different pair's second class outside the first's group of
look-alikes (``LOOK_ALIKE``: the four tops, the three kinds of shoe), as ``synthetic-distinct``
leaves out neighbouring hues: telling a shirt from a T-shirt is a local problem layered on top of
the long-range relation. Its recorded spread is in ``tasks/measured/``.

The garments of the training pairs come from a class-balanced pool of the training split, those
of the validation pairs from a disjoint pool (never trained on), those of ``--eval test`` from
the official test split. Data files as for ``fashion-mnist``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from gcsearch.errors import UserError
from gcsearch.tasks import Budget
from gcsearch.tasks.batches import TensorBatches, balanced_indices
from gcsearch.tasks.fashion_mnist import DEFAULT_DIR, HOW, load
from gcsearch.tasks.files import data_dir, held_loaders

HEIGHT, WIDTH, SIDE = 16, 64, 14
#: garments drawn from per pool: training pairs reuse the pool's garments in new pairings
POOL_TRAIN, POOL_VAL = 20000, 5000
_STREAMS = {"train": 0, "val": 1, "test": 2}


def end_cells(width: int = WIDTH) -> tuple[range, range]:
    """Columns of the left and right end cells the two garments are drawn in."""
    return range(0, HEIGHT), range(width - HEIGHT, width)


def shrink(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) garments -> float (N, 1, 14, 14) in [0, 255] (2 x 2 means)."""
    return F.avg_pool2d(images.float(), 2)


#: Fashion-MNIST classes that look alike: tops (T-shirt, pullover, coat, shirt) and footwear
#: (sandal, sneaker, ankle boot); trouser, dress and bag are groups of their own
LOOK_ALIKE = ((0, 2, 4, 6), (5, 7, 9))


def make_pairs(
    garments: torch.Tensor,
    labels: torch.Tensor,
    n: int,
    seed: int,
    width: int = WIDTH,
    *,
    apart: tuple[tuple[int, ...], ...] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` canvases (n, 1, 16, width) from ``garments`` (G, 1, 14, 14) and labels (1 = the
    two garments share a class, for half of them), fully determined by ``seed``. With
    ``apart`` (groups of class ids), the two classes of a different pair never share a group."""
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels).tolist()
    by_class = [(labels == c).nonzero().view(-1) for c in classes]
    if min(len(p) for p in by_class) < 2:
        raise UserError("fashion-pairs: every class needs two garments in the pool")
    k = len(classes)
    same = torch.randint(0, 2, (n,), generator=gen)
    cls_a = torch.randint(0, k, (n,), generator=gen)  # indices into ``classes``
    if apart:
        group = [next((g for g in apart if c in g), (c,)) for c in classes]
        others = [[j for j, o in enumerate(classes) if o not in group[i]] for i in range(k)]
        pick = torch.rand(n, generator=gen)
        cls_b = torch.tensor(
            [
                a if s else others[a][int(u * len(others[a]))]
                for a, s, u in zip(cls_a.tolist(), same.tolist(), pick.tolist(), strict=True)
            ]
        )
    else:
        step = torch.randint(1, k, (n,), generator=gen)
        cls_b = torch.where(same.bool(), cls_a, (cls_a + step) % k)
    sizes = torch.tensor([len(p) for p in by_class])
    ia = (torch.rand(n, generator=gen) * sizes[cls_a]).long()
    # the second garment of a same-class pair is another image of that class
    ib = (torch.rand(n, generator=gen) * (sizes[cls_b] - same)).long()
    ib = torch.where(same.bool() & (ib >= ia), ib + 1, ib)
    first = torch.stack([by_class[c][i] for c, i in zip(cls_a.tolist(), ia.tolist(), strict=True)])
    second = torch.stack([by_class[c][i] for c, i in zip(cls_b.tolist(), ib.tolist(), strict=True)])
    x = torch.zeros(n, 1, HEIGHT, width)
    offsets = torch.randint(0, HEIGHT - SIDE + 1, (n, 2, 2), generator=gen)
    for end, (idx, x0) in enumerate(((first, 0), (second, width - HEIGHT))):
        for r, c in torch.unique(offsets[:, end], dim=0).tolist():
            rows = ((offsets[:, end, 0] == r) & (offsets[:, end, 1] == c)).nonzero().view(-1)
            x[rows, :, r : r + SIDE, x0 + c : x0 + c + SIDE] = garments[idx[rows]]
    return x, same


@dataclass
class FashionPairs:
    """Same garment class at the two ends of a 16 x 64 canvas (see the module docstring)."""

    data: str | None = None
    name: str = "fashion-pairs"
    description: str = (
        "same Fashion-MNIST class at the two ends of a 16x64 canvas (needs global context; "
        "real images)"
    )
    num_classes: int = 2
    input_shape: tuple[int, int, int] = (1, HEIGHT, WIDTH)
    backbone: str = "resnet8"
    budget: Budget = field(
        default_factory=lambda: Budget(
            train_images=4000,
            val_images=5000,
            epochs=6,
            batch_size=64,
            lr=0.2,
            warmup_epochs=1.0,
        )
    )
    #: the canvases are float32 (2 x 2 means), held once, normalised per batch
    bytes_per_value: ClassVar[int] = 4
    #: groups of class ids a different pair never takes both classes from (none: any two)
    apart: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        self.folder = data_dir(self.data, DEFAULT_DIR, self.name, HOW)

    def shape_at(self, budget: Budget) -> tuple[int, int, int]:
        """Always the fixed canvas: ``image_size`` may only name it."""
        if budget.image_size not in (None, WIDTH, (HEIGHT, WIDTH)):
            raise UserError(
                f"budget.image_size: {budget.image_size!r} is not allowed (fashion-pairs has a "
                f"fixed {HEIGHT}x{WIDTH} canvas: leave it out, or give {WIDTH})"
            )
        return self.input_shape

    def loaders(self, seed: int, budget: Budget) -> tuple[TensorBatches, TensorBatches]:
        self.shape_at(budget)
        tr_x, tr_y, te_x, te_y = load(self.folder)
        pools = balanced_indices(tr_y, (POOL_TRAIN, POOL_VAL), budget.data_seed)
        g_train, y_train = shrink(tr_x[pools[0]]), tr_y[pools[0]]
        base = 1_000_003 * budget.data_seed
        x, y = make_pairs(
            g_train, y_train, budget.train_images, base + _STREAMS["train"], apart=self.apart
        )
        if budget.eval_split == "val":
            g_eval, y_src = shrink(tr_x[pools[1]]), tr_y[pools[1]]
            n_eval = budget.val_images
        else:
            if te_x is None or te_y is None:
                raise UserError("eval_split: no Fashion-MNIST test split found (use val)")
            g_eval, y_src, n_eval = shrink(te_x), te_y, 10_000
        xe, ye = make_pairs(
            g_eval, y_src, n_eval, base + _STREAMS[budget.eval_split], apart=self.apart
        )
        # generated canvases (2 x 2 means: not uint8), normalised per batch like held images
        return held_loaders((x, None, y), (xe, None, ye), seed, budget, self.input_shape[1:])

    def counts(self) -> tuple[int, int | None]:
        """Fashion-MNIST garments in the training and test splits (from the IDX headers)."""
        from gcsearch.tasks.fashion_mnist import FashionMNIST

        return FashionMNIST(data=self.data).counts()

    def summary(self) -> str:
        try:
            n_train, n_test = self.counts()
        except UserError as exc:
            return f"MISSING: {exc}"
        return (
            f"pairs of {POOL_TRAIN} train / {POOL_VAL} val garments (of {n_train}); "
            f"test: 10000 pairs of the {n_test} test garments"
        )


@dataclass
class FashionPairsApart(FashionPairs):
    """``fashion-pairs`` whose different pairs never take two look-alike classes (two tops, or
    two kinds of shoe; ``LOOK_ALIKE``): the real-image analogue of ``synthetic-distinct``."""

    name: str = "fashion-pairs-distinct"
    description: str = (
        "same Fashion-MNIST class, or two classes that do not look alike, at the two ends of a "
        "16x64 canvas (needs global context; real images)"
    )
    apart: tuple[tuple[int, ...], ...] = LOOK_ALIKE
