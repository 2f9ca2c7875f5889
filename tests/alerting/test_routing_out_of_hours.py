"""Severity routing by hub hours (Europe/London, across both 2026 clock changes): out of
hours low findings never page; medium and high reach the out-of-hours responder and climb
with the policy's time-to-acknowledge."""

from __future__ import annotations

import datetime as dt

import pytest

from alerting import escalation
from alerting.candidates import Kind, Severity
from alerting.escalation import Action
from alerting.lifecycle import Alert, Event, State
from alerting.policy import Policy, with_hub_hours
from alerting.routing import notifications

UTC = dt.UTC
PAGING = {"sms", "pager"}

# (instant, in hours?) — each pair straddles a clock change: the same UTC time of day is in
# hours on one side and out of hours on the other.
INSTANTS = [
    (dt.datetime(2026, 3, 28, 7, 30, tzinfo=UTC), False),  # Sat 07:30 GMT
    (dt.datetime(2026, 3, 29, 7, 30, tzinfo=UTC), True),  # Sun 08:30 BST (clocks went forward)
    (dt.datetime(2026, 3, 28, 19, 30, tzinfo=UTC), True),  # Sat 19:30 GMT
    (dt.datetime(2026, 3, 29, 19, 30, tzinfo=UTC), False),  # Sun 20:30 BST
    (dt.datetime(2026, 10, 24, 7, 30, tzinfo=UTC), True),  # Sat 08:30 BST
    (dt.datetime(2026, 10, 25, 7, 30, tzinfo=UTC), False),  # Sun 07:30 GMT (clocks went back)
    (dt.datetime(2026, 10, 24, 19, 30, tzinfo=UTC), False),  # Sat 20:30 BST
    (dt.datetime(2026, 10, 25, 19, 30, tzinfo=UTC), True),  # Sun 19:30 GMT
    (dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC), False),  # 01:30 GMT, the repeated hour
]
# Severity → does it page out of hours (policy default out_of_hours.page_from: low_medium)?
PAGES_AT_NIGHT = {Severity.INFO: False, Severity.LOW: False, Severity.LOW_MEDIUM: True,
                  Severity.MEDIUM: True, Severity.HIGH: True}


def _alert(severity: Severity, at: dt.datetime, ack: dt.timedelta | None) -> Alert:
    return Alert(7, Kind.NEWS2, severity, State.RAISED, "s", at, at, id=3,
                 next_escalation_at=None if ack is None else at + ack)


@pytest.mark.parametrize(("instant", "staffed"), INSTANTS)
@pytest.mark.parametrize("severity", list(Severity))
def test_raised_alert_pages_only_when_its_severity_may_at_that_hour(
        policy: Policy, instant: dt.datetime, staffed: bool, severity: Severity) -> None:
    a = _alert(severity, instant, policy.ack_within[severity])
    sent = notifications(a, Event("raised", instant, "rules"), policy, instant)
    channels = {n.channel for n in sent}
    assert {"dashboard", "mqtt"} <= channels  # always visible to the hub and other systems
    first = escalation.initial(a, policy, instant)
    assert first.target == ("hub_nurse" if staffed else "out_of_hours")
    # In hours tier 0 is the hub (dashboard); out of hours it is the responder's pager.
    pages = bool(channels & PAGING)
    assert pages is (not staffed and PAGES_AT_NIGHT[severity])
    if pages:
        assert ("pager", "urgent-community-response") in {(n.channel, n.recipient) for n in sent}


@pytest.mark.parametrize(("instant", "staffed"), [i for i in INSTANTS if not i[1]])
@pytest.mark.parametrize(("severity", "tier", "pages"), [
    (Severity.LOW, 0, False),  # reminds the dashboard only; never climbs, never pages
    (Severity.MEDIUM, 1, True),  # on-call clinician (the night registrar's phone)
    (Severity.HIGH, 1, True),
])
def test_out_of_hours_escalation_uses_the_policy_timeouts(
        policy: Policy, instant: dt.datetime, staffed: bool, severity: Severity,
        tier: int, pages: bool) -> None:
    del staffed
    ack = policy.ack_within[severity]
    assert ack is not None
    a = _alert(severity, instant, ack)
    assert escalation.next_step(a, policy, instant + ack - dt.timedelta(seconds=1)).action \
        is Action.WAIT
    step = escalation.next_step(a, policy, instant + ack)
    assert (step.action, step.tier) == (Action.NOTIFY, tier)
    assert step.next_at == instant + 2 * ack
    assert bool({c.channel for c in step.recipients} & PAGING) is pages
    if not pages and not escalation.in_hours(policy, instant + ack):
        assert "does not page out of hours" in step.reason


def test_low_alert_out_of_hours_pages_nobody_even_at_its_escalated_tier(policy: Policy) -> None:
    night = dt.datetime(2026, 1, 13, 2, 0, tzinfo=UTC)
    a = Alert(7, Kind.NEWS2, Severity.LOW, State.RAISED, "s", night, night, id=3,
              escalation_tier=1)
    sent = notifications(a, Event("severity_raised", night, "rules"), policy, night)
    assert not {n.channel for n in sent} & PAGING


@pytest.mark.parametrize(("opens", "closes", "instant", "staffed"), [
    (dt.time(7, 0), None, dt.datetime(2026, 1, 12, 7, 30, tzinfo=UTC), True),
    (None, dt.time(18, 0), dt.datetime(2026, 1, 12, 18, 30, tzinfo=UTC), False),
    (dt.time(7, 0), dt.time(22, 0), dt.datetime(2026, 7, 13, 20, 30, tzinfo=UTC), True),  # 21:30 BST
    (None, None, dt.datetime(2026, 1, 12, 7, 30, tzinfo=UTC), False),  # the file's 08:00
])
def test_vw_hub_hours_override_the_policy_file(policy: Policy, opens: dt.time | None,
                                               closes: dt.time | None, instant: dt.datetime,
                                               staffed: bool) -> None:
    assert escalation.in_hours(with_hub_hours(policy, opens, closes), instant) is staffed


def test_configured_policy_reads_vw_hub_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    from alerting.errors import PolicyError
    from alerting.policy import configured_policy
    from ward.settings import Settings

    monkeypatch.setenv("VW_HUB_OPENS", "07:00")
    monkeypatch.setenv("VW_HUB_CLOSES", "21:30")
    policy = configured_policy(Settings.from_env())
    assert (policy.opens, policy.closes) == (7 * 60, 21 * 60 + 30)
    assert escalation.in_hours(policy, dt.datetime(2026, 1, 12, 21, 0, tzinfo=UTC))
    monkeypatch.setenv("VW_HUB_OPENS", "22:00")
    with pytest.raises(PolicyError, match="opens"):
        configured_policy(Settings.from_env())
