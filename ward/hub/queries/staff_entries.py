"""Observations entered by staff, as the patient page shows them: who, how, when, the note.

Written by the observations router in the request's transaction (``record``); read back by the
patient page (``recent``). The readings themselves live in ``readings``; this is the entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel

Conn = psycopg.Connection[Any]
Method = Literal["phone", "visit"]
#: The patient page lists this many recent entries (a few days of phone calls and visits).
RECENT = 20


class StaffEntryOut(BaseModel):
    msg_id: str
    entered_by: str
    method: Method | None
    note: str | None
    measured_at: dt.datetime
    entered_at: dt.datetime
    observations: list[dict[str, Any]]


def record(conn: Conn, *, msg_id: str, patient_id: int, entered_by: str, method: Method | None,
           note: str | None, measured_at: dt.datetime, entered_at: dt.datetime,
           observations: Sequence[dict[str, Any]]) -> None:
    conn.execute(
        "INSERT INTO staff_entries (msg_id, patient_id, entered_by, method, note, measured_at, "
        "entered_at, observations) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (msg_id, patient_id, entered_by, method, note, measured_at, entered_at,
         Jsonb(list(observations))))


def recent(conn: Conn, patient_id: int, limit: int = RECENT) -> list[StaffEntryOut]:
    rows = conn.execute(
        "SELECT msg_id, entered_by, method, note, measured_at, entered_at, observations "
        "FROM staff_entries WHERE patient_id = %s ORDER BY measured_at DESC, msg_id LIMIT %s",
        (patient_id, limit)).fetchall()
    return [StaffEntryOut(msg_id=m, entered_by=by, method=how, note=note, measured_at=at,
                          entered_at=entered, observations=list(obs))
            for m, by, how, note, at, entered, obs in rows]
