"""The ward manager's pages: referral triage queue, phone referral, admission, discharge.

Server-rendered forms (no script needed to submit them; `static/flows.js` adds the live clock
since referral, the 2-hour countdown, the kit scanner, and keeps the triage queue live: an
admission or referral event on the hub's stream, `/api/events`, refetches `/referrals/live`). Every change goes through `ward.hub.admitting` inside a
savepoint, so a refused form (ward full, unknown device, invalid NHS number) changes nothing
and is shown again with what was typed and a message saying why.

Roles: everyone sees the queue and may enter a referral; triage, admission and discharge are
`admissions.TRIAGE` (clinician, admin); the care plan at admission is a clinician's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from alerting.care_plan import Ceiling
from ward.domain import nhs_number
from ward.domain.errors import DomainError
from ward.domain.patients import (
    URGENT_RESPONSE,
    Contact,
    DischargeOutcome,
    Patient,
    ReferralSource,
    Urgency,
)
from ward.hub import admitting, audit
from ward.hub.auth import PRESCRIBERS, User
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.problems import Problem
from ward.hub.queries import admissions as queries
from ward.hub.queries import devices, patients
from ward.hub.routers.admissions import (
    TRIAGE,
    AdmissionOut,
    Referrer,
    Triage,
    load_admission,
)
from ward.hub.routers.common import AdmissionId, Conn, Reader
from ward.hub.templating import render
from ward.settings import Settings

router = APIRouter(include_in_schema=False)
F = Form(max_length=2000)
# Urgent first, then oldest: the order a triage nurse works through the queue.
_URGENCY_ORDER = [u.value for u in Urgency]
# Observations a referrer usually gives on the phone (vital code, label, unit).
REFERRAL_OBS = (("resp_rate", "Respiration rate", "/min"), ("spo2", "SpO2", "%"),
                ("pulse", "Pulse", "/min"), ("systolic_bp", "Systolic BP", "mmHg"),
                ("temperature", "Temperature", "°C"))
OUTCOME_LABEL = {"usual_residence": "Remained at usual place of residence",
                 "conveyed_ed": "Conveyed to ED", "admitted_hospital": "Admitted to hospital",
                 "died": "Died", "transferred": "Transferred to another service"}
URGENCY_LABEL = {"two_hour": "2-hour response", "same_day": "Same day",
                 "next_day": "Next day", "routine": "Routine"}


def _ctx(request: Request, user: User, now: dt.datetime, settings: Settings,
         **extra: Any) -> dict[str, Any]:
    return {"request": request, "user": user, "now": now, "active": "referrals",
            "beds": settings.ward_beds, "nhs": nhs_number.display, "can_triage":
            user.role in TRIAGE, "outcomes": OUTCOME_LABEL, "urgencies": URGENCY_LABEL,
            "referral_obs": REFERRAL_OBS, **extra}


def _attempt(conn: Conn, action: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run `action` in a savepoint; a refusal rolls it back and comes back as a message."""
    try:
        with conn.transaction():
            return action(), None
    except (DomainError, Problem) as exc:
        return None, str(exc.detail if isinstance(exc, Problem) else exc)


def _queue_page(request: Request, conn: Conn, now: dt.datetime, settings: Settings,
                user: User, error: str | None = None, status: int = 200,
                template: str = "referrals.html") -> Response:
    queue = queries.referral_queue(conn, _URGENCY_ORDER)
    decided = queries.recent_decisions(conn)
    admitted = admitting.admitted_count(conn)
    audit.record(conn, user, "list", "referral", now=now,
                 patient_ids=[*(q["patient_id"] for q in queue),
                              *(d["patient_id"] for d in decided)],
                 detail={"live": True} if template != "referrals.html" else None)
    return render(request, template, _ctx(
        request, user, now, settings, queue=queue, decided=decided, admitted=admitted,
        full=admitted >= settings.ward_beds, error=error, urgent_window=URGENT_RESPONSE),
        status_code=status)


