"""Refreshing the hourly summaries (`readings_hourly`) after a migration or a backfill.

On TimescaleDB `readings_hourly` is a continuous aggregate (0002, tuned in 0101): its policy
re-aggregates the last 35 days, and real-time aggregation adds the newest hour. History older
than the policy's window is built only by an explicit refresh: once after the migration that
creates or changes the aggregate (`vward migrate`) and after a backfill (`vward maintain`).
That refresh starts at the oldest raw chunk still kept, never earlier: refreshing a range
whose raw chunks the retention policy dropped would *delete* its summaries, which are meant
to outlive the raw readings (their own retention is ten years).

On plain PostgreSQL `readings_hourly` is an ordinary view: nothing to refresh.
TimescaleDB's `refresh_continuous_aggregate` cannot run inside a transaction block, so the
connection must be in autocommit mode. Thin SQL only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from ward.db.migrate import storage_kind

Conn = psycopg.Connection[Any]

# The policy's end_offset (0101): the newest hour is left to real-time aggregation.
END_OFFSET = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Refreshed:
    start: dt.datetime
    end: dt.datetime


def refresh_window(oldest_chunk_start: dt.datetime | None, now: dt.datetime,
                   ) -> Refreshed | None:
    """The window to refresh: oldest raw chunk kept → now − END_OFFSET (None: nothing)."""
    if oldest_chunk_start is None or oldest_chunk_start >= now - END_OFFSET:
        return None
    return Refreshed(oldest_chunk_start, now - END_OFFSET)


def refresh(conn: Conn, now: dt.datetime) -> Refreshed | None:
    """Refresh `readings_hourly` over the raw data still kept; None on plain PostgreSQL."""
    if storage_kind(conn) != "timescaledb":
        return None
    if not conn.autocommit:
        msg = "refreshing a continuous aggregate needs an autocommit connection"
        raise ValueError(msg)
    row = conn.execute(
        "SELECT min(range_start) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'readings' AND hypertable_schema = "
        "(SELECT relnamespace::regnamespace::text FROM pg_class "
        "WHERE oid = 'readings'::regclass)").fetchone()
    window = refresh_window(row[0] if row else None, now)
    if window is not None:
        conn.execute("CALL refresh_continuous_aggregate('readings_hourly', %s, %s)",
                     (window.start, window.end))
    return window
