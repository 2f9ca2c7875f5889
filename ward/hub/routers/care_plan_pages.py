"""The care plan screen (`/patients/{id}/care-plan`): SpO2 scale, ceiling of care and
patient-specific thresholds, each change with its author and reason, and the history.

Everyone on the ward may read the plan; only a clinician (`PRESCRIBERS`) may change it, and
only through the alerting core's own functions (`alerting.care_plan_store.set_*`), exactly as the
JSON API does, so the rules (Scale 2 needs a named clinician and a reason, …) hold on screen
too. Forms post back here and redirect (post/redirect/get); a refused change re-renders the
form with the reason and a 422.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from alerting import care_plan_store
from alerting.care_plan import THRESHOLD_PARAMETERS, Ceiling
from alerting.errors import CarePlanError
from ward.domain import nhs_number
from ward.hub import audit, care_plan_view
from ward.hub.auth import PRESCRIBERS, User
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
from ward.hub.routers.common import Conn, PatientId, Prescriber, Reader, notify
from ward.hub.templating import render

router = APIRouter(include_in_schema=False)
Reason = Annotated[str, Form(max_length=2000)]
Number = Annotated[str, Form(max_length=32)]
CEILING_LABEL = {Ceiling.FULL_ESCALATION: "Full escalation",
                 Ceiling.NOT_FOR_CONVEYANCE: "Not for conveyance to hospital",
                 Ceiling.PALLIATIVE: "Palliative (comfort care)"}


def _number(text: str, name: str) -> float | None:
    """An optional number from a form field: empty is None, anything else must be finite."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise CarePlanError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CarePlanError(f"{name} must be a finite number")
    return value


def _page(request: Request, conn: Conn, now: Now, user: User, patient_id: int, *,
          error: str | None = None, status: int = 200) -> Response:
    patient = care_plan_view.heading(conn, patient_id)
    if patient is None:
        raise NotFound(f"no patient with id {patient_id}")
    plan = care_plan_store.load_care_plan(conn, patient_id)
    changes = care_plan_view.history(conn, patient_id)
    audit.record(conn, user, "read", "care_plan", now=now, entity_id=patient_id,
                 patient_id=patient_id, detail={"page": True, "history": len(changes)})
    return render(request, "care_plan.html", {
        "user": user, "now": now, "active": "ward", "request": request,
        "nhs": nhs_number.display, "patient": patient, "plan": plan, "changes": changes,
        "can_change": user.role in PRESCRIBERS, "ceilings": CEILING_LABEL,
        "parameters": sorted(THRESHOLD_PARAMETERS), "error": error,
        "saved": request.query_params.get("saved")}, status_code=status)


def _done(patient_id: int, what: str) -> Response:
    return RedirectResponse(f"/patients/{patient_id}/care-plan?saved={what}", status_code=303)


@router.get("/patients/{patient_id}/care-plan")
def care_plan_page(request: Request, patient_id: PatientId, conn: DB, now: Now, user: Reader
                   ) -> Response:
    return _page(request, conn, now, user, patient_id)


@router.post("/patients/{patient_id}/care-plan/spo2-scale")
def post_spo2_scale(request: Request, patient_id: PatientId, conn: DB, now: Now,
                    user: Prescriber, scale: Annotated[int, Form(ge=1, le=2)], reason: Reason,
                    target_low: Number = "", target_high: Number = "") -> Response:
    try:
        care_plan_store.set_spo2_scale(
            conn, patient_id, scale=scale, target_low=_number(target_low, "target low"),
            target_high=_number(target_high, "target high"), by=user.username,
            reason=reason.strip(), now=now)
    except CarePlanError as exc:
        return _page(request, conn, now, user, patient_id, error=str(exc), status=422)
    notify(conn, "care_plan", [patient_id])
    return _done(patient_id, "spo2")


@router.post("/patients/{patient_id}/care-plan/ceiling")
def post_ceiling(request: Request, patient_id: PatientId, conn: DB, now: Now,
                 user: Prescriber, ceiling: Annotated[Ceiling, Form()], reason: Reason
                 ) -> Response:
    try:
        care_plan_store.set_ceiling_of_care(conn, patient_id, ceiling=ceiling, by=user.username,
                                      reason=reason.strip(), now=now)
    except CarePlanError as exc:
        return _page(request, conn, now, user, patient_id, error=str(exc), status=422)
    notify(conn, "care_plan", [patient_id])
    return _done(patient_id, "ceiling")


@router.post("/patients/{patient_id}/care-plan/thresholds")
def post_threshold(request: Request, patient_id: PatientId, conn: DB, now: Now,
                   user: Prescriber, parameter: Annotated[str, Form(max_length=32)],
                   reason: Reason, low: Number = "", high: Number = "") -> Response:
    """Set a threshold; both bounds empty removes it (still with a reason)."""
    try:
        care_plan_store.set_threshold(conn, patient_id, parameter=parameter,
                                low=_number(low, "low"), high=_number(high, "high"),
                                by=user.username, reason=reason.strip(), now=now)
    except CarePlanError as exc:
        return _page(request, conn, now, user, patient_id, error=str(exc), status=422)
    notify(conn, "care_plan", [patient_id])
    return _done(patient_id, "threshold")
