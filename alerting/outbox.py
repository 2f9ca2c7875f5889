"""The notification outbox: claim due rows, record success, retry with back-off, then fail.

Rows are *claimed* in a short transaction (``FOR UPDATE SKIP LOCKED``, then leased by moving
``next_attempt_at`` forward), delivered outside any transaction, and marked afterwards — so a
slow webhook never holds a lock, several notifier processes share the work, and a crash
mid-delivery only means the lease expires and the row is tried again (receivers dedupe on the
idempotency key). After :data:`MAX_ATTEMPTS` failures ``failed_at`` is set: the row stays in
the table, visible to the hub, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import psycopg

Conn = psycopg.Connection[Any]

#: Exponential back-off: 30 s, 1, 2, 4, 8, 16, 30, 30 min — eight attempts over about 1.5 h,
#: long enough to ride out a receiver's restart or a short network outage, short enough that
#: an on-call page that cannot be delivered shows up as failed within the escalation window.
BACKOFF_BASE: Final = dt.timedelta(seconds=30)
BACKOFF_CAP: Final = dt.timedelta(minutes=30)
MAX_ATTEMPTS: Final = 8
#: A claimed row is retried by someone else if its claimant has not finished within this.
LEASE: Final = dt.timedelta(seconds=60)


class DeliveryError(Exception):
    """A notifier could not deliver; the message is stored in ``last_error``."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    channel: str
    recipient: str
    payload: Mapping[str, Any]
    idempotency_key: str
    attempts: int


class Notifier(Protocol):
    """A delivery channel (webhook, MQTT, dashboard, SMS/pager provider)."""

    def send(self, item: OutboxItem) -> None:
        """Deliver ``item`` or raise :class:`DeliveryError`."""


@dataclass(slots=True)
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int) -> dt.timedelta:
    """Delay before the next attempt after ``attempts`` failures (1-based)."""
    delay: dt.timedelta = BACKOFF_BASE * (2 ** max(0, attempts - 1))
    return min(delay, BACKOFF_CAP)


def claim(conn: Conn, now: dt.datetime, *, limit: int = 100,
          channels: list[str] | None = None) -> list[OutboxItem]:
    """Lease up to ``limit`` due rows (commits the short claiming transaction)."""
    with conn.transaction():
        rows = conn.execute(
            "UPDATE notification_outbox SET next_attempt_at = %s WHERE id IN ("
            " SELECT id FROM notification_outbox WHERE delivered_at IS NULL AND failed_at IS NULL"
            " AND next_attempt_at <= %s AND (%s::text[] IS NULL OR channel = ANY(%s::text[]))"
            " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "RETURNING id, channel, recipient, payload, idempotency_key, attempts",
            (now + LEASE, now, channels, channels, limit)).fetchall()
    return [OutboxItem(*row) for row in sorted(rows)]


def record(conn: Conn, item: OutboxItem, now: dt.datetime, error: str | None) -> str:
    """Store the outcome of one attempt; returns "delivered", "retry" or "failed"."""
    with conn.transaction():
        if error is None:
            conn.execute("UPDATE notification_outbox SET delivered_at = %s, attempts = attempts + 1, "
                         "last_error = NULL WHERE id = %s", (now, item.id))
            return "delivered"
        attempts = item.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            conn.execute("UPDATE notification_outbox SET failed_at = %s, attempts = %s, "
                         "last_error = %s WHERE id = %s", (now, attempts, error[:2000], item.id))
            conn.execute("SELECT vw_notify(%s)", (json.dumps(
                {"type": "notification_failed", "outbox_id": item.id, "channel": item.channel}),))
            return "failed"
        conn.execute("UPDATE notification_outbox SET attempts = %s, last_error = %s, "
                     "next_attempt_at = %s WHERE id = %s",
                     (attempts, error[:2000], now + backoff(attempts), item.id))
        return "retry"


def deliver_due(conn: Conn, notifiers: Mapping[str, Notifier], now: dt.datetime, *,
                limit: int = 100) -> DeliveryReport:
    """Deliver every due row whose channel has a notifier; others wait for a process that has one."""
    report = DeliveryReport()
    for item in claim(conn, now, limit=limit, channels=sorted(notifiers)):
        try:
            notifiers[item.channel].send(item)
            error = None
        except DeliveryError as exc:
            error = str(exc) or type(exc).__name__
        outcome = record(conn, item, now, error)
        if outcome == "delivered":
            report.delivered += 1
        elif outcome == "retry":
            report.retried += 1
        else:
            report.failed += 1
        if error:
            report.errors.append(f"{item.channel} {item.recipient}: {error}")
    return report
