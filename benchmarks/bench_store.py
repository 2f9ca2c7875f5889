"""Benchmark the reading store: COPY path vs row-by-row INSERT, and "latest values".

Usage: python benchmarks/bench_store.py [--readings 1000000] [--batch 1000] [--naive 20000]

Runs in a throwaway schema of the database in VW_DATABASE_URL (default: the machine's local
PostgreSQL) and drops it afterwards. Prints readings/s for both write paths on the same
database and the latency of `latest_values` for 1,000 patients.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

import psycopg

from ward.db.connect import throwaway_schema
from ward.db.store import ReadingStore
from ward.domain.readings import Reading

CODES = ("spo2", "pulse", "resp_rate", "temperature", "systolic_bp")
UNITS = {"spo2": "%", "pulse": "/min", "resp_rate": "/min", "temperature": "Cel",
         "systolic_bp": "mm[Hg]"}


def make_readings(n: int, patients: int, start: dt.datetime) -> list[Reading]:
    received = dt.datetime.now(dt.UTC)
    out = []
    for i in range(n):
        patient = i % patients
        code = CODES[(i // patients) % len(CODES)]
        step = i // (patients * len(CODES))
        out.append(Reading(
            device_id=f"dev-{patient}", code=code,
            measured_at=start + dt.timedelta(seconds=60 * step),
            value=90.0 + (i % 10), unit=UNITS[code], patient_id=patient + 1,
            received_at=received, msg_id=f"m{i}",
        ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--naive", type=int, default=20_000,
                        help="readings for the row-by-row INSERT comparison (it is slow)")
    parser.add_argument("--patients", type=int, default=1_000)
    args = parser.parse_args()

    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with throwaway_schema(base, "bench_") as (_, url):
        start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        readings = make_readings(args.readings, args.patients, start)
        store = ReadingStore()
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for i in range(0, len(readings), args.batch):
                store.write(conn, readings[i:i + args.batch])
                conn.commit()
            copy_s = time.perf_counter() - t0
            print(f"store (COPY, batches of {args.batch}, commit per batch): "
                  f"{len(readings):,} readings in {copy_s:.1f} s = "
                  f"{len(readings) / copy_s:,.0f} readings/s")

            # Same database, same table shape, no latest_readings upkeep: one INSERT and one
            # commit per reading, as a naive bridge would do.
            conn.execute("CREATE TABLE naive (LIKE readings INCLUDING ALL)")
            conn.commit()
            naive = make_readings(args.naive, args.patients, start)
            t0 = time.perf_counter()
            for r in naive:
                conn.execute(
                    "INSERT INTO naive (device_id, code, measured_at, value, unit, patient_id, "
                    "received_at, msg_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (r.device_id, r.code, r.measured_at, r.value, r.unit, r.patient_id,
                     r.received_at, r.msg_id),
                )
                conn.commit()
            naive_s = time.perf_counter() - t0
            print(f"row-by-row INSERT (commit per reading): {len(naive):,} readings in "
                  f"{naive_s:.1f} s = {len(naive) / naive_s:,.0f} readings/s")
            print(f"speed-up: {(len(readings) / copy_s) / (len(naive) / naive_s):.1f}x")

            patient_ids = list(range(1, args.patients + 1))
            timings = []
            for _ in range(50):
                t0 = time.perf_counter()
                latest = store.latest_values(conn, patient_ids)
                timings.append((time.perf_counter() - t0) * 1000)
            if len(latest) != args.patients:
                raise SystemExit(f"expected {args.patients} patients, got {len(latest)}")
            timings.sort()
            print(f"latest values for {args.patients:,} patients ({len(CODES)} codes each): "
                  f"p50 {statistics.median(timings):.1f} ms, "
                  f"p95 {timings[int(len(timings) * 0.95) - 1]:.1f} ms")


if __name__ == "__main__":
    main()
