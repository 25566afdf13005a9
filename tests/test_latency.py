"""Measured latency: timm benchmark.py conventions (warm-up, timed passes, median), the
``latency:min`` objective through a trial, and the ``flops --latency`` columns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from gcsearch.cli import main
from gcsearch.latency import Latency, candidate_latency, measure_latency

torch.set_num_threads(1)


def test_warmup_and_timed_passes_are_counted_and_run_in_eval_mode() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    calls: list[bool] = []
    model.register_forward_hook(lambda m, a, o: calls.append(m.training or o.requires_grad))
    lat = measure_latency(model, (3, 8, 8), batch=2, warmup=3, iters=7)
    assert len(calls) == 3 + 7 and not any(calls)  # eval mode, no autograd graph
    assert isinstance(lat, Latency) and (lat.batch, lat.warmup, lat.iters) == (2, 3, 7)
    assert 0 < lat.p10_ms <= lat.ms <= lat.p90_ms and lat.device == "cpu"
    assert lat.threads == torch.get_num_threads()


def test_a_slower_model_measures_slower() -> None:
    small = nn.Conv2d(8, 8, 1)
    big = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(12)])
    a = measure_latency(small, (8, 32, 32), warmup=2, iters=15)
    b = measure_latency(big, (8, 32, 32), warmup=2, iters=15)
    assert b.ms > a.ms


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="iters"):
        measure_latency(nn.Identity(), (1, 2, 2), iters=0)


def test_candidate_latency_builds_the_network() -> None:
    lat = candidate_latency("gc@after_1x1:c3c4c5", "resnet8", (1, 8, 8), warmup=1, iters=3)
    assert lat.ms > 0 and lat.to_dict()["iters"] == 3


@pytest.mark.gpu
def test_cuda_latency_synchronises() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    lat = candidate_latency("gc", "resnet20", (3, 32, 32), device="cuda", batch=32)
    assert lat.device.startswith("cuda") and lat.ms > 0


def test_latency_is_an_objective_a_trial_measures() -> None:
    from gcsearch.search.driver import objective_values, rung_metrics
    from gcsearch.search.space import parse_space
    from gcsearch.search.trial import Job, run_job
    from gcsearch.spec import Candidate

    space = parse_space(
        'name = "lat"\nobjectives = ["top1:max", "latency:min"]\n'
        '[task]\nname = "digits"\nbackbone = "resnet8"\n'
    )
    assert space.objectives == ("top1:max", "latency:min")
    job = Job(
        trial=0,
        candidate=Candidate.parse("gc@after_1x1:c4").to_dict(),
        seed=0,
        task="digits",
        backbone="resnet8",
        objectives=space.objectives,
        budget={"epochs": 1, "train_images": 64, "val_images": 32, "batch_size": 32},
    )
    out = run_job(job)
    assert out["status"] == "complete", out["reason"]
    lat = out["latency"]
    assert lat["batch"] == 32 and lat["device"] == "cpu" and lat["ms"] > 0
    at_rung = rung_metrics([out], 1)
    assert at_rung is not None and at_rung["latency"] == lat["ms"]  # the rungs see it as a cost
    other = {**out, "latency": {**lat, "ms": 3 * lat["ms"]}}
    values = objective_values(space.objectives, [out, other], {})
    assert values is not None and values[1] == pytest.approx(2 * lat["ms"])  # median of two
    assert objective_values(space.objectives, [{"top1": 50.0}], {}) is None  # none measured


def test_flops_prints_latency_beside_macs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flops", "--backbone", "resnet8", "--input", "16", "--latency", "gc", "se"]) == 0
    out = capsys.readouterr().out
    assert "latency ms" in out and "+latency %" in out and "median of 40" in out


def test_report_and_export_show_the_measured_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna
    from optuna.trial import TrialState, create_trial

    from gcsearch import report
    from gcsearch.report.render import _display_candidates
    from gcsearch.spec import Candidate

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="lat",
        storage=f"sqlite:///{tmp_path}/study.db",
        directions=["maximize", "minimize"],
    )
    for key, value in (
        ("objectives", ["top1:max", "latency:min"]),
        ("backbone", "resnet20"),
        ("task", "synthetic"),
        ("input_shape", [3, 32, 32]),
        ("budget", {"batch_size": 64}),
    ):
        study.set_user_attr(key, value)
    for cid, top1, ms in (("none", 80.0, 1.5), ("gc@after_1x1:c4", 84.0, 2.25)):
        cand = Candidate.parse(cid)
        res = {
            "seed": 0,
            "top1": top1,
            "status": "complete",
            "epochs": 2,
            "latency": {"ms": ms, "batch": 64, "device": "cpu"},
        }
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                values=[top1, ms],
                user_attrs={
                    "candidate": cand.to_dict(),
                    "candidate_id": cand.id,
                    "status": "complete",
                    "results": [res],
                    "env": {"device": "cpu"},
                    "cost": {"params": 1, "macs": 2, "block_params": 0, "block_macs": 0},
                },
            )
        )
    table = _display_candidates(report.build_report(tmp_path))
    assert list(table["latency ms"]) == ["2.25", "1.5"]
    out = tmp_path / "b.py"
    assert main(["export", str(tmp_path), "--rank", "1", "-o", str(out)]) == 0
    text = out.read_text()
    assert "Latency in resnet20: 2.25 ms per forward pass of a batch of 64 on cpu" in text
