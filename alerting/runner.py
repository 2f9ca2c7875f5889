"""Evaluate a batch of patients right after the gateway commits their readings.

``evaluate_after_commit(conn, patient_ids, now)`` runs in a fresh transaction on the caller's
psycopg connection and **commits it itself** (inside an already open transaction block it
uses a savepoint and the caller commits). Per batch: lock the patients (advisory, ordered),
learn any baselines that became ripe, load their snapshots set-based, run the pure rules and
each patient's episode (:mod:`alerting.episodes`), then store scores, episodes, findings,
events and outbox rows with one statement per table, and ``NOTIFY vw_events`` (one
``{"type": "alert", …}`` per changed episode; the scored patients as
``{"type": "score", "patient_ids": […]}`` chunks, not one notification each).

The risk tier (:func:`assess_tiers`: the tier of the patients whose tier is due,
``alerting.risk_store``, a change recorded in their episodes as a quiet, low-severity finding,
``alerting.risk_findings``) is *not* assessed here but by the scheduler's sweep, per chunk,
every 15 s. Why: asking which tiers are due cost ~0.1 s per evaluated pass even with none due
(issue 14), and the tier is at most :data:`alerting.risk_store.REASSESS` stale by design, so
a sweep's 15 s adds nothing that matters; a fresh reading's alert never waited for it anyway.

A reading the artefact filter set aside as doubtful (``rules.Evaluation.doubtful``) is passed
to the ``on_doubt`` hook, if given, in the same transaction, and always announced as
``NOTIFY vw_events`` ``{"type": "doubtful_reading", "patient_id", "code", "measured_at",
"device_id", "value", "reason"}`` — what the "request a full set" command acts on. A doubt
lapses with no repeat (``alerting.artefacts.DOUBT_LAPSE``): a timer sweep (``kinds`` given)
that finds one lapsed after the patient's last stored score runs *every* rule for that patient
and stores the score, so the reading alerts as measured without waiting for a new reading.

A score row is stored when the score differs from the last stored one (total, risk,
completeness, missing parameters) or the last is at least :data:`SCORE_EVERY` old. Why: a
wearable at one reading a minute would otherwise write 60 identical rows an hour; 5 minutes
keeps the stored history fine enough for the hub's score chart and the hourly Chart 4 band.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import psycopg

from alerting import artefacts, episodes, risk_findings, risk_store, rules, store, tasks
from alerting.artefacts import Doubt
from alerting.candidates import Kind
from alerting.escalation import Decision
from alerting.lifecycle import Alert, Event, Transition
from alerting.news2 import News2Score
from alerting.policy import Policy, configured_policy
from alerting.routing import Notification, notifications
from alerting.snapshot import DEFAULT_PUMP_TOLERANCE, PatientSnapshot, RuleConfig

Conn = psycopg.Connection[Any]
#: Called with (connection, [(patient_id, doubt)], now) in the evaluation's transaction.
DoubtHook = Callable[[Conn, Sequence[tuple[int, Doubt]], dt.datetime], None]
SCORE_EVERY: Final = dt.timedelta(minutes=5)
#: An open episode whose evaluation changed only what a continuing finding refreshes (its last
#: firing ``last_at``/``severity_at``, its newest evidence and details) and produced no event
#: is written at most this often. Why: a wearable patient's firing finding is refreshed by
#: every reading (1–2 a second at the benchmark's rate), and rewriting the episode and its
#: findings as JSON each time was the largest write of a pass (issue 14). Everything that
#: is an event or that a later evaluation decides on (a new, raised, lowered, cleared or
#: inhibited finding, a clear starting its hold, state, severity, summary, timers) is written
#: at once. The bound: the stored ``last_at``/evidence of a continuing finding lag by at most
#: this; and a finding's *lowering* hold (30 min) counts from the last stored firing at the
#: higher level, so it can end at most this much early (a lower severity never pages).
REFRESH_EVERY: Final = dt.timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Change:
    """One alert that changed: what it is now and which events were stored."""

    patient_id: int
    alert_id: int
    kind: str
    state: str
    severity: str
    events: tuple[str, ...]


@functools.cache
def default_policy() -> Policy:
    """The configured policy (``VW_ESCALATION_POLICY`` or the repository default), read once."""
    return configured_policy()


def rule_config(policy: Policy) -> RuleConfig:
    return RuleConfig(pump_tolerance={**DEFAULT_PUMP_TOLERANCE, **policy.infusion_tolerance})


def _score_row(pid: int, result: News2Score, evaluation: rules.Evaluation,
               now: dt.datetime) -> dict[str, Any]:
    return {
        "patient_id": pid, "computed_at": now.isoformat(), "total": result.total,
        "risk": result.risk.value, "any_single_3": result.any_single_3,
        "complete": result.complete, "spo2_scale": result.spo2_scale,
        "sub_scores": {p.value: s for p, s in result.sub_scores.items()},
        "missing": sorted(p.value for p in result.missing),
        "evidence": [e.as_json() for e in evaluation.observation_set.used],
    }


def _should_store(snapshot: PatientSnapshot, result: News2Score, now: dt.datetime) -> bool:
    if not snapshot.score_history:
        return True
    last = snapshot.score_history[-1]
    same = (last.total, last.risk, last.complete, last.missing) == (
        result.total, result.risk, result.complete, frozenset(p.value for p in result.missing))
    return not same or now - last.computed_at >= SCORE_EVERY


def _substance(alert: Alert) -> tuple[Any, ...]:
    """What of an episode is more than a continuing finding's refresh (see REFRESH_EVERY)."""
    return (alert.state, alert.kind, alert.severity, alert.summary, alert.partial,
            alert.acknowledged_at, alert.acknowledged_by, alert.resolved_at,
            alert.snoozed_until, alert.escalation_tier, alert.next_escalation_at,
            alert.escalation_target,
            tuple((f.kind, f.severity, f.summary, f.first_at, f.partial, f.clear_since,
                   f.cleared_at, f.inhibited) for f in alert.findings))


