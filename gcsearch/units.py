"""One way to print a count (MACs, parameters): ``si(23_500_000) == "23.5M"``, used by the live
display, the reports, the verdict lines and the plots alike."""

from __future__ import annotations

import math
from typing import Any


def si(value: Any) -> str:
    """``value`` with a K/M/G suffix and three significant digits; "–" for None or NaN."""
    if value is None:
        return "–"
    v = float(value)
    if math.isnan(v):
        return "–"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}" if abs(v) / scale < 100 else f"{v / scale:.0f}{unit}"
    return f"{v:.0f}"


__all__ = ["si"]
