"""Tasks: read the hub's tasks (full sets the platform requested from home hubs).

Read only for now: tasks are created and closed by the alerting core
(`alerting.tasks.follow_up`); the hub worklist of a later issue adds the nurse's actions.
Ordered by due time, soonest first, so the list reads as a worklist. A task names its patient
and why they were called, so every read is audited (a list with every patient it shows).
The SQL is `ward.hub.queries.tasks`'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
from ward.hub.queries import tasks as queries
from ward.hub.queries.tasks import StatusFilter, TaskOut
from ward.hub.routers.common import BIGINT_MAX, Limit, Offset, Page, Reader, require_patient

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


@router.get("", response_model=Page[TaskOut])
def list_tasks(conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
               status: StatusFilter = "open",
               patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None) -> Page[TaskOut]:
    if patient_id is not None:
        require_patient(conn, patient_id)
    items, total = queries.list_tasks(conn, status=status, patient_id=patient_id, limit=limit,
                                      offset=offset)
    audit.record(conn, user, "list", "task", now=now, patient_ids=[t.patient_id for t in items],
                 detail={"task_ids": [t.id for t in items], "status": status})
    return Page[TaskOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/{task_id}", response_model=TaskOut)
def read_task(task_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)], conn: DB, now: Now,
              user: Reader) -> TaskOut:
    out = queries.load_task(conn, task_id)
    if out is None:
        raise NotFound(f"no task with id {task_id}")
    audit.record(conn, user, "read", "task", now=now, entity_id=f"task-{task_id}",
                 patient_id=out.patient_id)
    return out
