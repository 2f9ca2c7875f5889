"""Alerts: the queue (most severe, then newest, first), one alert with its evidence, and the
nurse's actions — acknowledge, resolve with a reason, snooze with a reason, escalate now (next
tier or a named contact), add a note — which are the alerting core's lifecycle transitions
(`alerting.actions`), run in this request's transaction with its audit. The SQL and the output
models live in `ward.hub.queries.alerts`.

An alert is a patient's *episode* (`alerting.episodes`): one open per patient; its kind,
severity and summary are its headline finding's, and ``findings`` (detail view) lists every
finding that contributed, with its evidence and whether it was inhibited on the pager.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from alerting import actions
from ward.hub import audit
from ward.hub.deps import DB, Now
from ward.hub.problems import Invalid
from ward.hub.queries.alerts import (
    AlertCountsOut,
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    FindingOut,
    Severity,
    StateFilter,
    counts,
    load_alert,
    query_alerts,
    sections,
)
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

__all__ = ["AlertDetailOut", "AlertEventOut", "AlertOut", "FindingOut", "load_alert",
           "query_alerts", "router"]

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
#: The reasons a nurse picks from when resolving (free text may be added to any of them).
RESOLVE_REASONS = ("Clinically reviewed: no action needed", "Treated at home",
                   "Escalated: patient seen", "Artefact / device problem",
                   "Repeat observations normal", "Conveyed to hospital", "Other")
# A snooze longer than a nursing shift would hide a patient past handover.
MAX_SNOOZE = dt.timedelta(hours=12)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Text, Field(min_length=1, max_length=2000)]


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Text | None, Field(max_length=2000)] = None
    until: AwareDatetime | None = None
    minutes: Annotated[int | None, Field(ge=1, le=int(MAX_SNOOZE.total_seconds() // 60))] = None

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeIn:
        if (self.until is None) == (self.minutes is None):
            msg = "give exactly one of 'until' or 'minutes'"
            raise ValueError(msg)
        return self


class EscalateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Annotated[str | None, Field(
        max_length=100,
        description="a named contact of the policy (GET /api/alerts/escalation-targets); "
                    "default: the next tier of the current route")] = None
    reason: Annotated[Text | None, Field(max_length=2000)] = None


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[Text, Field(min_length=1, max_length=2000)]


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


@router.get("/counts", response_model=AlertCountsOut)
def alert_counts(conn: DB, now: Now, user: Reader) -> AlertCountsOut:
    """What the nav badge shows: episodes that need action (raised, not snoozed)."""
    return counts(conn, now)


@router.get("/escalation-targets", response_model=list[str])
def escalation_targets(user: Reader) -> list[str]:
    """The named contacts an episode may be escalated to."""
    return list(actions.escalation_targets())


@router.get("/{alert_id}", response_model=AlertDetailOut)
def read_alert(alert_id: AlertId, conn: DB, now: Now, user: Reader) -> AlertDetailOut:
    out = load_alert(conn, alert_id, now)
    audit.record(conn, user, "read", "alert", now=now, entity_id=alert_id,
                 patient_id=out.patient_id)
    return out


def card_context(conn: Conn, now: dt.datetime, *, patient_id: int | None = None,
                 limit: int = 200) -> dict[str, Any]:
    """What ``_alert_cards.html`` needs: the sections, the counts, the action choices."""
    counted = counts(conn, now)
    return {"sections": sections(conn, now, patient_id=patient_id, limit=limit),
            "counts": counted, "open_total": counted.needs_action,
            "patient_view": patient_id is not None,
            "resolve_reasons": RESOLVE_REASONS,
            "escalation_targets": actions.escalation_targets()}


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
    actions.snooze(conn, alert_id, by=user.username, until=until, now=now, reason=body.reason)
    return _after(conn, user, now, alert_id, "snooze", {"until": until.isoformat(),
                                                         "reason": body.reason})


@router.post("/{alert_id}/escalate", response_model=AlertDetailOut)
def escalate(alert_id: AlertId, body: EscalateIn, conn: DB, now: Now, user: Clinical
             ) -> AlertDetailOut:
    """Escalate now: to the next tier, or ``to`` a named contact; notifies them at once."""
    actions.escalate_now(conn, alert_id, by=user.username, now=now, to=body.to,
                         reason=body.reason)
    return _after(conn, user, now, alert_id, "escalate", {"to": body.to, "reason": body.reason})


@router.post("/{alert_id}/notes", response_model=AlertDetailOut, status_code=201)
def add_note(alert_id: AlertId, body: NoteIn, conn: DB, now: Now, user: Clinical
             ) -> AlertDetailOut:
    actions.note(conn, alert_id, by=user.username, text=body.text, now=now)
    return _after(conn, user, now, alert_id, "note", {"text": body.text})