@router.get("/referrals")
def referrals_page(request: Request, conn: DB, now: Now, settings: SettingsDep,
                   user: Reader) -> Response:
    return _queue_page(request, conn, now, settings, user)


@router.get("/referrals/live")
def referrals_live(request: Request, conn: DB, now: Now, settings: SettingsDep,
                   user: Reader) -> Response:
    """The queue, the decisions and the bed state alone: what an open triage page swaps in
    when the event stream says an admission or referral changed (static/flows.js)."""
    return _queue_page(request, conn, now, settings, user, template="_referral_queue.html")


@router.get("/referrals/new")
def new_referral_page(request: Request, now: Now, settings: SettingsDep, user: Referrer
                      ) -> Response:
    return render(request, "referral_new.html", _ctx(
        request, user, now, settings, form={}, error=None, sources=list(ReferralSource)))


@router.post("/referrals/new")
async def new_referral(request: Request, conn: DB, now: Now, settings: SettingsDep,
                       user: Referrer) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    observations: dict[str, float] = {}

    def _refer() -> int:
        for code, label, _ in REFERRAL_OBS:
            text = form.get(code, "").strip()
            if text:
                try:
                    observations[code] = float(text)
                except ValueError as exc:
                    msg = f"{label} {text!r} is not a number"
                    raise DomainError(msg) from exc
        try:
            born = dt.date.fromisoformat(form.get("date_of_birth", ""))
            source = ReferralSource(form.get("source", ""))
            urgency = Urgency(form.get("urgency", "same_day"))
        except ValueError as exc:
            msg = "give the date of birth, the referral source and the urgency"
            raise DomainError(msg) from exc
        patient = Patient(form.get("nhs_number", ""), form.get("given_name", "").strip(),
                          form.get("family_name", "").strip(), born)
        return admitting.refer_new_patient(
            conn, user, now, patient, source=source, urgency=urgency,
            reason=form.get("reason", "").strip()[:2000] or None, observations=observations,
            referrer=form.get("referrer", "").strip()[:200] or None)

    _, error = _attempt(conn, _refer)
    if error is None:
        return RedirectResponse("/referrals", status_code=303)
    return render(request, "referral_new.html", _ctx(
        request, user, now, settings, form=form, error=error, sources=list(ReferralSource)),
        status_code=422)


@router.post("/referrals/{admission_id}/decline")
def decline_referral(request: Request, admission_id: AdmissionId, conn: DB, now: Now,
                     settings: SettingsDep, user: Triage,
                     reason: Annotated[str, F] = "") -> Response:
    _, error = _attempt(conn, lambda: admitting.decline(conn, user, now, admission_id,
                                                        reason=reason.strip()))
    if error is None:
        return RedirectResponse("/referrals", status_code=303)
    return _queue_page(request, conn, now, settings, user, error=error, status=409)


def _admit_page(request: Request, conn: Conn, now: dt.datetime, settings: Settings,
                user: User, admission_id: int, form: dict[str, str], error: str | None,
                status: int = 200) -> Response:
    admission = load_admission(conn, admission_id)
    # Audited here, not in the GET alone: a refused form shown again is a read too.
    audit.record(conn, user, "read", "patient", now=now, entity_id=admission.patient_id,
                 patient_id=admission.patient_id,
                 detail={"page": "admit"} if error is None else {"page": "admit", "refused": True})
    admitted = admitting.admitted_count(conn)
    kit = admitting.kit_status(conn, admitting.parse_device_ids(form.get("device_ids", "")),
                               patient_id=admission.patient_id, now=now)
    return render(request, "admit.html", _ctx(
        request, user, now, settings, a=admission, form=form, error=error, kit=kit,
        admitted=admitted, full=admitted >= settings.ward_beds, ceilings=list(Ceiling),
        may_plan=user.role in PRESCRIBERS), status_code=status)


