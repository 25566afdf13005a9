"""Session fixtures shared by every test folder.

``postgres_url``: the URL of a PostgreSQL server for the ``db``-marked tests. It is
``$GCSEARCH_TEST_POSTGRES`` when set (an existing server), else a throwaway server on
127.0.0.1 started on first use (``gcsearch.testing.postgres``) and stopped when the session ends,
whether the tests passed or not. Where none can be started, every db test skips with the same
one-line reason. ``float64``: torch's default dtype float64 for one test.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Decoded data goes to a folder of this session (its subprocesses and Ray workers
    inherit it), never to the user's ~/.cache."""
    old = os.environ.get("GCSEARCH_CACHE")
    os.environ["GCSEARCH_CACHE"] = str(tmp_path_factory.mktemp("data-cache"))
    yield
    if old is None:
        os.environ.pop("GCSEARCH_CACHE", None)
    else:
        os.environ["GCSEARCH_CACHE"] = old


@pytest.fixture(autouse=True)
def _no_ray_left() -> Iterator[None]:
    """No test leaves a local Ray running for the next one."""
    yield
    if "gcsearch.search.executor" in sys.modules:  # a stop begun on a thread ends first
        sys.modules["gcsearch.search.executor"].wait_stopped()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


@pytest.fixture
def float64() -> Iterator[None]:
    """torch's default dtype float64 for one test (networks and ``TensorBatches`` follow it):
    where two computations differ only in float order, they then agree to ~1e-12, so an
    equality test can be tight (tests/tasks/test_fused.py says why float32 cannot)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    given = os.environ.get("GCSEARCH_TEST_POSTGRES")
    if given:
        yield given
        return
    from gcsearch.testing.postgres import PostgresUnavailable, throwaway_postgres

    stack = contextlib.ExitStack()
    try:
        url = stack.enter_context(throwaway_postgres())
    except (PostgresUnavailable, OSError) as exc:
        pytest.skip(f"PostgreSQL not available, db tests skipped: {exc}")
    with stack:
        yield url


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the server for one test (dropped afterwards)."""
    import uuid

    import sqlalchemy

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
