"""`vward migrate`: apply pending migrations to the configured database."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import psycopg

from ward.db import summaries
from ward.db.migrate import MigrationError, migrate, storage_kind
from ward.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schema", help="migrate into this schema (created if missing)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with psycopg.connect(settings.database_conninfo(), autocommit=True) as conn:
            if args.schema:
                from psycopg import sql

                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(args.schema)))
                conn.execute(sql.SQL("SET search_path TO {}, public").format(
                    sql.Identifier(args.schema)))
            applied = migrate(conn)
            kind = storage_kind(conn)
            # The one-off build of the hourly summaries' history (TimescaleDB only).
            refreshed = summaries.refresh(conn, dt.datetime.now(dt.UTC)) if applied else None
    except MigrationError as exc:
        print(f"vward migrate: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"vward migrate: cannot connect to the database: {exc}", file=sys.stderr)
        return 1
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)} (readings: {kind})")
        if refreshed is not None:
            print(f"hourly summaries refreshed {refreshed.start:%Y-%m-%d %H:%M} → "
                  f"{refreshed.end:%Y-%m-%d %H:%M} UTC")
    else:
        print(f"database is up to date (readings: {kind})")
    return 0
