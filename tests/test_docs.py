"""Every figure in README.md and docs/*.md is its committed record's (docs/generate.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "generate.py"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_document_figure_matches_its_record() -> None:
    """`make docs` leaves nothing to change: what `python docs/generate.py --check` runs."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_figure_typed_over_its_record_is_named(generate: ModuleType) -> None:
    readme = (ROOT / "README.md").read_text()
    marker = "<!-- fig reports/quick.md Presets/gc/Δ vs baseline -->"
    assert marker in readme
    start = readme.index(marker) + len(marker)
    end = readme.index("<!-- /fig -->", start)
    typed = readme[:start] + "+99.99 ± 0.01" + readme[end:]
    fixed = generate.render(typed)
    assert fixed == readme
    (line,) = generate.differences(typed, fixed)
    assert "+99.99 ± 0.01" in line and "reports/quick.md" in line


def test_a_regenerated_table_is_checked_whole(generate: ModuleType) -> None:
    text = (ROOT / "docs" / "proxies.md").read_text()
    stale = text.replace("| `digits` | 1,000 × 8 |", "| `digits` | 2,000 × 8 |")
    assert stale != text
    assert generate.render(stale) == text
    assert [line.split(":")[0] for line in generate.differences(stale, text)] == ["table proxies"]


def test_a_marker_without_a_record_is_an_error(generate: ModuleType) -> None:
    with pytest.raises(generate.FigureError, match="no such committed file"):
        generate.render("<!-- fig reports/none.json a/b -->1<!-- /fig -->")
    with pytest.raises(generate.FigureError, match="no key"):
        generate.render(
            "<!-- fig gcsearch/tasks/measured/synthetic.json candidates/nope/std -->1<!-- /fig -->"
        )


def test_the_report_durations_are_the_records(generate: ModuleType) -> None:
    """The paper reports' spans are their own completion times (issue 19: not 46/30/19 min),
    the same two timestamps each report prints as "Trials ran from A to B"."""
    spans = {}
    for name in ("gcnet-paper", "gcnet-paper-pairs", "gcnet-paper-graded"):
        spans[name] = generate.figure(ROOT, f"reports/{name}.csv", "=span_min")
        line = next(
            x
            for x in (ROOT / "reports" / f"{name}.md").read_text().splitlines()
            if x.startswith("- Trials ran from ")
        )
        first, last = line.removeprefix("- Trials ran from ").split(" to ")
        minutes = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).seconds / 60
        assert spans[name] == f"{minutes:.1f}"
    assert list(spans.values()) == ["42.7", "70.3", "48.0"]


def test_the_count_leaves_generated_figures_out(generate: ModuleType) -> None:
    text = "a 28.5 s trial; <!-- fig x y -->29.58<!-- /fig --> and 0.33"
    assert generate.count(text) == (2, 1)
