"""Connection helpers shared by every process."""

from __future__ import annotations

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
