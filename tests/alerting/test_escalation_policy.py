"""Escalation policy files and next_step, with explicit instants across a DST change."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerting import escalation
from alerting.candidates import Kind, Severity
from alerting.errors import PolicyError
from alerting.escalation import Action
from alerting.lifecycle import Alert, State
from alerting.policy import Policy, load_policy, parse_policy

POLICIES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "escalation").glob("*.yaml"))
UTC = dt.UTC


@pytest.mark.parametrize("path", POLICIES, ids=[p.name for p in POLICIES])
def test_every_policy_file_loads(path: Path) -> None:
    assert load_policy(path).ack_within[Severity.HIGH] is not None


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(POLICIES[0].read_text())
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(time_to_acknowledge_minutes={"high": 0}), "time_to_acknowledge_minutes.high"),
    (lambda d: d["tiers"]["in_hours"].append("nobody"), "no contacts"),
    (lambda d: d.update(rota=[d["rota"][0]]), "nobody is on call on mon at 00:00"),
    (lambda d: d.update(timezone="Mars/Olympus"), "unknown time zone"),
    (lambda d: d.update(colour="blue"), "colour"),
    (lambda d: d["highest_tier"].update(high=5), "highest_tier.high"),
])
def test_invalid_policy_gives_clear_errors(change: Any, message: str) -> None:
    data = _data()
    change(data)
    with pytest.raises(PolicyError, match=message):
        parse_policy(data, source="test.yaml")


def alert(severity: Severity, raised: dt.datetime, tier: int = 0, state: State = State.RAISED,
          ack: dt.timedelta = dt.timedelta(minutes=15)) -> Alert:
    return Alert(1, Kind.NEWS2, severity, state, "s", raised, raised, id=1, escalation_tier=tier,
                 next_escalation_at=raised + ack)


@pytest.mark.parametrize(("instant", "staffed"), [
    (dt.datetime(2026, 1, 12, 7, 59, tzinfo=UTC), False),  # 07:59 GMT
    (dt.datetime(2026, 1, 12, 8, 0, tzinfo=UTC), True),  # 08:00 GMT
    (dt.datetime(2026, 1, 12, 19, 59, tzinfo=UTC), True),
    (dt.datetime(2026, 1, 12, 20, 0, tzinfo=UTC), False),
    # Sunday 29 March 2026: clocks go forward at 01:00 UTC; 07:30 UTC is 08:30 BST.
    (dt.datetime(2026, 3, 29, 7, 30, tzinfo=UTC), True),
    (dt.datetime(2026, 3, 28, 7, 30, tzinfo=UTC), False),  # the day before: 07:30 GMT
    (dt.datetime(2026, 3, 29, 19, 0, tzinfo=UTC), False),  # 20:00 BST
    # Sunday 25 October 2026: clocks go back at 01:00 UTC; 19:30 UTC is 19:30 GMT.
    (dt.datetime(2026, 10, 25, 19, 30, tzinfo=UTC), True),
    (dt.datetime(2026, 10, 24, 19, 30, tzinfo=UTC), False),  # 20:30 BST
])
def test_hub_hours_are_europe_london_wall_clock(policy: Policy, instant: dt.datetime,
                                                staffed: bool) -> None:
    assert escalation.in_hours(policy, instant) is staffed


def test_high_alert_climbs_tiers_then_reminds_the_top(policy: Policy) -> None:
    t0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=UTC)  # Monday in hours
    a = alert(Severity.HIGH, t0)
    assert escalation.next_step(a, policy, t0 + dt.timedelta(minutes=14)).action is Action.WAIT
    step = escalation.next_step(a, policy, t0 + dt.timedelta(minutes=15))
    assert (step.action, step.tier, step.target) == (Action.NOTIFY, 1, "on_call_clinician")
    assert step.on_call == "Day consultant (weekdays)"
    assert step.recipients[0].recipient == "+447700900101"
    assert step.next_at == t0 + dt.timedelta(minutes=30)
    a2 = dataclasses.replace(a, escalation_tier=1, next_escalation_at=step.next_at)
    step2 = escalation.next_step(a2, policy, t0 + dt.timedelta(minutes=30))
    assert (step2.tier, step2.target) == (2, "urgent_response")
    a3 = dataclasses.replace(a2, escalation_tier=2, next_escalation_at=step2.next_at)
    assert escalation.next_step(a3, policy, t0 + dt.timedelta(minutes=45)).tier == 2


@pytest.mark.parametrize(("ceiling", "target"), [
    ("full_escalation", "urgent_response"),
    ("not_for_conveyance", "gp"),
    ("palliative", "palliative_team"),
])
def test_ceiling_of_care_reroutes_urgent_response(policy: Policy, ceiling: str, target: str) -> None:
    t0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    a = alert(Severity.HIGH, t0, tier=1)
    assert escalation.next_step(a, policy, t0 + dt.timedelta(minutes=15), ceiling=ceiling).target == target


def test_severity_caps_the_tier_and_acknowledged_alerts_do_not_escalate(policy: Policy) -> None:
    t0 = dt.datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    low = alert(Severity.LOW, t0, ack=dt.timedelta(hours=4))
    step = escalation.next_step(low, policy, t0 + dt.timedelta(hours=4))
    assert (step.tier, step.target) == (0, "hub_nurse")
    acked = alert(Severity.HIGH, t0, state=State.ACKNOWLEDGED)
    assert escalation.next_step(acked, policy, t0 + dt.timedelta(hours=1)).action is Action.NONE


@pytest.mark.parametrize(("instant", "who"), [
    # Spring-forward night, 2026-03-28/29: the night registrar's 20:00–08:00 local shift is
    # 11 hours long; at 06:59 UTC (07:59 BST) it is still night, at 07:00 UTC (08:00 BST) day.
    (dt.datetime(2026, 3, 29, 6, 59, tzinfo=UTC), "Night registrar"),
    (dt.datetime(2026, 3, 29, 7, 0, tzinfo=UTC), "Day GP (weekends)"),
    (dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "Night registrar"),  # 02:30 BST
    (dt.datetime(2026, 3, 30, 7, 0, tzinfo=UTC), "Day consultant (weekdays)"),  # Mon 08:00 BST
    (dt.datetime(2026, 3, 27, 7, 30, tzinfo=UTC), "Night registrar"),  # Fri 07:30 GMT
])
def test_on_call_rota_in_local_time_across_dst(policy: Policy, instant: dt.datetime, who: str) -> None:
    shift = escalation.on_call(policy, instant)
    assert shift is not None
    assert shift.name == who


def test_out_of_hours_route_and_escalation_timer_across_clock_change(policy: Policy) -> None:
    raised_at = dt.datetime(2026, 3, 29, 0, 50, tzinfo=UTC)  # 00:50 GMT, clocks change at 01:00
    a = alert(Severity.HIGH, raised_at)
    first = escalation.initial(a, policy, raised_at)
    assert first.target == "out_of_hours"
    assert not first.in_hours
    # 15 real minutes later is 02:05 BST on the wall clock, not 01:05.
    step = escalation.next_step(a, policy, raised_at + dt.timedelta(minutes=15))
    assert step.action is Action.NOTIFY
    assert step.on_call == "Night registrar"
