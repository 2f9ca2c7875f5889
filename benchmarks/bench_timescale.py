"""TimescaleDB as its authors intend (issue 14): compression, summaries and the hub's queries.

Usage: python benchmarks/bench_timescale.py [--patients 300] [--days 28] [--wearable-minutes 5]
       [--layouts before current]

Needs a TimescaleDB: `VW_TIMESCALE_URL` (else `VW_DATABASE_URL`). For each layout it creates a
throwaway schema, migrates it and, for `before`, puts the hypertable back as 0002 left it
(`BEFORE`: 1-day chunks, segment by device and code, order by time, no real-time aggregation,
a 3-day refresh window, no retention of its own for the aggregate, its columnstore without a
segment-by as 0220 left it) — the layout issue 14 measured — then loads the same ward: `--patients` patients over `--days` days ending now, 3 in
10 with a wearable (SpO2 and pulse every `--wearable-minutes`) and a daily thermometer, the
others with spot checks four times a day (oximeter, BP cuff, thermometer, respiratory rate).
The schema's background jobs are paused, so what is measured is what this script did:

* compression as the policy would do it (every chunk ending more than 7 days ago): ratio of
  bytes before/after, compressed batches, median rows per batch, batches under 10 rows;
* late readings written through the gateway's store path (`ReadingStore.write`: COPY →
  staging → INSERT … ON CONFLICT) into compressed chunks, half of them duplicates, and the
  batches TimescaleDB decompressed to check the natural key;
* `vward maintain`'s refresh of the hourly summaries (`ward.db.summaries.refresh`), then how
  many (patient, code, hour) rows of `readings_hourly` disagree with the raw readings;
* with `--days` over 90: the summaries' columnstore policy (0220) run, their compression
  ratio, and one patient's hourly chart over compressed summaries (30 days ending 60 days
  ago): median time and rows decompressed for the rows kept (0415 segments by patient);
* the hub's queries, median of `--repeat` patients: the patient page's series (72 h raw and
  30 days hourly, `ward.hub.record.load`), the FHIR Observation search (first page and count,
  `ward.hub.queries.observations.search`), `ReadingStore.readings_between` over a day.

Absolute timings drift with the machine's load: compare the layouts of one invocation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from ward.db import summaries
from ward.db.connect import throwaway_schema
from ward.db.store import ReadingStore
from ward.domain.readings import Reading
from ward.hub import record
from ward.hub.queries import observations

Conn = psycopg.Connection[Any]
# The hypertable and aggregate as 0002 left them, before 0101 and later tuning (issue 14).
BEFORE = (
    "SELECT set_chunk_time_interval('readings', interval '1 day')",
    "ALTER TABLE readings SET (timescaledb.compress_segmentby = 'device_id, code', "
    "timescaledb.compress_orderby = 'measured_at DESC')",
    "ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.materialized_only = true)",
    "SELECT remove_continuous_aggregate_policy('readings_hourly')",
    "SELECT add_continuous_aggregate_policy('readings_hourly', start_offset => "
    "interval '3 days', end_offset => interval '1 hour', schedule_interval => "
    "interval '30 minutes')",
    "SELECT remove_retention_policy('readings_hourly', if_exists => true)",
    # The summaries' columnstore as 0220 left it: TimescaleDB 2.28.3's defaults, no segment-by.
    "ALTER MATERIALIZED VIEW readings_hourly SET (timescaledb.compress_segmentby = '', "
    "timescaledb.compress_orderby = 'bucket, patient_id, code')",
)
LAYOUTS = ("before", "current")
# Spot checks at 02:00, 08:00, 14:00 and 20:00 (+ a per-patient offset): NEWS2 0–4 asks for
# 4–6-hourly observations. Each device of the kit takes its turn a minute or two apart.
SPOT_KIT = (("ox", "spo2", 0, "%"), ("ox", "pulse", 0, "/min"), ("bp", "systolic_bp", 2, "mm[Hg]"),
            ("bp", "diastolic_bp", 2, "mm[Hg]"), ("bp", "pulse", 2, "/min"),
            ("th", "temperature", 4, "Cel"), ("hub", "resp_rate", 5, "/min"))
COMPRESS_AFTER = dt.timedelta(days=7)  # the compression policy's horizon (0002)
SUMMARIES_COMPRESS_AFTER = dt.timedelta(days=60)  # the summaries' columnstore policy (0220)


def load(conn: Conn, patients: int, days: int, wearable_minutes: int, now: dt.datetime) -> int:
    """The ward's history in three INSERT … SELECTs (fast; the late readings use the store)."""
    start = now - dt.timedelta(days=days)
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, value, unit, patient_id, "
        "received_at) SELECT 'wr-' || p, c, t, "
        "CASE c WHEN 'spo2' THEN 93 + (p + s) %% 6 ELSE 60 + (p * 7 + s) %% 45 END, "
        "CASE c WHEN 'spo2' THEN '%%' ELSE '/min' END, p, t "
        "FROM generate_series(1, %s) p, generate_series(0, %s) s, "
        "unnest(ARRAY['spo2', 'pulse']) c, LATERAL (SELECT %s + s * %s AS t) x "
        "WHERE p %% 10 < 3 AND t < %s",
        (patients, days * 24 * 60 // wearable_minutes, start,
         dt.timedelta(minutes=wearable_minutes), now))
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, value, unit, patient_id, "
        "received_at) SELECT 'th-' || p, 'temperature', t, 36.4 + (p + d) %% 12 / 10.0, 'Cel', "
        "p, t FROM generate_series(1, %s) p, generate_series(0, %s) d, "
        "LATERAL (SELECT %s + d * interval '1 day' + interval '9 hours' AS t) x "
        "WHERE p %% 10 < 3 AND t < %s", (patients, days, start, now))
    devices, codes, offsets, units = (list(col) for col in zip(*SPOT_KIT, strict=True))
    conn.execute(
        "INSERT INTO readings (device_id, code, measured_at, value, unit, patient_id, "
        "received_at) SELECT k.dev || '-' || p, k.code, t, "
        "CASE k.code WHEN 'spo2' THEN 92 + (p + d + h) %% 7 WHEN 'pulse' THEN 58 + (p + h) %% 50 "
        "WHEN 'systolic_bp' THEN 100 + (p * 3 + d) %% 60 WHEN 'diastolic_bp' THEN 60 + p %% 30 "
        "WHEN 'temperature' THEN 36.2 + (p + h) %% 15 / 10.0 ELSE 12 + (p + d) %% 10 END, "
        "k.unit, p, t FROM generate_series(1, %s) p, generate_series(0, %s) d, "
        "generate_series(0, 3) h, unnest(%s::text[], %s::text[], %s::int[], %s::text[]) "
        "AS k(dev, code, off, unit), LATERAL (SELECT date_trunc('day', %s::timestamptz) "
        "+ d * interval '1 day' + (2 + 6 * h) * interval '1 hour' "
        "+ (p * 7 %% 40 + k.off) * interval '1 minute' AS t) x "
        "WHERE p %% 10 >= 3 AND t >= %s AND t < %s",
        (patients, days, devices, codes, offsets, units, start, start, now))
    conn.execute("ANALYZE readings")
    row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


