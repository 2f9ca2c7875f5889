"""The readings write path after issue 14's cuts: same rows, same commit, HOT-friendly latest."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from gateway.contract import readings_topic
from gateway.decode import Limits, decode
from gateway.pipeline import plan_batch
from gateway.sink import write_batch
from ward.db import store as store_module
from ward.db.registry import add_device, add_patient, assign_device, device_directory
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.patients import Patient
from ward.domain.readings import Reading, ReadingRow

NOW = dt.datetime(2026, 11, 24, 9, 15, tzinfo=dt.UTC)


def _payload(msg_id: str, at: str, value: int) -> bytes:
    return (f'{{"msg_id":"{msg_id}","sent_at":"{at}","readings":[{{"code":"spo2",'
            f'"value":{value},"unit":"%","measured_at":"{at}"}}]}}').encode()


def _patient(conn: psycopg.Connection[Any]) -> int:
    patient = add_patient(conn, Patient("9434765919", "Ada", "Lovelace", dt.date(1950, 1, 1)))
    assert patient.id is not None
    add_device(conn, Device("w-1", DeviceKind.PULSE_OXIMETER))
    assign_device(conn, Assignment("w-1", patient.id, NOW - dt.timedelta(days=1)))
    conn.commit()
    return patient.id


def _plan(conn: psycopg.Connection[Any], *payloads: bytes) -> Any:
    topic = readings_topic("w-1")
    directory = device_directory(conn)
    conn.commit()  # as in the gateway: the batch starts on an idle connection
    return plan_batch([(topic, p, NOW, decode(topic, p, NOW, Limits())) for p in payloads],
                      directory.get)


def test_a_reading_row_is_the_store_s_copy_row() -> None:
    assert ReadingRow._fields == store_module._COLUMNS
    reading = Reading("d", "spo2", NOW, 97.0, "%", 1, NOW, "m", False, None, None)
    row = ReadingRow("d", "spo2", NOW, 97.0, "%", 1, NOW, "m", False, None, None)
    assert row.key == reading.key
    assert tuple(getattr(reading, f) for f in ReadingRow._fields) == row


def test_rows_and_readings_are_stored_alike(db: psycopg.Connection[Any]) -> None:
    pid = _patient(db)
    later = NOW + dt.timedelta(seconds=1)
    with db.transaction():
        inserted = ReadingStore().write(db, [
            ReadingRow("w-1", "spo2", NOW, 95.0, "%", pid, NOW, "a"),
            Reading("w-1", "spo2", later, 96.0, "%", pid, NOW, "b"),
        ])
    assert inserted == {("w-1", "spo2", NOW), ("w-1", "spo2", later)}
    rows = ReadingStore.readings_between(db, pid, NOW, later + dt.timedelta(seconds=1))
    assert [(r.value, r.msg_id) for r in rows] == [(95.0, "a"), (96.0, "b")]
    assert ReadingStore.latest_values(db, [pid])[pid]["spo2"].value == 96.0


def test_write_batch_commits_itself_on_an_idle_connection(db_url: str,
                                                          db: psycopg.Connection[Any]) -> None:
    _patient(db)
    plan = _plan(db, _payload("c1", "2026-11-24T09:14:00Z", 95))
    stored, _ = write_batch(db, ReadingStore(), plan)
    assert stored.count == 1
    # Committed (the COMMIT rode in the batch's last pipeline), and nothing left open.
    assert db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with psycopg.connect(db_url) as other:
        row = other.execute("SELECT count(*) FROM readings").fetchone()
        latest = ReadingStore.latest_values(other)
    assert row is not None
    assert row[0] == 1
    # latest_readings was upserted in the commit's pipeline (deferred), and committed too.
    assert [(v.code, v.value) for v in next(iter(latest.values())).values()] == [("spo2", 95.0)]


def test_a_deferred_latest_upsert_waits_for_latest_sql_and_only_moves_forward(
        db: psycopg.Connection[Any]) -> None:
    pid = _patient(db)
    store = ReadingStore()
    later = NOW + dt.timedelta(seconds=5)
    with db.transaction():
        store.write(db, [ReadingRow("w-1", "spo2", later, 96.0, "%", pid, NOW, "a")])
    with db.transaction():
        inserted = store.write(db, [ReadingRow("w-1", "spo2", NOW, 94.0, "%", pid, NOW, "b"),
                                    ReadingRow("w-1", "pulse", NOW, 70.0, "/min", pid, NOW, "b")],
                               defer_latest=True)
        assert len(inserted) == 2
        assert set(ReadingStore.latest_values(db, [pid])[pid]) == {"spo2"}  # not yet
        db.execute(store.latest_sql())
        staged = db.execute("SELECT count(*) FROM vw_latest_stage").fetchone()
        assert staged is not None
        assert staged[0] == 0
    latest = ReadingStore.latest_values(db, [pid])[pid]
    assert latest["spo2"].value == 96.0  # the older spo2 did not replace the newer one
    assert latest["pulse"].value == 70.0


def test_write_batch_in_a_caller_s_transaction_leaves_the_commit_to_it(
        db: psycopg.Connection[Any]) -> None:
    _patient(db)
    plan = _plan(db, _payload("c2", "2026-11-24T09:14:00Z", 95))
    db.execute("SELECT 1")  # the caller's transaction is open
    stored, _ = write_batch(db, ReadingStore(), plan)
    assert stored.count == 1
    assert db.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    db.rollback()  # the caller's choice: nothing was committed behind its back
    row = db.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    assert row[0] == 0
    db.rollback()


def test_a_failed_batch_rolls_back_and_leaves_the_connection_usable(
        db: psycopg.Connection[Any]) -> None:
    _patient(db)
    plan = _plan(db, _payload("c3", "2026-11-24T09:14:00Z", 95))
    db.execute("ALTER TABLE latest_readings ADD CONSTRAINT no_spo2 CHECK (code <> 'spo2')")
    db.commit()
    with pytest.raises(psycopg.errors.CheckViolation):
        write_batch(db, ReadingStore(), plan)
    assert db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    row = db.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    assert row[0] == 0
    db.rollback()


def test_duplicates_in_and_across_batches_are_reported(db: psycopg.Connection[Any]) -> None:
    _patient(db)
    first = _payload("d1", "2026-11-24T09:14:00Z", 95)
    plan = _plan(db, first, first)  # a resend within the batch: claimed once
    stored, _ = write_batch(db, ReadingStore(), plan)
    assert len(plan.readings) == 1
    assert (stored.count, stored.readings, stored.outcomes) == (1, (True,), (True, False))
    again, _ = write_batch(db, ReadingStore(), _plan(db, first))
    assert (again.count, again.readings, again.outcomes) == (0, (False,), (False,))


def test_latest_readings_leaves_room_for_hot_updates(db: psycopg.Connection[Any]) -> None:
    """Migration 0310: an UPDATE of a latest row fits on its page (fails before 0310)."""
    row = db.execute("SELECT reloptions FROM pg_class WHERE oid = 'latest_readings'::regclass"
                     ).fetchone()
    assert row is not None
    assert "fillfactor=50" in (row[0] or [])


def test_a_prepared_session_skips_the_staging_round_trip_and_survives_a_rollback(
        db: psycopg.Connection[Any]) -> None:
    pid = _patient(db)
    store = ReadingStore()
    store.prepare_session(db)
    assert db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # The staging tables were committed: a batch rolled back does not take them with it,
    # so the next batch (which no longer creates them) still finds them.
    store.write(db, [ReadingRow("w-1", "spo2", NOW, 95.0, "%", pid, NOW, "a")])
    db.rollback()
    later = NOW + dt.timedelta(seconds=1)
    # A month with no partition yet: ensured in the INSERT's pipeline.
    next_year = NOW.replace(year=NOW.year + 1)
    with db.transaction():
        inserted = store.write(db, [
            ReadingRow("w-1", "spo2", later, 96.0, "%", pid, NOW, "b"),
            ReadingRow("w-1", "spo2", next_year, 97.0, "%", pid, NOW, "c")])
    assert inserted == {("w-1", "spo2", later), ("w-1", "spo2", next_year)}
    rows = ReadingStore.readings_between(db, pid, NOW, next_year + dt.timedelta(seconds=1))
    assert [(r.value, r.msg_id) for r in rows] == [(96.0, "b"), (97.0, "c")]


def test_prepare_session_in_a_transaction_commits_nothing_of_the_caller_s(
        db_url: str, db: psycopg.Connection[Any]) -> None:
    _patient(db)
    store = ReadingStore()
    db.execute("CREATE TABLE caller_work (x int)")
    store.prepare_session(db)  # in the caller's transaction: does nothing
    assert db.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    db.rollback()
    with psycopg.connect(db_url) as other:
        row = other.execute("SELECT to_regclass('caller_work')").fetchone()
    assert row == (None,)
    # ... and batches on it still create their staging tables themselves.
    plan = _plan(db, _payload("p1", "2026-11-24T09:14:00Z", 95))
    stored, _ = write_batch(db, store, plan)
    assert stored.count == 1
