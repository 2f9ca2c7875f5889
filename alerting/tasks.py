"""Thin SQL for full-set requests: the ``tasks`` table and the home hub's command.

:func:`follow_up` runs inside the evaluator's transaction, after the rules: it settles each
patient's open request (answered or missed, :func:`alerting.requests.settle`), asks
:func:`alerting.requests.decide` whether to request a new full set, and for each new request
stores a ``tasks`` row *and* an outbox row carrying the ``full_set`` command to the patient's
home hub (``vw/v1/devices/{hub}/commands``) in the same transaction — so a crash either loses
both or neither, and the outbox retries delivery until the broker acknowledges it. A patient
with no home hub still gets the task (the hub phones them).

The command is the wire contract's ``CommandPayload`` (``gateway/schemas/commands.schema.json``);
this package may not import ``gateway``, so a test holds :data:`COMMANDS_TOPIC` and
:func:`command_payload` equal to the contract.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import psycopg

from alerting import requests
from alerting.candidates import Firing, Kind
from alerting.requests import FullSetRequest, PastRequest, Reason, RequestConfig, Status
from alerting.rules import Evaluation
from alerting.snapshot import PatientSnapshot

Conn = psycopg.Connection[Any]

COMMANDS_TOPIC: Final = "vw/v1/devices/{device_id}/commands"
CREATED_BY: Final = "alerting"
HOME_HUB: Final = "home_hub"
STAFF_DEVICE_PREFIX: Final = "staff-"  # ward.hub.staff_entry.staff_device_id (a test holds it)
#: Findings that count as a rising trend for :func:`alerting.requests.decide`.
TREND_KINDS: Final = frozenset({Kind.TREND, Kind.NEWS2_RISING})


@dataclass(frozen=True, slots=True)
class Subject:
    """One evaluated patient; ``doubt`` is the artefact stage's reason, when it has one."""

    patient_id: int
    snapshot: PatientSnapshot
    evaluation: Evaluation
    doubt: str | None = None


@dataclass(slots=True)
class FollowUp:
    requested: list[int]  # task ids
    done: int = 0
    missed: int = 0


def _utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def command_payload(task_id: int, request: FullSetRequest) -> dict[str, Any]:
    """The ``full_set`` command of a stored task (``CommandPayload`` of the wire contract)."""
    return {"command_id": f"task-{task_id}", "kind": "full_set",
            "issued_at": _utc(request.requested_at), "due_at": _utc(request.due_at),
            "reason": request.reason.value, "detail": request.detail[:500], "wake": request.wake}


def home_hub(snapshot: PatientSnapshot) -> str | None:
    """The hub to command: the patient's home hub heard from most recently (then by id).

    Staff entries at the hub are attributed to a virtual device of kind home hub,
    ``staff-{patient_id}`` (``ward.hub.staff_entry``), which nobody at home reads: never it.
    """
    staff = f"{STAFF_DEVICE_PREFIX}{snapshot.patient_id}"
    hubs = [d for d in snapshot.devices if d.kind == HOME_HUB and d.device_id != staff]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    hubs.sort(key=lambda d: (-(d.reported_at or epoch).timestamp(), d.device_id))
    return hubs[0].device_id if hubs else None


