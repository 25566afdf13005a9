"""What the user watches while a search runs: a progress bar over seed runs, time left, the
current front, and one line per finished trial that stays on screen.

On a terminal this is a rich ``Live`` panel redrawn a few times a second, with each finished
trial printed above it (so the lines remain when the panel closes); piped (CI logs,
``make demo > log``) it is one plain line per finished trial plus a status line every
``HEARTBEAT_S`` seconds. ``starting`` prints the first line before Ray starts, so a piped log
shows what is happening within a second.

The bar counts seed runs (one candidate trained under one seed: a Ray job): a study of N
candidates with S seeds has N x S of them; a run the rungs stop early is done when stopped.
Time left = remaining seed runs x the mean seed run's wall time so far (pruned runs included,
so pruning at the rungs lowers it), minus what the runs in flight have already done, over the
parallel slots.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from gcsearch.pareto import pareto_front
from gcsearch.search.space import objective
from gcsearch.units import si

#: Piped output: a status line at least this often (seconds) while trials run.
HEARTBEAT_S = 60.0


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Counts the driver updates; ``render`` turns them into the live panel.

    ``total`` counts candidates to train (each a trial of ``seeds`` seed runs); ``done``,
    ``pruned``, ``failed`` count finished trials; ``job_seconds`` holds the wall time of every
    seed run finished in this session.
    """

    title: str
    total: int
    parallel: int
    objectives: Sequence[str]
    seeds: int = 1
    max_epochs: int = 0
    rungs: Sequence[int] = ()
    start: float = field(default_factory=time.time)
    done: int = 0
    pruned: int = 0
    failed: int = 0
    duplicates: int = 0
    running: list[str] = field(default_factory=list)
    front: list[dict[str, Any]] = field(default_factory=list)
    job_seconds: list[float] = field(default_factory=list)
    last: str = ""
    jobs_before: int = 0  #: seed runs finished before this session (a resumed search)
    extra_jobs: int = 0  #: seeds added to reference rows (``[search] reference_ci``)
    _since: dict[str, float] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.done + self.pruned + self.failed

    @property
    def jobs_total(self) -> int:
        return max(1, self.total * max(1, self.seeds) + self.extra_jobs)

    @property
    def jobs_done(self) -> int:
        return min(self.jobs_total, self.jobs_before + len(self.job_seconds))

    def set_front(self, rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        """The current Pareto front of ``(candidate id, objective values)`` rows, best first
        on the first objective (unchanged when there are none)."""
        if not rows:
            return
        senses = [objective(o)[1] for o in self.objectives]
        names = list(self.objectives)
        table = [
            {"id": rows[i][0], **dict(zip(names, rows[i][1], strict=True))}
            for i in pareto_front([list(vals) for _, vals in rows], senses)
        ]
        first, sense = names[0], senses[0]
        self.front = sorted(table, key=lambda r: -r[first] if sense == "max" else r[first])

    def _ages(self, now: float) -> list[float]:
        """Seconds each running trial has been running (first seen by the display)."""
        for cid in self.running:
            self._since.setdefault(cid, now)
        for cid in list(self._since):
            if cid not in self.running:
                del self._since[cid]
        return [now - self._since[c] for c in self.running]

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left (None until a seed run has finished); see the module docstring."""
        if not self.job_seconds:
            return None
        now = time.time() if now is None else now
        mean = sum(self.job_seconds) / len(self.job_seconds)
        left = max(0, self.jobs_total - self.jobs_done)
        slots = max(1, self.parallel)
        ages = self._ages(now)
        in_flight = min(left, slots)
        credit = in_flight * min(sum(ages) / len(ages), mean) if ages else 0.0
        return max(0.0, left * mean - credit) / slots

    def summary(self) -> str:
        eta = self.eta()
        pruned = f"{self.pruned} pruned"
        if self.rungs:
            pruned += f" (rungs at epoch {', '.join(map(str, self.rungs))})"
        return (
            f"{self.done} complete, {len(self.running)} running, {pruned}, "
            f"{self.failed} failed, {self.duplicates} duplicates | "
            f"{self.jobs_done}/{self.jobs_total} seed runs | "
            f"elapsed {_clock(time.time() - self.start)}"
            + (f", about {_clock(eta)} left" if eta is not None else "")
        )

    def bar_text(self) -> str:
        eta = self.eta()
        left = f"~{_clock(eta)} left" if eta is not None else "time left after the first run"
        return (
            f"{self.jobs_done}/{self.jobs_total} seed runs ({self.total} candidates x "
            f"{self.seeds} seed{'s' if self.seeds != 1 else ''}) · {left}"
        )

    def render(self) -> Group:
        head = Text(f"gcsearch search: {self.title}", style="bold")
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=self.jobs_total, completed=self.jobs_done, width=40),
            Text(self.bar_text()),
        )
        table = Table(title="current Pareto front", title_justify="left", expand=False)
        table.add_column("candidate")
        for obj in self.objectives:
            table.add_column(obj, justify="right")
        for row in self.front[:10]:
            table.add_row(
                row["id"],
                *(
                    f"{row[o]:.2f}"
                    if o.startswith(("top1", "loss"))
                    else f"{row[o]:.3g}"
                    if o.startswith("latency")
                    else si(row[o])
                    for o in self.objectives
                ),
            )
        running = Text(
            "running: "
            + (", ".join(self.running[:6]) or "-")
            + (" ..." if len(self.running) > 6 else ""),
            style="dim",
        )
        parts: list[Any] = [head, bar, Text(self.summary()), running, table]
        return Group(*parts)


def starting(console: Console, text: str) -> float:
    """Print the run's first line at once (before Ray starts); returns the time printed."""
    console.print(f"gcsearch search: {text}", highlight=False, soft_wrap=True)
    return time.perf_counter()


class Display:
    """A live panel on a terminal, plain lines otherwise; finished trials print in both."""

    def __init__(
        self, progress: Progress, console: Console | None = None, enabled: bool = True
    ) -> None:
        self.progress = progress
        self.console = console or Console()
        self.enabled = enabled
        self.live: Live | None = None
        self._beat = time.time()

    def __enter__(self) -> Display:
        p = self.progress
        p.jobs_before = p.finished * max(1, p.seeds)  # a resumed search starts from its record
        if self.enabled and self.console.is_terminal:
            self.live = Live(p.render(), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        elif self.enabled:
            self.console.print(
                f"gcsearch search: {p.title}: {p.total} candidates x {p.seeds} "
                f"seed(s) on {p.parallel} slot(s)",
                highlight=False,
                soft_wrap=True,
            )
        return self

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.progress.render())
        elif self.enabled and time.time() - self._beat >= HEARTBEAT_S:
            self._beat = time.time()
            self.console.print(f"... {self.progress.summary()}", highlight=False, soft_wrap=True)

    def finished(self, line: str) -> None:
        """A trial has ended: one line that stays (above the live panel on a terminal)."""
        self.progress.last = line
        if self.enabled:
            p = self.progress
            self.console.print(
                f"[{p.finished}/{p.total}] {line}", highlight=False, soft_wrap=True, markup=False
            )
            self._beat = time.time()
        self.refresh()

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None
        if self.enabled:
            self.console.print(self.progress.summary(), highlight=False, soft_wrap=True)


__all__ = ["HEARTBEAT_S", "Display", "Progress", "starting"]
