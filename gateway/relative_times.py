"""One resolution base per SenML pack, the same on every delivery of the same bytes.

A SenML time below 2**28 s is relative to "now" (RFC 8428 §4.5.3), and the pack carries no
instant of its own. Resolved against the receive time, every redelivery (a SIGKILLed gateway's
un-acknowledged messages, a device resending after a lost PUBACK) would become new readings.
So the gateway resolves relative packs against the time it *first* saw those bytes from that
device, kept in `senml_first_seen` (migration 0050):

1. the decoder resolves against the receive time and marks the message (`relative_to`);
2. `rebase` upserts (device, msg_id, receive time) for every marked message of the batch and
   reads back the stored first-seen time — the existing one, unless it is older than
   `window` (then these bytes are a new pack and the receive time wins);
3. a message whose first-seen time differs from its receive time is decoded again against it;
4. `rebase` commits before the readings are written, so a crash between the two still leaves
   the same base for the redelivery: the readings are then stored once, whichever delivery
   commits them.

A batch without relative SenML packs costs nothing here (no query). Thin I/O plus one pure
choice (`first_seen_keys`); the decoding itself stays in `gateway.decode`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import psycopg

from gateway.decode import Decoded, DecodedMessage, Limits, decode

Conn = psycopg.Connection[Any]

_UPSERT = (
    "INSERT INTO senml_first_seen AS f (device_id, msg_id, first_seen_at) "
    "SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
    "ON CONFLICT (device_id, msg_id) DO UPDATE SET first_seen_at = CASE "
    "WHEN f.first_seen_at < EXCLUDED.first_seen_at - %s::interval "
    "THEN EXCLUDED.first_seen_at ELSE f.first_seen_at END "
    "RETURNING device_id, msg_id, first_seen_at"
)
_EXPIRE = "DELETE FROM senml_first_seen WHERE first_seen_at < now() - %s::interval"


class Received(Protocol):
    """What `rebase` needs of an inbound message (the ingest loop's `Inbound` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def received_at(self) -> dt.datetime: ...


M = TypeVar("M", bound=Received)


def first_seen_keys(batch: Sequence[tuple[M, Decoded]]) -> dict[tuple[str, str], dt.datetime]:
    """(device, msg_id) → earliest receive time, for the messages resolved against one."""
    keys: dict[tuple[str, str], dt.datetime] = {}
    for _message, decoded in batch:
        if isinstance(decoded, DecodedMessage) and decoded.relative_to is not None:
            key = (decoded.device_id, decoded.msg_id)
            seen = keys.get(key)
            keys[key] = decoded.relative_to if seen is None else min(seen, decoded.relative_to)
    return keys


def rebase(conn: Conn, batch: Sequence[tuple[M, Decoded]], limits: Limits,
           window: dt.timedelta) -> list[tuple[M, Decoded]]:
    """`batch` with every relative SenML pack resolved against its first-seen time; commits."""
    keys = first_seen_keys(batch)
    if not keys:
        return list(batch)
    devices, msg_ids = zip(*keys, strict=True)
    with conn.cursor() as cur:
        cur.execute(_UPSERT, (list(devices), list(msg_ids), list(keys.values()), window))
        stored = {(str(r[0]), str(r[1])): r[2] for r in cur.fetchall()}
    conn.commit()
    out: list[tuple[M, Decoded]] = []
    for message, decoded in batch:
        again = decoded
        if isinstance(decoded, DecodedMessage) and decoded.relative_to is not None:
            base = stored.get((decoded.device_id, decoded.msg_id), decoded.relative_to)
            if base != decoded.relative_to:
                again = decode(message.topic, message.payload, message.received_at, limits,
                               senml_relative_to=base)
        out.append((message, again))
    return out


def expire(conn: Conn, window: dt.timedelta) -> int:
    """Delete first-seen times older than `window` (nothing can be redelivered that late)."""
    with conn.cursor() as cur:
        cur.execute(_EXPIRE, (window,))
        return cur.rowcount
