"""Watching a run: the seed-run progress bar and its time left, lines that stay on screen, a
first line before Ray starts, and a status line every so often when piped."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from gcsearch.search import display as display_mod
from gcsearch.search.display import Display, Progress, starting


def _progress(**kw: object) -> Progress:
    base: dict[str, object] = {
        "title": "t",
        "total": 4,
        "parallel": 2,
        "objectives": ["top1:max", "macs:min"],
        "seeds": 2,
    }
    return Progress(**{**base, **kw})  # type: ignore[arg-type]


def test_time_left_counts_seed_runs_and_credits_runs_in_flight() -> None:
    p = _progress(start=0.0)
    assert p.eta(now=0.0) is None and p.jobs_total == 8
    p.job_seconds = [10.0, 10.0]  # one candidate's two seeds done
    p.done = 1
    p.running = ["b"]
    assert p.eta(now=100.0) == pytest.approx(6 * 10.0 / 2)  # b just seen: nothing done yet
    assert p.eta(now=104.0) == pytest.approx((6 * 10.0 - 2 * 4.0) / 2)
    assert p.jobs_done == 2


def test_time_left_at_the_end_is_what_the_last_runs_still_need() -> None:
    p = _progress(total=2, seeds=1, job_seconds=[30.0], done=1, running=["last"])
    p.eta(now=50.0)  # first seen at 50 s
    assert p.eta(now=74.0) == pytest.approx((30.0 - 24.0) / 2)
    assert p.eta(now=200.0) == 0.0  # overdue: never negative


def test_a_resumed_search_starts_from_its_finished_runs() -> None:
    p = _progress(done=2, pruned=1)
    with Display(p, console=Console(file=io.StringIO()), enabled=True):
        assert p.jobs_before == 6 and p.jobs_done == 6


def test_rendered_panel_has_a_bar_counting_seed_runs() -> None:
    p = _progress(rungs=(3,), job_seconds=[5.0], pruned=1)
    console = Console(file=io.StringIO(), width=140, force_terminal=True)
    console.print(p.render())
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "1/8 seed runs (4 candidates x 2 seeds)" in text and "left" in text
    assert "rungs at epoch 3" in text and "━" in text  # the bar


@pytest.mark.parametrize("terminal", [True, False])
def test_finished_trial_lines_stay_on_screen(terminal: bool) -> None:
    out = io.StringIO()
    console = Console(file=out, width=140, force_terminal=terminal)
    p = _progress()
    with Display(p, console=console) as d:
        p.done = 1
        d.finished("att-r16ln-add@after_1x1:c4 complete (top1 84.20, 4/4 epochs)")
    text = out.getvalue()
    assert "[1/4] att-r16ln-add@after_1x1:c4 complete (top1 84.20" in text
    assert "1 complete" in text.splitlines()[-1]  # the summary after the panel closed


def test_piped_output_prints_a_status_line_every_so_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(display_mod, "HEARTBEAT_S", 0.0)
    out = io.StringIO()
    with Display(_progress(), console=Console(file=out, force_terminal=False)) as d:
        d.refresh()
    assert "... 0 complete, 0 running" in out.getvalue()


def test_starting_prints_at_once() -> None:
    out = io.StringIO()
    starting(Console(file=out), "quick: 20 trials; starting Ray (local)")
    assert out.getvalue().startswith("gcsearch search: quick: 20 trials; starting Ray")


def test_search_prints_its_first_line_before_the_executor_runs(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _search_helpers import tiny_space

    from gcsearch.launch import search
    from gcsearch.search.local import InlineExecutor
    from gcsearch.search.space import load_space

    class Watched(InlineExecutor):
        def submit(self, job):  # type: ignore[no-untyped-def]
            seen.append(out.getvalue())
            super().submit(job)

    seen: list[str] = []
    out = io.StringIO()
    space = load_space(tiny_space(tmp_path)).with_overrides(n_trials=1)
    search(
        space,
        tmp_path / "run",
        smoke=True,
        executor=Watched(parallel=1),
        export=False,
        console=Console(file=out, width=160, force_terminal=False),
    )
    assert seen and seen[0].startswith("gcsearch search: tiny: 1 trials x 1 seed(s)")
    assert "[1/" in out.getvalue() and "seed runs" in out.getvalue()