def pause_jobs(conn: Conn, schema: str) -> None:
    """Stop this schema's policies: the script compresses and refreshes by itself."""
    conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                 "WHERE hypertable_schema = %s", (schema,))


def job(conn: Conn, schema: str, table: str,
        proc: str = "policy_refresh_continuous_aggregate") -> int:
    row = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s "
                       "AND hypertable_schema = %s AND hypertable_name = %s",
                       (proc, schema, table)).fetchone()
    if row is None:
        msg = f"no {proc} on {table}"
        raise RuntimeError(msg)
    return int(row[0])


def compress(conn: Conn, now: dt.datetime) -> tuple[int, float]:
    """Compress every chunk the policy would (ending before now − 7 days)."""
    t0 = time.perf_counter()
    chunks = conn.execute("SELECT compress_chunk(c, if_not_compressed => true) "
                          "FROM show_chunks('readings', older_than => %s::timestamptz) c",
                          (now - COMPRESS_AFTER,)).fetchall()
    conn.execute("ANALYZE readings")
    return len(chunks), time.perf_counter() - t0


def compression_figures(conn: Conn) -> dict[str, float]:
    stats = conn.execute(
        "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
        "FROM chunk_compression_stats('readings') WHERE compression_status = 'Compressed'"
    ).fetchone()
    tables = conn.execute(
        "SELECT cc.schema_name, cc.table_name "
        "FROM _timescaledb_catalog.chunk c JOIN _timescaledb_catalog.chunk cc "
        "ON cc.id = c.compressed_chunk_id JOIN _timescaledb_catalog.hypertable h "
        "ON h.id = c.hypertable_id WHERE h.table_name = 'readings' AND h.schema_name = "
        "current_schema()").fetchall()
    counts: list[int] = []
    for schema, table in tables:
        counts += [int(n) for (n,) in conn.execute(
            sql.SQL("SELECT _ts_meta_count FROM {}").format(sql.Identifier(schema, table)))]
    before, after = (stats or (None, None))
    return {
        "chunks": len(tables), "batches": len(counts),
        "median_rows": statistics.median(counts) if counts else 0.0,
        "under_10": sum(1 for n in counts if n < 10),
        "ratio": float(before) / float(after) if before and after else 0.0,
        "before_mb": float(before or 0) / 1e6, "after_mb": float(after or 0) / 1e6,
    }


