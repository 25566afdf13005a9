"""What the user watches while a search runs: counts, time, ETA and the current front.

On a terminal this is a rich ``Live`` panel redrawn a few times a second; piped (CI logs,
``make demo > log``) it becomes one plain line per finished trial.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Counts the driver updates; ``render`` turns them into the live panel."""

    title: str
    total: int
    parallel: int
    objectives: Sequence[str]
    start: float = field(default_factory=time.time)
    done: int = 0
    pruned: int = 0
    failed: int = 0
    duplicates: int = 0
    running: list[str] = field(default_factory=list)
    front: list[dict[str, Any]] = field(default_factory=list)
    job_seconds: list[float] = field(default_factory=list)
    last: str = ""

    def eta(self) -> float | None:
        """Remaining trials x mean job time / parallel (None until a job has finished)."""
        if not self.job_seconds:
            return None
        left = max(0, self.total - self.done - self.pruned - self.failed)
        mean = sum(self.job_seconds) / len(self.job_seconds)
        return left * mean / max(1, self.parallel)

    def summary(self) -> str:
        eta = self.eta()
        return (f"{self.done} done, {len(self.running)} running, {self.pruned} pruned, "
                f"{self.failed} failed, {self.duplicates} duplicates | {self.total} to train | "
                f"elapsed {_clock(time.time() - self.start)}"
                + (f", ETA {_clock(eta)}" if eta is not None else ""))

    def render(self) -> Group:
        head = Text(f"gcsearch search: {self.title}", style="bold")
        table = Table(title="current Pareto front", title_justify="left", expand=False)
        table.add_column("candidate")
        for obj in self.objectives:
            table.add_column(obj, justify="right")
        for row in self.front[:10]:
            table.add_row(row["id"], *(f"{row[o]:.2f}" if o.startswith(("top1", "loss"))
                                       else _si(row[o]) for o in self.objectives))
        running = Text("running: " + (", ".join(self.running[:6]) or "-")
                       + (" ..." if len(self.running) > 6 else ""), style="dim")
        parts: list[Any] = [head, Text(self.summary()), running]
        if self.last:
            parts.append(Text(f"last: {self.last}", style="dim"))
        parts.append(table)
        return Group(*parts)


class Display:
    """A live panel on a terminal, one line per finished trial otherwise."""

    def __init__(self, progress: Progress, console: Console | None = None,
                 enabled: bool = True) -> None:
        self.progress = progress
        self.console = console or Console()
        self.enabled = enabled
        self.live: Live | None = None

    def __enter__(self) -> Display:
        if self.enabled and self.console.is_terminal:
            self.live = Live(self.progress.render(), console=self.console,
                             refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.progress.render())

    def finished(self, line: str) -> None:
        """A trial has ended: note it (plain line when not live)."""
        self.progress.last = line
        if self.live is None and self.enabled:
            p = self.progress
            n = p.done + p.pruned + p.failed
            self.console.print(f"[{n}/{p.total}] {line}", highlight=False, soft_wrap=True)
        self.refresh()

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None
        if self.enabled:
            self.console.print(self.progress.summary(), highlight=False)


__all__ = ["Display", "Progress"]
