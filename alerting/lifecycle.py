"""The alert lifecycle as a pure state machine: raised → acknowledged → resolved.

An alert is a patient's *episode* (:mod:`alerting.episodes` decides what the rules' findings do
to it: grouping, severity, inhibition, hysteresis, automatic resolution). This module holds the
episode type and what people and timers do to it. Every transition returns the alert after it
and the events to store, each with the readings behind it, so an alert can be traced to its
evidence.

Decisions (documented here, enforced here):

* **Worse news re-opens** (decided in :mod:`alerting.episodes`): a severity increase on an
  acknowledged episode sets it back to *raised*; its escalation timer restarts.
* **Bounded snooze**: at most :data:`MAX_SNOOZE` (4 h, a low-risk observation cycle); it defers
  the escalation timer of low..medium alerts to the snooze's end; a **high** alert can never be
  snoozed past its next escalation — the request is refused — so an emergency always reaches
  the next tier on time.
* Acknowledging stops the escalation timer; resolving needs a reason from a person.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from alerting.candidates import Evidence, Kind, Severity
from alerting.errors import AlertTransitionError

if TYPE_CHECKING:
    from alerting.episodes import Finding

MAX_SNOOZE: Final = dt.timedelta(hours=4)
SYSTEM: Final = "system"


class State(enum.StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as stored in ``alerts`` (``id`` None until inserted)."""

    patient_id: int
    kind: Kind
    severity: Severity
    state: State
    summary: str
    raised_at: dt.datetime
    updated_at: dt.datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    partial: bool = False
    id: int | None = None
    acknowledged_at: dt.datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    resolution_reason: str | None = None
    snoozed_until: dt.datetime | None = None
    escalation_tier: int = 0
    next_escalation_at: dt.datetime | None = None
    escalation_target: str | None = None
    #: The episode's findings, active and cleared (empty when loaded without them).
    findings: tuple[Finding, ...] = ()

    @property
    def open(self) -> bool:
        return self.state is not State.RESOLVED


@dataclass(frozen=True, slots=True)
class Event:
    """One stored transition (a row of ``alert_events``)."""

    event: str
    at: dt.datetime
    actor: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    """The alert before and after one step, and the events it produced."""

    before: Alert | None
    after: Alert | None
    events: tuple[Event, ...] = ()

    @property
    def changed(self) -> bool:
        return self.after is not None and self.after != self.before


AckWithin = Mapping[Severity, dt.timedelta | None]


def timer(ack_within: AckWithin, severity: Severity, now: dt.datetime) -> dt.datetime | None:
    """When an alert of ``severity`` raised at ``now`` escalates unless acknowledged."""
    delay = ack_within.get(severity)
    return None if delay is None else now + delay


def _need(value: str, what: str, alert: Alert) -> str:
    if not value or not value.strip():
        raise AlertTransitionError(f"alert {alert.id}: {what} is required")
    return value.strip()


def acknowledge(alert: Alert, *, by: str, now: dt.datetime) -> Transition:
    """A person takes the alert: stops its escalation timer."""
    by = _need(by, "'by' (who acknowledges)", alert)
    if alert.state is State.RESOLVED:
        raise AlertTransitionError(f"alert {alert.id} is resolved and cannot be acknowledged")
    if alert.state is State.ACKNOWLEDGED:
        raise AlertTransitionError(
            f"alert {alert.id} is already acknowledged by {alert.acknowledged_by} at "
            f"{alert.acknowledged_at.isoformat() if alert.acknowledged_at else '?'}")
    after = replace(alert, state=State.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=by,
                    next_escalation_at=None, updated_at=now)
    return Transition(alert, after, (Event("acknowledged", now, by, {
        "after_seconds": (now - alert.raised_at).total_seconds(),
        "escalation_tier": alert.escalation_tier}, alert.evidence),))


def resolve(alert: Alert, *, by: str, reason: str, now: dt.datetime) -> Transition:
    """A person resolves the alert, with a reason."""
    by = _need(by, "'by' (who resolves)", alert)
    reason = _need(reason, "a reason", alert)
    if alert.state is State.RESOLVED:
        raise AlertTransitionError(
            f"alert {alert.id} is already resolved by {alert.resolved_by}: {alert.resolution_reason}")
    after = replace(alert, state=State.RESOLVED, resolved_at=now, resolved_by=by,
                    resolution_reason=reason, next_escalation_at=None, snoozed_until=None,
                    updated_at=now)
    return Transition(alert, after, (Event("resolved", now, by, {"reason": reason,
                                                                 "automatic": False},
                                           alert.evidence),))


