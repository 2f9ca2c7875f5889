"""Episodes: grouping per patient, severity, pages, inhibition and hysteresis in time (pure)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting import episodes, lifecycle
from alerting.candidates import Clear, Evidence, Firing, Kind, Outcome, Severity
from alerting.lifecycle import Alert, State, Transition

T = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)
ACK = {Severity.HIGH: dt.timedelta(minutes=15), Severity.MEDIUM: dt.timedelta(minutes=30),
       Severity.LOW_MEDIUM: dt.timedelta(hours=1), Severity.LOW: dt.timedelta(hours=4)}


def at(minutes: float) -> dt.datetime:
    return T + dt.timedelta(minutes=minutes)


def ev(minutes: float, code: str = "spo2", value: float = 90.0) -> tuple[Evidence, ...]:
    return (Evidence(at(minutes), code, "ox", value),)


def fire(kind: Kind, severity: Severity, minutes: float = 0) -> Firing:
    return Firing(kind, severity, f"{kind} {severity} at {minutes}", {"m": minutes}, ev(minutes))


def clear(kind: Kind, minutes: float) -> Clear:
    return Clear(kind, ev(minutes, value=97.0), observed_at=at(minutes))


def step(alert: Alert | None, outcomes: list[Outcome], minutes: float) -> Transition:
    t = episodes.observe(alert, outcomes, at(minutes), patient_id=1, ack_within=ACK)
    if t.after is not None and t.after.id is None:
        return dataclasses.replace(t, after=dataclasses.replace(t.after, id=7))
    return t


def names(t: Transition) -> list[str]:
    return [e.event for e in t.events]


def test_one_episode_holds_every_finding_with_the_highest_severity_as_headline() -> None:
    t = step(None, [fire(Kind.SPO2_BELOW_TARGET, Severity.LOW),
                    fire(Kind.NEWS2, Severity.HIGH), fire(Kind.DEVICE_OFFLINE, Severity.LOW)], 0)
    assert t.after is not None
    assert names(t) == ["raised"]  # one page for the whole incident
    assert t.events[0].detail["page"] is True
    assert t.after.kind is Kind.NEWS2
    assert t.after.severity is Severity.HIGH
    assert t.after.next_escalation_at == at(15)
    assert {f.kind for f in t.after.findings} == {Kind.SPO2_BELOW_TARGET, Kind.NEWS2,
                                                  Kind.DEVICE_OFFLINE}
    assert "(+2 more findings)" in t.after.summary
    assert t.after.details["findings"][0]["kind"] == "news2"


@pytest.mark.parametrize(("open_with", "added", "event", "pages", "inhibited"), [
    # A lower clinical finding joins a high episode: visible, inhibited, no page.
    (Kind.NEWS2, fire(Kind.SPO2_BELOW_TARGET, Severity.LOW), "finding_raised", False, True),
    # The same severity does not page again either (the top finding holds the page).
    (Kind.NEWS2, fire(Kind.THRESHOLD, Severity.HIGH), "finding_raised", False, True),
    # A technical "no data" finding is never inhibited: it pages even under a high NEWS2.
    (Kind.NEWS2, fire(Kind.DEVICE_OFFLINE, Severity.LOW), "finding_raised", True, False),
    (Kind.NEWS2, fire(Kind.OBSERVATIONS_OVERDUE, Severity.MEDIUM), "finding_raised", True, False),
    # Nor is a pump finding (a different response: a nurse visit).
    (Kind.NEWS2, fire(Kind.INFUSION_OCCLUDED, Severity.LOW_MEDIUM), "finding_raised", True, False),
])
def test_inhibition_within_the_patient(open_with: Kind, added: Firing, event: str, pages: bool,
                                       inhibited: bool) -> None:
    first = step(None, [fire(open_with, Severity.HIGH)], 0).after
    t = step(first, [fire(open_with, Severity.HIGH, 5), added], 5)
    assert t.after is not None
    (e,) = [e for e in t.events if e.event == event]
    assert episodes.pages(e) is pages
    assert e.detail["inhibited"] is inhibited
    found = {f.kind: f for f in t.after.findings}[added.kind]
    assert found.inhibited is inhibited
    assert found.evidence == added.evidence  # traceable to its readings
    assert t.after.severity is Severity.HIGH


def test_a_clinical_finding_on_a_technical_episode_pages() -> None:
    first = step(None, [fire(Kind.OBSERVATIONS_OVERDUE, Severity.LOW)], 0).after
    t = step(first, [fire(Kind.SPO2_BELOW_TARGET, Severity.LOW)], 5)
    (e,) = t.events
    assert (e.event, episodes.pages(e), e.detail["inhibited"]) == ("finding_raised", True, False)


def test_severity_rise_reopens_an_acknowledged_episode_once_and_is_the_only_page() -> None:
    first = step(None, [fire(Kind.SPO2_BELOW_TARGET, Severity.LOW)], 0).after
    assert first is not None
    acked = lifecycle.acknowledge(first, by="nurse.a", now=at(1)).after
    t = step(acked, [fire(Kind.SPO2_BELOW_TARGET, Severity.LOW, 10),
                     fire(Kind.NEWS2, Severity.MEDIUM, 10)], 10)
    assert t.after is not None
    assert t.after.state is State.RAISED
    assert t.after.next_escalation_at == at(40)
    assert [(e.event, episodes.pages(e)) for e in t.events] == [
        ("severity_raised", True), ("finding_raised", False)]
    assert t.events[0].detail["reopened"]
    # New evidence for known findings at the same severity: stored quietly, never a page.
    again = step(t.after, [fire(Kind.NEWS2, Severity.MEDIUM, 11)], 11)
    assert not any(episodes.pages(e) for e in again.events)


def test_a_finding_keeps_its_peak_for_the_hold_before_it_is_lowered() -> None:
    ep = step(None, [fire(Kind.NEWS2, Severity.HIGH)], 0).after
    for minute in (5, 20, 29):  # NEWS2 wavers at medium within 30 min of the last high
        ep = step(ep, [fire(Kind.NEWS2, Severity.MEDIUM, minute)], minute).after
        assert ep is not None
        assert ep.severity is Severity.HIGH
    # The high came back: it pages nothing (not a rise), and the hold starts again.
    t = step(ep, [fire(Kind.NEWS2, Severity.HIGH, 31)], 31)
    assert not any(episodes.pages(e) for e in t.events)
    ep = step(t.after, [fire(Kind.NEWS2, Severity.MEDIUM, 61)], 61).after
    assert ep is not None
    assert ep.severity is Severity.MEDIUM


@pytest.mark.parametrize(("kind", "timeline", "resolved_at"), [
    # Vital findings: 30 min of clear, whatever the number of readings.
    (Kind.NEWS2, [(1, "clear"), (2, "clear"), (3, "clear")], None),
    (Kind.NEWS2, [(10, "clear"), (40, "clear")], 40),
    (Kind.NEWS2, [(10, "clear"), (30, "fire"), (45, "clear"), (70, "clear"), (75, "clear")], 75),
    # Missing data never starts a clear; a sweep (no outcome) completes one already started.
    (Kind.NEWS2, [(10, "none"), (60, "none")], None),
    (Kind.NEWS2, [(10, "clear"), (41, "none")], 41),
    # Technical kinds have their own holds.
    (Kind.OBSERVATIONS_OVERDUE, [(10, "clear")], 10),
    (Kind.DEVICE_OFFLINE, [(1, "clear"), (5, "fire"), (6, "clear"), (15, "clear"), (16, "clear")], 16),
])
def test_hysteresis_in_time(kind: Kind, timeline: list[tuple[int, str]],
                            resolved_at: int | None) -> None:
    ep = step(None, [fire(kind, Severity.MEDIUM)], 0).after
    when = None
    for minute, what in timeline:
        outcomes: list[Outcome] = {"clear": [clear(kind, minute)], "none": [],
                                   "fire": [fire(kind, Severity.MEDIUM, minute)]}[what]
        t = step(ep, outcomes, minute)
        ep = t.after
        assert ep is not None
        if ep.state is State.RESOLVED:
            when = minute
            assert names(t)[-1] == "resolved"
            break
    assert when == resolved_at


def test_episode_resolves_only_when_every_finding_has_cleared() -> None:
    ep = step(None, [fire(Kind.NEWS2, Severity.MEDIUM), fire(Kind.SPO2_BELOW_TARGET, Severity.LOW)],
              0).after
    ep = step(ep, [clear(Kind.NEWS2, 5), fire(Kind.SPO2_BELOW_TARGET, Severity.LOW, 5)], 5).after
    t = step(ep, [clear(Kind.NEWS2, 40), clear(Kind.SPO2_BELOW_TARGET, 40)], 40)
    assert t.after is not None
    assert t.after.state is State.RAISED
    assert "finding_cleared" in names(t)
    assert t.after.kind is Kind.SPO2_BELOW_TARGET  # the headline moves to what is left
    assert t.after.severity is Severity.LOW
    assert "severity_lowered" in names(t)
    done = step(t.after, [clear(Kind.SPO2_BELOW_TARGET, 71)], 71)
    assert done.after is not None
    assert done.after.state is State.RESOLVED
    assert done.after.resolved_by == "system"
    # New trouble after resolution is a new episode.
    new = step(done.after, [fire(Kind.NEWS2, Severity.MEDIUM, 80)], 80)
    assert names(new) == ["raised"]


def test_a_finding_that_clears_and_returns_inside_an_open_episode_is_raised_again() -> None:
    ep = step(None, [fire(Kind.NEWS2, Severity.MEDIUM), fire(Kind.TREND, Severity.LOW)], 0).after
    ep = step(ep, [clear(Kind.TREND, 1), fire(Kind.NEWS2, Severity.MEDIUM, 1)], 1).after
    ep = step(ep, [fire(Kind.NEWS2, Severity.MEDIUM, 40)], 40).after
    assert ep is not None
    trend = {f.kind: f for f in ep.findings}[Kind.TREND]
    assert trend.cleared_at == at(40)
    t = step(ep, [fire(Kind.TREND, Severity.LOW, 50)], 50)
    assert "finding_raised" in names(t)
    assert {f.kind: f for f in t.after.findings}[Kind.TREND].active  # type: ignore[union-attr]


kinds = st.sampled_from([Kind.NEWS2, Kind.SPO2_BELOW_TARGET, Kind.TREND, Kind.DEVICE_OFFLINE])
steps = st.lists(st.lists(st.tuples(kinds, st.booleans(), st.sampled_from(list(Severity)[1:])),
                          max_size=4), max_size=30)


@given(steps)
def test_invariants(timeline: list[list[tuple[Kind, bool, Severity]]]) -> None:
    """One open episode; its severity is its top active finding's; pages only on raise, rise or
    an uninhibited new finding; resolved only when nothing is active."""
    ep: Alert | None = None
    for i, outcomes in enumerate(timeline):
        minute = 7 * i
        chosen: dict[Kind, Outcome] = {}
        for kind, firing, severity in outcomes:
            chosen[kind] = fire(kind, severity, minute) if firing else clear(kind, minute)
        before = ep
        t = step(ep, list(chosen.values()), minute)
        if t.events:
            assert t.changed
        after = t.after
        for e in t.events:
            if episodes.pages(e):
                assert e.event in {"raised", "severity_raised", "finding_raised"}
                if e.event == "finding_raised":
                    assert not e.detail["inhibited"]
        if after is None:
            assert before is None
            assert not any(isinstance(o, Firing) for o in chosen.values())
            continue
        active = [f for f in after.findings if f.active]
        if after.state is State.RESOLVED:
            assert not active
            assert not any(isinstance(o, Firing) for o in chosen.values())
            ep = None
            continue
        assert after.severity is max((f.severity for f in active), key=lambda s: s.rank)
        clinical = [f for f in active if episodes.is_clinical(f.kind)]
        assert sum(not f.inhibited for f in clinical) == (1 if clinical else 0)
        ep = after


@pytest.mark.parametrize(("added", "paged"), [
    (fire(Kind.SPO2_BELOW_TARGET, Severity.LOW), False),  # inhibited under a high NEWS2
    (fire(Kind.DEVICE_OFFLINE, Severity.LOW), True),  # "no data" is never inhibited
])
def test_routing_pages_only_what_the_episode_marks(added: Firing, paged: bool) -> None:
    from alerting.policy import load_policy, policy_path
    from alerting.routing import notifications

    policy = load_policy(policy_path())
    first = step(None, [fire(Kind.NEWS2, Severity.HIGH)], 0).after
    t = step(first, [fire(Kind.NEWS2, Severity.HIGH, 5), added], 5)
    assert t.after is not None
    (event,) = [e for e in t.events if e.event == "finding_raised"]
    channels = {n.channel for n in notifications(t.after, event, policy, at(5))}
    # the dashboard and MQTT always hear of it; a person only when it pages
    assert {"dashboard", "mqtt"} <= channels
    assert bool(channels - {"dashboard", "mqtt"}) is paged
