"""Proxy fidelity on hand-made tables: rank agreement, bootstrap intervals, front overlap."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcsearch.analysis.fidelity import fidelity
from gcsearch.cli import main
from gcsearch.errors import UserError


def table(low: dict[str, list[float]], high: dict[str, list[float]], macs=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows = []
    for level, values in (("low", low), ("high", high)):
        for cand, tops in values.items():
            for seed, top1 in enumerate(tops):
                row = {"candidate": cand, "seed": seed, "budget": level, "top1": top1}
                if macs:
                    row["macs"] = macs[cand]
                rows.append(row)
    return pd.DataFrame(rows)


HIGH = {"a": [90, 91, 92], "b": [80, 81, 82], "c": [70, 71, 72], "d": [60, 61, 62]}


def test_same_order_gives_tau_one_with_a_tight_interval() -> None:
    low = {k: [v - 20 for v in vs] for k, vs in HIGH.items()}
    res = fidelity(table(low, HIGH), bootstrap=200)
    assert res["kendall_tau"] == pytest.approx(1.0) and res["spearman_rho"] == pytest.approx(1.0)
    assert res["kendall_tau_ci"] == pytest.approx([1.0, 1.0])
    assert res["n_candidates"] == 4 and res["seeds"] == [0, 1, 2]


def test_reversed_order_gives_tau_minus_one() -> None:
    low = {"a": [60, 61, 62], "b": [70, 71, 72], "c": [80, 81, 82], "d": [90, 91, 92]}
    res = fidelity(table(low, HIGH), bootstrap=100)
    assert res["kendall_tau"] == pytest.approx(-1.0) and res["spearman_rho"] == pytest.approx(-1.0)


def test_seed_noise_widens_the_jackknife_interval() -> None:
    """a and b swap places when seed 0 or seed 2 is left out at the low budget: the
    leave-one-out τ are 2/3, 1, 2/3, so se = sqrt(2/3 · 6/81) = 2/9 and the interval is
    1 ± t(0.975, 2) · 2/9, clipped at 1."""
    low = {"a": [85, 70, 86], "b": [75, 84, 74], "c": [60, 61, 62], "d": [50, 51, 52]}
    res = fidelity(table(low, HIGH), bootstrap=500)
    lo, hi = res["kendall_tau_ci"]
    assert res["kendall_tau"] == pytest.approx(1.0)  # on the means, a still beats b
    from scipy.stats import t as student_t

    half = student_t.ppf(0.975, 2) * 2 / 9
    assert lo == pytest.approx(1 - half, rel=1e-9) and hi == pytest.approx(1.0)
    assert "jackknife over 3 seeds" in res["interval"]
    assert "kendall_tau_bootstrap_ci" not in res  # under-covers at 3 seeds: not given


def test_two_seeds_are_too_few_for_an_interval(capsys: pytest.CaptureFixture[str]) -> None:
    low = {k: [v - 20 for v in vs[:2]] for k, vs in HIGH.items()}
    res = fidelity(table(low, {k: vs[:2] for k, vs in HIGH.items()}), bootstrap=50)
    assert all(math.isnan(x) for x in res["kendall_tau_ci"])
    assert res["no_interval"] == "too few seeds for an interval (< 3)"
    from gcsearch.report.verdicts import fidelity_text

    assert "(too few seeds for an interval (< 3))" in fidelity_text(res)[0]


def test_tau_b_and_rho_match_scipy_with_ties() -> None:
    from scipy.stats import kendalltau, spearmanr

    from gcsearch.analysis.fidelity import kendall_tau_b, spearman_rho

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, (3, 9)).astype(float), rng.integers(0, 4, (3, 9)).astype(float)
    for xi, yi, t, r in zip(x, y, kendall_tau_b(x, y), spearman_rho(x, y), strict=True):
        assert t == pytest.approx(kendalltau(xi, yi).statistic)
        assert r == pytest.approx(spearmanr(xi, yi).statistic)


def test_bootstrap_for_comparison_from_six_seeds() -> None:
    high = {k: [v + s for s in range(6)] for k, v in {"a": 90, "b": 80, "c": 70, "d": 60}.items()}
    low = {k: [v - 20 for v in vs] for k, vs in high.items()}
    res = fidelity(table(low, high), bootstrap=50)
    assert res["kendall_tau_bootstrap_ci"] == pytest.approx([1.0, 1.0]) and res["bootstrap"] == 50


def test_front_overlap_counts_high_front_members_kept() -> None:
    macs = {"a": 30, "b": 20, "c": 10, "d": 40}  # high front: a, b, c (d dominated by a)
    low = {"a": [50, 50, 50], "b": [60, 60, 60], "c": [40, 40, 40], "d": [70, 70, 70]}
    # low front: b (20), c (10), d (70 best): a (50 @ 30) is dominated by b
    res = fidelity(table(low, HIGH, macs), bootstrap=10)
    assert res["front_high"] == ["a", "b", "c"]
    assert res["front_low"] == ["b", "c", "d"]
    assert res["front_kept"] == 2


def test_candidates_missing_a_budget_are_left_out() -> None:
    low = {k: [v - 5 for v in vs] for k, vs in HIGH.items()}
    t = table(low, HIGH)
    t = t[~((t.candidate == "d") & (t.budget == "high"))]  # d was pruned
    assert fidelity(t, bootstrap=10)["candidates"] == ["a", "b", "c"]
    t2 = table(low, HIGH)  # d lost one seed at the high budget: d goes, the seeds stay
    t2 = t2[~((t2.candidate == "d") & (t2.budget == "high") & (t2.seed == 2))]
    res = fidelity(t2, bootstrap=10)
    assert res["candidates"] == ["a", "b", "c"] and res["seeds"] == [0, 1, 2]
    with pytest.raises(UserError, match="need >= 3"):
        fidelity(t[t.candidate.isin(["a", "b"])], bootstrap=10)


def test_cli_reads_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    low = {k: [v - 20 for v in vs] for k, vs in HIGH.items()}
    path = tmp_path / "t.csv"
    table(low, HIGH).to_csv(path, index=False)
    assert main(["analyze", "fidelity", "--csv", str(path), "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert "Kendall τ-b 1.000" in out and "4 candidates" in out
    assert main(["analyze", "fidelity"]) == 2


def _study_with_histories(path: Path) -> None:
    """Four candidates x 3 seeds with 4-epoch histories in the search's trial format; at
    epoch 2 the order of c and d is swapped, at epoch 4 it is a > b > c > d."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="f", storage=f"sqlite:///{path}", directions=["maximize", "minimize"]
    )
    study.set_user_attr("objectives", ["top1:max", "macs:min"])
    study.set_user_attr("fidelity", {"enabled": True, "rungs": [2]})
    finals = {"gc": 90.0, "snl": 80.0, "se": 70.0, "none": 60.0}
    early = {"gc": 70.0, "snl": 60.0, "se": 40.0, "none": 50.0}
    for k, (cid, final) in enumerate(finals.items()):
        results = []
        for seed in range(3):
            hist = [
                {"epoch": e, "val_top1": early[cid] + seed + (final - early[cid]) * (e - 2) / 2}
                for e in (1, 2, 3, 4)
            ]
            results.append(
                {"seed": seed, "top1": hist[-1]["val_top1"], "status": "complete", "history": hist}
            )
        attrs = {"candidate_id": cid, "results": results, "cost": {"macs": 10 + k}}
        study.add_trial(
            create_trial(state=TrialState.COMPLETE, values=[final, 10 + k], user_attrs=attrs)
        )


def test_from_one_run_compares_the_first_rung_with_the_last_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gcsearch.analysis.fidelity import from_run

    db = tmp_path / "study.db"
    _study_with_histories(db)
    t = from_run(str(db))
    assert set(t.epoch) == {2, 4}  # the recorded rung, and the last epoch
    res = fidelity(t, bootstrap=50)
    assert res["kendall_tau"] == pytest.approx(4 / 6)  # one discordant pair of six
    assert main(["analyze", "fidelity", str(db), "--low-epoch", "3", "--bootstrap", "20"]) == 0
    assert "epoch 3 vs 4" in capsys.readouterr().out
    assert main(["analyze", "fidelity", str(db), "--low-epoch", "4"]) == 2
