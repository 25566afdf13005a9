"""A stop asked while a search starts is held until the start is over (an interrupt inside an
import can leave Python's import lock held and hang a thread importing beside it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from gcsearch.search.stopping import sigterm_as_interrupt, stops_deferred


@pytest.fixture(autouse=True)
def _ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C as an interactive Python has it, whatever the process was started with (a
    shell's ``&`` starts the test run with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_held_stop_is_raised_once_the_block_is_over() -> None:
    ran_to_the_end = False
    with pytest.raises(KeyboardInterrupt), stops_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        ran_to_the_end = True
    assert ran_to_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_stop_the_process_ignores_stays_ignored() -> None:
    """A search started under ``nohup`` or ``&`` ignores Ctrl-C; holding stops must not turn
    it back on (and must leave it ignored afterwards)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with stops_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing held, nothing raised
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_second_stop_raises_at_once_unless_told_to_hold() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), stops_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append(1)
        os.kill(os.getpid(), signal.SIGINT)
        reached.append(2)  # not reached: the second stop forces
    assert reached == [1]
    with pytest.raises(KeyboardInterrupt), stops_deferred((signal.SIGTERM,), False):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append(3)
    assert reached == [1, 3]


def test_sigterm_stops_like_ctrl_c_and_nothing_held_leaves_quietly() -> None:
    with stops_deferred():
        pass  # no stop asked: no exception
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
