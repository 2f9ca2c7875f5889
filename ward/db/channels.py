"""Per-schema NOTIFY channel names for listeners (the SQL side is migration 0150).

NOTIFY channels are database-wide, but tests and deployments are isolated by schema: a
listener must hear only the events written in its own schema. Writers send through the SQL
functions `vw_notify(payload)` / `pg_notify(vw_channel(base), …)`, which name the channel after
the writer's schema ('vw_events' in `public`, 'vw_events.<schema>' elsewhere). A listener asks
the same function on its own connection, so the naming rule is written once, in SQL, and a
listener and a writer on the same search_path always agree.

Thin SQL only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

EVENTS = "vw_events"
ALERTING_QUEUE = "vw_alerting_queue"
DEVICES = "vw_devices"


def _name(row: tuple[Any, ...] | None, base: str) -> str:
    if row is None or not isinstance(row[0], str):
        raise RuntimeError(f"vw_channel({base!r}) returned no name (is migration 0150 applied?)")
    return row[0]


def listen_sql(channel: str) -> sql.Composed:
    """`LISTEN <channel>`, the channel quoted as an identifier (it contains a dot)."""
    return sql.SQL("LISTEN {}").format(sql.Identifier(channel))


def listen(conn: psycopg.Connection[Any], base: str) -> str:
    """LISTEN on `base`'s channel for the connection's schema; return the channel's name."""
    channel = _name(conn.execute("SELECT vw_channel(%s)", (base,)).fetchone(), base)
    conn.execute(listen_sql(channel))
    return channel


async def listen_async(conn: psycopg.AsyncConnection[Any], base: str) -> str:
    """`listen` for an async connection."""
    cur = await conn.execute("SELECT vw_channel(%s)", (base,))
    channel = _name(await cur.fetchone(), base)
    await conn.execute(listen_sql(channel))
    return channel


def patient_chunks(ids: Sequence[int], max_bytes: int = 6_000) -> list[list[int]]:
    """`ids` split, in order, so that each `{"type": …, "patient_ids": […]}` payload stays
    under `max_bytes`: NOTIFY payloads must be under 8,000 bytes. The gateway's readings
    events and the alerting runner's score events both use it."""
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for pid in ids:
        width = len(str(pid)) + 1
        if current and size + width > max_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(pid)
        size += width
    if current:
        chunks.append(current)
    return chunks


def notify_events(conn: psycopg.Connection[Any], payload: str) -> None:
    """NOTIFY the events channel of the connection's schema with `payload` (sent on commit)."""
    conn.execute("SELECT vw_notify(%s)", (payload,))