@router.get("/referrals/{admission_id}/admit")
def admit_page(request: Request, admission_id: AdmissionId, conn: DB, now: Now,
               settings: SettingsDep, user: Triage) -> Response:
    admission = load_admission(conn, admission_id)
    form = {**patients.details_form(conn, admission.patient_id), "spo2_scale": "1",
            "ceiling_of_care": Ceiling.FULL_ESCALATION.value}
    return _admit_page(request, conn, now, settings, user, admission_id, form, None)


@router.post("/referrals/{admission_id}/admit")
async def admit(request: Request, admission_id: AdmissionId, conn: DB, now: Now,
                settings: SettingsDep, user: Triage) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    admission = load_admission(conn, admission_id)

    def _admit() -> None:
        try:
            born = dt.date.fromisoformat(form.get("date_of_birth", ""))
        except ValueError as exc:
            msg = "the date of birth is missing or not a date"
            raise DomainError(msg) from exc
        patient = Patient(form.get("nhs_number", ""), form.get("given_name", "").strip(),
                          form.get("family_name", "").strip(), born)
        contact = Contact(
            form.get("address", "").strip()[:500], form.get("phone", "").strip()[:30],
            form.get("next_of_kin", "").strip()[:200], form.get("gp_practice", "").strip()[:200])
        plan = None
        if user.role in PRESCRIBERS:
            reason = form.get("care_plan_reason", "").strip()[:2000]
            try:
                plan = admitting.CarePlanAtAdmission(
                    int(form.get("spo2_scale", "1")), Ceiling(form.get("ceiling_of_care", "")),
                    reason or "care plan at admission")
            except ValueError as exc:
                msg = "choose the SpO2 scale and the ceiling of care"
                raise DomainError(msg) from exc
        admitting.admit(conn, user, now, admission_id, beds=settings.ward_beds,
                        patient=patient, contact=contact, plan=plan,
                        device_ids=admitting.parse_device_ids(form.get("device_ids", ""))[:12])

    _, error = _attempt(conn, _admit)
    if error is None:
        return RedirectResponse(f"/patients/{admission.patient_id}", status_code=303)
    return _admit_page(request, conn, now, settings, user, admission_id, form, error, 409)


def _discharge_page(request: Request, conn: Conn, now: dt.datetime, settings: Settings,
                    user: User, admission: AdmissionOut, form: dict[str, str],
                    error: str | None, status: int = 200) -> Response:
    """The discharge form: the admission and the kit to collect; audited as a read of the
    admission (also when a refused form is shown again)."""
    audit.record(conn, user, "read", "admission", now=now, entity_id=admission.id,
                 patient_id=admission.patient_id,
                 detail={"page": "discharge"} if error is None
                 else {"page": "discharge", "refused": True})
    return render(request, "discharge.html", _ctx(
        request, user, now, settings, a=admission, error=error, form=form,
        devices=devices.assigned_ids(conn, admission.patient_id)), status_code=status)


@router.get("/admissions/{admission_id}/discharge")
def discharge_page(request: Request, admission_id: AdmissionId, conn: DB, now: Now,
                   settings: SettingsDep, user: Triage) -> Response:
    return _discharge_page(request, conn, now, settings, user,
                           load_admission(conn, admission_id), {}, None)


@router.post("/admissions/{admission_id}/discharge")
def discharge(request: Request, admission_id: AdmissionId, conn: DB, now: Now,
              settings: SettingsDep, user: Triage, outcome: Annotated[str, F] = "",
              note: Annotated[str, F] = "") -> Response:
    admission = load_admission(conn, admission_id)

    def _discharge() -> admitting.Discharged:
        try:
            chosen = DischargeOutcome(outcome)
        except ValueError as exc:
            msg = "choose how the stay ended"
            raise DomainError(msg) from exc
        return admitting.discharge(conn, user, now, admission_id, outcome=chosen,
                                   note=note.strip() or None)

    done, error = _attempt(conn, _discharge)
    if error is not None:
        return _discharge_page(request, conn, now, settings, user, admission,
                               {"outcome": outcome, "note": note}, error, 409)
    return render(request, "discharged.html", _ctx(request, user, now, settings,
                                                   a=admission, done=done))
