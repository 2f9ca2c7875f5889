"""People (`/people`, admins): users and roles; and the audit log viewer (`/audit`, the
clinical-safety officer and admins): who saw or changed which record when, filtered by
patient, user and time, paged, exportable as CSV.

The rules live in `ward.hub.people` (the users API keeps the same ones, with the same
status codes) and the query in `ward.hub.audit_view`; this module reads forms and renders. Viewing or exporting the audit log is itself audited, with the
filter used.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from ward.domain import nhs_number
from ward.hub import audit, audit_view, people
from ward.hub.auth import Role, User
from ward.hub.deps import DB, Now, SettingsDep
from ward.hub.problems import Invalid
from ward.hub.routers.common import BIGINT_MAX, Admin, Auditor, Conn
from ward.hub.templating import render
from ward.settings import Settings

router = APIRouter(include_in_schema=False)
UserId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
PAGE = 50
ROLE_LABEL = {Role.HUB_NURSE: "Hub nurse", Role.CLINICIAN: "Clinician", Role.ADMIN: "Admin",
              Role.SAFETY_OFFICER: "Clinical-safety officer"}


def _people_page(request: Request, conn: Conn, now: dt.datetime, user: User, *, offset: int,
                 error: str | None = None, status: int = 200) -> Response:
    rows, total = people.user_rows(conn, limit=PAGE, offset=offset, active_first=True)
    audit.record(conn, user, "list", "user", now=now, detail={"offset": offset})
    return render(request, "people.html", {
        "user": user, "now": now, "active": "people", "request": request, "people": rows,
        "total": total, "offset": offset, "page": PAGE, "roles": ROLE_LABEL, "error": error,
        "min_password": people.MIN_PASSWORD, "saved": request.query_params.get("saved")},
        status_code=status)


def _refused(request: Request, conn: Conn, now: dt.datetime, user: User,
             exc: people.PeopleError) -> Response:
    """The page again with why, and the status the users API gives the same refusal."""
    return _people_page(request, conn, now, user, offset=0, error=str(exc), status=exc.status)


@router.get("/people")
def people_page(request: Request, conn: DB, now: Now, user: Admin,
                offset: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0) -> Response:
    return _people_page(request, conn, now, user, offset=offset)


@router.post("/people")
def create_person(
    request: Request, conn: DB, now: Now, user: Admin,
    username: Annotated[str, Form(pattern=people.USERNAME_INPUT)],
    display_name: Annotated[str, Form(min_length=1, max_length=100)],
    role: Annotated[Role, Form()],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    try:
        people.create(conn, user, username=username, display_name=display_name, role=role,
                      password=password, now=now)
    except people.PeopleError as exc:
        return _refused(request, conn, now, user, exc)
    return RedirectResponse("/people?saved=created", status_code=303)


@router.post("/people/{user_id}/role")
def change_role(request: Request, user_id: UserId, conn: DB, now: Now, user: Admin,
                role: Annotated[Role, Form()]) -> Response:
    try:
        people.update(conn, user, user_id, role=role, now=now)
    except people.PeopleError as exc:
        return _refused(request, conn, now, user, exc)
    return RedirectResponse("/people?saved=role", status_code=303)


@router.post("/people/{user_id}/active")
def change_active(request: Request, user_id: UserId, conn: DB, now: Now, user: Admin,
                  active: Annotated[bool, Form()]) -> Response:
    try:
        people.update(conn, user, user_id, active=active, now=now)
    except people.PeopleError as exc:
        return _refused(request, conn, now, user, exc)
    return RedirectResponse("/people?saved=active", status_code=303)


def _filter(settings: Settings, patient_id: int | None, actor: str | None,
            start: dt.date | None, end: dt.date | None) -> audit_view.AuditFilter:
    """Dates are local calendar days, `end` included (the form reads "from … to …")."""
    tz = settings.tz

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)

    return audit_view.AuditFilter(
        patient_id=patient_id, actor=(actor or "").strip().lower() or None,
        start=None if start is None else midnight(start),
        end=None if end is None else midnight(end + dt.timedelta(days=1)))


# The filter form sends its empty fields as "": that means "no filter", not an error. So the
# fields arrive as text and are parsed here; a malformed one is a 422 problem.
PatientQ = Annotated[str | None, Query(max_length=20, alias="patient_id")]
ActorQ = Annotated[str | None, Query(max_length=64, alias="user")]
StartQ = Annotated[str | None, Query(max_length=10, alias="start")]
EndQ = Annotated[str | None, Query(max_length=10, alias="end")]
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(9998, 12, 31)


def _patient(conn: Conn, text: str | None) -> int | None:
    """A patient id, or a valid NHS number (10 digits, spaces allowed) looked up to its id."""
    if text is None or not text.strip():
        return None
    digits = text.replace(" ", "")
    if nhs_number.is_valid(digits):
        found = audit_view.patient_by_nhs_number(conn, digits)
        if found is None:
            raise Invalid(f"no patient has the NHS number {nhs_number.display(digits)}")
        return found
    if not digits.isdigit() or not 1 <= int(digits) <= BIGINT_MAX:
        raise Invalid(f"patient must be a patient id or an NHS number, got {text!r}")
    return int(digits)


def _day(text: str | None, name: str) -> dt.date | None:
    if text is None or not text.strip():
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(f"{name} must be a date (YYYY-MM-DD), got {text!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise Invalid(f"{name} must be between {FIRST_DAY} and {LAST_DAY}")
    return day


@router.get("/audit")
def audit_page(request: Request, conn: DB, now: Now, settings: SettingsDep, user: Auditor,
               patient: PatientQ = None, actor: ActorQ = None, since: StartQ = None,
               until: EndQ = None,
               offset: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0) -> Response:
    patient_id, start, end = _patient(conn, patient), _day(since, "from"), _day(until, "to")
    f = _filter(settings, patient_id, actor, start, end)
    entries, total = audit_view.search(conn, f, limit=audit_view.PAGE_SIZE, offset=offset)
    # Written after the search, so the viewer's own row is not in the page it shows.
    audit.record(conn, user, "read", "audit_log", now=now, patient_id=patient_id,
                 detail={"filter": f.as_detail(), "offset": offset, "rows": len(entries)})
    query = {k: v for k, v in (("patient_id", patient_id), ("user", f.actor),
                               ("start", start), ("end", end)) if v is not None}
    return render(request, "audit.html", {
        "user": user, "now": now, "active": "audit", "request": request, "entries": entries,
        "total": total, "offset": offset, "page": audit_view.PAGE_SIZE, "query": query,
        "f": {"patient_id": patient_id, "user": f.actor, "start": start, "end": end}})


@router.get("/audit.csv")
def audit_csv(conn: DB, now: Now, settings: SettingsDep, user: Auditor,
              patient: PatientQ = None, actor: ActorQ = None, since: StartQ = None,
              until: EndQ = None) -> Response:
    patient_id = _patient(conn, patient)
    f = _filter(settings, patient_id, actor, _day(since, "from"), _day(until, "to"))
    body = audit_view.to_csv(audit_view.export(conn, f))
    audit.record(conn, user, "export", "audit_log", now=now, patient_id=patient_id,
                 detail={"filter": f.as_detail()})
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="audit-{now:%Y%m%dT%H%M%SZ}.csv"'})
