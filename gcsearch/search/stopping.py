"""How a search is stopped: SIGTERM as Ctrl-C, and both held back while the search starts.

Python's imports are not safe against an exception raised by a signal handler: a
``KeyboardInterrupt`` delivered while the main thread is inside ``importlib`` can leave the
global import lock held, and a thread importing at that moment (the driver imports torch and
counts costs on a thread while Ray starts) then waits for it forever, and the run hangs instead
of stopping. Seen on ``tests/search/test_start_failures.py``'s SIGTERM test. So a stop asked
while the search starts is held and raised once the start is over (seconds); a second one
raises at once, for a start that hangs.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

#: what stops a search: Ctrl-C, and the SIGTERM of Slurm or ``kubectl delete``
STOPS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _handling(signals: tuple[signal.Signals, ...], handler: Any) -> Iterator[None]:
    """``handler`` for ``signals`` inside, the old handlers back on leaving; outside the main
    thread nothing is installed (only it receives signals), and a signal the process was
    started ignoring (``nohup``, a shell's ``&``) stays ignored, as Python leaves it."""
    try:
        old = {
            s: signal.signal(s, handler)
            for s in signals
            if signal.getsignal(s) is not signal.SIG_IGN
        }
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (Slurm, kubectl delete) stops the search like Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with _handling((signal.SIGTERM,), handler):
        yield


@contextlib.contextmanager
def stops_deferred(
    signals: tuple[signal.Signals, ...] = STOPS, force_on_second: bool = True
) -> Iterator[None]:
    """``signals`` received inside are held and raised as ``KeyboardInterrupt`` on leaving
    (the block runs to its end first); with ``force_on_second``, a second one raises at once.
    Outside the main thread nothing is held (only it receives signals)."""
    got: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        got.append(signum)
        if force_on_second and len(got) > 1:
            raise KeyboardInterrupt

    with _handling(signals, hold):
        yield
    if got:
        raise KeyboardInterrupt


__all__ = ["STOPS", "sigterm_as_interrupt", "stops_deferred"]