def late_readings(conn: Conn, patients: int, now: dt.datetime, n: int, rng: random.Random
                  ) -> tuple[list[Reading], list[Reading]]:
    """`n` new readings in compressed chunks (store-and-forward) and `n` resent ones."""
    fresh, resent = [], []
    for _ in range(n):
        p = rng.randrange(1, patients + 1)
        when = now - dt.timedelta(days=rng.uniform(8.0, 20.0))
        when = when.replace(second=17, microsecond=0)  # never on the loaded minute grid
        device = f"wr-{p}" if p % 10 < 3 else f"ox-{p}"
        fresh.append(Reading(device_id=device, code="spo2", measured_at=when, value=91.0,
                             unit="%", patient_id=p, received_at=now, msg_id=None, late=True))
    for p, device, code, at, value, unit in conn.execute(
            "SELECT patient_id, device_id, code, measured_at, value, unit FROM readings "
            "WHERE measured_at < %s ORDER BY random() LIMIT %s", (now - COMPRESS_AFTER, n)):
        resent.append(Reading(device_id=device, code=code, measured_at=at, value=value,
                              unit=unit, patient_id=p, received_at=now, msg_id=None, late=True))
    return fresh, resent


def decompressed_by_one_insert(conn: Conn, reading: Reading) -> str:
    """EXPLAIN ANALYZE of one late INSERT … ON CONFLICT: what TimescaleDB had to decompress."""
    with conn.transaction(force_rollback=True):
        plan = conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) INSERT INTO readings "
            "(device_id, code, measured_at, value, unit, patient_id, received_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT ON CONSTRAINT readings_natural_key DO NOTHING",
            (reading.device_id, reading.code, reading.measured_at + dt.timedelta(seconds=1),
             reading.value, reading.unit, reading.patient_id, reading.received_at)).fetchall()
    lines = [str(r[0]).strip() for r in plan]
    return "; ".join(x for x in lines if "atches" in x or "uples" in x) or "nothing decompressed"


def summary_mismatches(conn: Conn) -> tuple[int, int]:
    """(patient, code, hour) rows where `readings_hourly` and the raw readings disagree."""
    row = conn.execute(
        "WITH raw AS (SELECT patient_id, code, time_bucket(interval '1 hour', measured_at) "
        "AS bucket, count(*) AS n, avg(value) AS a FROM readings GROUP BY 1, 2, 3) "
        "SELECT count(*) FILTER (WHERE h.n IS DISTINCT FROM raw.n "
        "OR abs(h.avg_value - raw.a) > 1e-9), count(*) "
        "FROM raw FULL JOIN readings_hourly h USING (patient_id, code, bucket)").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node] + [n for child in node.get("Plans", []) for n in plan_nodes(child)]


