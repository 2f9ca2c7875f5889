"""Escalate now, notes and snooze reasons: manual actions on an episode (real PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from alerting import actions
from alerting.errors import AlertTransitionError
from alerting.policy import Policy

# A Monday 10:00 UTC (11:00 BST is not in play: January) — inside hub hours.
T0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def alert_id(raise_news2: Callable[[dt.datetime], int]) -> int:
    return raise_news2(T0)


def _events(db: psycopg.Connection[Any], alert_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e, a, d) for e, a, d in db.execute(
        "SELECT event, actor, detail FROM alert_events WHERE alert_id = %s ORDER BY id",
        (alert_id,))]


def _outbox(db: psycopg.Connection[Any], alert_id: int, event: str) -> set[tuple[str, str]]:
    return {(c, r) for c, r in db.execute(
        "SELECT channel, recipient FROM notification_outbox WHERE alert_id = %s "
        "AND payload->>'event' = %s", (alert_id, event))}


def test_escalate_now_goes_to_the_next_tier_and_notifies_it(
        db: psycopg.Connection[Any], alert_id: int, policy: Policy) -> None:
    now = T0 + dt.timedelta(minutes=2)
    actions.escalate_now(db, alert_id, by="nurse.a", now=now, reason="looks grey on video",
                         policy=policy)
    db.commit()
    tier, target, nxt = db.execute("SELECT escalation_tier, escalation_target, "
                                   "next_escalation_at FROM alerts WHERE id = %s",
                                   (alert_id,)).fetchone() or (None, None, None)
    assert (tier, target) == (1, "on_call_clinician")
    assert nxt is not None
    assert nxt > now
    event, actor, detail = _events(db, alert_id)[-1]
    assert (event, actor) == ("escalated", "nurse.a")
    assert detail["manual"] is True
    assert detail["reason"] == "looks grey on video"
    assert detail["on_call"] == "Day consultant (weekdays)"
    assert ("sms", "+447700900101") in _outbox(db, alert_id, "escalated")


def test_escalate_now_to_a_named_contact_after_acknowledging(
        db: psycopg.Connection[Any], alert_id: int, policy: Policy) -> None:
    actions.acknowledge(db, alert_id, by="nurse.a", now=T0 + dt.timedelta(minutes=1), policy=policy)
    actions.escalate_now(db, alert_id, by="nurse.a", now=T0 + dt.timedelta(minutes=3),
                         to="urgent_response", policy=policy)
    db.commit()
    state, tier, target, nxt = db.execute(
        "SELECT state, escalation_tier, escalation_target, next_escalation_at FROM alerts "
        "WHERE id = %s", (alert_id,)).fetchone() or (None,) * 4
    assert (state, tier, target, nxt) == ("acknowledged", 2, "urgent_response", None)
    assert ("pager", "urgent-response-team") in _outbox(db, alert_id, "escalated")
    with pytest.raises(AlertTransitionError, match="no contact named 'nobody'"):
        actions.escalate_now(db, alert_id, by="nurse.a", now=T0 + dt.timedelta(minutes=4),
                             to="nobody", policy=policy)


def test_note_and_snooze_reason_are_in_the_timeline(
        db: psycopg.Connection[Any], alert_id: int, policy: Policy) -> None:
    actions.note(db, alert_id, by="nurse.b", text="phoned, no answer",
                 now=T0 + dt.timedelta(minutes=1))
    # A second action in the same instant (same updated_at) is still in the timeline.
    actions.note(db, alert_id, by="nurse.b", text="left a voicemail",
                 now=T0 + dt.timedelta(minutes=1))
    actions.acknowledge(db, alert_id, by="nurse.b", now=T0 + dt.timedelta(minutes=2), policy=policy)
    actions.snooze(db, alert_id, by="nurse.b", until=T0 + dt.timedelta(minutes=32),
                   now=T0 + dt.timedelta(minutes=2), reason="visit booked", policy=policy)
    db.commit()
    events = _events(db, alert_id)
    assert ("note", "nurse.b", {"text": "phoned, no answer"}) in events
    assert ("note", "nurse.b", {"text": "left a voicemail"}) in events
    snoozed = [d for e, _, d in events if e == "snoozed"]
    assert snoozed
    assert snoozed[0]["reason"] == "visit booked"
    with pytest.raises(AlertTransitionError, match="the note is required"):
        actions.note(db, alert_id, by="nurse.b", text="  ", now=T0 + dt.timedelta(minutes=3))


def test_a_resolved_episode_cannot_be_escalated(
        db: psycopg.Connection[Any], alert_id: int, policy: Policy) -> None:
    actions.resolve(db, alert_id, by="dr.b", reason="seen", now=T0 + dt.timedelta(minutes=5),
                    policy=policy)
    with pytest.raises(AlertTransitionError, match="resolved and cannot be escalated"):
        actions.escalate_now(db, alert_id, by="nurse.a", now=T0 + dt.timedelta(minutes=6),
                             policy=policy)
