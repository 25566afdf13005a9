"""``gcsearch bench asks`` and the screened ehvi ask it measures."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from gcsearch.bench import asks
from gcsearch.cli import main
from gcsearch.search import strategy as strat
from gcsearch.search.gains import Gains


def _driver(n: int, told: int, seed: int) -> tuple[asks.SynthDriver, asks.SynthEHVI, dict]:
    cands, costs, top1 = asks.synthetic_space(n, seed=seed)
    drv = asks.SynthDriver(cands)
    for c in random.Random(seed).sample(cands, told):
        drv.tell(c, top1[c.id])
    return drv, asks.SynthEHVI(5, 10, costs, seed), top1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screened_ask_proposes_what_the_exhaustive_ask_proposes(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    drv, s, top1 = _driver(1500, 40, seed)
    by_id = {c.id: c for c in drv.candidates}
    for _ in range(3):
        monkeypatch.setattr(strat, "SCREEN_ABOVE", 10**9)
        exhaustive = s.propose(drv).id
        monkeypatch.setattr(strat, "SCREEN_ABOVE", 0)
        screened = s.propose(drv).id
        assert screened == exhaustive
        drv.tell(by_id[screened], top1[screened])


def test_sliced_gains_and_bounds_match_the_exact_gains(monkeypatch: pytest.MonkeyPatch) -> None:
    drv, s, _ = _driver(800, 50, 3)
    seen: dict[str, np.ndarray] = {}

    def spy(self: Gains, keys: list[str], rows: np.ndarray) -> list[float]:
        (gp,) = self.models.values()
        mu, sd = gp.predict(self.s._feat[rows].astype(float))
        seen["sliced"] = self._sliced(rows, (mu, sd))
        seen["exact"] = np.array(
            [self.exact(k, {"top1": (mu[i], sd[i])}) for i, k in enumerate(keys)]
        )
        seen["bound"] = self._bounds(rows)
        return seen["exact"].tolist()

    monkeypatch.setattr(strat, "SCREEN_ABOVE", 0)
    monkeypatch.setattr(Gains, "screened", spy)
    s.propose(drv)
    assert seen["exact"].max() > 0
    np.testing.assert_allclose(seen["sliced"], seen["exact"], rtol=0, atol=1e-12)
    assert (seen["bound"] >= seen["exact"] - 1e-12).all()


def test_a_pool_network_is_encoded_once_across_asks() -> None:
    drv, s, top1 = _driver(600, 20, 4)
    calls = 0
    encode = s.encode

    def counting(cand: asks.SynthCandidate) -> list[float]:
        nonlocal calls
        calls += 1
        return encode(cand)

    s.encode = counting  # type: ignore[method-assign]
    c = s.propose(drv)
    first = calls
    drv.tell(c, top1[c.id])
    s.propose(drv)
    assert first >= 600 - 21  # the pool, and the told networks
    assert calls - first <= 22  # the told networks again; the pool came from the cache


def test_cli_smoke_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "asks.json"
    assert main(["bench", "asks", "--smoke", "--exact-up-to", "1000", "--out", str(out)]) == 0
    fig = json.loads(out.read_text())
    (row,) = fig["sizes"].values()
    assert row["candidates"] == 600 and row["same_as_exact"] is True
    assert row["peak_mib"] > 0 and len(row["ask_s"]) == 2
