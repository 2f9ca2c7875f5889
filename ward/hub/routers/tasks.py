"""Tasks: read the hub's tasks (full sets the platform requested from home hubs).

Read only for now: tasks are created and closed by the alerting core
(`alerting.tasks.follow_up`); the hub worklist of a later issue adds the nurse's actions.
Ordered by due time, soonest first, so the list reads as a worklist. A task names its patient
and why they were called, so every read is audited (a list with every patient it shows).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
from ward.hub.routers.common import BIGINT_MAX, Limit, Offset, Page, Reader, require_patient

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
StatusFilter = Literal["open", "done", "missed", "all"]

_COLUMNS = ("id", "kind", "patient_id", "device_id", "reason", "detail", "wake", "due_at",
            "status", "created_by", "created_at", "closed_at", "outcome")
_SELECT = ("SELECT id, kind, patient_id, device_id, reason, detail, wake, due_at, status, "
           "created_by, created_at, closed_at, outcome FROM tasks ")


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


@router.get("", response_model=Page[TaskOut])
def list_tasks(conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
               status: StatusFilter = "open",
               patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None) -> Page[TaskOut]:
    if patient_id is not None:
        require_patient(conn, patient_id)
    where, params = _where(status, patient_id)
    total = conn.execute("SELECT count(*) FROM tasks " + where, params).fetchone()
    rows = conn.execute(_SELECT + where + " ORDER BY due_at, id LIMIT %s OFFSET %s",
                        [*params, limit, offset]).fetchall()
    items = [_out(r) for r in rows]
    audit.record(conn, user, "list", "task", now=now, patient_ids=[t.patient_id for t in items],
                 detail={"task_ids": [t.id for t in items], "status": status})
    return Page[TaskOut](items=items, total=int(total[0]) if total else 0, limit=limit,
                         offset=offset)


@router.get("/{task_id}", response_model=TaskOut)
def read_task(task_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)], conn: DB, now: Now,
              user: Reader) -> TaskOut:
    row = conn.execute(_SELECT + "WHERE id = %s", (task_id,)).fetchone()
    if row is None:
        raise NotFound(f"no task with id {task_id}")
    out = _out(row)
    audit.record(conn, user, "read", "task", now=now, entity_id=f"task-{task_id}",
                 patient_id=out.patient_id)
    return out
