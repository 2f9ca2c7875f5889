"""Which notifications an alert event produces (pure): recipients, payload, idempotency key.

* raised / severity_raised / snooze_expired, and any event an episode marks ``page: true``
  (a finding added that is not inhibited, :mod:`alerting.episodes`) → the current tier's
  contacts (tier 0 of the current in-hours or out-of-hours route when raised); out of hours
  a severity below the policy's ``out_of_hours.page_from`` loses its paging channels
  (:func:`escalation.reachable`); an event marked ``page: false`` never pages, nor does a
  snooze ending on an episode named by a quiet finding (the risk tier,
  :data:`~alerting.candidates.QUIET_KINDS`: it has nothing that pages);
* escalated → the contacts the escalation decision named;
* every event also goes to other systems on MQTT (``<prefix>/<patient_id>/<kind>``; ids only,
  no personal data in topics) and to the dashboard.

The idempotency key names alert, event, instant, channel and recipient, so a retried
transaction or a second scheduler run enqueues nothing twice (``ON CONFLICT DO NOTHING``).
Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from alerting import escalation
from alerting.candidates import QUIET_KINDS
from alerting.escalation import Decision
from alerting.lifecycle import Alert, Event
from alerting.policy import Contact, Policy

_PAGE_EVENTS = frozenset({"raised", "severity_raised", "snooze_expired"})


@dataclass(frozen=True, slots=True)
class Notification:
    channel: str
    recipient: str
    payload: dict[str, Any]
    idempotency_key: str
    alert_id: int


def payload(alert: Alert, event: Event, *, target: str | None = None) -> dict[str, Any]:
    return {
        "type": "alert", "alert_id": alert.id, "patient_id": alert.patient_id,
        "kind": alert.kind.value, "severity": alert.severity.value, "state": alert.state.value,
        "summary": alert.summary, "event": event.event, "at": event.at.isoformat(),
        "actor": event.actor, "partial": alert.partial, "escalation_tier": alert.escalation_tier,
        "target": target, "evidence": [e.as_json() for e in event.evidence],
    }


def notifications(alert: Alert, event: Event, policy: Policy, now: dt.datetime, *,
                  ceiling: str = "full_escalation",
                  decision: Decision | None = None) -> list[Notification]:
    assert alert.id is not None  # noqa: S101 - stored alerts only; a programming error otherwise
    contacts: tuple[Contact, ...] = ()
    target: str | None = None
    if decision is not None:
        contacts, target = decision.recipients, decision.target
    elif event.detail.get("page") is True or (
            event.event in _PAGE_EVENTS and event.detail.get("page") is not False
            and alert.kind not in QUIET_KINDS):
        chosen = escalation.initial(alert, policy, now, ceiling=ceiling)
        if alert.escalation_tier:
            tier = min(alert.escalation_tier, len(escalation.route(policy, now)) - 1)
            name, found, _ = escalation.target_of(policy, tier, ceiling, now)
            chosen = Decision(chosen.action, tier, name,
                              escalation.reachable(policy, alert.severity, now, found))
        contacts, target = chosen.recipients, chosen.target
    body = payload(alert, event, target=target)
    topic = f"{policy.mqtt_topic_prefix}/{alert.patient_id}/{alert.kind.value}"
    everyone = {(c.channel, c.recipient) for c in contacts}
    everyone |= {("mqtt", topic), ("dashboard", "hub")}
    stamp = event.at.isoformat()
    return [
        Notification(channel, recipient, body,
                     f"alert:{alert.id}:{event.event}:{stamp}:{channel}:{recipient}", alert.id)
        for channel, recipient in sorted(everyone)
    ]
