"""A risk-tier change as a finding of the patient's episode: low severity, never paged, never
inhibiting and never inhibited, cleared by the episode's hysteresis in time (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from alerting import episodes, lifecycle, risk_findings, risk_tier
from alerting.candidates import Firing, Kind, Severity
from alerting.lifecycle import Alert, State, Transition
from alerting.policy import Policy
from alerting.risk_tier import Assessment, RiskInputs, ScorePoint, Tier
from alerting.routing import notifications

T0 = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
PID = 7
ACK = {Severity.HIGH: dt.timedelta(minutes=15), Severity.MEDIUM: dt.timedelta(minutes=30),
       Severity.LOW_MEDIUM: dt.timedelta(hours=1), Severity.LOW: dt.timedelta(hours=4)}


def tier_at(tier: Tier, now: dt.datetime = T0) -> Assessment:
    """A real assessment in `tier`: nothing known (low); step-up with LACE 10 (1 + 2 = 3,
    rising); NEWS2 7 now (6 points, high)."""
    if tier is Tier.LOW:
        a = risk_tier.assess(RiskInputs((), expected_sets_24h=0), now)
    elif tier is Tier.RISING:
        a = risk_tier.assess(RiskInputs((), expected_sets_24h=0, lace=10, step_up=True), now)
    else:
        a = risk_tier.assess(RiskInputs((ScorePoint(now, 7),), expected_sets_24h=0), now)
    assert a.tier is tier
    return a


def step(episode: Alert | None, previous: Tier | None, current: Tier | None,
         now: dt.datetime = T0) -> Transition:
    return risk_findings.step(episode, previous, None if current is None else tier_at(current, now),
                              now, patient_id=PID, ack_within=ACK)


def stored(t: Transition, alert_id: int = 1) -> Alert:
    assert t.after is not None
    return t.after if t.after.id is not None else replace(t.after, id=alert_id)


def paged(t: Transition, policy: Policy) -> list[str]:
    """The events routed to a tier's contacts (a page: the hub nurse's tier in hours, the
    out-of-hours pager at night); every event also goes to MQTT and the dashboard's list."""
    alert = stored(t)
    return [e.event for e in t.events
            if any(n.payload["target"] is not None for n in notifications(alert, e, policy, e.at))]


def news2(severity: Severity, summary: str = "NEWS2 3") -> Firing:
    return Firing(Kind.NEWS2, severity, summary)


def test_a_rise_with_no_episode_opens_a_low_episode_that_pages_nobody(policy: Policy) -> None:
    t = step(None, Tier.LOW, Tier.RISING)
    after = stored(t)
    assert (after.state, after.severity, after.kind) == (State.RAISED, Severity.LOW,
                                                         Kind.RISK_TIER)
    assert after.next_escalation_at is None  # nothing to escalate
    assert [e.event for e in t.events] == ["raised", "risk_tier_changed"]
    assert all(e.detail["page"] is False for e in t.events)
    assert paged(t, policy) == []
    (finding,) = after.findings
    assert finding.summary.startswith("Risk tier rising (was low): 3 points - ")
    assert "Readmission score (LACE / HOSPITAL) +2" in finding.summary
    # The evidence is the tier's explanation: every factor, what it measured, its points.
    assert [c["factor"] for c in finding.details["contributions"]] == list(risk_tier.WEIGHTS)
    assert t.events[1].detail["from"] == "low"
    assert t.events[1].detail["to"] == "rising"


@pytest.mark.parametrize(("previous", "current"), [
    (None, Tier.RISING), (None, Tier.HIGH),  # the first assessment is where a patient starts
    (Tier.HIGH, Tier.RISING), (Tier.RISING, Tier.LOW), (Tier.HIGH, Tier.LOW),  # falls
    (Tier.RISING, Tier.RISING), (Tier.HIGH, Tier.HIGH),  # no change
])
def test_no_episode_is_opened_without_a_rise(previous: Tier | None, current: Tier) -> None:
    assert step(None, previous, current) == Transition(None, None)


def test_the_finding_follows_the_tier_and_clears_after_an_hour_at_low(policy: Policy) -> None:
    opened = stored(step(None, Tier.LOW, Tier.HIGH))
    # High -> rising: recorded; the finding stays, now saying "rising".
    fell = step(opened, Tier.HIGH, Tier.RISING, T0 + dt.timedelta(minutes=10))
    ep = stored(fell)
    assert [e.event for e in fell.events] == ["risk_tier_changed"]
    assert ep.findings[0].active
    assert ep.findings[0].summary.startswith("Risk tier rising (was high)")
    # Rising -> low: the clear starts; inside the hour nothing is cleared.
    low = stored(step(ep, Tier.RISING, Tier.LOW, T0 + dt.timedelta(minutes=20)))
    assert low.findings[0].active
    assert low.findings[0].clear_since == T0 + dt.timedelta(minutes=20)
    held = step(low, Tier.LOW, Tier.LOW, T0 + dt.timedelta(minutes=79))
    assert stored(held).open
    # An hour at low later (any evaluation completes the hold): cleared, episode resolved.
    done = episodes.observe(low, [], T0 + dt.timedelta(minutes=80), patient_id=PID,
                            ack_within=ACK)
    assert done.after is not None
    assert done.after.state is State.RESOLVED
    assert [e.event for e in done.events] == ["finding_cleared", "resolved"]
    assert paged(done, policy) == []


