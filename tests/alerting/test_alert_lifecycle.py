"""The alert lifecycle state machine with explicit instants, plus invariants (Hypothesis)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting import lifecycle
from alerting.candidates import Clear, Evidence, Firing, Kind, Severity
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
    t = lifecycle.observe(None, fire(severity), T, patient_id=1, ack_within=ACK)
    assert t.after is not None
    return dataclasses.replace(t.after, id=7)


def test_raise_sets_escalation_timer_and_event_with_evidence() -> None:
    t = lifecycle.observe(None, fire(Severity.HIGH), T, patient_id=1, ack_within=ACK)
    assert t.after is not None
    assert t.after.state is State.RAISED
    assert t.after.next_escalation_at == T + dt.timedelta(minutes=15)
    assert [e.event for e in t.events] == ["raised"]
    assert t.events[0].evidence == ev(0)


def test_new_evidence_updates_same_alert_and_identical_evidence_is_a_no_op() -> None:
    alert = raised()
    again = lifecycle.observe(alert, fire(Severity.MEDIUM), at(1), patient_id=1, ack_within=ACK)
    assert not again.changed
    assert again.events == ()
    newer = lifecycle.observe(alert, fire(Severity.MEDIUM, 5), at(5), patient_id=1, ack_within=ACK)
    assert newer.after is not None
    assert newer.after.raised_at == T
    assert [e.event for e in newer.events] == ["updated"]


def test_worse_news_reopens_an_acknowledged_alert_and_cancels_snooze() -> None:
    alert = lifecycle.acknowledge(raised(), by="nurse.a", now=at(2)).after
    assert alert is not None
    assert alert.next_escalation_at is None
    worse = lifecycle.observe(alert, fire(Severity.HIGH, 10), at(10), patient_id=1, ack_within=ACK)
    assert worse.after is not None
    assert worse.after.state is State.RAISED
    assert worse.after.next_escalation_at == at(25)
    assert worse.events[0].event == "severity_raised"
    assert worse.events[0].detail["reopened"]


@pytest.mark.parametrize(("kind", "clears", "resolved"), [
    (Kind.NEWS2, [10], False),
    (Kind.NEWS2, [10, 10], False),  # the same clear reading twice counts once
    (Kind.NEWS2, [10, 20], True),
    (Kind.OBSERVATIONS_OVERDUE, [10], True),
])
def test_auto_resolution_hysteresis(kind: Kind, clears: list[int], resolved: bool) -> None:
    alert = lifecycle.observe(None, fire(Severity.MEDIUM, kind=kind), T, patient_id=1,
                              ack_within=ACK).after
    for minute in clears:
        assert alert is not None
        alert = lifecycle.observe(alert, Clear(kind, ev(minute, 97)), at(minute), patient_id=1,
                                  ack_within=ACK).after
    assert alert is not None
    assert (alert.state is State.RESOLVED) is resolved


def test_device_offline_resolves_after_ten_clear_minutes_and_firing_restarts_the_count() -> None:
    alert = lifecycle.observe(None, Firing(Kind.DEVICE_OFFLINE, Severity.LOW, "off"), T,
                              patient_id=1, ack_within=ACK).after
    for minute, outcome in ((1, "clear"), (5, "fire"), (6, "clear"), (15, "clear"), (16, "clear")):
        assert alert is not None
        assert alert.state is State.RAISED
        o = (Clear(Kind.DEVICE_OFFLINE, observed_at=at(minute)) if outcome == "clear"
             else Firing(Kind.DEVICE_OFFLINE, Severity.LOW, "off"))
        alert = lifecycle.observe(alert, o, at(minute), patient_id=1, ack_within=ACK).after
    assert alert is not None
    assert alert.state is State.RESOLVED


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


outcomes = st.lists(st.tuples(st.booleans(), st.sampled_from(list(Severity)[1:])), max_size=25)


@given(outcomes)
def test_invariants_one_alert_events_only_on_change_and_resolved_only_after_clear(
        steps: list[tuple[bool, Severity]]) -> None:
    alert: Alert | None = None
    raised_count = 0
    for i, (firing, severity) in enumerate(steps):
        now = at(i)
        outcome = fire(severity, i) if firing else Clear(Kind.NEWS2, ev(i, 97))
        t = lifecycle.observe(alert, outcome, now, patient_id=1, ack_within=ACK)
        raised_count += sum(e.event == "raised" for e in t.events)
        if t.events:
            assert t.changed
        if t.after is not None and t.after.state is State.RESOLVED:
            assert not firing
            assert t.after.clear_count >= 2
            alert = None
        else:
            alert = t.after
        if firing:
            assert alert is not None
            assert alert.severity is severity
    assert raised_count <= len(steps)
