"""The queue of committed patients waiting for alert evaluation (table `alerting_queue`).

Why a table and not only NOTIFY: a notification sent while no evaluator listens is gone, and
"a crash of either side loses no evaluation" needs the hand-over to be part of both
transactions. The gateway `enqueue`s inside its ingest transaction (so the row exists iff the
readings do) and sends `NOTIFY vw_alerting_queue` to wake evaluators at once; an evaluator
`take`s rows inside the transaction that stores the evaluation (so rows disappear iff the
evaluation is stored). `FOR UPDATE SKIP LOCKED` lets several evaluator processes share the
queue without waiting on one another, and the ingest side only ever INSERTs, so it never
waits for an evaluator either.

Thin SQL only.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]
Cursor = psycopg.Cursor[Any]

CHANNEL = "vw_alerting_queue"


@dataclass(frozen=True, slots=True)
class Taken:
    """Rows taken from the queue, coalesced: each patient once, oldest receipt per row."""

    patient_ids: tuple[int, ...]  # sorted, distinct
    received_at: tuple[dt.datetime, ...]  # one per row taken


@dataclass(frozen=True, slots=True)
class Waiting:
    """Every row an evaluator locked, coalesced: each patient once with its earliest receipt."""

    row_ids: tuple[int, ...]
    receipts: dict[int, dt.datetime]  # patient → earliest MQTT receipt among the rows
    urgent: frozenset[int]  # patients a row marked urgent (gateway.urgency)
    red: frozenset[int]  # of those, patients with a reading scoring 3 (first of all)
    received_at: tuple[dt.datetime, ...]  # one per row (its earliest receipt)


def enqueue(cur: Cursor, patient_ids: Sequence[int], received_at: dt.datetime,
            urgent: Sequence[int] = (), red: Sequence[int] = ()) -> None:
    """Queue `patient_ids` for evaluation in the caller's (ingest) transaction; `urgent`
    (a subset) are evaluated first, without the evaluator's coalescing delay, and `red`
    (a subset of those) before them."""
    if not patient_ids:
        return
    # Array literals, as in `settle`: psycopg's list dumper (a Python call per element) cost
    # ~0.9 ms of the gateway's ingest thread per batch of 500 patients (issue 14).
    cur.execute("INSERT INTO alerting_queue (patient_ids, received_at, urgent_ids, red_ids) "
                "VALUES (%s::bigint[], %s, %s::bigint[], %s::bigint[])",
                (_array(patient_ids), received_at, _array(urgent), _array(red)))
    cur.execute("SELECT pg_notify(vw_channel(%s), '')", (CHANNEL,))


def lock_waiting(conn: Conn, limit: int) -> Waiting:
    """Lock (not delete) up to `limit` waiting rows, oldest first, in the caller's transaction.

    Rows locked by another evaluator are skipped, not waited for; the ingest side only
    INSERTs, so it never waits for these locks either. Nothing is written: a pass that finds
    nothing due rolls back having changed nothing. `settle` consumes the rows.
    """
    rows = conn.execute(
        "SELECT id, patient_ids, received_at, urgent_ids, receipts, red_ids "
        "FROM alerting_queue ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", (limit,),
    ).fetchall()
    receipts: dict[int, dt.datetime] = {}
    urgent: set[int] = set()
    red: set[int] = set()
    earliest = receipts.get
    for _id, ids, at, urgent_ids, per_patient, red_ids in rows:
        for pid, when in zip(ids, per_patient if per_patient is not None
                             else itertools.repeat(at), strict=False):
            old = earliest(pid)
            if old is None or when < old:
                receipts[pid] = when
        urgent.update(int(pid) for pid in urgent_ids)
        red.update(int(pid) for pid in red_ids)
    return Waiting(tuple(int(r[0]) for r in rows), receipts, frozenset(urgent | red),
                   frozenset(red), tuple(r[2] for r in rows))


def _array(values: Sequence[object]) -> str:
    """A PostgreSQL array literal of `values` (ints, or UTC datetimes whose `isoformat` the
    server reads exactly), to be cast by the statement (`%s::bigint[]`)."""
    return "{" + ",".join(map(str, values)) + "}"


def settle(conn: Conn, waiting: Waiting, leftover: Sequence[int]) -> None:
    """Consume `waiting`'s rows and put `leftover` patients back as ONE row, each with its
    earliest receipt and urgency, in the caller's transaction (the one storing the
    evaluation of the others): a rollback restores the rows exactly as they were.

    The leftover's arrays (up to the ward's size, every pass) go as array literals the server
    casts: psycopg's array dumper, one Python call per element, cost ~4.3 ms of client CPU
    for 1,000 patients, ~1.4 ms this way (measured, issue 14): `settle` was ~17 % of the
    `vward alerting` process's samples under bench_ingest with alerting on (py-spy).
    """
    conn.execute("DELETE FROM alerting_queue WHERE id = ANY(%s)", (list(waiting.row_ids),))
    if not leftover:
        return
    ids = sorted(leftover)
    receipts = waiting.receipts
    at = [receipts[pid] for pid in ids]
    urgent, red = waiting.urgent, waiting.red
    conn.execute(
        "INSERT INTO alerting_queue (patient_ids, received_at, urgent_ids, receipts, red_ids) "
        "VALUES (%s::bigint[], %s, %s::bigint[], %s::timestamptz[], %s::bigint[])",
        (_array(ids), min(at), _array([pid for pid in ids if pid in urgent]),
         _array([when.isoformat() for when in at]), _array([pid for pid in ids if pid in red])))


def take(conn: Conn, limit: int) -> Taken:
    """Delete and return up to `limit` rows, oldest first, in the caller's transaction.

    Rows locked by another evaluator are skipped, not waited for. A rollback puts them back.
    """
    rows = conn.execute(
        "DELETE FROM alerting_queue WHERE id IN (SELECT id FROM alerting_queue ORDER BY id "
        "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING patient_ids, received_at", (limit,),
    ).fetchall()
    patients = sorted({int(pid) for ids, _ in rows for pid in ids})
    return Taken(tuple(patients), tuple(at for _, at in rows))


def requeue(conn: Conn, patient_ids: Sequence[int], received_at: dt.datetime) -> None:
    """Put patients back (an evaluation that failed for them) in the caller's transaction."""
    with conn.cursor() as cur:
        enqueue(cur, patient_ids, received_at)


def depth(conn: Conn) -> int:
    """Rows waiting (for metrics and tests)."""
    row = conn.execute("SELECT count(*) FROM alerting_queue").fetchone()
    return int(row[0]) if row else 0