def latest_requests(conn: Conn, patient_ids: Sequence[int]) -> dict[int, PastRequest]:
    """Each patient's latest full-set task, locked when open (the caller holds the patient locks)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (t.patient_id) t.patient_id, t.id, t.created_at, t.due_at, "
        "t.status, t.reason, (SELECT count(*) FROM tasks m WHERE m.patient_id = t.patient_id "
        " AND m.kind = 'full_set' AND m.status = 'missed' AND m.created_at > coalesce(("
        "  SELECT max(d.created_at) FROM tasks d WHERE d.patient_id = t.patient_id "
        "  AND d.kind = 'full_set' AND d.status = 'done'), '-infinity')) "
        "FROM tasks t WHERE t.kind = 'full_set' AND t.patient_id = ANY(%s) "
        "ORDER BY t.patient_id, t.created_at DESC, t.id DESC", (list(patient_ids),)).fetchall()
    return {pid: PastRequest(tid, created, due, Status(status), Reason(reason), int(misses))
            for pid, tid, created, due, status, reason, misses in rows}


def follow_up(conn: Conn, subjects: Sequence[Subject], now: dt.datetime, *,
              config: RequestConfig | None = None) -> FollowUp:
    """Settle open requests and make new ones for ``subjects`` (caller's transaction)."""
    config = config or RequestConfig()
    result = FollowUp([])
    if not subjects:
        return result
    latest = latest_requests(conn, [s.patient_id for s in subjects])
    closed: list[dict[str, Any]] = []
    new: list[tuple[Subject, FullSetRequest]] = []
    for subject in subjects:
        score, used = subject.evaluation.score, subject.evaluation.observation_set.used
        past = latest.get(subject.patient_id)
        if past is not None and past.status is Status.OPEN:
            settled = requests.settle(past, score, used, now)
            if settled is not None:
                closed.append({"id": past.id, "patient_id": subject.patient_id,
                               "status": settled.status.value,
                               "closed_at": settled.at.isoformat(), "outcome": settled.outcome})
                past = replace(past, status=settled.status,
                               misses=past.misses + 1 if settled.status is Status.MISSED else 0)
                if settled.status is Status.DONE:
                    result.done += 1
                else:
                    result.missed += 1
        rising = any(isinstance(o, Firing) and o.kind in TREND_KINDS
                     for o in subject.evaluation.outcomes)
        decision = requests.decide(
            score, now, last=past, last_full_set_at=requests.full_set_at(score, used),
            doubtful=subject.doubt is not None, doubt_reason=subject.doubt or "",
            rising=rising, config=config)
        if decision is not None:
            new.append((subject, decision))
    if closed:
        conn.execute(
            "UPDATE tasks t SET status = c.status, closed_at = c.closed_at, outcome = c.outcome "
            "FROM jsonb_to_recordset(%s::jsonb) AS c(id bigint, status text, "
            "closed_at timestamptz, outcome text) WHERE t.id = c.id AND t.status = 'open'",
            (json.dumps(closed),))
    stored = _store_requests(conn, new)
    result.requested = sorted(tid for tid, _ in stored)
    events = [{"type": "task", "task_id": c["id"], "patient_id": c["patient_id"],
               "status": c["status"]} for c in closed]
    events += [{"type": "task", "task_id": tid, "patient_id": pid, "status": "open"}
               for tid, pid in stored]
    if events:
        conn.execute("SELECT vw_notify(t) FROM unnest(%s::text[]) AS t",
                     ([json.dumps(e, separators=(",", ":")) for e in events],))
    return result


def _store_requests(conn: Conn,
                    new: Sequence[tuple[Subject, FullSetRequest]]) -> list[tuple[int, int]]:
    """Insert the tasks and their commands; returns (task id, patient id) of those stored."""
    if not new:
        return []
    hubs = {s.patient_id: home_hub(s.snapshot) for s, _ in new}
    rows = [{"patient_id": s.patient_id, "device_id": hubs[s.patient_id],
             "reason": r.reason.value, "detail": r.detail, "wake": r.wake,
             "due_at": r.due_at.isoformat(), "created_at": r.requested_at.isoformat()}
            for s, r in new]
    stored = conn.execute(
        "INSERT INTO tasks (kind, patient_id, device_id, reason, detail, wake, due_at, "
        "created_by, created_at) SELECT 'full_set', patient_id, device_id, reason, detail, wake, "
        "due_at, %s, created_at FROM jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, "
        "device_id text, reason text, detail text, wake boolean, due_at timestamptz, "
        "created_at timestamptz) ON CONFLICT (patient_id, kind) WHERE status = 'open' "
        "DO NOTHING RETURNING id, patient_id", (CREATED_BY, json.dumps(rows))).fetchall()
    by_patient: dict[int, list[FullSetRequest]] = defaultdict(list)
    for subject, request in new:
        by_patient[subject.patient_id].append(request)
    outbox = [{"recipient": COMMANDS_TOPIC.format(device_id=hubs[pid]),
               "payload": command_payload(tid, by_patient[pid][0]),
               "idempotency_key": f"command:task-{tid}",
               "created_at": by_patient[pid][0].requested_at.isoformat()}
              for tid, pid in stored if hubs.get(pid) is not None]
    if outbox:
        conn.execute(
            "INSERT INTO notification_outbox (created_at, channel, recipient, payload, "
            "idempotency_key, next_attempt_at) SELECT created_at, 'mqtt', recipient, payload, "
            "idempotency_key, created_at FROM jsonb_to_recordset(%s::jsonb) AS r(recipient text, "
            "payload jsonb, idempotency_key text, created_at timestamptz) "
            "ON CONFLICT (idempotency_key) DO NOTHING", (json.dumps(outbox),))
    return [(int(tid), int(pid)) for tid, pid in stored]
