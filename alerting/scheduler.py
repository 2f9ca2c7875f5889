"""The timer side of alerting: sweeps for what time alone changes, run by one leader.

A sweep (:func:`sweep`, one instant ``now``): re-evaluates the timer kinds (observations
overdue, device offline, battery low, infusion late) for every admitted patient and every
patient with an open episode — which also completes the episodes' hysteresis in time (a
finding clear for its hold is cleared even when no reading arrives) —, runs *every* rule for
a patient whose doubtful reading's doubt lapsed with no repeat (``alerting.artefacts
.DOUBT_LAPSE``: time alone turns it into a scored reading, so its alert must not wait for the
next reading; ``alerting.runner``), keeps the hub's
phone-call / visit tasks for what the kits cannot measure (``alerting.due_tasks``), re-assesses
the risk tiers that are due, at most ``alerting.risk_store.MAX_PER_CALL`` per sweep, stalest
first (``alerting.runner.assess_tiers``: missed sets and the 24-72 h windows move with time
alone; a tier is at most ``risk_store.REASSESS`` stale), expires snoozes,
and moves unacknowledged alerts up the escalation tiers. All state is in the database, so a
restarted or replacement scheduler carries on where the last one stopped.

Exactly one leader across processes: :class:`Leader` holds a PostgreSQL *session* advisory
lock on a dedicated connection. If that connection drops, PostgreSQL releases the lock and
another process's next :meth:`Leader.acquire` succeeds. Escalation rows are also taken with
``FOR UPDATE SKIP LOCKED``, so even two leaders by mistake would not double-escalate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import psycopg

from alerting import due_tasks, escalation, lifecycle, runner, store
from alerting.candidates import TIMER_KINDS
from alerting.escalation import Action, Decision
from alerting.lifecycle import Transition
from alerting.policy import Policy
from ward.db import worklist

Conn = psycopg.Connection[Any]
log = logging.getLogger(__name__)

#: Session advisory lock namespace of the scheduler leader ("vwsl"); the second key is the
#: hash of the schema, so deployments (and test schemas) sharing a database do not collide.
LEADER_LOCK_NS: Final = 0x7677736C
#: Patients per sweep transaction. The chunk holds its patients' evaluation locks until it
#: commits, and a fresh reading's evaluation for one of them waits that long: 1,000 patients
#: held them for seconds (issue 14); 100 keeps the wait to a small fraction of the alert
#: latency budget (250 ms) on a quiet machine, for ten commits per 1,000-patient sweep.
SWEEP_CHUNK: Final = 100


@dataclass(slots=True)
class SweepResult:
    patients: int = 0
    timer_changes: int = 0
    escalated: int = 0
    snoozes_expired: int = 0
    hub_tasks: int = 0  # open phone-call / visit tasks (alerting.due_tasks)


def _ceilings(conn: Conn, patient_ids: Sequence[int]) -> dict[int, str]:
    return dict(conn.execute(
        "SELECT patient_id, ceiling_of_care FROM care_plans WHERE patient_id = ANY(%s)",
        (list(patient_ids),)).fetchall())


def escalate_due(conn: Conn, policy: Policy, now: dt.datetime) -> int:
    """Escalate every raised alert whose timer is due (caller's transaction)."""
    due = store.select_alerts(
        conn, "state = 'raised' AND next_escalation_at <= %s "
        "AND (snoozed_until IS NULL OR snoozed_until <= %s)", (now, now), skip_locked=True)
    ceilings = _ceilings(conn, [a.patient_id for a in due])
    transitions: list[Transition] = []
    decisions: dict[int, Decision] = {}
    for alert in due:
        ceiling = ceilings.get(alert.patient_id, "full_escalation")
        decision = escalation.next_step(alert, policy, now, ceiling=ceiling)
        if decision.action is not Action.NOTIFY or alert.id is None:
            continue
        decisions[alert.id] = decision
        transitions.append(lifecycle.escalate(
            alert, tier=decision.tier, target=decision.target, next_at=decision.next_at,
            now=now, detail={"reason": decision.reason, "in_hours": decision.in_hours,
                             "on_call": decision.on_call, "ceiling_of_care": ceiling,
                             "recipients": [asdict(c) for c in decision.recipients]}))
    runner.persist(conn, transitions, policy, now, ceilings=ceilings, decisions=decisions)
    return len(transitions)


def expire_snoozes(conn: Conn, policy: Policy, now: dt.datetime) -> int:
    alerts = store.select_alerts(conn, "state <> 'resolved' AND snoozed_until <= %s", (now,),
                                 skip_locked=True)
    transitions = [lifecycle.expire_snooze(a, now) for a in alerts]
    runner.persist(conn, transitions, policy, now, ceilings=_ceilings(conn, [a.patient_id for a in alerts]))
    return len(transitions)


def sweep(conn: Conn, policy: Policy, now: dt.datetime) -> SweepResult:
    """One pass of every timer; commits per chunk of patients and per timer kind."""
    result = SweepResult()
    ids = [r[0] for r in conn.execute(
        "SELECT patient_id FROM admissions WHERE status = 'admitted' "
        "UNION SELECT patient_id FROM alerts WHERE state <> 'resolved' ORDER BY 1")]
    conn.commit()
    result.patients = len(ids)
    for start in range(0, len(ids), SWEEP_CHUNK):
        with conn.transaction():
            # score=False writes no scores, so the snapshots evaluated are still what the
            # hub's tasks are derived from.
            chunk = ids[start:start + SWEEP_CHUNK]
            changes, snapshots = runner.evaluate_with_snapshots(
                conn, chunk, now, policy=policy, kinds=TIMER_KINDS, score=False)
            result.hub_tasks += due_tasks.sync(conn, snapshots, now, runner.rule_config(policy))
        result.timer_changes += len(changes)
    # The risk tiers: one call for the whole ward, at most risk_store.MAX_PER_CALL of them (the
    # stalest first), in a transaction of its own: the assessment is read and computed before
    # the patients' locks are taken, so they are held only while the tiers are stored (in the
    # chunks above, 1,000 newly admitted patients held every chunk's locks for ~22 s).
    with conn.transaction():
        result.timer_changes += len(runner.assess_tiers(conn, ids, now, policy=policy))
    with conn.transaction():
        due_tasks.close_discharged(conn, now)
    with conn.transaction():
        worklist.record_missed_urgent_clocks(conn, now)  # 2-hour clocks past their deadline
    with conn.transaction():
        result.snoozes_expired = expire_snoozes(conn, policy, now)
    with conn.transaction():
        result.escalated = escalate_due(conn, policy, now)
    return result


class Leader:
    """Holds the scheduler's session advisory lock on its own autocommit connection."""

    def __init__(self, conninfo: str, holder: str) -> None:
        self._conninfo = conninfo
        self.holder = holder
        self._conn: Conn | None = None
        self.leading = False

    def acquire(self, now: dt.datetime) -> bool:
        """True while this process leads; re-connects (and re-competes) after a drop."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self.leading = False
            if not self.leading:
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))",
                    (LEADER_LOCK_NS,)).fetchone()
                self.leading = bool(row and row[0])
                if self.leading:
                    log.info("scheduler leadership acquired holder=%s", self.holder)
                    self._conn.execute(
                        "INSERT INTO alerting_leader (name, holder, acquired_at, heartbeat_at) "
                        "VALUES ('scheduler', %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                        "holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at, "
                        "heartbeat_at = EXCLUDED.heartbeat_at", (self.holder, now, now))
            else:
                self._conn.execute("SELECT 1")  # the lock lives as long as this session
        except psycopg.OperationalError:
            log.warning("scheduler lock connection lost; re-competing for leadership")
            self.release()
            return False
        return self.leading

    def heartbeat(self, now: dt.datetime, result: SweepResult) -> None:
        if self._conn is not None and self.leading:
            self._conn.execute(
                "UPDATE alerting_leader SET heartbeat_at = %s, last_sweep = %s::jsonb "
                "WHERE name = 'scheduler' AND holder = %s",
                (now, json.dumps(asdict(result)), self.holder))

    def release(self) -> None:
        if self._conn is not None:
            try:
                # Closing the session frees the lock too, but only once the server process has
                # exited, after close() returns; unlocking first makes the handover immediate.
                if self.leading and not self._conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._conn.close()
            finally:
                self._conn = None
                self.leading = False
