"""What a hub user does to an alert: acknowledge, resolve, snooze, escalate now, add a note.

Each call locks the alert row, applies the pure lifecycle transition, and writes the alert, its
event (with the alert's evidence), outbox rows and ``NOTIFY vw_events`` in the **caller's**
transaction; the caller commits. Errors: :class:`~alerting.errors.AlertNotFound`,
:class:`~alerting.errors.AlertTransitionError` (both ``AlertingError``, a ``ValueError``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

import psycopg

from alerting import escalation, lifecycle, store
from alerting.errors import AlertNotFound, AlertTransitionError
from alerting.escalation import Action, Decision
from alerting.lifecycle import Alert, Transition
from alerting.policy import ON_CALL, Policy
from alerting.runner import default_policy, persist

Conn = psycopg.Connection[Any]


def _load(conn: Conn, alert_id: int) -> Alert:
    found = store.select_alerts(conn, "id = %s", (alert_id,))
    if not found:
        raise AlertNotFound(alert_id)
    return found[0]


def _ceiling(conn: Conn, patient_id: int) -> str:
    row = conn.execute("SELECT ceiling_of_care FROM care_plans WHERE patient_id = %s",
                       (patient_id,)).fetchone()
    return "full_escalation" if row is None else str(row[0])


def _apply(conn: Conn, transition: Transition, now: dt.datetime, policy: Policy | None,
           decision: Decision | None = None) -> None:
    alert = transition.before
    assert alert is not None  # noqa: S101 - manual transitions start from a stored alert
    decisions = {alert.id: decision} if decision is not None and alert.id is not None else None
    persist(conn, [transition], policy or default_policy(), now,
            ceilings={alert.patient_id: _ceiling(conn, alert.patient_id)}, decisions=decisions)


def _aware(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise AlertTransitionError(f"now must be timezone-aware, got {now!r}")


def acknowledge(conn: Conn, alert_id: int, *, by: str, now: dt.datetime,
                policy: Policy | None = None) -> None:
    """``by`` takes the alert; its escalation timer stops."""
    _aware(now)
    alert = _load(conn, alert_id)
    _apply(conn, lifecycle.acknowledge(alert, by=by, now=now), now, policy)


def resolve(conn: Conn, alert_id: int, *, by: str, reason: str, now: dt.datetime,
            policy: Policy | None = None) -> None:
    """``by`` resolves the alert with ``reason``."""
    _aware(now)
    alert = _load(conn, alert_id)
    _apply(conn, lifecycle.resolve(alert, by=by, reason=reason, now=now), now, policy)


def snooze(conn: Conn, alert_id: int, *, by: str, until: dt.datetime, now: dt.datetime,
           policy: Policy | None = None, reason: str | None = None) -> None:
    """Silence until ``until``: at most the policy's maximum, never past a high alert's escalation."""
    _aware(now)
    chosen = policy or default_policy()
    alert = _load(conn, alert_id)
    _apply(conn, lifecycle.snooze(alert, by=by, until=until, now=now,
                                  max_snooze=chosen.max_snooze, reason=reason), now, chosen)


def escalation_targets(policy: Policy | None = None) -> tuple[str, ...]:
    """The named contacts a person may escalate to (the policy's contacts and the on-call rota)."""
    chosen = policy or default_policy()
    return tuple(sorted({*chosen.contacts, ON_CALL}))


def escalate_now(conn: Conn, alert_id: int, *, by: str, now: dt.datetime, to: str | None = None,
                 reason: str | None = None, policy: Policy | None = None) -> None:
    """Escalate without waiting for the timer: to the next tier of the current route, or ``to``
    a named contact (:func:`escalation_targets`). A person's judgement is not capped by the
    severity's ``highest_tier`` (that cap limits the *timer*), only by the route's length.
    The contacts are notified on every channel, in or out of hours: a person asked for it.
    """
    _aware(now)
    chosen = policy or default_policy()
    alert = _load(conn, alert_id)
    ceiling = _ceiling(conn, alert.patient_id)
    route = escalation.route(chosen, now)
    tier = min(alert.escalation_tier + 1, len(route) - 1)
    if to is not None:
        if to not in escalation_targets(chosen):
            raise AlertTransitionError(f"alert {alert_id}: no contact named {to!r} in the policy")
        tier = route.index(to) if to in route else alert.escalation_tier
        target, recipients, person = to, chosen.contacts.get(to, ()), None
        if to == ON_CALL:
            shift = escalation.on_call(chosen, now)
            if shift is not None:
                recipients, person = shift.contacts, shift.name
    else:
        target, recipients, person = escalation.target_of(chosen, tier, ceiling, now)
    delay = chosen.ack_within.get(alert.severity)
    next_at = None if delay is None else now + delay
    why = (reason or "").strip() or "escalated now by a person"
    decision = Decision(Action.NOTIFY, tier, target, recipients, next_at, why,
                        escalation.in_hours(chosen, now), person)
    detail = {"reason": why, "on_call": person, "ceiling_of_care": ceiling,
              "recipients": [asdict(c) for c in recipients]}
    _apply(conn, lifecycle.escalate_now(alert, by=by, tier=tier, target=target, next_at=next_at,
                                        now=now, detail=detail), now, chosen, decision)


def note(conn: Conn, alert_id: int, *, by: str, text: str, now: dt.datetime) -> None:
    """Add ``text`` to the episode's timeline (an ``alert_events`` row, ``event = note``)."""
    _aware(now)
    alert = _load(conn, alert_id)
    transition = lifecycle.note(alert, by=by, text=text, now=now)
    # Stored directly, not through ``persist``: a note changes nothing but the timeline, and
    # a note in the same instant as another action (same updated_at) must not be dropped as
    # "unchanged". Nobody is paged for a note; the hub's screens hear of it by NOTIFY.
    if transition.after is not None and transition.after != alert:
        store.update_alerts(conn, [transition.after])
    store.insert_events(conn, [(alert_id, e) for e in transition.events])
    store.notify(conn, [{"type": "alert", "patient_id": alert.patient_id, "alert_id": alert_id,
                         "state": alert.state.value, "kind": alert.kind.value,
                         "severity": alert.severity.value}])
