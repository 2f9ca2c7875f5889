"""TimescaleDB as its authors intend (issue 14), on a real TimescaleDB.

Runs only when `VW_TIMESCALE_URL` names a database where the `timescaledb` extension exists
or can be created (it needs `shared_preload_libraries`); skipped otherwise, so CI on plain
PostgreSQL stays green (the plain path is tested everywhere else). Each test gets a fresh
schema, migrated, with that schema's background jobs paused: the tests compress, drop and
refresh explicitly (or run a policy's job by id), so nothing depends on the scheduler's timing.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ward.cli import main
from ward.db import summaries
from ward.db.connect import throwaway_schema
from ward.db.migrate import storage_kind
from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.hub.queries import observations

Conn = psycopg.Connection[Any]
NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def ts_schema_url(ts_url: str) -> Iterator[str]:
    """A conninfo on a fresh, migrated schema with its jobs paused."""
    with throwaway_schema(ts_url, "ts_") as (schema, url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT alter_job(job_id, scheduled => false) "
                         "FROM timescaledb_information.jobs WHERE hypertable_schema = %s",
                         (schema,))
        yield url


@pytest.fixture
def tsdb(ts_schema_url: str) -> Iterator[Conn]:
    with psycopg.connect(ts_schema_url, autocommit=True) as conn:
        yield conn


def _reading(patient: int, device: str, code: str, at: dt.datetime, value: float) -> Reading:
    return Reading(device, code, at, value, "%" if code == "spo2" else "/min", patient, NOW,
                   msg_id=None, late=at < NOW - dt.timedelta(hours=1))


def _write(conn: Conn, readings: list[Reading]) -> set[tuple[str, str, dt.datetime]]:
    """Through the gateway's store path, committed."""
    with conn.transaction():
        return ReadingStore().write(conn, readings)


def _spot_checks(patient: int, start: dt.datetime, days: int) -> list[Reading]:
    """Four spot checks a day (oximeter SpO2 and pulse, cuff pulse) from `start`."""
    out = []
    for d in range(days):
        for h in (2, 8, 14, 20):
            at = start + dt.timedelta(days=d, hours=h)
            out += [_reading(patient, f"ox-{patient}", "spo2", at, 95.0 + h % 3),
                    _reading(patient, f"ox-{patient}", "pulse", at, 70.0 + d % 9),
                    _reading(patient, f"bp-{patient}", "pulse", at, 72.0 + d % 7)]
    return out


def _compress_older_than(conn: Conn, age: dt.timedelta) -> int:
    rows = conn.execute("SELECT compress_chunk(c, if_not_compressed => true) "
                        "FROM show_chunks('readings', older_than => %s::timestamptz) c",
                        (NOW - age,)).fetchall()
    return len(rows)


def _hourly(conn: Conn, patient: int, code: str) -> dict[dt.datetime, tuple[int, float]]:
    return {b: (int(n), float(a)) for b, n, a in conn.execute(
        "SELECT bucket, n, avg_value FROM readings_hourly WHERE patient_id = %s AND code = %s",
        (patient, code))}


def _raw_hourly(conn: Conn, patient: int, code: str) -> dict[dt.datetime, tuple[int, float]]:
    return {b: (int(n), float(a)) for b, n, a in conn.execute(
        "SELECT time_bucket(interval '1 hour', measured_at), count(*), avg(value) "
        "FROM readings WHERE patient_id = %s AND code = %s GROUP BY 1", (patient, code))}


def _job(conn: Conn, proc: str, table: str) -> int:
    row = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s "
                       "AND hypertable_name = %s AND hypertable_schema = current_schema()",
                       (proc, table)).fetchone()
    assert row is not None, f"no {proc} job on {table}"
    return int(row[0])


def _materialised(conn: Conn) -> int:
    """Rows materialised in the aggregate (real-time rows excluded)."""
    row = conn.execute(
        "SELECT materialization_hypertable_schema, materialization_hypertable_name "
        "FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name = 'readings_hourly' AND view_schema = current_schema()").fetchone()
    assert row is not None
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
        sql.Identifier(row[0], row[1]))).fetchone()
    return int(count[0]) if count else 0


