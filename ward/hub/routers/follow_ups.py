"""Follow-up calls after discharge: the list of calls due, and recording that one was made.

Discharge books the call (`ward.hub.admitting.discharge`, table `follow_up_calls`); hub nurses
and clinicians make it and record it here (page `/follow-ups`, API `/api/follow-up-calls`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ward.domain import nhs_number
from ward.hub import admitting, audit
from ward.hub.auth import CLINICAL, User
from ward.hub.deps import DB, Now, SettingsDep, allow
from ward.hub.routers.common import BIGINT_MAX, Conn, Reader, Text
from ward.hub.templating import render

router = APIRouter(tags=["follow-up calls"])
Caller = Annotated[User, Depends(allow(*CLINICAL))]
CallId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


class FollowUpOut(BaseModel):
    id: int
    patient_id: int
    admission_id: int
    patient_name: str
    due_at: dt.datetime
    status: Literal["due", "done", "not_reached"]
    created_at: dt.datetime
    done_at: dt.datetime | None
    done_by: str | None
    note: str | None


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reached: bool
    note: Annotated[Text | None, Field(max_length=2000)] = None


def query_calls(conn: Conn, status: str | None) -> list[FollowUpOut]:
    rows = conn.execute(
        "SELECT f.id, f.patient_id, f.admission_id, p.family_name || ', ' || p.given_name, "
        "f.due_at, f.status, f.created_at, f.done_at, f.done_by, f.note "
        "FROM follow_up_calls f JOIN patients p ON p.id = f.patient_id "
        "WHERE %s::text IS NULL OR f.status = %s ORDER BY f.due_at, f.id LIMIT 500",
        (status, status)).fetchall()
    return [FollowUpOut(**dict(zip(FollowUpOut.model_fields, r, strict=True))) for r in rows]


@router.get("/api/follow-up-calls", response_model=list[FollowUpOut])
def list_calls(conn: DB, now: Now, user: Reader,
               status: Literal["due", "done", "not_reached"] | None = None
               ) -> list[FollowUpOut]:
    calls = query_calls(conn, status)
    audit.record(conn, user, "list", "follow_up_call", now=now,
                 patient_ids=[c.patient_id for c in calls])
    return calls


@router.post("/api/follow-up-calls/{call_id}", response_model=list[FollowUpOut])
def record_call(call_id: CallId, body: RecordIn, conn: DB, now: Now, user: Caller
                ) -> list[FollowUpOut]:
    """Record the call (reached or not); returns the patient's calls."""
    patient_id = admitting.record_follow_up(conn, user, now, call_id, reached=body.reached,
                                            note=body.note)
    return [c for c in query_calls(conn, None) if c.patient_id == patient_id]


@router.get("/follow-ups", include_in_schema=False)
def follow_ups_page(request: Request, conn: DB, now: Now, settings: SettingsDep,
                    user: Reader) -> Response:
    calls: list[Any] = query_calls(conn, None)
    audit.record(conn, user, "list", "follow_up_call", now=now,
                 patient_ids=[c.patient_id for c in calls], detail={"page": True})
    return render(request, "follow_ups.html", {
        "request": request, "user": user, "now": now, "active": "follow-ups",
        "beds": settings.ward_beds, "nhs": nhs_number.display, "calls": calls,
        "may_call": user.role in CLINICAL})


@router.post("/follow-ups/{call_id}", include_in_schema=False)
def record_call_form(call_id: CallId, conn: DB, now: Now, user: Caller,
                     outcome: Annotated[str, Form(max_length=20)] = "done",
                     note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    admitting.record_follow_up(conn, user, now, call_id, reached=outcome == "done",
                               note=note.strip() or None)
    return RedirectResponse("/follow-ups", status_code=303)
