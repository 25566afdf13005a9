"""Helpers shipped for users' own tests, as ``optuna.testing`` does: ``postgres``, a throwaway
PostgreSQL server on 127.0.0.1 for tests of a shared study (``throwaway_postgres``)."""

from gcsearch.testing.postgres import PostgresUnavailable, throwaway_postgres

__all__ = ["PostgresUnavailable", "throwaway_postgres"]
