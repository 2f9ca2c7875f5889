"""The hub's tasks (full sets the platform requested from home hubs) as `/api/tasks` shows
them: one page by status and patient, soonest due first, and one task."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from ward.hub.deps import Conn

StatusFilter = Literal["open", "done", "missed", "all"]


class TaskOut(BaseModel):
    id: int
    kind: str
    patient_id: int
    device_id: str | None = Field(description="the home hub commanded; null when it has none")
    reason: str
    detail: str
    wake: bool = Field(description="requested at night, worth waking the patient (a call)")
    due_at: dt.datetime
    status: str
    created_by: str
    created_at: dt.datetime
    closed_at: dt.datetime | None
    outcome: str | None


_COLUMNS = ("id", "kind", "patient_id", "device_id", "reason", "detail", "wake", "due_at",
            "status", "created_by", "created_at", "closed_at", "outcome")
_SELECT = ("SELECT id, kind, patient_id, device_id, reason, detail, wake, due_at, status, "
           "created_by, created_at, closed_at, outcome FROM tasks ")


def _out(row: tuple[Any, ...]) -> TaskOut:
    return TaskOut(**dict(zip(_COLUMNS, row, strict=True)))


def _where(status: StatusFilter, patient_id: int | None) -> tuple[str, list[object]]:
    clauses, params = ["true"], list[object]()
    if status != "all":
        clauses.append("status = %s")
        params.append(status)
    if patient_id is not None:
        clauses.append("patient_id = %s")
        params.append(patient_id)
    return "WHERE " + " AND ".join(clauses), params


def list_tasks(conn: Conn, *, status: StatusFilter, patient_id: int | None, limit: int,
               offset: int) -> tuple[list[TaskOut], int]:
    """One page of tasks, soonest due first, and how many match in all."""
    where, params = _where(status, patient_id)
    total = conn.execute("SELECT count(*) FROM tasks " + where, params).fetchone()
    rows = conn.execute(_SELECT + where + " ORDER BY due_at, id LIMIT %s OFFSET %s",
                        [*params, limit, offset]).fetchall()
    return [_out(r) for r in rows], int(total[0]) if total else 0


def load_task(conn: Conn, task_id: int) -> TaskOut | None:
    row = conn.execute(_SELECT + "WHERE id = %s", (task_id,)).fetchone()
    return None if row is None else _out(row)
