"""``gcsearch bench overhead``: the slot-time split adds up, and the command runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _search_helpers import tiny_space

from gcsearch.bench.overhead import IDLE, IDLE_PARTS, split


def test_the_parts_add_up_to_the_slot_time() -> None:
    results = [
        {
            "train_s": 2.0,
            "wall_s": 3.5,
            "history": [{"seconds": 1.4}, {"seconds": 1.6}],
            "env": {"job_wall_s": 5.0},
        },
        {"train_s": 1.0, "wall_s": 2.0, "history": [{"seconds": 1.5}], "env": {"job_wall_s": 2.5}},
    ]
    record = {"loop_s": 6.0, "ray_start_s": 1.0, "ray_shutdown_s": 0.5}
    parts = split(results, record, wall_s=10.0, slots=2)
    assert parts["training steps"] == 3.0
    assert parts["validation"] == pytest.approx(1.5)  # 4.5 s of epochs, 3 s of steps
    # the jobs' own walls sum to 7.5 s: 3 s of it outside their epochs
    assert parts["worker outside epochs (data, model, imports, hand-off)"] == pytest.approx(3.0)
    assert parts[IDLE] == pytest.approx(4.5)  # no job spans: one idle figure
    assert parts["Ray start and stop"] == pytest.approx(3.0)
    assert sum(parts.values()) == pytest.approx(20.0)
    # a promoted seed's history spans its rung run: the driver's job count is the wall
    with_rungs = split(results, {**record, "job_seconds": 9.5}, wall_s=10.0, slots=2)
    assert with_rungs[IDLE] == pytest.approx(2.5)


def test_the_idle_slot_time_is_split_by_where_it_falls() -> None:
    """Slot a waits 2 s for its worker, runs two jobs 0.1 s apart and ends 2 s before the loop;
    slot b waits 3 s and ends 1 s before: 5 s of start-up, 0.1 s between, 3 s of tail."""

    def job(worker: str, a: float, b: float) -> dict[str, object]:
        env = {"job_wall_s": b - a, "job_span": [a, b], "ray_worker": worker}
        return {"train_s": b - a, "history": [{"seconds": b - a}], "env": env}

    results = [job("a", 102.0, 105.0), job("a", 105.1, 108.0), job("b", 103.0, 109.0)]
    record = {"loop_s": 10.0, "loop_span": [100.0, 110.0], "ray_start_s": 1.0}
    parts = split(results, record, wall_s=12.0, slots=2)
    start, between, tail = (parts[k] for k in IDLE_PARTS)
    assert (start, between, tail) == (pytest.approx(5.0), pytest.approx(0.1), pytest.approx(3.0))
    assert IDLE not in parts and sum(parts.values()) == pytest.approx(24.0)
    # a worker replaced (more workers than slots) or a result without its span: one figure
    spare = split([*results, job("c", 109.0, 109.5)], record, wall_s=12.0, slots=2)
    assert IDLE in spare and not set(IDLE_PARTS) & set(spare)


@pytest.mark.slow
def test_bench_overhead_runs_a_real_search_and_its_plain_loop(tmp_path: Path) -> None:
    from gcsearch.cli import main

    space = tiny_space(tmp_path, sampler="grid", n_trials="1", fidelity=False)
    out = tmp_path / "o.json"
    assert main(["bench", "overhead", "--smoke", "--space", str(space), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["trainings"] >= 3 and 0 < figures["outside_share"] < 1
    assert figures["plain_loop"]["train_s"] > 0
