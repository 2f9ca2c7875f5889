"""Patient evaluation locks are per schema (real PostgreSQL): advisory locks are database-wide,
and two schemas' evaluators once deadlocked on each other's patient ids (issue 14)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from alerting import store
from ward.db.connect import create_schema, drop_schema, with_schema


@pytest.fixture
def other_schema_url(pg_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    create_schema(pg_url, schema)
    try:
        yield with_schema(pg_url, schema)
    finally:
        drop_schema(pg_url, schema)


def test_the_same_patient_id_in_two_schemas_does_not_share_a_lock(
        db: psycopg.Connection[Any], db_url: str, other_schema_url: str) -> None:
    store.lock_patients(db, [17, 18])  # held until this transaction ends
    with psycopg.connect(other_schema_url) as other:
        other.execute("SET lock_timeout = '2s'")
        store.lock_patients(other, [17, 18])  # waited (lock_timeout) while keyed by id alone
        other.rollback()
    with psycopg.connect(db_url) as same:
        same.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            store.lock_patients(same, [18])  # the same schema's patient still waits
    assert store.patient_lock_key(db) != 0
    db.rollback()
