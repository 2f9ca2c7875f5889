"""The gateway's one write transaction per batch: readings, dead letters, statuses, NOTIFY,
and the batch's row in `alerting_queue` (the hand-over to `vward alerting`).

Everything a batch changes is written in a single transaction, so the MQTT acknowledgements
that follow the commit cover all of it, and a crash before the commit leaves nothing behind
for the redelivery to trip over. Thin SQL only; the decisions were made in `gateway.pipeline`.
"""

from __future__ import annotations

import contextlib
import json
from itertools import compress
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from gateway import dead_letter_sink
from gateway.dead_letters import Rationing
from gateway.pipeline import BatchPlan, Stored, dead_letters_of, patients_of, stored_of
from gateway.urgency import RED, sub_score
from ward.db import alerting_queue, channels
from ward.db.store import ReadingStore

Conn = psycopg.Connection[Any]

# A retained status or a late LWT must not overwrite a newer report.
_STATUS_SQL = (
    "INSERT INTO device_status AS s "
    "(device_id, online, battery_pct, signal_dbm, firmware, reported_at, updated_at, raw) "
    "VALUES (%s, %s, %s, %s, %s, %s, now(), %s) "
    "ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, "
    "battery_pct = COALESCE(EXCLUDED.battery_pct, s.battery_pct), "
    "signal_dbm = COALESCE(EXCLUDED.signal_dbm, s.signal_dbm), "
    "firmware = COALESCE(EXCLUDED.firmware, s.firmware), "
    "reported_at = EXCLUDED.reported_at, updated_at = now(), raw = EXCLUDED.raw "
    "WHERE s.reported_at IS NULL OR EXCLUDED.reported_at >= s.reported_at"
)


def write_batch(conn: Conn, store: ReadingStore, plan: BatchPlan,
                rationing: Rationing | None = None, *,
                queue_alerting: bool = False) -> tuple[Stored, list[int]]:
    """Write and commit `plan`; return what it newly stored and the patients that touched.

    Readings that conflict with stored ones are in `Stored.conflicts` (and dead-lettered);
    `pipeline.settle(plan, stored)` is the plan the answers and metrics must read.

    Dead letters are rationed per device (`gateway.dead_letters`; default limits when
    `rationing` is None). `queue_alerting`: also queue those patients for alert evaluation,
    in this transaction.

    The COMMIT goes in the same pipeline as the batch's last statements (one round trip
    fewer per batch than a `conn.transaction()` block, issue 14: it also shortens how long
    the batch holds its `latest_readings` row locks, which a second gateway waits for). On
    a connection already in a transaction the batch is a savepoint of it, committed by the
    caller, as before.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():
            return _write(conn, store, plan, rationing, queue_alerting, commit=False)
    try:
        return _write(conn, store, plan, rationing, queue_alerting, commit=True)
    except BaseException:
        with contextlib.suppress(psycopg.Error):  # a lost connection cannot roll back
            conn.rollback()
        raise


def _write(conn: Conn, store: ReadingStore, plan: BatchPlan, rationing: Rationing | None,
           queue_alerting: bool, *, commit: bool) -> tuple[Stored, list[int]]:
    if plan.readings:
        written = store.write_checked(conn, plan.readings, defer_latest=True)
        stored = stored_of(plan, written.inserted, written.conflicts)
    else:
        stored = stored_of(plan, [])
    # With the readings that conflict with stored ones (same key, another value): kept too.
    dead_letters = dead_letters_of(plan, stored)
    if dead_letters:
        with conn.cursor() as cur:
            # Rationing reads the devices' accounts before it writes: not in the pipeline.
            dead_letter_sink.write(cur, dead_letters, rationing or Rationing())
    patients = patients_of(plan.readings, stored.readings)
    # Everything else, and the COMMIT, in one round trip (pipeline mode); latest_readings
    # first, so its row locks are held for this round trip only (ReadingStore.write).
    with conn.pipeline(), conn.cursor() as cur:
        if stored.count:
            cur.execute(store.latest_sql())
        if plan.statuses:
            cur.executemany(_STATUS_SQL, [
                (s.device_id, s.online, s.battery_pct, s.signal_dbm, s.firmware,
                 s.sent_at, json.dumps({
                     "online": s.online, "battery_pct": s.battery_pct,
                     "signal_dbm": s.signal_dbm, "firmware": s.firmware,
                     "sent_at": s.sent_at.isoformat() if s.sent_at else None}))
                for s in plan.statuses])
        if queue_alerting and patients:
            new = list(compress(plan.readings, stored.readings))
            points = [(r.patient_id, sub_score(r.code, r.value)) for r in new]
            alerting_queue.enqueue(cur, patients, min(r.received_at for r in new),
                                   sorted({pid for pid, n in points if n > 0}),
                                   sorted({pid for pid, n in points if n >= RED}))
        for chunk in channels.patient_chunks(patients):
            cur.execute("SELECT vw_notify(%s)",
                        (json.dumps({"type": "readings", "patient_ids": chunk}),))
        if commit:
            conn.commit()
    return stored, patients
