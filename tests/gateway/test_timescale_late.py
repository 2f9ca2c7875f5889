"""A real gateway storing store-and-forward readings into a compressed TimescaleDB chunk.

Runs only when `VW_TIMESCALE_URL` names a TimescaleDB (issue 14; skipped otherwise, so CI on
plain PostgreSQL stays green): this module's `pg_url` overrides the session's with `ts_url`,
so `ward`, `db_url` and the gateway all use a fresh schema of that database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from gateway.contract import Measurement, encode_readings, readings_topic
from ward.db import summaries
from ward.db.store import ReadingStore
from ward.domain.readings import Reading


@pytest.fixture(scope="module")
def pg_url(ts_url: str) -> str:
    """The session's TimescaleDB (`ts_url` of tests/conftest.py) in place of plain PostgreSQL."""
    return ts_url


def test_late_readings_land_in_a_compressed_chunk_once_and_are_summarised(
    broker: Any, ward: Any, start_gateway: Any, results: Any, connect_mqtt: Any, poll: Any,
    unique: str,
) -> None:
    dev = f"pox-{unique}"
    patient = ward.add(dev)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    # 17 days back: every 7-day chunk holding 15–19 days ago has ended more than 7 days ago.
    days_ago = now - dt.timedelta(days=17)
    with psycopg.connect(ward.url, autocommit=True) as conn:
        conn.execute("SELECT alter_job(job_id, scheduled => false) "
                     "FROM timescaledb_information.jobs WHERE hypertable_schema = "
                     "current_schema()")
        with conn.transaction():
            ReadingStore().write(conn, [
                Reading(dev, "spo2", days_ago + dt.timedelta(hours=h), 96.0, "%", patient, now)
                for h in range(-48, 48)])
        assert conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('readings', "
                            "older_than => %s::timestamptz) c",
                            (now - dt.timedelta(days=7),)).fetchone() != (0,)
        summaries.refresh(conn, now)
    gw = start_gateway(ward.url, broker.url)
    client = connect_mqtt(broker.url)
    # A device back online sends what it measured while offline then, and resends it.
    at = days_ago + dt.timedelta(minutes=20)
    payload = encode_readings("late-1", at, [Measurement("spo2", 88, "%", at)])
    for attempt in (1, 2):
        client.publish(readings_topic(dev), payload, qos=1).wait_for_publish(10)
        poll(lambda n=attempt: len(results.for_msg("late-1")) == n, 20, "a result")
    assert [r["status"] for r in results.for_msg("late-1")] == ["accepted", "duplicate"]
    assert gw.stop() == 0
    with psycopg.connect(ward.url, autocommit=True) as conn:
        row = conn.execute("SELECT value, late FROM readings WHERE device_id = %s "
                           "AND measured_at = %s", (dev, at)).fetchone()
        assert row == (88.0, True)
        chunk = conn.execute(
            "SELECT c.is_compressed FROM timescaledb_information.chunks c "
            "WHERE c.hypertable_name = 'readings' AND c.hypertable_schema = current_schema() "
            "AND c.range_start <= %s AND %s < c.range_end", (at, at)).fetchone()
        assert chunk == (True,)  # written into the compressed chunk, not a new one
        summaries.refresh(conn, now)  # what `vward maintain` does
        hour = conn.execute(
            "SELECT n, avg_value FROM readings_hourly WHERE patient_id = %s AND code = 'spo2' "
            "AND bucket = time_bucket(interval '1 hour', %s::timestamptz)",
            (patient, at)).fetchone()
    assert hour == (2, (96.0 + 88.0) / 2)
