"""What people and timers do to an episode (ack, resolve, snooze), with explicit instants.

Grouping, hysteresis and inhibition are in test_alert_episodes.py."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from alerting import episodes, lifecycle
from alerting.candidates import Evidence, Firing, Kind, Severity
from alerting.errors import AlertingError, AlertTransitionError
from alerting.lifecycle import Alert, State

T = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
ACK = {Severity.HIGH: dt.timedelta(minutes=15), Severity.MEDIUM: dt.timedelta(minutes=30),
       Severity.LOW_MEDIUM: dt.timedelta(hours=1), Severity.LOW: dt.timedelta(hours=4)}


def ev(minutes: int, value: float = 90.0) -> tuple[Evidence, ...]:
    return (Evidence(T + dt.timedelta(minutes=minutes), "spo2", "ox", value),)


def fire(severity: Severity, minutes: int = 0, kind: Kind = Kind.NEWS2) -> Firing:
    return Firing(kind, severity, f"{severity} at {minutes}", {}, ev(minutes))


def at(minutes: int) -> dt.datetime:
    return T + dt.timedelta(minutes=minutes)


def raised(severity: Severity = Severity.MEDIUM) -> Alert:
    t = episodes.observe(None, [fire(severity)], T, patient_id=1, ack_within=ACK)
    assert t.after is not None
    return dataclasses.replace(t.after, id=7)


def test_manual_transitions_and_their_errors() -> None:
    alert = raised()
    with pytest.raises(AlertTransitionError, match="'by'"):
        lifecycle.acknowledge(alert, by=" ", now=at(1))
    acked = lifecycle.acknowledge(alert, by="nurse.a", now=at(1)).after
    assert acked is not None
    with pytest.raises(AlertTransitionError, match=r"already acknowledged by nurse\.a"):
        lifecycle.acknowledge(acked, by="nurse.b", now=at(2))
    with pytest.raises(AlertTransitionError, match="reason"):
        lifecycle.resolve(acked, by="nurse.a", reason="", now=at(3))
    done = lifecycle.resolve(acked, by="nurse.a", reason="reviewed by phone", now=at(3))
    assert done.after is not None
    assert done.after.state is State.RESOLVED
    assert done.events[0].actor == "nurse.a"
    with pytest.raises(AlertingError):
        lifecycle.snooze(done.after, by="x", until=at(30), now=at(4))


@pytest.mark.parametrize(("severity", "minutes", "ok"), [
    (Severity.MEDIUM, 240, True),
    (Severity.MEDIUM, 241, False),  # longer than the 4 h bound
    (Severity.MEDIUM, 0, False),  # not in the future
    (Severity.HIGH, 15, True),  # up to its escalation
    (Severity.HIGH, 16, False),  # never past a high alert's escalation
])
def test_bounded_snooze(severity: Severity, minutes: int, ok: bool) -> None:
    alert = raised(severity)
    if ok:
        after = lifecycle.snooze(alert, by="n", until=at(minutes), now=T).after
        assert after is not None
        assert after.snoozed_until == at(minutes)
        assert (after.next_escalation_at is not None and after.next_escalation_at >= at(minutes)) or (
            severity is Severity.HIGH)
    else:
        with pytest.raises(AlertTransitionError):
            lifecycle.snooze(alert, by="n", until=at(minutes), now=T)