def refresh_only(t: Transition, now: dt.datetime) -> bool:
    """True when `t` only refreshes a stored open episode written less than
    :data:`REFRESH_EVERY` ago, with no event: then it need not be written now."""
    before, after = t.before, t.after
    if t.events or before is None or after is None or before.id is None or not before.open:
        return False
    if now - before.updated_at >= REFRESH_EVERY:
        return False
    return _substance(before) == _substance(after)


def persist(conn: Conn, transitions: Sequence[Transition], policy: Policy, now: dt.datetime, *,
            ceilings: Mapping[int, str] | None = None,
            decisions: Mapping[int, Decision] | None = None) -> list[Change]:
    """Store transitions (alerts, events, outbox rows, NOTIFY) in the caller's transaction."""
    ceilings = ceilings or {}
    decisions = decisions or {}
    changed = [t for t in transitions if t.changed and t.after is not None]
    new = [t.after for t in changed if t.after is not None and t.after.id is None]
    ids = store.insert_alerts(conn, new)
    inserted = set(ids.values())
    stored: list[tuple[Alert, tuple[Event, ...]]] = []
    # A finding that is the very object the episode was loaded with is its stored row as it
    # stands (the evaluator loads an episode with its findings under the patient's lock):
    # not written again. Why: every write of an episode rewrote every one of its findings
    # as JSON, most of them unchanged (issue 14).
    same: set[tuple[int, Kind]] = set()
    for t in changed:
        after = t.after
        assert after is not None  # noqa: S101 - filtered above
        if after.id is None:
            aid = ids.get(after.patient_id)
            if aid is None:
                continue  # another evaluator opened the episode first; its row stands
            after = replace(after, id=aid)
        elif t.before is not None and t.before.id == after.id:
            was = {f.kind: f for f in t.before.findings}
            same.update((after.id, f.kind) for f in after.findings if was.get(f.kind) is f)
        stored.append((after, t.events))
    store.update_alerts(conn, [a for a, _ in stored if a.id is not None and a.id not in inserted])
    store.upsert_findings(conn, [(a.id, f) for a, _ in stored if a.id is not None
                                 for f in a.findings if (a.id, f.kind) not in same])
    store.insert_events(conn, [(a.id, e) for a, events in stored for e in events
                               if a.id is not None])
    outgoing: list[Notification] = []
    for alert, events in stored:
        for event in events:
            outgoing.extend(notifications(
                alert, event, policy, now, ceiling=ceilings.get(alert.patient_id, "full_escalation"),
                decision=decisions.get(alert.id or 0) if event.event == "escalated" else None))
    store.enqueue(conn, outgoing, now)
    store.notify(conn, [{"type": "alert", "patient_id": a.patient_id, "alert_id": a.id,
                         "state": a.state.value, "kind": a.kind.value,
                         "severity": a.severity.value} for a, events in stored if events])
    return [Change(a.patient_id, a.id or 0, a.kind.value, a.state.value, a.severity.value,
                   tuple(e.event for e in events)) for a, events in stored]


def evaluate(conn: Conn, patient_ids: Iterable[int], now: dt.datetime, *,
             policy: Policy | None = None, kinds: Collection[Kind] | None = None,
             score: bool = True, on_doubt: DoubtHook | None = None,
             cache: store.EpisodeCache | None = None) -> list[Change]:
    """The work of :func:`evaluate_after_commit`, in the caller's transaction."""
    return evaluate_with_snapshots(conn, patient_ids, now, policy=policy, kinds=kinds,
                                   score=score, on_doubt=on_doubt, cache=cache)[0]


