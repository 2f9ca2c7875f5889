"""Alert episodes: one open episode per patient, holding every finding that contributes.

Alertmanager groups alerts by a label so that one incident pages once; we group by patient.
An *episode* is one row of ``alerts`` (an :class:`~alerting.lifecycle.Alert`); a *finding* is
what one rule says about one kind (NEWS2 band, single parameter 3, SpO2 below target, trend,
threshold, pump, device, overdue). The rules' outcomes for a patient become one
:class:`~alerting.lifecycle.Transition` of that patient's episode.

Decisions (documented here, enforced here):

* **Severity** of the episode is the highest severity among its active findings; its headline
  (``kind``, ``summary``, ``evidence``) is that finding's. A finding's own severity rises at
  once and falls only after the lower level has held for its :data:`HOLD` (a NEWS2 total
  wavering 6↔7 is one *high* finding, not a page every few minutes).
* **Pages** (``page: true`` in the event's detail, read by :mod:`alerting.routing`): when the
  episode is raised, when its severity rises (an acknowledged episode is then re-opened, as
  before), and when a finding is added that is not *inhibited*. Nothing else re-notifies —
  new evidence for a known finding, a lower severity or a cleared finding are stored events
  only. One acknowledgement covers the whole episode.
* **Inhibition** (Alertmanager's inhibit rules, within one patient): among the active
  *clinical* findings the most severe (earliest on ties) holds the page; the others are
  inhibited — still shown in the episode, never paged. *Technical* "no data" findings
  (overdue, device offline, battery) and infusion findings are never inhibited: a high NEWS2
  must not hide that the oximeter went silent (NHS England, virtual-ward guidance: "never hide
  a no-data alert").
* **Hysteresis in time** (:data:`HOLD`): a finding is cleared once it has been clear
  continuously for its hold — 30 minutes for vital-sign findings — with no firing in between;
  missing data never *starts* a clear (rules return nothing then), but once a clear has been
  observed, the hold completes on any later evaluation, sweeps included. Counting readings
  (the old rule: two clear readings) made a one-a-minute wearable clear in 2 minutes and flap;
  time does not depend on the device's cadence. 30 minutes is half the 1-hourly observation
  interval NEWS2 Chart 4 asks for at medium risk, and the alarm-delay literature finds most
  false alarms are shorter than a few minutes (Welch J. *Biomed Instrum Technol* 2011;45
  s1:46–52; Drew BJ et al. *PLoS One* 2014;9:e110274).
* **Quiet findings** (:data:`~alerting.candidates.QUIET_KINDS`: the risk tier,
  :mod:`alerting.risk_findings`) are shown in the episode like any other, at their own (low)
  severity, but never page: an episode they alone open is raised with ``page: false`` and no
  escalation timer; a severity rise they alone cause pages nobody and re-opens nothing; the
  escalation timer follows the *paging* severity (the highest among the other active
  findings). They take no part in inhibition (never silence a finding, never silenced) and,
  on equal severity, never name the episode.
* The episode **resolves** automatically when every finding has cleared; a person may resolve
  it earlier with a reason (then new trouble is a new episode). Ack ≠ resolve, snooze and
  escalation stay in :mod:`alerting.lifecycle`.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from alerting.candidates import (
    INFUSION_KINDS,
    QUIET_KINDS,
    TECHNICAL_KINDS,
    VITAL_KINDS,
    Clear,
    Evidence,
    Firing,
    Kind,
    Outcome,
    Severity,
)
from alerting.lifecycle import SYSTEM, AckWithin, Alert, Event, State, Transition, timer

_MINUTE: Final = dt.timedelta(minutes=1)
HOLD: Final[Mapping[Kind, dt.timedelta]] = MappingProxyType({
    **dict.fromkeys(VITAL_KINDS, 30 * _MINUTE),
    # The overdue rule clears on the reading that was due: no noise to wait out.
    Kind.OBSERVATIONS_OVERDUE: dt.timedelta(0),
    # Home broadband connections flap; 10 min is one missed heartbeat and a reconnect.
    Kind.DEVICE_OFFLINE: 10 * _MINUTE,
    # The battery rule has its own hysteresis band (alert at 20 %, clear above 25 %).
    Kind.BATTERY_LOW: dt.timedelta(0),
    # A running pump reports every 15 min: clear means a second good report.
    Kind.INFUSION_OCCLUDED: 15 * _MINUTE,
    Kind.INFUSION_DISCONNECTED: 15 * _MINUTE,
    Kind.INFUSION_FLOW: 15 * _MINUTE,
    Kind.INFUSION_FINISHED_EARLY: dt.timedelta(0),
    Kind.INFUSION_LATE: dt.timedelta(0),
    # The risk tier is built on hourly points: a fall that does not outlast the next hour's
    # point is noise, so the tier finding clears after an hour at "low".
    Kind.RISK_TIER: 60 * _MINUTE,
})
DEFAULT_HOLD: Final = 30 * _MINUTE
#: Kinds that a more severe clinical finding never silences (quiet ones page nobody anyway,
#: and must never silence a finding that pages).
NEVER_INHIBITED: Final = TECHNICAL_KINDS | INFUSION_KINDS | QUIET_KINDS


def hold_of(kind: Kind) -> dt.timedelta:
    return HOLD.get(kind, DEFAULT_HOLD)


def is_clinical(kind: Kind) -> bool:
    return kind not in NEVER_INHIBITED


@dataclass(frozen=True, slots=True)
class Finding:
    """One contributing condition of an episode (a row of ``alert_findings``)."""

    kind: Kind
    severity: Severity
    summary: str
    first_at: dt.datetime
    last_at: dt.datetime  # the last evaluation that found it firing
    severity_at: dt.datetime  # the last firing at the current severity (for the lowering hold)
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    partial: bool = False
    clear_since: dt.datetime | None = None
    cleared_at: dt.datetime | None = None
    inhibited: bool = False

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def technical(self) -> bool:
        return self.kind in TECHNICAL_KINDS

    def brief(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "severity": self.severity.value,
                "summary": self.summary, "inhibited": self.inhibited, "active": self.active,
                "technical": self.technical}


def _start(firing: Firing, now: dt.datetime) -> Finding:
    return Finding(firing.kind, firing.severity, firing.summary, now, now, now,
                   dict(firing.details), firing.evidence, firing.partial)


def _fire(found: Finding, firing: Firing, now: dt.datetime) -> Finding:
    rises = firing.severity.rank >= found.severity.rank
    if rises or now - found.severity_at >= hold_of(found.kind):
        return replace(found, severity=firing.severity, severity_at=now, summary=firing.summary,
                       details=dict(firing.details), evidence=firing.evidence,
                       partial=firing.partial, last_at=now, clear_since=None)
    # A lower level inside the hold: the finding keeps its peak and the peak's evidence.
    return replace(found, last_at=now, clear_since=None)


def _rank(f: Finding) -> tuple[int, bool, float]:
    return (f.severity.rank, f.kind not in QUIET_KINDS, -f.first_at.timestamp())


def paging_severity(findings: Iterable[Finding]) -> Severity | None:
    """The highest severity among the active findings that may page (None: only quiet ones)."""
    return max((f.severity for f in findings if f.active and f.kind not in QUIET_KINDS),
               key=lambda s: s.rank, default=None)


def _inhibit(findings: Mapping[Kind, Finding]) -> dict[Kind, Finding]:
    clinical = [f for f in findings.values() if f.active and is_clinical(f.kind)]
    top = max(clinical, key=_rank, default=None)
    out: dict[Kind, Finding] = {}
    for k, f in findings.items():
        inhibited = f.active and is_clinical(k) and top is not None and f.kind is not top.kind
        # Rebuilt only when the flag changes (an equal copy per finding per evaluation was
        # a few % of a pass, issue 14).
        out[k] = f if f.inhibited == inhibited else replace(f, inhibited=inhibited)
    return out


def headline(findings: Sequence[Finding]) -> Finding | None:
    """The finding that names the episode: the most severe active one (earliest on ties)."""
    return max((f for f in findings if f.active), key=_rank, default=None)


def _derived(findings: Mapping[Kind, Finding]) -> dict[str, Any]:
    ordered = tuple(sorted(findings.values(), key=lambda f: (not f.active, -_rank(f)[0],
                                                            f.first_at, f.kind.value)))
    top = headline(ordered)
    assert top is not None  # noqa: S101 - only called while a finding is active
    others = sum(1 for f in ordered if f.active) - 1
    summary = top.summary + (f" (+{others} more finding{'s' if others > 1 else ''})"
                             if others else "")
    return {"kind": top.kind, "severity": top.severity, "summary": summary,
            "details": {**top.details, "findings": [f.brief() for f in ordered]},
            "evidence": top.evidence, "partial": top.partial, "findings": ordered}


def _finding_event(name: str, f: Finding, now: dt.datetime, **extra: Any) -> Event:
    return Event(name, now, SYSTEM, {"finding": f.kind.value, "severity": f.severity.value,
                                     "summary": f.summary, "technical": f.technical, **extra},
                 f.evidence)


def _severity(episode: Alert, before: Mapping[Kind, Finding], findings: Mapping[Kind, Finding],
              derived: Mapping[str, Any], now: dt.datetime, *, ack_within: AckWithin,
              changes: dict[str, Any], events: list[Event]) -> bool:
    """The episode's severity events (into `events`, its state into `changes`); True when the
    *paging* severity rose (then it pages and re-opens)."""
    severity: Severity = derived["severity"]
    paging = paging_severity(findings.values())
    # Without quiet findings the paging severity is the episode's severity (as before).
    was = paging_severity(before.values()) if before else episode.severity  # no findings: old row
    rose = paging is not None and (was is None or paging.rank > was.rank)
    if severity.rank > episode.severity.rank and not rose:  # a quiet finding alone rose
        events.append(Event("severity_raised", now, SYSTEM, {
            "from": episode.severity.value, "to": severity.value, "reopened": False,
            "page": False, "summary": derived["summary"]}, derived["evidence"]))
    if rose:
        assert paging is not None  # noqa: S101 - rose implies a paging finding
        reopened = episode.state is State.ACKNOWLEDGED
        changes.update(state=State.RAISED, acknowledged_at=None, acknowledged_by=None,
                       snoozed_until=None, next_escalation_at=timer(ack_within, paging, now))
        events.append(Event("severity_raised", now, SYSTEM, {
            "from": (was or episode.severity).value, "to": paging.value, "reopened": reopened,
            "page": True, "previously_acknowledged_by": episode.acknowledged_by if reopened
            else None, "summary": derived["summary"]}, derived["evidence"]))
    elif severity.rank < episode.severity.rank:
        events.append(Event("severity_lowered", now, SYSTEM, {
            "from": episode.severity.value, "to": severity.value,
            "summary": derived["summary"]}, derived["evidence"]))
    return rose


def observe(episode: Alert | None, outcomes: Sequence[Outcome], now: dt.datetime, *,
            patient_id: int, ack_within: AckWithin) -> Transition:
    """Apply one evaluation's outcomes (any kinds, one patient) to the patient's episode."""
    if episode is not None and not episode.open:
        episode = None  # a resolved episode is history; new trouble is a new episode
    before = {f.kind: f for f in episode.findings} if episode is not None else {}
    findings = dict(before)
    added: list[Kind] = []
    for outcome in outcomes:
        found = findings.get(outcome.kind)
        if isinstance(outcome, Firing):
            if found is None or not found.active:
                findings[outcome.kind] = _start(outcome, now)
                added.append(outcome.kind)
            else:
                findings[outcome.kind] = _fire(found, outcome, now)
        elif isinstance(outcome, Clear) and found is not None and found.active \
                and found.clear_since is None:
            findings[outcome.kind] = replace(found, clear_since=now)
    cleared: list[Kind] = []
    for kind, f in findings.items():
        if f.active and f.clear_since is not None and now - f.clear_since >= hold_of(kind):
            findings[kind] = replace(f, cleared_at=now)
            cleared.append(kind)
    if episode is None and not added:
        return Transition(None, None)
    findings = _inhibit(findings)
    events: list[Event] = []
    if not any(f.active for f in findings.values()):
        assert episode is not None  # noqa: S101 - a new episode has an added, active finding
        events += [_finding_event("finding_cleared", findings[k], now) for k in cleared]
        reason = "every finding cleared: " + ", ".join(
            f"{f.kind.value} clear since {f.clear_since.isoformat() if f.clear_since else '?'}"
            for f in findings.values() if f.kind in cleared)
        after = replace(episode, state=State.RESOLVED, resolved_at=now, resolved_by=SYSTEM,
                        resolution_reason=reason, updated_at=now, next_escalation_at=None,
                        snoozed_until=None, findings=tuple(findings.values()))
        events.append(Event("resolved", now, SYSTEM, {"reason": reason, "automatic": True},
                            tuple(e for k in cleared for e in findings[k].evidence)))
        return Transition(episode, after, tuple(events))
    derived = _derived(findings)
    severity: Severity = derived["severity"]
    paging = paging_severity(findings.values())
    if episode is None:
        new = Alert(patient_id=patient_id, state=State.RAISED, raised_at=now, updated_at=now,
                    next_escalation_at=None if paging is None else timer(ack_within, paging, now),
                    **derived)
        return Transition(None, new, (Event("raised", now, SYSTEM, {
            "severity": severity.value, "summary": derived["summary"], "page": paging is not None,
            "partial": derived["partial"], "findings": [k.value for k in added]},
            derived["evidence"]),))
    changes = dict(derived)
    rose = _severity(episode, before, findings, derived, now, ack_within=ack_within,
                     changes=changes, events=events)
    for kind in added:
        f = findings[kind]
        events.append(_finding_event("finding_raised", f, now, inhibited=f.inhibited,
                                     page=not f.inhibited and not rose
                                     and kind not in QUIET_KINDS))
    for kind, f in findings.items():
        old = before.get(kind)
        if kind not in added and old is not None and old.active and f.severity != old.severity:
            events.append(_finding_event("finding_updated", f, now, previous=old.severity.value))
    events += [_finding_event("finding_cleared", findings[k], now) for k in cleared]
    # As `replace(episode, **changes) == episode`, without building the copy first (building
    # two copies of every evaluated episode was a tenth of `observe`, issue 14).
    if all((was := getattr(episode, k)) is v or was == v for k, v in changes.items()):
        return Transition(episode, episode)
    return Transition(episode, replace(episode, **{**changes, "updated_at": now}),
                      tuple(events))


def pages(event: Event) -> bool:
    """True when the event goes to the pager (the routing stage reads this flag)."""
    return bool(event.detail.get("page"))