def compressed_summaries(conn: Conn, schema: str, layout: str, now: dt.datetime, *,
                         ids: list[int], codes: list[str]) -> None:
    """The summaries' columnstore policy (0220) run, then one patient's hourly chart over
    compressed summaries (30 days ending 60 days ago): its time and the rows decompressed."""
    conn.execute("CALL run_job(%s)", (job(conn, schema, "readings_hourly",
                                          "policy_compression"),))
    conn.execute("ANALYZE")
    stats = conn.execute(
        "SELECT sum(s.before_compression_total_bytes), sum(s.after_compression_total_bytes) "
        "FROM timescaledb_information.continuous_aggregates a, chunk_compression_stats("
        "format('%%I.%%I', a.materialization_hypertable_schema, "
        "a.materialization_hypertable_name)::regclass) s WHERE a.view_schema = %s "
        "AND a.view_name = 'readings_hourly' AND s.compression_status = 'Compressed'",
        (schema,)).fetchone()
    before, after = (float(stats[0] or 0), float(stats[1] or 0)) if stats else (0.0, 0.0)
    start = now - SUMMARIES_COMPRESS_AFTER - dt.timedelta(days=30)
    end = now - SUMMARIES_COMPRESS_AFTER
    # The patient page's hourly query (ward.hub.record).
    query = ("SELECT code, bucket, avg_value FROM readings_hourly WHERE patient_id = %s "
             "AND code = ANY(%s) AND bucket >= %s AND bucket < %s ORDER BY code, bucket")
    ms = median_ms(lambda p: conn.execute(query, (p, codes, start, end)).fetchall(), ids)
    row = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF) ")
                       + sql.SQL(query),
                       (ids[0], codes, start, end)).fetchone()
    nodes = plan_nodes(row[0][0]["Plan"]) if row else []
    columnar = [n for n in nodes if n.get("Custom Plan Provider") == "ColumnarScan"]
    kept = sum(int(n["Actual Rows"]) for n in columnar)
    removed = sum(int(n.get("Rows Removed by Filter", 0)) for n in columnar)
    ratio = before / after if after else 0.0
    print(f"[{layout}] compressed summaries: ratio {ratio:.1f}× ({before / 1e6:.1f} MB → "
          f"{after / 1e6:.1f} MB); one patient's 30 days of them: median {ms:.1f} ms over "
          f"{len(ids)} patients, {kept + removed:,} rows decompressed for {kept:,} kept")


def median_ms(fn: Callable[[int], object], ids: list[int]) -> float:
    samples = []
    for pid in ids:
        t0 = time.perf_counter()
        fn(pid)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def summaries_state(conn: Conn, layout: str, when: str) -> None:
    wrong, total = summary_mismatches(conn)
    print(f"[{layout}] hourly summaries {when}: {wrong:,} of {total:,} (patient, code, hour) "
          "rows differ from the raw readings")


