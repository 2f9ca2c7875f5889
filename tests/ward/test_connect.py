"""`ward.db.connect.throwaway_schema`, the one way tests and benchmarks make a scratch schema
(real PostgreSQL): migrated or empty, used first by its conninfo, dropped even on error."""

from __future__ import annotations

import psycopg
import pytest

from ward.db.connect import throwaway_schema


def _exists(pg_url: str, schema: str) -> bool:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (schema,)).fetchone() is not None


def test_a_migrated_schema_first_on_the_search_path_then_dropped(pg_url: str) -> None:
    with throwaway_schema(pg_url, "t_") as (schema, conninfo):
        assert schema.startswith("t_")
        assert len(schema) == len("t_") + 12
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT current_schema()").fetchone() == (schema,)
            assert conn.execute("SHOW search_path").fetchone() == (f"{schema},public",)
            assert conn.execute("SELECT count(*) > 0 FROM schema_migrations").fetchone() == (
                True,)
        assert _exists(pg_url, schema)
    assert not _exists(pg_url, schema)


def test_unmigrated_is_empty(pg_url: str) -> None:
    with throwaway_schema(pg_url, "t_", migrated=False) as made, \
            psycopg.connect(made.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                            (made.name,)).fetchone() == (0,)


def test_dropped_with_its_tables_when_the_body_raises(pg_url: str) -> None:
    names: list[str] = []

    def fail() -> None:
        with throwaway_schema(pg_url, "t_") as made:
            names.append(made.name)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert names
    assert not _exists(pg_url, names[0])
