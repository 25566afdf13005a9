"""A worker lost for good makes a failed, retryable row; the row that retries its candidate
names it, and the progress count never runs past the total ("[8/7]")."""

from __future__ import annotations

import io
import re
from pathlib import Path

from _search_helpers import tiny_space
from rich.console import Console

from gcsearch.launch import search
from gcsearch.result import TrialResult
from gcsearch.search.local import InlineExecutor
from gcsearch.search.record import TrialRecord
from gcsearch.search.space import load_space
from gcsearch.search.trial import Job


class LosesFirstWorker(InlineExecutor):
    """Answers the first job of ``victim`` as Ray does when its worker died on every retry."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim, self.lost = victim, False

    def wait(self, timeout: float) -> list[tuple[Job, TrialResult]]:
        if self._queue and self._queue[0].candidate_id == self.victim and not self.lost:
            job = self._queue.popleft()
            self.lost = True
            reason = "worker lost: WorkerCrashedError (after retries)"
            return [(job, TrialResult(job.candidate_id, job.seed, status="failed", reason=reason))]
        return super().wait(timeout)


def test_worker_lost_retry_links_to_the_failed_row_and_counts_stay_in_range(
    tmp_path: Path,
) -> None:
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    victim = space.candidates()[0].id
    buf = io.StringIO()
    out = search(
        space,
        tmp_path / "run",
        smoke=True,
        executor=LosesFirstWorker(victim),
        console=Console(file=buf, width=200),
        export=False,
    )
    rows = [(t, TrialRecord.read(t)) for t in out.study.get_trials(deepcopy=False)]
    mine = [(t, r) for t, r in rows if r.candidate_id == victim]
    failed = [t for t, r in mine if r.status == "failed"]
    assert len(failed) == 1 and TrialRecord.read(failed[0]).retryable
    retry = [r for t, r in mine if r.status == "complete"]
    assert len(retry) == 1
    assert retry[0].retries == [
        {"retry_of": failed[0].number, "reason": "worker lost: WorkerCrashedError (after retries)"}
    ]
    shown = [(int(a), int(b)) for a, b in re.findall(r"\[(\d+)/(\d+)\]", buf.getvalue())]
    assert shown and all(a <= b for a, b in shown), shown
    assert shown[-1][0] == shown[-1][1]  # and it ends at the total
