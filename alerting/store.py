"""Thin SQL for the alerting core: set-based loads and writes, no clinical logic.

Every load takes a whole batch of patients in one statement per table; every write sends one
JSON array expanded by ``jsonb_to_recordset`` — one round trip per table, whatever the batch
size. Per-patient serialisation uses transaction-scoped advisory locks taken in patient-id
order (so two evaluators never deadlock), and the ``alerts_one_open`` unique index with
``ON CONFLICT DO NOTHING`` is the last line of defence against a duplicate open alert.
The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final

import psycopg

from alerting import care_plan as care_plans
from alerting.candidates import Evidence, Kind, Severity
from alerting.care_plan import CarePlan
from alerting.lifecycle import Alert, Event, State
from alerting.news2 import Risk
from alerting.observations import Latest
from alerting.routing import Notification
from alerting.snapshot import DeviceState, PatientSnapshot, ScorePoint

Conn = psycopg.Connection[Any]

#: Namespace of the per-patient evaluation locks ("vwat" as int4), distinct from other locks.
PATIENT_LOCK_NS: Final = 0x76776174
SCORE_HISTORY: Final = dt.timedelta(hours=24)
SPO2_HISTORY: Final = dt.timedelta(hours=6)
CHANNEL: Final = "vw_events"
MAX_NOTIFY_BYTES: Final = 7000  # NOTIFY payloads must stay under 8000 bytes

ALERT_COLUMNS: Final = (
    "id", "patient_id", "kind", "severity", "state", "summary", "details", "raised_at",
    "updated_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
    "resolution_reason", "snoozed_until", "escalation_tier", "next_escalation_at",
    "clear_since", "clear_count", "clear_evidence_at", "evidence", "partial",
    "escalation_target",
)
_ALERT_TYPES: Final = {
    "id": "bigint", "patient_id": "bigint", "kind": "text", "severity": "text",
    "state": "text", "summary": "text", "details": "jsonb", "raised_at": "timestamptz",
    "updated_at": "timestamptz", "acknowledged_at": "timestamptz", "acknowledged_by": "text",
    "resolved_at": "timestamptz", "resolved_by": "text", "resolution_reason": "text",
    "snoozed_until": "timestamptz", "escalation_tier": "smallint",
    "next_escalation_at": "timestamptz", "clear_since": "timestamptz",
    "clear_count": "smallint", "clear_evidence_at": "timestamptz", "evidence": "jsonb",
    "partial": "boolean", "escalation_target": "text",
}


def _evidence(items: Iterable[Evidence]) -> list[dict[str, Any]]:
    return [e.as_json() for e in items]


def alert_from_row(row: Sequence[Any]) -> Alert:
    v = dict(zip(ALERT_COLUMNS, row, strict=True))
    return Alert(
        id=v["id"], patient_id=v["patient_id"], kind=Kind(v["kind"]),
        severity=Severity(v["severity"]), state=State(v["state"]), summary=v["summary"],
        details=v["details"] or {}, raised_at=v["raised_at"], updated_at=v["updated_at"],
        acknowledged_at=v["acknowledged_at"], acknowledged_by=v["acknowledged_by"],
        resolved_at=v["resolved_at"], resolved_by=v["resolved_by"],
        resolution_reason=v["resolution_reason"], snoozed_until=v["snoozed_until"],
        escalation_tier=v["escalation_tier"], next_escalation_at=v["next_escalation_at"],
        clear_since=v["clear_since"], clear_count=v["clear_count"],
        clear_evidence_at=v["clear_evidence_at"],
        evidence=tuple(Evidence.from_json(e) for e in v["evidence"] or ()),
        partial=v["partial"], escalation_target=v["escalation_target"],
    )


def _alert_json(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ALERT_COLUMNS:
        value = getattr(alert, name)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif name == "evidence":
            value = _evidence(value)
        elif name == "details":
            value = dict(value)
        out[name] = value
    return out


def lock_patients(conn: Conn, patient_ids: Sequence[int]) -> None:
    """Serialise evaluations per patient until the transaction ends (ordered: no deadlock)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(%s, id::int) FROM unnest(%s::bigint[]) AS id ORDER BY id",
        (PATIENT_LOCK_NS, sorted(patient_ids)),
    )


