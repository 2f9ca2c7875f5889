"""Alert episodes as the hub reads them: the queue, one episode with its timeline and findings,
the cards the alerts page shows, and the count of what needs action.

*Needs action* is one definition, used by the nav badge and the alerts page heading alike: an
open episode that is raised (nobody has acknowledged it) and not snoozed now. Acknowledged and
snoozed episodes are still open — they are listed in their own sections, not counted.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from pydantic import BaseModel, Field

from ward.hub.problems import NotFound

Conn = psycopg.Connection[Any]
Severity = Literal["info", "low", "low_medium", "medium", "high"]
StateFilter = Literal["open", "raised", "acknowledged", "resolved", "all"]


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
    escalation_target: str | None = None
    #: The last escalation: when, and by whom (``system`` for the timer, else the person).
    escalated_at: dt.datetime | None = None
    escalated_by: str | None = None
    #: Whom the last escalation notified: [{"channel", "recipient"}] (and the on-call name).
    escalated_contacts: list[dict[str, Any]] | None = None
    escalated_on_call: str | None = None
    seconds_to_escalation: int | None = Field(
        description="countdown to the next escalation step; negative when overdue")

    def snoozed(self, now: dt.datetime) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > now

    def needs_action(self, now: dt.datetime) -> bool:
        return self.state == "raised" and not self.snoozed(now)


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


class AlertCountsOut(BaseModel):
    needs_action: int = Field(description="raised, not acknowledged and not snoozed now")
    acknowledged: int
    snoozed: int
    high_ids: list[int] = Field(description="the high-severity episodes that need action "
                                            "(the browser's attention signal)")


@dataclass(frozen=True, slots=True)
class Sections:
    """The open episodes, split as the alerts page shows them."""

    new: tuple[AlertDetailOut, ...]
    acknowledged: tuple[AlertDetailOut, ...]
    snoozed: tuple[AlertDetailOut, ...]


_SEVERITY_ORDER = sql.SQL("CASE a.severity WHEN 'high' THEN 5 WHEN 'medium' THEN 4 "
                          "WHEN 'low_medium' THEN 3 WHEN 'low' THEN 2 ELSE 1 END")
_SELECT = sql.SQL(
    "SELECT a.id, a.patient_id, p.given_name || ' ' || p.family_name, a.kind, a.severity, "
    "a.state, a.summary, a.details, a.raised_at, a.updated_at, a.acknowledged_at, "
    "a.acknowledged_by, a.resolved_at, a.resolved_by, a.resolution_reason, a.snoozed_until, "
    "a.escalation_tier, a.next_escalation_at, a.partial, a.escalation_target, esc.at, "
    "esc.actor, esc.detail->'recipients', esc.detail->>'on_call' "
    "FROM alerts a JOIN patients p ON p.id = a.patient_id "
    "LEFT JOIN LATERAL (SELECT e.at, e.actor, e.detail FROM alert_events e WHERE e.alert_id = a.id "
    "AND e.event = 'escalated' ORDER BY e.at DESC, e.id DESC LIMIT 1) esc ON true ")
_FIELDS = [f for f in AlertOut.model_fields if f != "seconds_to_escalation"]


def _out(row: Sequence[Any], now: dt.datetime) -> AlertOut:
    values = dict(zip(_FIELDS, row, strict=True))
    nxt = values["next_escalation_at"]
    countdown = (int((nxt - now).total_seconds())
                 if nxt is not None and values["state"] == "raised" else None)
    return AlertOut(**values, seconds_to_escalation=countdown)


def query_alerts(conn: Conn, now: dt.datetime, *, state: StateFilter = "open",
                 severity: str | None = None, patient_id: int | None = None,
                 limit: int = 50, offset: int = 0) -> tuple[list[AlertOut], int]:
    """The queue: most severe, then newest, first; and how many match in all."""
    clauses: list[sql.Composable] = [sql.SQL("true")]
    params: list[object] = []
    if state == "open":
        clauses.append(sql.SQL("a.state <> 'resolved'"))
    elif state != "all":
        clauses.append(sql.SQL("a.state = %s"))
        params.append(state)
    if severity is not None:
        clauses.append(sql.SQL("a.severity = %s"))
        params.append(severity)
    if patient_id is not None:
        clauses.append(sql.SQL("a.patient_id = %s"))
        params.append(patient_id)
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses)
    total = conn.execute(sql.SQL("SELECT count(*) FROM alerts a ") + where, params).fetchone()
    rows = conn.execute(
        _SELECT + where + sql.SQL(" ORDER BY {} DESC, a.raised_at DESC, a.id DESC "
                                  "LIMIT %s OFFSET %s").format(_SEVERITY_ORDER),
        [*params, limit, offset]).fetchall()
    return [_out(r, now) for r in rows], int(total[0]) if total else 0


def _events(conn: Conn, ids: Sequence[int]) -> dict[int, list[AlertEventOut]]:
    out: dict[int, list[AlertEventOut]] = defaultdict(list)
    for aid, at, event, actor, detail, evidence in conn.execute(
            "SELECT alert_id, at, event, actor, detail, evidence FROM alert_events "
            "WHERE alert_id = ANY(%s) ORDER BY at, id", (list(ids),)):
        out[aid].append(AlertEventOut(at=at, event=event, actor=actor, detail=detail or {},
                                      evidence=list(evidence or [])))
    return out


def _findings(conn: Conn, ids: Sequence[int]) -> dict[int, list[FindingOut]]:
    out: dict[int, list[FindingOut]] = defaultdict(list)
    for (aid, kind, severity, summary, details, evidence, partial, first_at, last_at,
         clear_since, cleared_at, inhibited) in conn.execute(
            "SELECT alert_id, kind, severity, summary, details, evidence, partial, first_at, "
            "last_at, clear_since, cleared_at, inhibited FROM alert_findings "
            "WHERE alert_id = ANY(%s) ORDER BY cleared_at IS NOT NULL, first_at, kind",
            (list(ids),)):
        out[aid].append(FindingOut(
            kind=kind, severity=severity, summary=summary, details=details or {},
            evidence=list(evidence or []), partial=partial, first_at=first_at, last_at=last_at,
            clear_since=clear_since, cleared_at=cleared_at, inhibited=inhibited))
    return out


def with_timeline(conn: Conn, alerts: Sequence[AlertOut]) -> list[AlertDetailOut]:
    """``alerts`` with their events and findings (two queries, whatever their number)."""
    ids = [a.id for a in alerts]
    events, findings = _events(conn, ids), _findings(conn, ids)
    return [AlertDetailOut(**a.model_dump(), events=events.get(a.id, []),
                           findings=findings.get(a.id, [])) for a in alerts]


def load_alert(conn: Conn, alert_id: int, now: dt.datetime) -> AlertDetailOut:
    row = conn.execute(_SELECT + sql.SQL("WHERE a.id = %s"), (alert_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alert with id {alert_id}")
    return with_timeline(conn, [_out(row, now)])[0]


def sections(conn: Conn, now: dt.datetime, *, patient_id: int | None = None,
             limit: int = 200) -> Sections:
    """The open episodes as cards: new (needs action), acknowledged, snoozed."""
    alerts, _ = query_alerts(conn, now, state="open", patient_id=patient_id, limit=limit)
    cards = with_timeline(conn, alerts)
    snoozed = tuple(c for c in cards if c.snoozed(now))
    return Sections(new=tuple(c for c in cards if c.needs_action(now)),
                    acknowledged=tuple(c for c in cards
                                       if c.state == "acknowledged" and not c.snoozed(now)),
                    snoozed=snoozed)


def counts(conn: Conn, now: dt.datetime) -> AlertCountsOut:
    """What the badge and the alerts heading count (see the module docstring)."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE state = 'raised' AND NOT snoozed), "
        "count(*) FILTER (WHERE state = 'acknowledged' AND NOT snoozed), "
        "count(*) FILTER (WHERE snoozed), "
        "coalesce(array_agg(id ORDER BY id) FILTER ("
        "WHERE state = 'raised' AND NOT snoozed AND severity = 'high'), '{}') "
        "FROM (SELECT id, state, severity, coalesce(snoozed_until > %s, false) AS snoozed "
        "FROM alerts WHERE state <> 'resolved') o", (now,)).fetchone()
    n = row if row is not None else (0, 0, 0, [])
    return AlertCountsOut(needs_action=int(n[0]), acknowledged=int(n[1]), snoozed=int(n[2]),
                          high_ids=[int(i) for i in n[3]])
