"""A real search on a 2-node Ray cluster started inside the test, joined with --address."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
from _search_helpers import ROOT, smoke_search_argv, tiny_space, trained_per_candidate

pytestmark = pytest.mark.cluster


def test_search_on_two_node_cluster_uses_both_nodes(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        space = tiny_space(tmp_path, sampler="grid", fidelity=False)
        run = tmp_path / "run"
        proc = subprocess.run(
            smoke_search_argv(space, run, "--address", cluster.address),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run / 'study.db'}")
        trained = trained_per_candidate(study)
        assert len(trained) == 6 and set(trained.values()) == {1}  # all results reached it
        nodes = {
            t.user_attrs["env"]["node"]
            for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE
        }
        assert len(nodes) == 2, nodes
    finally:
        cluster.shutdown()