def select_alerts(conn: Conn, where: str, params: Sequence[Any], *, lock: bool = True,
                  skip_locked: bool = False) -> list[Alert]:
    """Alerts matching a fixed WHERE clause written in this package (never user text)."""
    suffix = (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE") if lock else ""
    rows = conn.execute(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts WHERE {where} ORDER BY id{suffix}", params
    ).fetchall()
    return [alert_from_row(r) for r in rows]


def open_alerts(conn: Conn, patient_ids: Sequence[int]) -> dict[tuple[int, Kind], Alert]:
    alerts = select_alerts(conn, "patient_id = ANY(%s) AND state <> 'resolved'",
                           (list(patient_ids),))
    return {(a.patient_id, a.kind): a for a in alerts}


def load_snapshots(conn: Conn, patient_ids: Sequence[int], now: dt.datetime) -> dict[int, PatientSnapshot]:
    """Everything the rules need for a batch of patients: six set-based queries."""
    ids = list(patient_ids)
    latest: dict[int, dict[str, Latest]] = defaultdict(dict)
    for pid, code, at, value, device in conn.execute(
        "SELECT patient_id, code, measured_at, value, device_id FROM latest_readings "
        "WHERE patient_id = ANY(%s)", (ids,)):
        latest[pid][code] = Latest(code, at, value, device)
    plans = {row[0]: care_plans.from_row(row) for row in conn.execute(
        f"SELECT {care_plans.SELECT_COLUMNS} FROM care_plans WHERE patient_id = ANY(%s)", (ids,))}
    history: dict[int, list[ScorePoint]] = defaultdict(list)
    for pid, at, total, risk, complete, missing in conn.execute(
        "SELECT patient_id, computed_at, total, risk, complete, missing FROM scores "
        "WHERE patient_id = ANY(%s) AND computed_at > %s "
        "UNION SELECT * FROM (SELECT DISTINCT ON (patient_id) patient_id, computed_at, total, "
        "risk, complete, missing FROM scores WHERE patient_id = ANY(%s) "
        "ORDER BY patient_id, computed_at DESC) AS last ORDER BY 1, 2",
        (ids, now - SCORE_HISTORY, ids)):
        history[pid].append(ScorePoint(at, total, Risk(risk), complete, frozenset(missing)))
    spo2: dict[int, list[Evidence]] = defaultdict(list)
    for pid, at, device, value in conn.execute(
        "SELECT patient_id, measured_at, device_id, value FROM readings "
        "WHERE patient_id = ANY(%s) AND code = 'spo2' AND measured_at > %s AND measured_at <= %s "
        "ORDER BY patient_id, measured_at", (ids, now - SPO2_HISTORY, now + dt.timedelta(minutes=5))):
        spo2[pid].append(Evidence(at, "spo2", device, value))
    devices: dict[int, list[DeviceState]] = defaultdict(list)
    for pid, device, kind, online, battery, reported in conn.execute(
        "SELECT a.patient_id, d.id, d.kind, s.online, s.battery_pct, s.updated_at "
        "FROM device_assignments a JOIN devices d ON d.pk = a.device_pk "
        "LEFT JOIN device_status s ON s.device_id = d.id "
        "WHERE a.patient_id = ANY(%s) AND a.during @> %s::timestamptz AND d.active "
        "ORDER BY d.id", (ids, now)):
        devices[pid].append(DeviceState(device, kind, online, battery, reported))
    admitted = dict(conn.execute(
        "SELECT patient_id, admitted_at FROM admissions WHERE patient_id = ANY(%s) "
        "AND status = 'admitted'", (ids,)).fetchall())
    return {
        pid: PatientSnapshot(
            patient_id=pid, latest=latest.get(pid, {}), care_plan=plans.get(pid, CarePlan(pid)),
            score_history=tuple(history.get(pid, ())), spo2_history=tuple(spo2.get(pid, ())),
            devices=tuple(devices.get(pid, ())), admitted_at=admitted.get(pid))
        for pid in ids
    }


def insert_scores(conn: Conn, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    conn.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores, missing, evidence) "
        "SELECT patient_id, computed_at, total, risk, any_single_3, complete, spo2_scale, "
        "sub_scores, ARRAY(SELECT jsonb_array_elements_text(missing)), evidence "
        "FROM jsonb_to_recordset(%s::jsonb) AS r(patient_id bigint, computed_at timestamptz, "
        "total smallint, risk text, any_single_3 boolean, complete boolean, spo2_scale smallint, "
        "sub_scores jsonb, missing jsonb, evidence jsonb) "
        "ON CONFLICT (patient_id, computed_at) DO UPDATE SET total = EXCLUDED.total, "
        "risk = EXCLUDED.risk, any_single_3 = EXCLUDED.any_single_3, "
        "complete = EXCLUDED.complete, sub_scores = EXCLUDED.sub_scores, "
        "missing = EXCLUDED.missing, evidence = EXCLUDED.evidence",
        (json.dumps(rows),),
    )