def test_a_rise_back_inside_the_hold_keeps_the_finding() -> None:
    ep = stored(step(None, Tier.LOW, Tier.RISING))
    ep = stored(step(ep, Tier.RISING, Tier.LOW, T0 + dt.timedelta(minutes=30)))
    back = stored(step(ep, Tier.LOW, Tier.RISING, T0 + dt.timedelta(minutes=50)))
    (finding,) = back.findings
    assert finding.active
    assert finding.clear_since is None
    assert finding.first_at == T0


def test_a_news2_finding_is_never_inhibited_by_the_tier_and_pages_with_its_timer(
        policy: Policy) -> None:
    # The tier opened the episode first; then NEWS2 1-4 (low, the same severity) arrives.
    ep = stored(step(None, Tier.LOW, Tier.RISING))
    later = T0 + dt.timedelta(minutes=5)
    t = episodes.observe(ep, [news2(Severity.LOW)], later, patient_id=PID, ack_within=ACK)
    after = stored(t)
    found = {f.kind: f for f in after.findings}
    assert not found[Kind.NEWS2].inhibited
    assert not found[Kind.RISK_TIER].inhibited
    assert after.kind is Kind.NEWS2  # on equal severity the tier never names the episode
    assert after.next_escalation_at == later + ACK[Severity.LOW]  # the page's timer starts
    alone = episodes.observe(None, [news2(Severity.LOW)], later, patient_id=PID, ack_within=ACK)
    assert paged(alone, policy) == ["raised"]
    assert paged(t, policy) == ["severity_raised"]  # NEWS2 pages as it would without the tier


def test_the_tier_added_to_a_high_episode_pages_nobody_and_silences_nothing(
        policy: Policy) -> None:
    opened = episodes.observe(None, [news2(Severity.HIGH, "NEWS2 7")], T0, patient_id=PID,
                              ack_within=ACK)
    ep = stored(opened)
    t = step(ep, Tier.LOW, Tier.HIGH, T0 + dt.timedelta(minutes=1))
    after = stored(t)
    assert after.severity is Severity.HIGH
    assert after.kind is Kind.NEWS2
    assert after.next_escalation_at == ep.next_escalation_at  # the timer is not restarted
    assert [e.event for e in t.events] == ["finding_raised", "risk_tier_changed"]
    assert t.events[0].detail["page"] is False
    assert not any(f.inhibited for f in after.findings)
    assert paged(t, policy) == []


def test_an_acknowledged_tier_episode_is_not_reopened_by_a_higher_tier(policy: Policy) -> None:
    ep = stored(step(None, Tier.LOW, Tier.RISING))
    ack = lifecycle.acknowledge(ep, by="nurse", now=T0 + dt.timedelta(minutes=2)).after
    assert ack is not None
    t = step(ack, Tier.RISING, Tier.HIGH, T0 + dt.timedelta(minutes=30))
    after = stored(t)
    assert after.state is State.ACKNOWLEDGED
    assert [e.event for e in t.events] == ["risk_tier_changed"]
    assert paged(t, policy) == []


def test_a_snooze_ending_on_a_tier_episode_pages_nobody(policy: Policy) -> None:
    ep = stored(step(None, Tier.LOW, Tier.RISING))
    snoozed = lifecycle.snooze(ep, by="nurse", until=T0 + dt.timedelta(hours=1), now=T0).after
    assert snoozed is not None
    t = lifecycle.expire_snooze(snoozed, T0 + dt.timedelta(hours=1))
    assert paged(t, policy) == []


def test_an_elevated_tier_after_its_episode_was_resolved_asks_again_only_on_a_new_rise(
        ) -> None:
    ep = stored(step(None, Tier.LOW, Tier.RISING))
    done = lifecycle.resolve(ep, by="nurse", reason="reviewed", now=T0).after
    assert done is not None
    assert step(done, Tier.RISING, Tier.RISING, T0 + dt.timedelta(minutes=10)).after is None
    again = step(done, Tier.RISING, Tier.HIGH, T0 + dt.timedelta(minutes=20))
    assert again.before is None
    assert stored(again).findings[0].details["tier"] == "high"


def test_off_the_ward_an_active_tier_finding_clears() -> None:
    ep = stored(step(None, Tier.LOW, Tier.RISING))
    t = step(ep, Tier.RISING, None, T0 + dt.timedelta(minutes=5))
    assert stored(t).findings[0].clear_since == T0 + dt.timedelta(minutes=5)
    assert step(None, Tier.RISING, None) == Transition(None, None)
