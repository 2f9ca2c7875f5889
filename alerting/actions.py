"""What a hub user does to an alert: acknowledge, resolve, snooze.

Each call locks the alert row, applies the pure lifecycle transition, and writes the alert, its
event (with the alert's evidence), outbox rows and ``NOTIFY vw_events`` in the **caller's**
transaction; the caller commits. Errors: :class:`~alerting.errors.AlertNotFound`,
:class:`~alerting.errors.AlertTransitionError` (both ``AlertingError``, a ``ValueError``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from alerting import lifecycle, store
from alerting.errors import AlertNotFound, AlertTransitionError
from alerting.lifecycle import Alert, Transition
from alerting.policy import Policy
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


def _apply(conn: Conn, transition: Transition, now: dt.datetime, policy: Policy | None) -> None:
    alert = transition.before
    assert alert is not None  # noqa: S101 - manual transitions start from a stored alert
    persist(conn, [transition], policy or default_policy(), now,
            ceilings={alert.patient_id: _ceiling(conn, alert.patient_id)})


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
           policy: Policy | None = None) -> None:
    """Silence until ``until``: at most the policy's maximum, never past a high alert's escalation."""
    _aware(now)
    chosen = policy or default_policy()
    alert = _load(conn, alert_id)
    _apply(conn, lifecycle.snooze(alert, by=by, until=until, now=now,
                                  max_snooze=chosen.max_snooze), now, chosen)
