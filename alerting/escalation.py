"""Escalation decisions: who hears about an alert, and when it moves up a tier.

Pure over (alert, policy, ceiling of care, now). Tiers come from the policy's in-hours or
out-of-hours route — hub hours are judged on the Europe/London wall clock of ``now``, so they
are DST-correct — capped per severity (``highest_tier``), with ceiling-of-care substitutions
(e.g. not for conveyance: urgent response → GP). The on-call clinician is whoever the rota
names at ``now`` (a dated override wins over the weekly pattern). Timers are real elapsed
durations in UTC: a 15-minute acknowledgement window across a clock change is 15 minutes.

At the top tier an unacknowledged alert keeps reminding that tier every time-to-acknowledge.

Out of hours, severities below the policy's ``out_of_hours.page_from`` (by default: low and
info) never reach a paging channel (SMS, pager): they stay on the dashboard and MQTT feed
for the hub to see when it opens. Medium and high take the out-of-hours route with the
policy's time-to-acknowledge, like in hours.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from alerting.candidates import Severity
from alerting.lifecycle import Alert, State
from alerting.policy import ON_CALL, Contact, Policy, Shift


class Action(enum.StrEnum):
    NONE = "none"  # nothing to do, ever (acknowledged, resolved, or a severity that never escalates)
    WAIT = "wait"  # nothing to do until ``next_at``
    NOTIFY = "notify"  # notify ``recipients`` at ``tier`` now; next check at ``next_at``


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    tier: int = 0
    target: str = ""
    recipients: tuple[Contact, ...] = ()
    next_at: dt.datetime | None = None
    reason: str = ""
    in_hours: bool = True
    on_call: str | None = None


def in_hours(policy: Policy, now: dt.datetime) -> bool:
    """Is the hub staffed at ``now`` (local wall clock, DST-correct)?"""
    local = now.astimezone(policy.tz)
    minute = local.hour * 60 + local.minute
    return policy.opens <= minute < policy.closes


def on_call(policy: Policy, now: dt.datetime) -> Shift | None:
    """The rota shift covering ``now``; a dated override wins over the weekly pattern."""
    local = now.astimezone(policy.tz)
    overrides = [s for s in policy.rota if s.date is not None and s.covers(local)]
    if overrides:
        return overrides[0]
    return next((s for s in policy.rota if s.date is None and s.covers(local)), None)


def may_page(policy: Policy, severity: Severity, now: dt.datetime) -> bool:
    """May a finding of ``severity`` wake someone at ``now``? Always in hours."""
    return in_hours(policy, now) or severity.rank >= policy.page_from.rank


def reachable(policy: Policy, severity: Severity, now: dt.datetime,
              contacts: tuple[Contact, ...]) -> tuple[Contact, ...]:
    """``contacts`` without the paging channels when ``severity`` may not page at ``now``."""
    if may_page(policy, severity, now):
        return contacts
    return tuple(c for c in contacts if c.channel not in policy.paging_channels)


def route(policy: Policy, now: dt.datetime) -> tuple[str, ...]:
    return policy.in_hours if in_hours(policy, now) else policy.out_of_hours


def target_of(policy: Policy, tier: int, ceiling: str, now: dt.datetime) -> tuple[str, tuple[Contact, ...], str | None]:
    name = route(policy, now)[tier]
    name = policy.ceiling_of_care.get(ceiling, {}).get(name, name)
    if name == ON_CALL:
        shift = on_call(policy, now)
        if shift is None:  # validation makes this unreachable for weekly rotas; stay safe
            return name, policy.contacts.get(ON_CALL, ()), None
        return name, shift.contacts, shift.name
    return name, policy.contacts.get(name, ()), None


def initial(alert: Alert, policy: Policy, now: dt.datetime, *, ceiling: str = "full_escalation") -> Decision:
    """Whom to notify when ``alert`` is raised (tier 0 of the current route)."""
    target, recipients, person = target_of(policy, 0, ceiling, now)
    quiet = reachable(policy, alert.severity, now, recipients)
    reason = "raised" if quiet == recipients else f"raised; {alert.severity} does not page out of hours"
    return Decision(Action.NOTIFY, 0, target, quiet, alert.next_escalation_at,
                    reason, in_hours(policy, now), person)


def next_step(alert: Alert, policy: Policy, now: dt.datetime, *,
              ceiling: str = "full_escalation") -> Decision:
    """What the escalation timer of ``alert`` asks for at ``now``."""
    if alert.state is not State.RAISED or alert.next_escalation_at is None:
        return Decision(Action.NONE, alert.escalation_tier, reason=f"alert is {alert.state}")
    due = alert.next_escalation_at
    if alert.snoozed_until is not None and alert.snoozed_until > due:
        due = alert.snoozed_until
    if due > now:
        return Decision(Action.WAIT, alert.escalation_tier, next_at=due, reason="not yet due")
    delay = policy.ack_within.get(alert.severity)
    if delay is None:
        return Decision(Action.NONE, alert.escalation_tier, reason=f"{alert.severity} never escalates")
    cap = min(policy.highest_tier.get(alert.severity, 0), len(route(policy, now)) - 1)
    tier = min(alert.escalation_tier + 1, cap)
    reason = (f"not acknowledged within {delay}" if tier > alert.escalation_tier
              else f"still not acknowledged; reminding tier {tier} (highest for {alert.severity})")
    target, recipients, person = target_of(policy, tier, ceiling, now)
    quiet = reachable(policy, alert.severity, now, recipients)
    if quiet != recipients:
        reason += f"; {alert.severity} does not page out of hours"
    return Decision(Action.NOTIFY, tier, target, quiet, now + delay, reason,
                    in_hours(policy, now), person)