def run_layout(base: str, layout: str, args: argparse.Namespace, now: dt.datetime) -> None:
    rng = random.Random(args.seed)
    with throwaway_schema(base, "bench_ts_") as (schema, url):
        with psycopg.connect(url, autocommit=True) as conn:
            if layout == "before":
                for statement in BEFORE:
                    conn.execute(sql.SQL(statement))
            pause_jobs(conn, schema)
            t0 = time.perf_counter()
            rows = load(conn, args.patients, args.days, args.wearable_minutes, now)
            print(f"[{layout}] loaded {rows:,} readings ({args.patients} patients, "
                  f"{args.days} days) in {time.perf_counter() - t0:.0f} s")
            refresh_policy = job(conn, schema, "readings_hourly")
            conn.execute("CALL run_job(%s)", (refresh_policy,))
            summaries_state(conn, layout, "after the aggregate's policy ran")
            if layout == "current":  # `vward migrate` refreshes once after migrating
                summaries.refresh(conn, now)
                summaries_state(conn, layout, "after the one-off refresh")
            n, took = compress(conn, now)
            f = compression_figures(conn)
            print(f"[{layout}] compressed {n} chunk(s) in {took:.1f} s: ratio {f['ratio']:.1f}× "
                  f"({f['before_mb']:.1f} MB → {f['after_mb']:.1f} MB), {f['batches']:,.0f} "
                  f"batches, median {f['median_rows']:.0f} rows per batch, "
                  f"{f['under_10']:,.0f} under 10 rows")
            fresh, resent = late_readings(conn, args.patients, now, args.late, rng)
            print(f"[{layout}] one late INSERT into a compressed chunk: "
                  f"{decompressed_by_one_insert(conn, resent[0])}")
        store = ReadingStore()
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            inserted = 0
            batch = fresh + resent
            rng.shuffle(batch)
            for i in range(0, len(batch), 100):
                inserted += len(store.write(conn, batch[i:i + 100]))
                conn.commit()
            took = time.perf_counter() - t0
            print(f"[{layout}] late store path: {len(batch)} readings into compressed chunks "
                  f"in {took:.2f} s ({len(batch) / took:,.0f}/s), {inserted} new, "
                  f"{len(batch) - inserted} duplicates (expected {len(fresh)} new)")
        with psycopg.connect(url, autocommit=True) as conn:
            summaries_state(conn, layout, "after the late writes")
            conn.execute("CALL run_job(%s)", (refresh_policy,))
            summaries_state(conn, layout, "after the policy ran again")
            t0 = time.perf_counter()
            summaries.refresh(conn, now)
            summaries_state(conn, layout, f"after `vward maintain`'s refresh "
                            f"({time.perf_counter() - t0:.1f} s)")
            conn.execute("ANALYZE")
            ids = rng.sample(range(1, args.patients + 1), args.repeat)
            codes = sorted({c for _, c, _, _ in SPOT_KIT})
            timings = {
                "patient page 72 h (raw)": median_ms(lambda p: record.load(
                    conn, p, now=now, window=dt.timedelta(hours=72)), ids),
                "patient page 30 d (hourly)": median_ms(lambda p: record.load(
                    conn, p, now=now, window=dt.timedelta(days=30)), ids),
                "FHIR search, 30-day default": median_ms(lambda p: observations.search(
                    conn, p, codes=codes, include_readings=True, include_scores=True,
                    since=now - dt.timedelta(days=30), count=100, offset=0), ids),
                "FHIR search, unbounded (as before)": median_ms(lambda p: observations.search(
                    conn, p, codes=codes, include_readings=True, include_scores=True,
                    since=None, count=100, offset=0), ids),
                "readings_between 24 h (compressed)": median_ms(
                    lambda p: ReadingStore.readings_between(
                        conn, p, now - dt.timedelta(days=10), now - dt.timedelta(days=9)), ids),
            }
            for name, ms in timings.items():
                print(f"[{layout}] {name}: median {ms:.1f} ms over {len(ids)} patients")
            if dt.timedelta(days=args.days) > SUMMARIES_COMPRESS_AFTER + dt.timedelta(days=30):
                compressed_summaries(conn, schema, layout, now, ids=ids, codes=codes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--wearable-minutes", type=int, default=5)
    parser.add_argument("--late", type=int, default=500,
                        help="new late readings (and as many resent ones) via the store")
    parser.add_argument("--repeat", type=int, default=20, help="patients per query timing")
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS,
                        default=["before", "current"])
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    base = os.environ.get("VW_TIMESCALE_URL") or os.environ.get("VW_DATABASE_URL")
    if not base:
        print("set VW_TIMESCALE_URL to a TimescaleDB", file=sys.stderr)
        return 2
    with psycopg.connect(base) as conn:
        version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if version is None:
        print("no timescaledb extension in that database", file=sys.stderr)
        return 2
    print(f"TimescaleDB {version[0]}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    for layout in args.layouts:
        run_layout(base, layout, args, now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
