"""A change of the risk tier as a finding of the patient's episode (low severity, never paged).

Why: the tier (:mod:`alerting.risk_tier`) can rise over a day without any one reading
crossing a NEWS2 threshold; the hub should see that rise where it sees everything else that
needs a look - the patient's episode and the alert cards - without anyone being paged for a
heuristic. The alerting runner assesses the tier (``alerting.risk_store``) and this module
decides what the assessment does to the episode. Decisions:

* **A rise** (low -> rising, low/rising -> high) is a ``risk_tier`` finding at severity
  *low* whose summary and details carry the tier's explanation (every factor and its points).
  With no episode open it opens one - raised, never paged, with no escalation timer - so it is
  on the alert cards for a nurse to acknowledge (:mod:`alerting.episodes`, quiet kinds).
* **While the tier stays rising/high** an active tier finding is kept up to date (high ->
  rising is recorded, the finding stays); **back to low** it clears by the episode's hysteresis
  in time (:data:`alerting.episodes.HOLD`: an hour at low), and an episode it alone held then
  resolves by itself.
* **A fall never opens an episode**: with none open it is recorded only in the tier's own
  history (``risk_tier_changes``); with one open, as an event.
* Every change of tier while an episode is open is a ``risk_tier_changed`` event of that
  episode (``page: false``) with the explanation, whether or not it moves the finding.
* **The first assessment** of an admission is where the patient starts, not a change: it opens
  nothing (a newly admitted patient with a high readmission score is not news).
* An elevated tier does not re-open a tier finding that cleared or whose episode a person
  resolved: only a new *rise* does (a nurse who resolved "rising" is not asked again for the
  same rising).
* Severity is *low* for rising and high alike: the tier orders the hub's work, the NEWS2 and
  trend findings raise the alarms. Never inhibited and never inhibiting (quiet kind).

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, replace
from typing import Any, Final

from alerting import episodes
from alerting.candidates import Clear, Firing, Kind, Outcome, Severity
from alerting.lifecycle import SYSTEM, AckWithin, Alert, Event, Transition
from alerting.risk_tier import Assessment, Tier

KIND: Final = Kind.RISK_TIER
SEVERITY: Final = Severity.LOW
#: The factors named in the finding's one-line summary (all are in its details).
SUMMARY_FACTORS: Final = 3


def explanation(a: Assessment) -> list[dict[str, Any]]:
    """Every factor's contribution, as stored beside the tier and in the finding."""
    return [asdict(c) for c in a.contributions]


def summary(a: Assessment, previous: Tier | None) -> str:
    scoring = sorted((c for c in a.contributions if c.points), key=lambda c: -c.points)
    why = ", ".join(f"{c.label} +{c.points}" for c in scoring[:SUMMARY_FACTORS])
    move = "" if previous is None or previous is a.tier else f" (was {previous.value})"
    return f"Risk tier {a.tier.value}{move}: {a.points} points" + (f" - {why}" if why else "")


def _firing(a: Assessment, previous: Tier | None) -> Firing:
    return Firing(KIND, SEVERITY, summary(a, previous), {
        "tier": a.tier.value, "from": previous.value if previous else None,
        "points": a.points, "assessed_at": a.at.isoformat(), "page": False,
        "contributions": explanation(a)})


def _active(episode: Alert | None) -> bool:
    return episode is not None and episode.open and any(
        f.kind is KIND and f.active for f in episode.findings)


def outcome(episode: Alert | None, previous: Tier | None, current: Assessment | None,
            ) -> Outcome | None:
    """What this assessment says about the tier finding (None: nothing to say).

    `previous` is the tier stored from the last assessment of this admission (None: first);
    `current` None means the patient is no longer assessed (not on the ward)."""
    if current is None:
        return Clear(KIND) if _active(episode) else None
    elevated = current.tier is not Tier.LOW
    if _active(episode):
        return _firing(current, previous) if elevated else Clear(KIND)
    rose = previous is not None and current.tier.rank > previous.rank
    return _firing(current, previous) if elevated and rose else None


def step(episode: Alert | None, previous: Tier | None, current: Assessment | None,
         now: dt.datetime, *, patient_id: int, ack_within: AckWithin) -> Transition:
    """The patient's episode after this assessment, with a ``risk_tier_changed`` event when
    the tier changed while an episode is open."""
    said = outcome(episode, previous, current)
    t = episodes.observe(episode, [] if said is None else [said], now, patient_id=patient_id,
                         ack_within=ack_within)
    if current is None or previous is None or current.tier is previous or t.after is None:
        return t  # no change, or no episode open to record it in (the tier's history has it)
    event = Event("risk_tier_changed", now, SYSTEM, {
        "from": previous.value, "to": current.tier.value, "points": current.points,
        "page": False, "summary": summary(current, previous),
        "contributions": explanation(current)})
    return Transition(t.before, replace(t.after, updated_at=now), (*t.events, event))
