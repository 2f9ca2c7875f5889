"""The audit trail: every read of a patient's record and every change, who, what and when.

Written in the same transaction as the read or change it describes, so a change can never be
committed without its audit row. Details hold identifiers and field names, never passwords or
tokens. A response that shows several patients (ward view, alert queue, device list) names
every one of them in `patient_ids` of its single row: each patient shown is an audited access.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
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