def snooze(alert: Alert, *, by: str, until: dt.datetime, now: dt.datetime,
           max_snooze: dt.timedelta = MAX_SNOOZE, reason: str | None = None) -> Transition:
    """Silence repeats until ``until`` (bounded; never past a high alert's escalation)."""
    by = _need(by, "'by' (who snoozes)", alert)
    if until.tzinfo is None:
        raise AlertTransitionError(f"alert {alert.id}: until must be timezone-aware, got {until!r}")
    if alert.state is State.RESOLVED:
        raise AlertTransitionError(f"alert {alert.id} is resolved and cannot be snoozed")
    if until <= now:
        raise AlertTransitionError(f"alert {alert.id}: snooze until {until.isoformat()} is not in the future")
    if until - now > max_snooze:
        raise AlertTransitionError(
            f"alert {alert.id}: snooze of {until - now} is longer than the maximum {max_snooze}")
    changes: dict[str, Any] = {"snoozed_until": until, "updated_at": now}
    if alert.state is State.RAISED and alert.next_escalation_at is not None:
        if alert.severity is Severity.HIGH:
            if until > alert.next_escalation_at:
                raise AlertTransitionError(
                    f"alert {alert.id} is high and escalates at "
                    f"{alert.next_escalation_at.isoformat()}; it cannot be snoozed past that")
        else:
            changes["next_escalation_at"] = max(alert.next_escalation_at, until)
    after = replace(alert, **changes)
    detail: dict[str, Any] = {"until": until.isoformat()}
    if reason and reason.strip():
        detail["reason"] = reason.strip()
    return Transition(alert, after, (Event("snoozed", now, by, detail, alert.evidence),))


def expire_snooze(alert: Alert, now: dt.datetime) -> Transition:
    """The snooze has run out: clear it so repeats and escalation resume."""
    if alert.snoozed_until is None or alert.snoozed_until > now or not alert.open:
        return Transition(alert, alert)
    after = replace(alert, snoozed_until=None, updated_at=now)
    return Transition(alert, after, (Event("snooze_expired", now, SYSTEM, {
        "snoozed_until": alert.snoozed_until.isoformat()}, alert.evidence),))


def escalate(alert: Alert, *, tier: int, target: str, next_at: dt.datetime | None,
             now: dt.datetime, detail: Mapping[str, Any]) -> Transition:
    """Record an escalation decided by :func:`alerting.escalation.next_step`."""
    after = replace(alert, escalation_tier=tier, escalation_target=target,
                    next_escalation_at=next_at, updated_at=now)
    return Transition(alert, after, (Event("escalated", now, SYSTEM, {
        "tier": tier, "target": target, **detail}, alert.evidence),))


def escalate_now(alert: Alert, *, by: str, tier: int, target: str,
                 next_at: dt.datetime | None, now: dt.datetime,
                 detail: Mapping[str, Any]) -> Transition:
    """A person escalates now (to the next tier or a named contact), without waiting for the timer.

    Works on a raised or acknowledged episode (a nurse who took it may still want a clinician);
    an acknowledged one keeps no timer, a raised one restarts it at ``next_at``.
    """
    by = _need(by, "'by' (who escalates)", alert)
    target = _need(target, "a target", alert)
    if alert.state is State.RESOLVED:
        raise AlertTransitionError(f"alert {alert.id} is resolved and cannot be escalated")
    timer_at = next_at if alert.state is State.RAISED else None
    after = replace(alert, escalation_tier=tier, escalation_target=target,
                    next_escalation_at=timer_at, updated_at=now)
    return Transition(alert, after, (Event("escalated", now, by, {
        "tier": tier, "target": target, "manual": True, **detail}, alert.evidence),))


def note(alert: Alert, *, by: str, text: str, now: dt.datetime) -> Transition:
    """A person adds a note to the episode's timeline; nothing else changes."""
    by = _need(by, "'by' (who writes)", alert)
    text = _need(text, "the note", alert)
    after = replace(alert, updated_at=now)
    return Transition(alert, after, (Event("note", now, by, {"text": text}),))


def fields_of(alert: Alert) -> dict[str, Any]:
    """The alert as a plain dict (for storage; findings are stored on their own)."""
    return {f.name: getattr(alert, f.name) for f in dataclasses.fields(alert)
            if f.name != "findings"}