def insert_alerts(conn: Conn, alerts: Sequence[Alert]) -> dict[tuple[int, Kind], int]:
    """Insert new open alerts; returns their ids. A concurrent duplicate is skipped."""
    if not alerts:
        return {}
    cols = [c for c in ALERT_COLUMNS if c != "id"]
    spec = ", ".join(f"{c} {_ALERT_TYPES[c]}" for c in cols)
    rows = conn.execute(
        f"INSERT INTO alerts ({', '.join(cols)}) SELECT {', '.join(cols)} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS r({spec}) "
        "ON CONFLICT (patient_id, kind) WHERE state <> 'resolved' DO NOTHING "
        "RETURNING id, patient_id, kind",
        (json.dumps([_alert_json(a) for a in alerts]),),
    ).fetchall()
    return {(pid, Kind(kind)): aid for aid, pid, kind in rows}


def update_alerts(conn: Conn, alerts: Sequence[Alert]) -> None:
    if not alerts:
        return
    cols = [c for c in ALERT_COLUMNS if c not in ("id", "patient_id", "kind", "raised_at")]
    spec = ", ".join(f"{c} {_ALERT_TYPES[c]}" for c in ("id", *cols))
    conn.execute(
        f"UPDATE alerts AS a SET {', '.join(f'{c} = r.{c}' for c in cols)} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS r({spec}) WHERE a.id = r.id",
        (json.dumps([_alert_json(a) for a in alerts]),),
    )


def insert_events(conn: Conn, events: Sequence[tuple[int, Event]]) -> None:
    if not events:
        return
    rows = [{"alert_id": aid, "at": e.at.isoformat(), "event": e.event, "actor": e.actor,
             "detail": dict(e.detail), "evidence": _evidence(e.evidence)} for aid, e in events]
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, event, actor, detail, evidence) "
        "SELECT alert_id, at, event, actor, detail, evidence FROM jsonb_to_recordset(%s::jsonb) "
        "AS r(alert_id bigint, at timestamptz, event text, actor text, detail jsonb, evidence jsonb)",
        (json.dumps(rows, default=str),),
    )


def enqueue(conn: Conn, notifications: Sequence[Notification], now: dt.datetime) -> None:
    if not notifications:
        return
    rows = [{"channel": n.channel, "recipient": n.recipient, "payload": n.payload,
             "idempotency_key": n.idempotency_key, "alert_id": n.alert_id} for n in notifications]
    conn.execute(
        "INSERT INTO notification_outbox (created_at, channel, recipient, payload, "
        "idempotency_key, alert_id, next_attempt_at) "
        "SELECT %s, channel, recipient, payload, idempotency_key, alert_id, %s "
        "FROM jsonb_to_recordset(%s::jsonb) AS r(channel text, recipient text, payload jsonb, "
        "idempotency_key text, alert_id bigint) ON CONFLICT (idempotency_key) DO NOTHING",
        (now, now, json.dumps(rows, default=str)),
    )


def notify(conn: Conn, payloads: Sequence[dict[str, Any]]) -> None:
    """``NOTIFY vw_events`` for each payload, in the caller's transaction (sent on commit)."""
    texts = [json.dumps(p, separators=(",", ":"), default=str) for p in payloads]
    texts = [t for t in dict.fromkeys(texts) if len(t.encode()) <= MAX_NOTIFY_BYTES]
    if texts:
        conn.execute("SELECT pg_notify(vw_channel(%s), t) FROM unnest(%s::text[]) AS t",
                     (CHANNEL, texts))