def evaluate_with_snapshots(conn: Conn, patient_ids: Iterable[int], now: dt.datetime, *,
                            policy: Policy | None = None,
                            kinds: Collection[Kind] | None = None, score: bool = True,
                            on_doubt: DoubtHook | None = None,
                            cache: store.EpisodeCache | None = None,
                            ) -> tuple[list[Change], dict[int, PatientSnapshot]]:
    """:func:`evaluate`, also returning the snapshots it evaluated (loaded before its writes:
    the timer sweep, which stores no scores, reuses them for the hub's tasks instead of
    loading every patient twice). ``cache``: an evaluator's :class:`alerting.store.EpisodeCache`
    (open episodes not decoded again while their row is unchanged)."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    policy = policy or default_policy()
    config = rule_config(policy)
    ids = sorted(set(patient_ids))
    if not ids:
        return [], {}
    store.lock_patients(conn, ids)
    if score:
        store.learn_baselines(conn, ids, now)
    snapshots, current = store.load_batch(conn, ids, now, cache)
    score_rows: list[dict[str, Any]] = []
    transitions: list[Transition] = []
    subjects: list[tasks.Subject] = []
    doubts: list[tuple[int, Doubt]] = []
    for pid in ids:
        snapshot = snapshots[pid]
        evaluation = rules.evaluate(snapshot, now, config, kinds=kinds)
        rescored = kinds is not None and artefacts.unscored_lapse(
            evaluation.lapsed, snapshot.score_history[-1].computed_at
            if snapshot.score_history else None)
        if rescored:
            # A doubt lapsed since the last stored score (time alone, no new reading): the
            # sweep runs every rule now, so the reading is scored and alerts as measured.
            evaluation = rules.evaluate(snapshot, now, config)
        # A doubtful reading asks the home hub for a repeat set (alerting.requests), also one
        # scored at once for its red score (artefacts.holds): asked for, not waited for.
        doubt = "; ".join(d.reason for d in (*evaluation.doubtful, *evaluation.urgent)) or None
        subjects.append(tasks.Subject(pid, snapshot, evaluation, doubt=doubt))
        if (score or rescored) and evaluation.score is not None \
                and _should_store(snapshot, evaluation.score, now):
            score_rows.append(_score_row(pid, evaluation.score, evaluation, now))
        if score:
            doubts.extend((pid, d) for d in evaluation.doubtful)
        transitions.append(episodes.observe(current.get(pid), evaluation.outcomes, now,
                                            patient_id=pid, ack_within=policy.ack_within))
    store.insert_scores(conn, score_rows)
    if doubts and on_doubt is not None:
        on_doubt(conn, doubts, now)
    store.notify(conn, [{"type": "doubtful_reading", "patient_id": pid, "code": d.code,
                         "measured_at": d.reading.measured_at, "device_id": d.reading.device_id,
                         "value": d.reading.value, "reason": d.reason} for pid, d in doubts])
    ceilings = {pid: s.care_plan.ceiling_of_care.value for pid, s in snapshots.items()}
    changes = persist(conn, [t for t in transitions if not refresh_only(t, now)], policy, now,
                      ceilings=ceilings)
    tasks.follow_up(conn, subjects, now)  # ask the home hub for a full set (alerting.requests)
    store.notify_patients(conn, "score", [row["patient_id"] for row in score_rows])
    return changes, snapshots


def assess_tiers(conn: Conn, patient_ids: Iterable[int], now: dt.datetime, *,
                 policy: Policy | None = None) -> list[Change]:
    """The risk tier of the patients whose tier is due (``alerting.risk_store``), a tier change
    recorded in their episodes (``alerting.risk_findings``: low severity, never paged), the
    tiers stored; in the caller's transaction. Run per chunk of the timer sweep (the tier moves
    with time alone; see the module's note for why not per evaluated batch)."""
    policy = policy or default_policy()
    assessed = risk_store.assess_due(conn, list(patient_ids), now)
    if not assessed:
        return []
    ids = [a.patient_id for a in assessed]
    store.lock_patients(conn, ids)
    current = store.open_episodes(conn, ids)
    changes = persist(conn, [risk_findings.step(
        current.get(a.patient_id), a.previous, a.assessment, now, patient_id=a.patient_id,
        ack_within=policy.ack_within) for a in assessed], policy, now)
    risk_store.save(conn, assessed, now)
    return changes


def evaluate_after_commit(conn: Conn, patient_ids: Iterable[int], now: dt.datetime, *,
                          policy: Policy | None = None,
                          on_doubt: DoubtHook | None = None,
                          cache: store.EpisodeCache | None = None) -> list[Change]:
    """Score and alert ``patient_ids`` at ``now``; commits its own transaction."""
    with conn.transaction():
        return evaluate(conn, list(patient_ids), now, policy=policy, on_doubt=on_doubt,
                        cache=cache)


def merged(changes: Sequence[Change]) -> list[Change]:
    """One change per alert (the rules' and the tier's steps may both touch an episode): the
    latest state, every event in order."""
    out: dict[int, Change] = {}
    for c in changes:
        seen = out.get(c.alert_id)
        out[c.alert_id] = c if seen is None else replace(c, events=seen.events + c.events)
    return list(out.values())
