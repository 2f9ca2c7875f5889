"""The reading store on the real PostgreSQL: COPY with duplicates, latest values, trends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from ward.db.migrate import storage_kind
from ward.db.registry import (
    RegistryError,
    add_device,
    add_patient,
    assign_device,
    device_directory,
    end_assignment,
)
from ward.db.store import ReadingStore
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.domain.patients import Patient
from ward.domain.readings import Reading

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def _patient(conn: psycopg.Connection[Any], nhs: str = "9434765919") -> int:
    patient = add_patient(conn, Patient(nhs, "Ada", "Lovelace", dt.date(1950, 1, 1)))
    assert patient.id is not None
    return patient.id


def _reading(minute: int, value: float, *, code: str = "spo2", patient_id: int = 1,
             device: str = "ox-1", when: dt.datetime = T0) -> Reading:
    return Reading(device, code, when + dt.timedelta(minutes=minute), value,
                   "%" if code == "spo2" else "/min", patient_id, T0, msg_id=f"m{minute}")


def test_copy_ignores_exact_duplicates(db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    pid = _patient(db)
    batch = [_reading(m, 95 + m % 3, patient_id=pid) for m in range(100)]
    inserted = store.write(db, batch)
    db.commit()
    assert len(inserted) == 100
    # Redelivery of half the batch plus ten new readings, with an in-batch repeat.
    again = batch[:50] + [_reading(m, 97, patient_id=pid) for m in range(100, 110)]
    again.append(again[-1])
    inserted = store.write(db, again)
    db.commit()
    assert {k[2] for k in inserted} == {T0 + dt.timedelta(minutes=m) for m in range(100, 110)}
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (110,)


def test_write_marked_says_per_reading_what_was_new(db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    pid = _patient(db)
    batch = [_reading(m, 95, patient_id=pid) for m in range(3)]
    assert store.write_marked(db, batch) == [True, True, True]  # all new: no key looked at
    # Old, new, old, and the new one again: each answered by its own key.
    again = [batch[0], _reading(3, 96, patient_id=pid), batch[2], _reading(3, 96, patient_id=pid)]
    assert store.write_marked(db, again) == [False, True, False, True]
    assert store.write_marked(db, []) == []
    db.commit()
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (4,)


def test_duplicate_with_different_value_keeps_first(db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    pid = _patient(db)
    store.write(db, [_reading(0, 95, patient_id=pid)])
    assert store.write(db, [_reading(0, 80, patient_id=pid)]) == set()
    db.commit()
    assert db.execute("SELECT value FROM readings").fetchone() == (95.0,)


def test_latest_values_and_ranges(db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    p1 = _patient(db)
    p2 = _patient(db, "4010232137")
    store.write(db, [_reading(m, 90 + m, patient_id=p1) for m in range(5)])
    store.write(db, [_reading(m, 60 + m, code="pulse", patient_id=p1) for m in range(3)])
    store.write(db, [_reading(1, 99, patient_id=p2, device="ox-2")])
    # An older, late reading must not replace the latest value.
    store.write(db, [_reading(-30, 70, patient_id=p1)])
    db.commit()
    latest = store.latest_values(db)
    assert latest[p1]["spo2"].value == 94
    assert latest[p1]["pulse"].value == 62
    assert latest[p2]["spo2"].value == 99
    assert set(store.latest_values(db, [p2])) == {p2}
    rows = store.readings_between(db, p1, T0, T0 + dt.timedelta(minutes=3), ["spo2"])
    assert [r.value for r in rows] == [90, 91, 92]
    assert all(r.measured_at.tzinfo is not None for r in rows)


def test_readings_across_months_create_partitions(db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    pid = _patient(db)
    months = [dt.datetime(2026, m, 15, tzinfo=dt.UTC) for m in (1, 6, 12)]
    store.write(db, [_reading(0, 95, patient_id=pid, when=w) for w in months])
    db.commit()
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (3,)


def test_trend_downsamples(db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    pid = _patient(db)
    store.write(db, [_reading(m, 90 + (m % 10), patient_id=pid) for m in range(120)])
    db.commit()
    points = store.trend(db, pid, "spo2", start=T0, end=T0 + dt.timedelta(hours=2),
                         bucket=dt.timedelta(hours=1), storage=storage_kind(db))
    assert [p.n for p in points] == [60, 60]
    assert points[0].min == 90
    assert points[0].max == 99
    assert points[0].avg == pytest.approx(94.5)
    assert points[0].bucket == T0


def test_overlapping_assignment_is_refused(db: psycopg.Connection[Any]) -> None:
    p1 = _patient(db)
    p2 = _patient(db, "4010232137")
    add_device(db, Device("ox-9", DeviceKind.PULSE_OXIMETER))
    assign_device(db, Assignment("ox-9", p1, T0, T0 + dt.timedelta(days=3)))
    with pytest.raises(RegistryError, match="already assigned"):
        assign_device(db, Assignment("ox-9", p2, T0 + dt.timedelta(days=2)))
    # Back to back is fine: [start, end) periods meet without overlapping.
    assign_device(db, Assignment("ox-9", p2, T0 + dt.timedelta(days=3)))
    db.commit()
    record = device_directory(db)["ox-9"]
    assert record.patient_at(T0 + dt.timedelta(days=1)) == p1
    assert record.patient_at(T0 + dt.timedelta(days=3)) == p2
    assert record.patient_at(T0 - dt.timedelta(seconds=1)) is None
    end_assignment(db, "ox-9", T0 + dt.timedelta(days=5))
    db.commit()
    assert device_directory(db)["ox-9"].patient_at(T0 + dt.timedelta(days=6)) is None


def test_duplicate_device_and_nhs_number_refused(db: psycopg.Connection[Any]) -> None:
    _patient(db)
    with pytest.raises(RegistryError, match="9434765919"):
        _patient(db)
    add_device(db, Device("th-1", DeviceKind.THERMOMETER))
    with pytest.raises(RegistryError, match="th-1"):
        add_device(db, Device("th-1", DeviceKind.THERMOMETER))


def test_database_check_refuses_bad_nhs_number_written_directly(
    db: psycopg.Connection[Any],
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
            "VALUES ('12345abcde', 'A', 'B', '1950-01-01')"
        )


def test_write_after_rolled_back_batch_in_new_month(db: psycopg.Connection[Any]) -> None:
    """A rollback undoes the partition and staging table; the next write must still work."""
    store = ReadingStore()
    pid = _patient(db)
    db.commit()
    when = dt.datetime(2027, 3, 2, tzinfo=dt.UTC)
    store.write(db, [_reading(0, 95, patient_id=pid, when=when)])
    db.rollback()
    assert store.write(db, [_reading(0, 95, patient_id=pid, when=when)]) != set()
    db.commit()
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (1,)


def test_readings_between_orders_ties_by_the_whole_natural_key(
        db: psycopg.Connection[Any]) -> None:
    store = ReadingStore()
    pid = _patient(db)
    # Two devices' pulse at one instant, the later device id written first.
    store.write(db, [_reading(0, 80, code="pulse", patient_id=pid, device="ox-b")])
    store.write(db, [_reading(0, 81, code="pulse", patient_id=pid, device="ox-a")])
    db.commit()
    got = store.readings_between(db, pid, T0, T0 + dt.timedelta(minutes=1))
    assert [r.device_id for r in got] == ["ox-a", "ox-b"]


def test_summaries_refresh_is_a_no_op_on_plain_postgresql(db_url: str) -> None:
    from ward.db import summaries

    with psycopg.connect(db_url, autocommit=True) as conn:
        if storage_kind(conn) != "plain":
            pytest.skip("TimescaleDB: tests/ward/test_timescale.py exercises the refresh")
        assert summaries.refresh(conn, T0) is None


@pytest.mark.parametrize(("oldest", "retention", "expected"), [
    (None, None, None),  # no raw chunk at all: nothing to refresh
    (T0 - dt.timedelta(minutes=30), None, None),  # all left to real-time aggregation
    (T0 - dt.timedelta(days=400), None,
     (T0 - dt.timedelta(days=400), T0 - dt.timedelta(hours=1))),
    (T0 - dt.timedelta(days=30), dt.timedelta(days=400),
     (T0 - dt.timedelta(days=30), T0 - dt.timedelta(hours=1))),
    # A reading replayed from before the retention horizon made an older chunk: the refresh
    # must not reach back over the ranges already dropped (it would delete their summaries).
    (T0 - dt.timedelta(days=450), dt.timedelta(days=400),
     (T0 - dt.timedelta(days=400), T0 - dt.timedelta(hours=1))),
])
def test_summaries_refresh_starts_at_the_oldest_raw_chunk_kept(
        oldest: dt.datetime | None, retention: dt.timedelta | None,
        expected: tuple[dt.datetime, dt.datetime] | None) -> None:
    from ward.db.summaries import refresh_window

    window = refresh_window(oldest, T0, retention)
    assert (None if window is None else (window.start, window.end)) == expected


def test_a_batch_of_new_readings_is_answered_by_its_count_not_its_keys(
        db: psycopg.Connection[Any]) -> None:
    """The gateway's batches are almost always all new: the INSERT then sends back one count
    instead of every key (issue 14), and the keys only when some reading was not inserted;
    the staging table is empty after each write, also inside one transaction."""
    store = ReadingStore()
    pid = _patient(db)
    batch = [_reading(m, 95, patient_id=pid) for m in range(20)]
    assert store._insert(db, batch, False, keys=False) == [(20, None, None, None)]
    again = [*batch[:2], _reading(20, 96, patient_id=pid)]
    answer = store._insert(db, again, False, keys=False)
    assert sorted(answer, key=lambda r: r[0] is None) == [
        (1, None, None, None), (None, "ox-1", "spo2", again[2].measured_at)]
    assert store.write_marked(db, [_reading(21, 95, patient_id=pid), batch[0]]) == [True, False]
    staged = db.execute("SELECT count(*) FROM vw_readings_stage").fetchone()
    assert staged == (0,)
