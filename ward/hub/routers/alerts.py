"""Alerts: the queue (most severe, then newest, first), one alert with its evidence, and the
nurse's actions — acknowledge, resolve with a reason, snooze — which are the alerting core's
lifecycle transitions (`alerting.actions`), run in this request's transaction with its audit.

An alert is a patient's *episode* (`alerting.episodes`): one open per patient; its kind,
severity and summary are its headline finding's, and ``findings`` (detail view) lists every
finding that contributed, with its evidence and whether it was inhibited on the pager.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from alerting import actions
from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid, NotFound
from ward.hub.routers.common import (
    BIGINT_MAX,
    AlertId,
    Clinical,
    Conn,
    Limit,
    Offset,
    Page,
    Reader,
    Text,
    notify,
)

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
Severity = Literal["info", "low", "low_medium", "medium", "high"]
StateFilter = Literal["open", "raised", "acknowledged", "resolved", "all"]
# A snooze longer than a nursing shift would hide a patient past handover.
MAX_SNOOZE = dt.timedelta(hours=12)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Text, Field(min_length=1, max_length=2000)]


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    until: AwareDatetime | None = None
    minutes: Annotated[int | None, Field(ge=1, le=int(MAX_SNOOZE.total_seconds() // 60))] = None

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeIn:
        if (self.until is None) == (self.minutes is None):
            msg = "give exactly one of 'until' or 'minutes'"
            raise ValueError(msg)
        return self


class AlertEventOut(BaseModel):
    at: dt.datetime
    event: str
    actor: str
    detail: dict[str, Any]
    evidence: list[dict[str, Any]]


class AlertOut(BaseModel):
    id: int
    patient_id: int
    patient_name: str
    kind: str
    severity: Severity
    state: Literal["raised", "acknowledged", "resolved"]
    summary: str
    details: dict[str, Any]
    raised_at: dt.datetime
    updated_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None
    resolution_reason: str | None
    snoozed_until: dt.datetime | None
    escalation_tier: int
    next_escalation_at: dt.datetime | None
    #: Raised on a partial NEWS2 (a lower bound): shown as incomplete, never as the score.
    partial: bool = False
    seconds_to_escalation: int | None = Field(
        description="countdown to the next escalation step; negative when overdue")


class FindingOut(BaseModel):
    kind: str
    severity: Severity
    summary: str
    details: dict[str, Any]
    evidence: list[dict[str, Any]]
    partial: bool
    first_at: dt.datetime
    last_at: dt.datetime
    clear_since: dt.datetime | None
    cleared_at: dt.datetime | None
    inhibited: bool = Field(description="silenced on the pager by a more severe clinical finding")


class AlertDetailOut(AlertOut):
    events: list[AlertEventOut]
    findings: list[FindingOut] = []


_SEVERITY_ORDER = ("CASE a.severity WHEN 'high' THEN 5 WHEN 'medium' THEN 4 "
                   "WHEN 'low_medium' THEN 3 WHEN 'low' THEN 2 ELSE 1 END")
_SELECT = (
    "SELECT a.id, a.patient_id, p.given_name || ' ' || p.family_name, a.kind, a.severity, "
    "a.state, a.summary, a.details, a.raised_at, a.updated_at, a.acknowledged_at, "
    "a.acknowledged_by, a.resolved_at, a.resolved_by, a.resolution_reason, a.snoozed_until, "
    "a.escalation_tier, a.next_escalation_at, a.partial "
    "FROM alerts a JOIN patients p ON p.id = a.patient_id "
)
_FIELDS = [f for f in AlertOut.model_fields if f != "seconds_to_escalation"]


def _out(row: tuple[Any, ...], now: dt.datetime) -> AlertOut:
    values = dict(zip(_FIELDS, row, strict=True))
    nxt = values["next_escalation_at"]
    countdown = (int((nxt - now).total_seconds())
                 if nxt is not None and values["state"] == "raised" else None)
    return AlertOut(**values, seconds_to_escalation=countdown)


def query_alerts(conn: Conn, now: dt.datetime, *, state: StateFilter = "open",
                 severity: str | None = None, patient_id: int | None = None,
                 limit: int = 50, offset: int = 0) -> tuple[list[AlertOut], int]:
    clauses: list[str] = ["true"]
    params: list[object] = []
    if state == "open":
        clauses.append("a.state <> 'resolved'")
    elif state != "all":
        clauses.append("a.state = %s")
        params.append(state)
    if severity is not None:
        clauses.append("a.severity = %s")
        params.append(severity)
    if patient_id is not None:
        clauses.append("a.patient_id = %s")
        params.append(patient_id)
    where = "WHERE " + " AND ".join(clauses)
    total = conn.execute("SELECT count(*) FROM alerts a " + where, params).fetchone()
    rows = conn.execute(
        _SELECT + where + f" ORDER BY {_SEVERITY_ORDER} DESC, a.raised_at DESC, a.id DESC "
        "LIMIT %s OFFSET %s", [*params, limit, offset]).fetchall()
    return [_out(r, now) for r in rows], int(total[0]) if total else 0


def load_alert(conn: Conn, alert_id: int, now: dt.datetime) -> AlertDetailOut:
    row = conn.execute(_SELECT + "WHERE a.id = %s", (alert_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alert with id {alert_id}")
    events = [
        AlertEventOut(at=at, event=event, actor=actor, detail=detail or {},
                      evidence=list(evidence or []))
        for at, event, actor, detail, evidence in conn.execute(
            "SELECT at, event, actor, detail, evidence FROM alert_events "
            "WHERE alert_id = %s ORDER BY at, id", (alert_id,))
    ]
    findings = [
        FindingOut(kind=kind, severity=severity, summary=summary, details=details or {},
                   evidence=list(evidence or []), partial=partial, first_at=first_at,
                   last_at=last_at, clear_since=clear_since, cleared_at=cleared_at,
                   inhibited=inhibited)
        for kind, severity, summary, details, evidence, partial, first_at, last_at, clear_since,
        cleared_at, inhibited in conn.execute(
            "SELECT kind, severity, summary, details, evidence, partial, first_at, last_at, "
            "clear_since, cleared_at, inhibited FROM alert_findings WHERE alert_id = %s "
            "ORDER BY cleared_at IS NOT NULL, first_at, kind", (alert_id,))
    ]
    return AlertDetailOut(**_out(row, now).model_dump(), events=events, findings=findings)


@router.get("", response_model=Page[AlertOut])
def list_alerts(
    conn: DB, now: Now, user: Reader, limit: Limit = 50, offset: Offset = 0,
    state: StateFilter = "open", severity: Severity | None = None,
    patient_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Page[AlertOut]:
    """The alert queue: most severe first, then newest."""
    items, total = query_alerts(conn, now, state=state, severity=severity,
                                patient_id=patient_id, limit=limit, offset=offset)
    audit.record(conn, user, "list", "alert", now=now,
                 patient_ids=[a.patient_id for a in items],
                 detail={"alert_ids": [a.id for a in items]})
    return Page[AlertOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertDetailOut)
def read_alert(alert_id: AlertId, conn: DB, now: Now, user: Reader) -> AlertDetailOut:
    out = load_alert(conn, alert_id, now)
    audit.record(conn, user, "read", "alert", now=now, entity_id=alert_id,
                 patient_id=out.patient_id)
    return out


def _after(conn: Conn, user: Any, now: dt.datetime, alert_id: int, action: str,
           detail: dict[str, Any]) -> AlertDetailOut:
    out = load_alert(conn, alert_id, now)
    audit.record(conn, user, action, "alert", now=now, entity_id=alert_id,
                 patient_id=out.patient_id, detail=detail)
    notify(conn, "alert", [out.patient_id], alert_id=alert_id, state=out.state)
    return out


@router.post("/{alert_id}/acknowledge", response_model=AlertDetailOut)
def acknowledge(alert_id: AlertId, conn: DB, now: Now, user: Clinical) -> AlertDetailOut:
    actions.acknowledge(conn, alert_id, by=user.username, now=now)
    return _after(conn, user, now, alert_id, "acknowledge", {})


@router.post("/{alert_id}/resolve", response_model=AlertDetailOut)
def resolve(alert_id: AlertId, body: ResolveIn, conn: DB, now: Now, user: Clinical
            ) -> AlertDetailOut:
    actions.resolve(conn, alert_id, by=user.username, reason=body.reason, now=now)
    return _after(conn, user, now, alert_id, "resolve", {"reason": body.reason})


@router.post("/{alert_id}/snooze", response_model=AlertDetailOut)
def snooze(alert_id: AlertId, body: SnoozeIn, conn: DB, now: Now, user: Clinical
           ) -> AlertDetailOut:
    until = (now + dt.timedelta(minutes=body.minutes) if body.minutes is not None
             else body.until.astimezone(dt.UTC) if body.until is not None else now)
    if not now < until <= now + MAX_SNOOZE:
        raise Invalid(f"snooze until must be within the next {MAX_SNOOZE}")
    actions.snooze(conn, alert_id, by=user.username, until=until, now=now)
    return _after(conn, user, now, alert_id, "snooze", {"until": until.isoformat()})
