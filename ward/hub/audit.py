"""The audit trail: every read of a patient's record and every change, who, what and when.

Written in the same transaction as the read or change it describes, so a change can never be
committed without its audit row. Details hold identifiers and field names, never passwords or
tokens. A response that shows several patients (ward view, alert queue, device list) names
every one of them in `patient_ids` of its single row: each patient shown is an audited access.

Rows pushed over the live stream (`ward.hub.push`) are audited like the fetch they replace:
one row per stream and pushed batch (action "read", entity "ward", detail `pushed` and the
stream's number), naming every patient pushed, committed before the batch is sent. A batch's
rows for all its streams are written by one statement (`record_many`), and batches coalesce
while one is being built, so the audit costs one round trip per batch however many streams
are open (benchmarks/bench_audit.py --streams).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ward.hub.auth import User

Conn = psycopg.Connection[Any]


def record(
    conn: Conn,
    user: User | None,
    action: str,
    entity: str,
    *,
    now: dt.datetime,
    entity_id: object = None,
    patient_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
    actor: str | None = None,
    patient_ids: Iterable[int] | None = None,
) -> None:
    """Append one audit row; `action` is a verb ("read", "create", "acknowledge", …).

    `patient_ids`: every patient the response shows (distinct, in the order first shown);
    None when it shows no list of patients."""
    ids = None if patient_ids is None else list(dict.fromkeys(patient_ids))
    conn.execute(
        "INSERT INTO audit_log (at, user_id, actor, action, entity, entity_id, patient_id, "
        # %b: the id array in binary, half the cost of its text form for a 1,000-row ward.
        "patient_ids, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %b, %s)",
        (now, user.id if user else None, actor or (user.username if user else "anonymous"),
         action, entity, None if entity_id is None else str(entity_id), patient_id, ids,
         Jsonb(dict(detail or {}))),
    )


def record_many(
    conn: Conn,
    readers: Sequence[tuple[int | None, str, Mapping[str, Any]]],
    action: str,
    entity: str,
    *,
    now: dt.datetime,
    patient_ids: Iterable[int],
) -> None:
    """One audit row per reader `(user id, actor, detail)`, all showing the same
    `patient_ids`, in one statement (a pushed batch's streams: `ward.hub.push`)."""
    if not readers:
        return
    ids = list(dict.fromkeys(patient_ids))
    conn.execute(
        "INSERT INTO audit_log (at, user_id, actor, action, entity, patient_ids, detail) "
        "SELECT %s, r.user_id, r.actor, %s, %s, %b::bigint[], r.detail "
        "FROM unnest(%s::bigint[], %s::text[], %s::jsonb[]) AS r(user_id, actor, detail)",
        (now, action, entity, ids, [u for u, _, _ in readers], [a for _, a, _ in readers],
         [Jsonb(dict(d)) for _, _, d in readers]),
    )
