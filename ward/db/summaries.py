"""Refreshing the hourly summaries (`readings_hourly`) after a migration or a backfill.

On TimescaleDB `readings_hourly` is a continuous aggregate (0002, tuned in 0101): its policy
re-aggregates the last 35 days, and real-time aggregation adds the newest hour. History older
than the policy's window is built only by an explicit refresh: once after the migration that
creates or changes the aggregate (`vward migrate`) and after a backfill (`vward maintain`).
That refresh never reaches a range whose raw chunks the retention policy dropped: dropping
chunks records the range as changed, and a refresh over it *deletes* its summaries, which
are meant to outlive the raw readings (their own retention is ten years). So it starts at the
later of the oldest raw chunk still kept and now − the raw retention's `drop_after`: a
reading replayed from before the horizon makes a chunk older than the dropped ones, and
starting there would wipe the summaries between (checked on TimescaleDB 2.28.3).

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
                   retention: dt.timedelta | None = None) -> Refreshed | None:
    """The window to refresh: the oldest raw chunk kept, but never before now − `retention`
    (the raw readings' `drop_after`), → now − END_OFFSET (None: nothing to refresh)."""
    if oldest_chunk_start is None:
        return None
    start = oldest_chunk_start if retention is None else max(oldest_chunk_start,
                                                             now - retention)
    if start >= now - END_OFFSET:
        return None
    return Refreshed(start, now - END_OFFSET)


def refresh(conn: Conn, now: dt.datetime) -> Refreshed | None:
    """Refresh `readings_hourly` over the raw data still kept; None on plain PostgreSQL."""
    if storage_kind(conn) != "timescaledb":
        return None
    if not conn.autocommit:
        msg = "refreshing a continuous aggregate needs an autocommit connection"
        raise ValueError(msg)
    row = conn.execute(
        "WITH h AS (SELECT relnamespace::regnamespace::text AS schema FROM pg_class "
        "WHERE oid = 'readings'::regclass) "
        "SELECT (SELECT min(range_start) FROM timescaledb_information.chunks c, h "
        "        WHERE c.hypertable_name = 'readings' AND c.hypertable_schema = h.schema), "
        "       (SELECT min((j.config->>'drop_after')::interval) "
        "        FROM timescaledb_information.jobs j, h WHERE j.proc_name = 'policy_retention' "
        "        AND j.hypertable_name = 'readings' AND j.hypertable_schema = h.schema)"
    ).fetchone()
    oldest, retention = row if row else (None, None)
    window = refresh_window(oldest, now, retention)
    if window is not None:
        conn.execute("CALL refresh_continuous_aggregate('readings_hourly', %s, %s)",
                     (window.start, window.end))
    return window
