"""Reading the hub tasks scheduled for parameters a patient's kit cannot measure (issue 11.3).

`alerting.due_tasks` writes them to `observation_tasks` (migration 0091): a phone call or a
visit per NEWS2 parameter, one open task per patient and parameter. This module lists the
open ones, soonest due first, for the API (`/api/observation-tasks`) and the patient page, so
neither router holds SQL. Thin SQL only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class ObservationTask:
    id: int
    patient_id: int
    parameter: str
    method: str
    due_at: dt.datetime
    last_at: dt.datetime | None
    created_at: dt.datetime

    def overdue(self, now: dt.datetime) -> bool:
        """Past its due time (strictly, as every due rule here)."""
        return now > self.due_at


_SELECT = sql.SQL(
    "SELECT id, patient_id, parameter, method, due_at, last_at, created_at "
    "FROM observation_tasks WHERE {} ORDER BY due_at, id LIMIT %s OFFSET %s")
_COUNT = sql.SQL("SELECT count(*) FROM observation_tasks WHERE {}")


def _where(patient_id: int | None) -> tuple[sql.Composable, list[object]]:
    clauses: list[sql.Composable] = [sql.SQL("done_at IS NULL")]
    params: list[object] = []
    if patient_id is not None:
        clauses.append(sql.SQL("patient_id = %s"))
        params.append(patient_id)
    return sql.SQL(" AND ").join(clauses), params


def open_tasks(conn: Conn, *, patient_id: int | None = None, limit: int = 50,
               offset: int = 0) -> tuple[list[ObservationTask], int]:
    """Open tasks (all, or one patient's), soonest due first, and how many there are."""
    where, params = _where(patient_id)
    count = conn.execute(_COUNT.format(where), params).fetchone()
    rows = conn.execute(_SELECT.format(where), [*params, limit, offset]).fetchall()
    return [ObservationTask(*r) for r in rows], int(count[0]) if count else 0
