"""Connection helpers shared by every process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import psycopg
from psycopg import sql

from ward.db.migrate import migrate


def migrate_url(conninfo: str) -> list[str]:
    """Open a short autocommit connection and apply pending migrations."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return migrate(conn)


def with_schema(conninfo: str, schema: str) -> str:
    """A conninfo whose sessions use `schema` first (then public, for extensions)."""
    options = f"-c search_path={schema},public"
    return psycopg.conninfo.make_conninfo(conninfo, options=options)


def create_schema(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def drop_schema(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


class Schema(NamedTuple):
    """A schema's name and a conninfo whose sessions use it (`with_schema`)."""

    name: str
    conninfo: str


@contextlib.contextmanager
def throwaway_schema(conninfo: str, prefix: str, *, migrated: bool = True) -> Iterator[Schema]:
    """A fresh schema `prefix` + 12 hex digits on the server of `conninfo`, dropped on the way
    out (CASCADE, whatever happened inside), for tests and benchmarks.

    Yields the name and a conninfo whose sessions use that schema first, then public (where
    extensions live). With `migrated` (the default) every migration is applied first, as
    `migrate_url` does: TimescaleDB when the server has it or can create it, else plain
    PostgreSQL; without it the schema is left empty (for a caller that migrates by other means
    or tests the migrations themselves). A failing migration still drops the schema.

        with throwaway_schema(url, "t_") as (schema, db_url): ...
    """
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    create_schema(conninfo, name)
    try:
        schema = Schema(name, with_schema(conninfo, name))
        if migrated:
            migrate_url(schema.conninfo)
        yield schema
    finally:
        drop_schema(conninfo, name)