def test_migrations_choose_timescaledb_and_its_policies(tsdb: Conn) -> None:
    assert storage_kind(tsdb) == "timescaledb"
    view = tsdb.execute(
        "SELECT materialized_only FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name = 'readings_hourly' AND view_schema = current_schema()").fetchone()
    assert view == (False,)  # real-time aggregation
    jobs = {(proc, table): config for proc, table, config in tsdb.execute(
        "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
        "WHERE hypertable_schema = current_schema()")}
    compress_after = jobs["policy_compression", "readings"]["compress_after"]
    refresh_start = jobs["policy_refresh_continuous_aggregate", "readings_hourly"]["start_offset"]
    # The summaries are compressed only past the refresh window (the policy never rewrites
    # compressed summaries).
    assert tsdb.execute("SELECT %s::interval > %s::interval", (
        jobs["policy_compression", "readings_hourly"]["compress_after"], refresh_start,
    )).fetchone() == (True,)
    drops = sorted(tsdb.execute(
        "SELECT hypertable_name, config->>'drop_after' FROM timescaledb_information.jobs "
        "WHERE hypertable_schema = current_schema() AND proc_name = 'policy_retention'"))
    assert len(drops) == 2, drops  # raw readings and, longer, the aggregate
    interval = {n: tsdb.execute("SELECT %s::interval", (d,)).fetchone() for n, d in drops}
    cagg_table = next(n for n in interval if n != "readings")
    assert interval[cagg_table] > interval["readings"]
    # The refresh window reaches past the compression horizon but never to dropped raw data.
    (reach,) = tsdb.execute("SELECT %s::interval > %s::interval AND %s::interval < %s",
                            (refresh_start, compress_after, refresh_start,
                             interval["readings"][0])).fetchone() or (False,)
    assert reach


def test_late_reading_in_a_compressed_chunk_is_summarised(tsdb: Conn) -> None:
    start = (NOW - dt.timedelta(days=20)).replace(hour=0)
    _write(tsdb, _spot_checks(1, start, 14))
    assert summaries.refresh(tsdb, NOW) is not None
    assert _compress_older_than(tsdb, dt.timedelta(days=7)) >= 1
    late_at = start + dt.timedelta(days=3, hours=8, minutes=17)  # 17 days old, compressed
    assert _write(tsdb, [_reading(1, "ox-1", "spo2", late_at, 88.0)]) != set()
    assert _write(tsdb, [_reading(1, "ox-1", "spo2", late_at, 99.0)]) == set()  # duplicate
    hour = late_at.replace(minute=0)
    assert _hourly(tsdb, 1, "spo2")[hour][0] == 1  # materialised, not yet refreshed
    refreshed = summaries.refresh(tsdb, NOW)  # what `vward maintain` does
    assert refreshed is not None
    assert refreshed.start <= start
    assert _hourly(tsdb, 1, "spo2")[hour] == (2, (95.0 + 8 % 3 + 88.0) / 2)
    assert _hourly(tsdb, 1, "spo2") == _raw_hourly(tsdb, 1, "spo2")


