"""Trained weights with what it takes to rebuild their network: one file, read back safely.

A checkpoint is a plain dict saved with ``torch.save``: the model's ``state_dict`` plus the
candidate spec and the build settings (backbone, ``min_hidden``, classes, input shape, task,
seed, top-1). It holds only tensors, strings and numbers, so ``torch.load(weights_only=True)``
reads it without running any pickled code. The search writes one per complete candidate (the
best seed) under ``<run>/weights/``; ``gcsearch export`` and ``gcsearch analyze nl`` read them.

Example:
    >>> ckpt = load_checkpoint("runs/demo/weights/gc@after_1x1:c3c4c5.pt")  # doctest: +SKIP
    >>> model = ckpt.build()  # the trained network, eval mode
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from errno import EIO
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gcsearch.errors import UserError
from gcsearch.spec import Candidate

__all__ = ["FORMAT", "Checkpoint", "checkpoint_name", "load_checkpoint", "save_checkpoint"]

#: Bumped when the layout of the saved dict changes; readers refuse other versions.
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A trained network's weights and the settings that rebuild it."""

    candidate: Candidate
    state_dict: Mapping[str, torch.Tensor]
    backbone: str
    min_hidden: int
    num_classes: int
    input_shape: tuple[int, int, int]
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = "checkpoint"  #: where it was read from, for error lines

    def build(self) -> nn.Module:
        """The network with these weights loaded (strict), in eval mode; weights that do not
        fit the network their own settings describe are a one-line ``UserError``."""
        from gcsearch.backbones import build_model

        try:
            model = build_model(
                self.candidate,
                self.backbone,
                num_classes=self.num_classes,
                in_chans=self.input_shape[0],
                min_hidden=self.min_hidden,
            )
        except (UserError, KeyError, ValueError) as exc:
            raise UserError(
                f"{self.source}: cannot build {self.candidate.id} on "
                f"{self.backbone} ({_first_line(exc)})"
            ) from None
        try:
            model.load_state_dict(dict(self.state_dict), strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:  # shapes, keys, non-tensors
            raise UserError(
                f"{self.source}: its weights do not fit {self.candidate.id} on {self.backbone} "
                f"with {self.num_classes} classes and {_shape(self.input_shape)} inputs "
                f"({_first_line(exc)}); allowed: a file written by `gcsearch search` or "
                "`gcsearch train --save`, unchanged"
            ) from None
        return model.eval()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:2])
    return f"{type(exc).__name__}: {text[:240]}" if text else type(exc).__name__


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def checkpoint_name(key: str) -> str:
    """A file name for a candidate or network key (``:``, ``@`` and ``/`` are kept out)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key) + ".pt"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    candidate: Candidate,
    *,
    backbone: str,
    min_hidden: int,
    num_classes: int,
    input_shape: tuple[int, int, int],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights (on CPU, contiguous) with its build settings to ``path``.

    A failed write (disk full, read-only folder) raises ``OSError`` naming ``path`` and leaves
    no partial file (``save_atomic``): torch's own path writer would report a full disk only as
    "unexpected pos 704 vs 598", so the payload goes through a Python file object, whose
    errors keep errno.
    """
    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "candidate": candidate.to_json(),
        "backbone": backbone,
        "min_hidden": int(min_hidden),
        "num_classes": int(num_classes),
        "input_shape": [int(d) for d in input_shape],
        "meta": {k: v for k, v in (meta or {}).items() if isinstance(v, str | int | float)},
        "state_dict": state,
    }
    return save_atomic(payload, path)


def save_atomic(payload: Any, path: str | Path) -> Path:
    """``torch.save`` of ``payload`` to ``path`` through a temporary file, replaced in one
    step: a failed write (disk full, read-only folder) raises ``OSError`` naming ``path`` and
    leaves no partial file, and a kill leaves the old file or none."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as file:
            torch.save(payload, file)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file
            code = exc.errno or next((a for a in exc.args[:1] if isinstance(a, int)), EIO)
            raise OSError(code, os.strerror(code), str(path)) from exc
        raise
    return path


#: Keys every checkpoint holds (besides ``format`` and the optional ``meta``).
_KEYS = ("candidate", "state_dict", "backbone", "min_hidden", "num_classes", "input_shape")
_ALLOWED = "allowed: a file written by `gcsearch search` or `gcsearch train --save`"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` (``weights_only=True``).

    Anything else (empty, truncated, foreign, or with a key missing or malformed) is a
    one-line ``UserError`` naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file (the search writes them in <run>/weights/)")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file, not a gcsearch weights file ({_ALLOWED})")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: one line, not a traceback
        raise UserError(
            f"{path}: not a gcsearch weights file, truncated or corrupt "
            f"({type(exc).__name__}; {_ALLOWED})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a gcsearch weights file of format {FORMAT} ({_ALLOWED})")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise UserError(
            f"{path}: gcsearch weights without {', '.join(map(repr, missing))} ({_ALLOWED})"
        )
    try:
        candidate = Candidate.from_json(data["candidate"])
    except Exception as exc:  # SpecError, JSON or type errors: the stored spec is unreadable
        raise UserError(
            f"{path}: its 'candidate' is not a candidate spec ({_first_line(exc)}; {_ALLOWED})"
        ) from None
    try:
        shape = tuple(int(d) for d in data["input_shape"])
        num_classes, min_hidden = int(data["num_classes"]), int(data["min_hidden"])
        meta = dict(data.get("meta") or {})
        if len(shape) != 3 or min(shape) < 1 or num_classes < 1 or min_hidden < 1:
            raise ValueError(
                f"input_shape {list(shape)}, num_classes {num_classes}, min_hidden {min_hidden}"
            )
        if not isinstance(data["state_dict"], Mapping) or not all(
            isinstance(v, torch.Tensor) for v in data["state_dict"].values()
        ):
            raise ValueError("state_dict is not a mapping of tensors")
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"{path}: malformed gcsearch weights ({_first_line(exc)}; {_ALLOWED})"
        ) from None
    return Checkpoint(
        candidate=candidate,
        state_dict=data["state_dict"],
        backbone=str(data["backbone"]),
        min_hidden=min_hidden,
        num_classes=num_classes,
        input_shape=shape,  # type: ignore[arg-type]
        meta=meta,
        source=str(path),
    )
