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
4. a pack whose readings would land on the instants of *another* message's readings (stored,
   or elsewhere in the batch) is moved by a microsecond at a time until they are free, and its
   first-seen row with it (`clashing`): two packs of one device first seen a whole number of
   seconds apart to the microsecond (about one SIGKILL test run in 17, docs/mqtt.md)
   otherwise resolve `t: 0` of one and `t: -1` of the other to one key, and the natural key
   (device, code, measured_at) silently took the second reading for a duplicate. Only a
   pack none of whose readings is stored yet is moved, so a redelivery still finds its own
   readings;
5. `rebase` commits before the readings are written, so a crash between the two still leaves
   the same base for the redelivery: the readings are then stored once, whichever delivery
   commits them.

A batch without relative SenML packs costs nothing here (no query); one with them, two (the
upsert and a look-up of their keys by the natural key's index). Thin I/O plus pure choices
(`first_seen_keys`, `clashing`); the decoding itself stays in `gateway.decode`.

Not covered: two gateways writing two such packs of one device at the same moment (each
checked before the other's readings were stored); the later insert still takes its reading
for a duplicate.
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
# Who holds each of these reading keys already (the natural key's unique index).
_HOLDERS = (
    "SELECT r.device_id, r.code, r.measured_at, r.msg_id FROM readings r JOIN unnest("
    "%s::text[], %s::text[], %s::timestamptz[]) AS k(device_id, code, measured_at) "
    "USING (device_id, code, measured_at)"
)
# A moved pack's new first-seen time (only if nobody moved it meanwhile).
_MOVE = (
    "UPDATE senml_first_seen AS f SET first_seen_at = v.moved FROM unnest("
    "%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[]) AS v(device_id, msg_id, "
    "base, moved) WHERE f.device_id = v.device_id AND f.msg_id = v.msg_id "
    "AND f.first_seen_at = v.base RETURNING f.device_id, f.msg_id, f.first_seen_at"
)
# A moved pack goes forward by this much at a time (the resolution of a timestamptz).
NUDGE = dt.timedelta(microseconds=1)
# ... at most this many times (one clash needs one step; a dense device a few).
MAX_NUDGES = 1_000


class Received(Protocol):
    """What `rebase` needs of an inbound message (the ingest loop's `Inbound` has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def received_at(self) -> dt.datetime: ...


M = TypeVar("M", bound=Received)
Key = tuple[str, str, dt.datetime]  # a reading's natural key: device, code, measured_at
PackId = tuple[str, str]  # device, msg_id


def first_seen_keys(batch: Sequence[tuple[M, Decoded]]) -> dict[tuple[str, str], dt.datetime]:
    """(device, msg_id) → earliest receive time, for the messages resolved against one."""
    keys: dict[tuple[str, str], dt.datetime] = {}
    for _message, decoded in batch:
        if isinstance(decoded, DecodedMessage) and decoded.relative_to is not None:
            key = (decoded.device_id, decoded.msg_id)
            seen = keys.get(key)
            keys[key] = decoded.relative_to if seen is None else min(seen, decoded.relative_to)
    return keys


def reading_keys(decoded: DecodedMessage) -> list[Key]:
    return [(decoded.device_id, r.code, r.measured_at) for r in decoded.readings]


def clashing(packs: Sequence[tuple[PackId, Sequence[Key]]], taken: dict[Key, str]
             ) -> list[PackId]:
    """Relative packs (in batch order) that must move: one of their keys is held by another
    message (`taken`: key → msg_id, stored readings and the batch's fixed ones) or by an
    earlier pack of the list, and none is held by the pack itself (not stored yet).

    `taken` is extended with the keys of the packs that stay."""
    moving: list[PackId] = []
    for pack, keys in packs:
        if pack in moving:
            continue
        holders = {taken[k] for k in keys if k in taken}
        if holders and pack[1] not in holders:
            moving.append(pack)
            continue
        for k in keys:
            taken.setdefault(k, pack[1])
    return moving


def _holders(conn: Conn, keys: Sequence[Key]) -> dict[Key, str]:
    if not keys:
        return {}
    devices, codes, instants = zip(*keys, strict=True)
    with conn.cursor() as cur:
        cur.execute(_HOLDERS, (list(devices), list(codes), list(instants)))
        return {(str(d), str(c), m): str(mi) for d, c, m, mi in cur.fetchall()}


def rebase(conn: Conn, batch: Sequence[tuple[M, Decoded]], limits: Limits,
           window: dt.timedelta) -> list[tuple[M, Decoded]]:
    """`batch` with every relative SenML pack resolved against its first-seen time (moved
    off another message's instants when it must be, `clashing`); commits."""
    keys = first_seen_keys(batch)
    if not keys:
        return list(batch)
    devices, msg_ids = zip(*keys, strict=True)
    with conn.cursor() as cur:
        cur.execute(_UPSERT, (list(devices), list(msg_ids), list(keys.values()), window))
        stored = {(str(r[0]), str(r[1])): r[2] for r in cur.fetchall()}

    def resolved(message: M, decoded: DecodedMessage, base: dt.datetime) -> DecodedMessage:
        if base == decoded.relative_to:
            return decoded
        again = decode(message.topic, message.payload, message.received_at, limits,
                       senml_relative_to=base)
        # The same bytes decoded before: a message again (the instants alone change).
        return again if isinstance(again, DecodedMessage) else decoded

    out: list[tuple[M, Decoded]] = []
    packs: list[tuple[PackId, list[Key]]] = []
    fixed: dict[Key, str] = {}
    first: dict[PackId, tuple[M, DecodedMessage]] = {}
    for message, decoded in batch:
        again: Decoded = decoded
        if isinstance(decoded, DecodedMessage) and decoded.relative_to is not None:
            pack = (decoded.device_id, decoded.msg_id)
            again = resolved(message, decoded, stored.get(pack, decoded.relative_to))
            packs.append((pack, reading_keys(again)))
            first.setdefault(pack, (message, again))
        elif isinstance(decoded, DecodedMessage):
            for k in reading_keys(decoded):
                fixed.setdefault(k, decoded.msg_id)
        out.append((message, again))
    taken = {**fixed, **_holders(conn, [k for _, ks in packs for k in ks])}
    moving = clashing(packs, taken)
    moved: dict[PackId, DecodedMessage] = {}
    for pack in moving:  # rare: found a place one pack at a time
        message, decoded = first[pack]
        base = stored[pack]
        for _ in range(MAX_NUDGES):
            base += NUDGE
            candidate = resolved(message, decoded, base)
            wanted = reading_keys(candidate)
            taken.update({k: v for k, v in _holders(conn, wanted).items() if k not in taken})
            if not any(k in taken for k in wanted):
                taken.update(dict.fromkeys(wanted, pack[1]))
                moved[pack] = candidate
                break
    if moved:
        with conn.cursor() as cur:
            rows = [(p[0], p[1], stored[p], d.relative_to) for p, d in moved.items()]
            cur.execute(_MOVE, [list(column) for column in zip(*rows, strict=True)])
            done = {(str(r[0]), str(r[1])) for r in cur.fetchall()}
        moved = {p: d for p, d in moved.items() if p in done}
    conn.commit()
    return [(m, moved.get((d.device_id, d.msg_id), d))
            if isinstance(d, DecodedMessage) and d.relative_to is not None else (m, d)
            for m, d in out]


def expire(conn: Conn, window: dt.timedelta) -> int:
    """Delete first-seen times older than `window` (nothing can be redelivered that late)."""
    with conn.cursor() as cur:
        cur.execute(_EXPIRE, (window,))
        return cur.rowcount
