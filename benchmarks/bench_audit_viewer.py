"""The audit viewer's patient filter on a large audit log: time per page and the plan used.

Fills a throwaway migrated schema with N audit rows (default 300,000) in the hub's real
shape: most are record reads naming one patient in `patient_id`; every 20th is a ward-view
row naming 200 patients in `patient_ids`. Then times `ward.hub.audit_view.search` (the
count plus one 50-row page, as `/audit?patient_id=X` runs it) for random patients, and
prints p50/p95 in ms and whether the plan used both indexes (`audit_log_patient` for the
record rows, the GIN `audit_log_patient_ids` for the list rows) rather than a scan.

Usage: python benchmarks/bench_audit_viewer.py [--rows 300000] [--queries 200]
Uses VW_DATABASE_URL (default: the local server); the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import time

import psycopg
from psycopg import sql

from ward.db.connect import throwaway_schema
from ward.hub import audit_view

PATIENTS = 2_000
LIST_EVERY = 20  # one ward-view row per 20 record reads
LIST_SIZE = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    rng = random.Random(9)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with throwaway_schema(base, "bench_auditv_") as (_, url), psycopg.connect(url) as conn:
        with conn.cursor().copy(
                "COPY audit_log (at, actor, action, entity, entity_id, patient_id, "
                "patient_ids) FROM STDIN") as copy:
            for i in range(args.rows):
                at = t0 + dt.timedelta(seconds=10 * i)
                if i % LIST_EVERY == 0:
                    start = rng.randrange(PATIENTS - LIST_SIZE)
                    ids = list(range(start + 1, start + LIST_SIZE + 1))
                    copy.write_row((at, "nurse", "read", "ward", None, None, ids))
                else:
                    pid = rng.randrange(1, PATIENTS + 1)
                    copy.write_row((at, "nurse", "read", "patient_record", str(pid), pid,
                                    None))
        conn.execute("ANALYZE audit_log")
        conn.commit()
        plan = "\n".join(r[0] for r in conn.execute(
            sql.SQL("EXPLAIN ") + sql.SQL("SELECT count(*) FROM audit_log WHERE "
                                          "(patient_id = %s OR patient_ids @> "
                                          "ARRAY[%s]::bigint[])"), (17, 17)))
        samples = []
        for _ in range(args.queries):
            pid = rng.randrange(1, PATIENTS + 1)
            start = time.perf_counter()
            _, total = audit_view.search(conn, audit_view.AuditFilter(patient_id=pid))
            samples.append((time.perf_counter() - start) * 1000)
        ordered = sorted(samples)
        print(f"audit_log rows: {args.rows:,} ({args.rows // LIST_EVERY:,} ward-view rows "
              f"of {LIST_SIZE} ids); last patient matched {total:,} rows")
        print(f"/audit?patient_id=X (count + 50-row page): p50 "
              f"{statistics.median(ordered):.1f} ms, p95 "
              f"{ordered[int(0.95 * (len(ordered) - 1))]:.1f} ms (n={len(ordered)})")
        print("uses audit_log_patient:", re.search(r"audit_log_patient\b", plan) is not None)
        print("uses audit_log_patient_ids (GIN):", "audit_log_patient_ids" in plan)
        print("sequential scan:", "Seq Scan" in plan)


if __name__ == "__main__":
    main()
