"""Hub tasks for what a patient's kit cannot measure: `GET /api/observation-tasks`.

The alerting scheduler schedules them (`alerting.due_tasks`) and closes them when the
parameter is measured, no longer needed or the patient is discharged; the hub lists the open
ones as a worklist, soonest due first (issue 11.3). Reads are audited with the patients shown,
as every list endpoint is. The SQL lives in `ward.hub.observation_tasks`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ward.hub import audit
from ward.hub import observation_tasks as queries
from ward.hub.deps import DB, Now
from ward.hub.routers.common import BIGINT_MAX, Limit, Offset, Page, Reader, require_patient

router = APIRouter(prefix="/api/observation-tasks", tags=["tasks"])


class ObservationTaskOut(BaseModel):
    id: int
    patient_id: int
    parameter: str = Field(description="the NEWS2 parameter the kit cannot measure")
    method: str = Field(description="'phone call' or 'visit'")
    due_at: dt.datetime
    overdue: bool
    last_at: dt.datetime | None = Field(description="the parameter's latest reading then")
    created_at: dt.datetime


def task_out(task: queries.ObservationTask, now: dt.datetime) -> ObservationTaskOut:
    return ObservationTaskOut(
        id=task.id, patient_id=task.patient_id, parameter=task.parameter, method=task.method,
        due_at=task.due_at, overdue=task.overdue(now), last_at=task.last_at,
        created_at=task.created_at)


@router.get("", response_model=Page[ObservationTaskOut])
def list_observation_tasks(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Page[ObservationTaskOut]:
    """Open hub tasks (phone calls and visits), soonest due first."""
    if patient_id is not None:
        require_patient(conn, patient_id)
    tasks, total = queries.open_tasks(conn, patient_id=patient_id, limit=limit, offset=offset)
    audit.record(conn, user, "list", "observation_task", now=now,
                 patient_ids=[t.patient_id for t in tasks],
                 detail={"task_ids": [t.id for t in tasks]})
    return Page[ObservationTaskOut](items=[task_out(t, now) for t in tasks], total=total,
                                    limit=limit, offset=offset)
