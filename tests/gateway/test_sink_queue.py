"""The hand-over to alerting is part of the ingest transaction: a row iff the readings commit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from gateway.contract import readings_topic
from gateway.decode import Limits, decode
from gateway.pipeline import plan_batch
from gateway.sink import write_batch
from ward.db import alerting_queue
from ward.db.registry import add_device, add_patient, assign_device, device_directory
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.patients import Patient

NOW = dt.datetime(2026, 11, 24, 9, 15, tzinfo=dt.UTC)
PAYLOAD = (b'{"msg_id":"q1","sent_at":"2026-11-24T09:14:00Z","readings":[{"code":"spo2",'
           b'"value":95,"unit":"%","measured_at":"2026-11-24T09:14:00Z"}]}')


def _plan(conn: psycopg.Connection[Any], payload: bytes = PAYLOAD) -> Any:
    patient = add_patient(conn, Patient("9434765919", "Ada", "Lovelace", dt.date(1950, 1, 1)))
    assert patient.id is not None
    add_device(conn, Device("q-1", DeviceKind.PULSE_OXIMETER))
    assign_device(conn, Assignment("q-1", patient.id, NOW - dt.timedelta(days=1)))
    conn.commit()
    directory = device_directory(conn)
    topic = readings_topic("q-1")
    decoded = decode(topic, payload, NOW, Limits())
    return plan_batch([(topic, payload, NOW, decoded)], directory.get), patient.id


def test_committed_batch_queues_its_patients(db: psycopg.Connection[Any]) -> None:
    plan, pid = _plan(db)
    stored, patients = write_batch(db, ReadingStore(), plan, queue_alerting=True)
    assert patients == [pid]
    assert stored.count == 1
    taken = alerting_queue.take(db, 10)
    db.rollback()
    assert taken.patient_ids == (pid,)
    assert taken.received_at == (NOW,)


def test_a_batch_that_never_commits_queues_nothing(db: psycopg.Connection[Any]) -> None:
    plan, _pid = _plan(db)
    # The gateway dying before its COMMIT, as seen by the database: everything rolls back.
    with db.transaction(force_rollback=True):
        write_batch(db, ReadingStore(), plan, queue_alerting=True)
    assert alerting_queue.depth(db) == 0
    row = db.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    assert row[0] == 0


def _urgent(conn: psycopg.Connection[Any]) -> list[list[int]]:
    rows = conn.execute("SELECT urgent_ids FROM alerting_queue ORDER BY id").fetchall()
    conn.rollback()
    return [r[0] for r in rows]


def test_a_batch_with_a_reading_that_scores_queues_its_patient_urgent(
        db: psycopg.Connection[Any]) -> None:
    plan, pid = _plan(db)  # SpO2 95 %: NEWS2 scale 1 scores 1
    write_batch(db, ReadingStore(), plan, queue_alerting=True)
    assert _urgent(db) == [[pid]]


def test_a_batch_of_normal_readings_is_not_urgent(db: psycopg.Connection[Any]) -> None:
    plan, _pid = _plan(db, PAYLOAD.replace(b'"value":95', b'"value":98'))
    write_batch(db, ReadingStore(), plan, queue_alerting=True)
    assert _urgent(db) == [[]]


def test_a_red_reading_queues_its_patient_red(db: psycopg.Connection[Any]) -> None:
    plan, pid = _plan(db, PAYLOAD.replace(b'"value":95', b'"value":90'))  # SpO2 90 %: 3
    write_batch(db, ReadingStore(), plan, queue_alerting=True)
    row = db.execute("SELECT urgent_ids, red_ids FROM alerting_queue").fetchone()
    db.rollback()
    assert row == ([pid], [pid])


def test_a_large_batch_queues_its_patients_uncompressed(db: psycopg.Connection[Any]) -> None:
    """A batch's row holds up to 500 patients (4 kB of bigints): stored as it is, not through
    pglz, which cost a millisecond of the server's CPU per batch (issue 14); read back whole."""
    patients = list(range(1, 501))
    with db.cursor() as cur:
        alerting_queue.enqueue(cur, patients, NOW, patients[:300], patients[:10])
    row = db.execute("SELECT patient_ids, urgent_ids, red_ids, pg_column_compression(patient_ids), "
                     "pg_column_compression(urgent_ids) FROM alerting_queue").fetchone()
    assert row == (patients, patients[:300], patients[:10], None, None)
    waiting = alerting_queue.lock_waiting(db, 10)
    assert sorted(waiting.receipts) == patients
    assert waiting.urgent == frozenset(patients[:300])