def test_vward_maintain_summarises_a_backfill_older_than_the_policy_window(
        tsdb: Conn, ts_schema_url: str, to_url: Callable[[str], str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    start = (NOW - dt.timedelta(days=60)).replace(hour=0)
    _write(tsdb, _spot_checks(7, start, 3))  # a backfill 60 days old, past the 35-day policy
    tsdb.execute("CALL run_job(%s)",
                 (_job(tsdb, "policy_refresh_continuous_aggregate", "readings_hourly"),))
    assert _materialised(tsdb) == 0
    monkeypatch.setenv("VW_DATABASE_URL", to_url(ts_schema_url))
    assert main(["maintain"]) == 0
    assert "hourly summaries refreshed" in capsys.readouterr().out
    assert _materialised(tsdb) > 0
    assert _hourly(tsdb, 7, "pulse") == _raw_hourly(tsdb, 7, "pulse")


def _compressed_summaries(tsdb: Conn, patients: tuple[int, ...]) -> dt.datetime:
    """Ten days of spot checks of `patients` from 90 days ago, summarised, and the summaries'
    compression policy run (they are past its 60 days); returns the first day."""
    start = (NOW - dt.timedelta(days=90)).replace(hour=0)
    for patient in patients:
        _write(tsdb, _spot_checks(patient, start, 10))
    summaries.refresh(tsdb, NOW)
    tsdb.execute("CALL run_job(%s)", (_job(tsdb, "policy_compression", "readings_hourly"),))
    return start


def test_compressed_summaries_take_a_backfill(tsdb: Conn) -> None:
    start = _compressed_summaries(tsdb, (8,))
    compressed = tsdb.execute(
        "SELECT count(*) FILTER (WHERE c.is_compressed) FROM timescaledb_information.chunks c "
        "JOIN timescaledb_information.continuous_aggregates a "
        "ON a.materialization_hypertable_name = c.hypertable_name "
        "WHERE a.view_name = 'readings_hourly' AND a.view_schema = current_schema()").fetchone()
    assert compressed is not None
    assert compressed[0] >= 1
    late_at = start + dt.timedelta(days=4, hours=14, minutes=9)  # ~86 days old
    _write(tsdb, [_reading(8, "ox-8", "spo2", late_at, 89.0)])
    summaries.refresh(tsdb, NOW)
    assert _hourly(tsdb, 8, "spo2") == _raw_hourly(tsdb, 8, "spo2")
    assert _hourly(tsdb, 8, "spo2")[late_at.replace(minute=0)][0] == 2


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_one_patients_compressed_summaries_decompress_only_that_patient(tsdb: Conn) -> None:
    _compressed_summaries(tsdb, (20, 21, 22))
    settings = tsdb.execute(
        "SELECT s.segmentby FROM timescaledb_information.chunk_columnstore_settings s "
        "JOIN timescaledb_information.continuous_aggregates a "
        "ON s.hypertable = format('%I.%I', a.materialization_hypertable_schema, "
        "a.materialization_hypertable_name)::regclass "
        "WHERE a.view_name = 'readings_hourly' AND a.view_schema = current_schema()").fetchall()
    assert settings, "the test needs compressed summaries"
    assert {s for (s,) in settings} == {"patient_id"}
    (plan,) = tsdb.execute(
        "EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF) "
        "SELECT bucket, code, n FROM readings_hourly WHERE patient_id = 21").fetchone() or (None,)
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    columnar = [n for n in nodes if n.get("Custom Plan Provider") in ("ColumnarScan",
                                                                      "DecompressChunk")]
    assert columnar, "no compressed summaries read"
    # Segmented by patient, the other patients' batches are never decompressed; without a
    # segment-by every batch holds all three patients, decompressed and then filtered out.
    assert sum(int(n.get("Rows Removed by Filter", 0)) for n in columnar) == 0
    assert sum(int(n["Actual Rows"]) for n in columnar) == len(_hourly(tsdb, 21, "pulse")) * 2


def test_policy_refresh_reaches_past_the_compression_horizon(tsdb: Conn) -> None:
    start = (NOW - dt.timedelta(days=12)).replace(hour=0)
    _write(tsdb, _spot_checks(2, start, 12))
    summaries.refresh(tsdb, NOW)
    _compress_older_than(tsdb, dt.timedelta(days=7))
    late_at = start + dt.timedelta(days=1, hours=14, minutes=5)  # ~10 days old, compressed
    _write(tsdb, [_reading(2, "ox-2", "spo2", late_at, 90.0)])
    tsdb.execute("CALL run_job(%s)",
                 (_job(tsdb, "policy_refresh_continuous_aggregate", "readings_hourly"),))
    assert _hourly(tsdb, 2, "spo2") == _raw_hourly(tsdb, 2, "spo2")


def test_newest_hour_comes_from_real_time_aggregation(tsdb: Conn) -> None:
    _write(tsdb, _spot_checks(3, (NOW - dt.timedelta(days=2)).replace(hour=0), 2))
    summaries.refresh(tsdb, NOW)
    materialised = _materialised(tsdb)
    just_now = NOW - dt.timedelta(minutes=10)
    _write(tsdb, [_reading(3, "ox-3", "spo2", just_now, 93.0)])
    assert _hourly(tsdb, 3, "spo2")[just_now.replace(minute=0)] == (1, 93.0)
    assert _materialised(tsdb) == materialised  # shown without any refresh


def test_summaries_outlive_raw_chunks_dropped_by_retention(tsdb: Conn) -> None:
    old = (NOW - dt.timedelta(days=420)).replace(hour=0)
    _write(tsdb, _spot_checks(4, old, 3))
    _write(tsdb, _spot_checks(4, (NOW - dt.timedelta(days=3)).replace(hour=0), 2))
    # Summarised back when those readings were young (the policy and `vward maintain` did).
    tsdb.execute("CALL refresh_continuous_aggregate('readings_hourly', %s, %s)",
                 (old - dt.timedelta(days=1), NOW - dt.timedelta(hours=1)))
    kept = _hourly(tsdb, 4, "pulse")
    assert any(b < NOW - dt.timedelta(days=400) for b in kept)
    tsdb.execute("CALL run_job(%s)", (_job(tsdb, "policy_retention", "readings"),))
    oldest = tsdb.execute("SELECT min(measured_at) FROM readings").fetchone()
    assert oldest is not None
    assert oldest[0] > NOW - dt.timedelta(days=400)
    tsdb.execute("CALL run_job(%s)",
                 (_job(tsdb, "policy_refresh_continuous_aggregate", "readings_hourly"),))
    assert summaries.refresh(tsdb, NOW) is not None  # `vward maintain` after the drop
    assert _hourly(tsdb, 4, "pulse") == kept  # summaries of the dropped range stay
    # A device replays a reading from before everything dropped: its new chunk is now the
    # oldest, and a refresh from there would wipe the summaries of the dropped range.
    ancient = old - dt.timedelta(days=15, hours=3)
    assert _write(tsdb, [_reading(4, "ox-4", "spo2", ancient, 97.0)]) != set()
    summaries.refresh(tsdb, NOW)
    assert _hourly(tsdb, 4, "pulse") == kept


def test_compressed_batches_hold_hundreds_of_a_patients_readings(tsdb: Conn) -> None:
    start = (NOW - dt.timedelta(days=30)).replace(hour=0)
    for patient in range(10, 16):
        _write(tsdb, _spot_checks(patient, start, 21))
    assert _compress_older_than(tsdb, dt.timedelta(days=7)) >= 1
    counts: list[int] = []
    for schema, table in tsdb.execute(
            "SELECT cc.schema_name, cc.table_name "
            "FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.chunk cc "
            "ON cc.id = c.compressed_chunk_id JOIN _timescaledb_catalog.hypertable h "
            "ON h.id = c.hypertable_id WHERE h.table_name = 'readings' "
            "AND h.schema_name = current_schema()").fetchall():
        counts += [int(n) for (n,) in tsdb.execute(
            sql.SQL("SELECT _ts_meta_count FROM {}").format(sql.Identifier(schema, table)))]
    # 12 readings a day for a week: one segment per patient holds ~84 of them, not the 4 a
    # (device, code) segment of a 1-day chunk held.
    assert statistics.median(counts) >= 50, counts


def test_readings_between_is_totally_ordered_after_compression(tsdb: Conn) -> None:
    at = (NOW - dt.timedelta(days=15)).replace(minute=30)
    # Two devices' pulse at one instant, written in the order compression may not keep.
    _write(tsdb, [_reading(5, "ox-z", "pulse", at, 80.0), _reading(5, "bp-a", "pulse", at, 81.0),
                  _reading(5, "ox-m", "spo2", at, 96.0)])
    _compress_older_than(tsdb, dt.timedelta(days=7))
    got = ReadingStore.readings_between(tsdb, 5, at, at + dt.timedelta(minutes=1))
    assert [(r.code, r.device_id) for r in got] == [("pulse", "bp-a"), ("pulse", "ox-z"),
                                                   ("spo2", "ox-m")]


def test_fhir_search_reads_only_the_chunks_of_its_window(tsdb: Conn) -> None:
    start = (NOW - dt.timedelta(days=60)).replace(hour=0)
    _write(tsdb, _spot_checks(6, start, 60))
    _compress_older_than(tsdb, dt.timedelta(days=7))
    since = NOW - dt.timedelta(days=30)
    found = observations.statements(6, codes=["spo2", "pulse"], include_readings=True,
                                    include_scores=True, since=since, count=100, offset=0)
    assert found is not None
    plan = "\n".join(str(r[0]) for r in tsdb.execute(
        sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + found.count, found.count_args))
    chunks = {str(r[0]) for r in tsdb.execute(
        "SELECT chunk_name FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'readings' AND hypertable_schema = current_schema() "
        "AND range_end <= %s", (since,))}
    assert chunks, "the test needs chunks wholly before the window"
    assert not [c for c in chunks if c in plan], plan
    total, page = observations.search(
        tsdb, 6, codes=["spo2", "pulse"], include_readings=True, include_scores=True,
        since=since, count=1000, offset=0)
    assert total == len(page)
    assert all(h.at >= since for h in page)
    assert total == sum(1 for r in _spot_checks(6, start, 60)
                        if r.code in ("spo2", "pulse") and since <= r.measured_at)
