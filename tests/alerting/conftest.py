"""Helpers for the alerting tests: patients, readings and a policy, on the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alerting.policy import Policy, load_policy
from alerting.runner import evaluate_after_commit
from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.domain.vitals import spec_for

POLICY_FILE = Path(__file__).resolve().parents[2] / "deploy" / "escalation" / "default.yaml"


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(POLICY_FILE)


def _add_patients(conn: psycopg.Connection[Any], n: int, admitted_at: dt.datetime) -> list[int]:
    """``n`` admitted patients (NHS numbers need not be valid for the schema's check)."""
    rows = conn.execute(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth) "
        "SELECT lpad((9000000000 + g)::text, 10, '0'), 'Test', 'Patient' || g, '1950-01-01' "
        "FROM generate_series(1, %s) AS g RETURNING id", (n,)).fetchall()
    ids = [r[0] for r in rows]
    conn.execute(
        "INSERT INTO admissions (patient_id, pathway, source, status, referred_at, admitted_at) "
        "SELECT id, 'step_up', 'gp', 'admitted', %s, %s FROM unnest(%s::bigint[]) AS id",
        (admitted_at, admitted_at, ids))
    conn.commit()
    return ids


def _readings(patient_id: int, at: dt.datetime, device: str = "dev", **values: float) -> list[Reading]:
    return [Reading(f"{device}-{patient_id}", code, at, float(v), spec_for(code).unit,
                    patient_id, at) for code, v in values.items()]


WriteReadings = Callable[[psycopg.Connection[Any], Sequence[Reading]], None]


@pytest.fixture
def write_readings() -> WriteReadings:
    reading_store = ReadingStore()

    def write(conn: psycopg.Connection[Any], batch: Sequence[Reading]) -> None:
        reading_store.write(conn, batch)
        conn.commit()

    return write


AddPatients = Callable[[psycopg.Connection[Any], int, dt.datetime], list[int]]
MakeReadings = Callable[..., list[Reading]]


@pytest.fixture
def add_patients() -> AddPatients:
    """``add_patients(conn, n, admitted_at)`` -> ids of ``n`` admitted patients."""
    return _add_patients


@pytest.fixture
def readings() -> MakeReadings:
    """``readings(patient_id, at, device="dev", **values)`` -> one Reading per code."""
    return _readings


#: A full set scoring NEWS2 3 + 2 + 3 = 8: high.
SICK = {"spo2": 90, "pulse": 125, "resp_rate": 26, "temperature": 36.8, "systolic_bp": 125,
        "on_oxygen": 0, "consciousness": 0}


@pytest.fixture
def raise_news2(db: psycopg.Connection[Any], policy: Policy, add_patients: AddPatients,
                write_readings: WriteReadings) -> Callable[[dt.datetime], int]:
    """``raise_news2(at)`` -> the id of a high NEWS2 episode raised at ``at`` for a new
    patient (admitted a day before) by a full set measured then (committed)."""

    def raise_at(at: dt.datetime) -> int:
        (pid,) = add_patients(db, 1, at - dt.timedelta(days=1))
        write_readings(db, _readings(pid, at, **SICK))
        evaluate_after_commit(db, [pid], at, policy=policy)
        row = db.execute("SELECT id FROM alerts WHERE kind = 'news2' AND patient_id = %s",
                         (pid,)).fetchone()
        db.commit()
        assert row is not None
        return int(row[0])

    return raise_at
