"""The study on a real PostgreSQL server (a throwaway one from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from _search_helpers import tiny_space, trained_per_candidate

from gcsearch.launch import search
from gcsearch.search.local import InlineExecutor
from gcsearch.search.space import load_space
from gcsearch.search.storage import open_storage

pytestmark = pytest.mark.db


def test_plain_postgresql_url_opens_with_the_installed_driver(
    postgres_db: str, tmp_path: Path
) -> None:
    plain = "postgresql://" + postgres_db.split("://", 1)[1]  # as a user types it
    storage, where = open_storage(tmp_path, plain)
    assert isinstance(storage, optuna.storages.RDBStorage)
    study = optuna.create_study(storage=storage, study_name="s")
    study.tell(study.ask(), 1.0)
    again = optuna.load_study(study_name="s", storage=postgres_db)
    assert [t.value for t in again.trials] == [1.0]
    assert where.startswith("postgresql")


def test_search_and_resume_on_postgresql(postgres_db: str, tmp_path: Path) -> None:
    space = load_space(tiny_space(tmp_path, sampler="grid", fidelity=False))
    kwargs = {"smoke": True, "progress": False, "export": False, "storage": postgres_db}
    search(space, tmp_path / "a", executor=InlineExecutor(), **kwargs)
    study = optuna.load_study(study_name="tiny", storage=postgres_db)
    trained = trained_per_candidate(study)
    assert set(trained) == {c.id for c in space.candidates() + space.references()}
    assert set(trained.values()) == {1}
    # resume from another run directory: the study lives in the database, not the run dir
    again = search(space, tmp_path / "b", resume=True, executor=InlineExecutor(), **kwargs)
    assert again.epochs_trained == 0
    assert (tmp_path / "b" / "results.csv").is_file()
