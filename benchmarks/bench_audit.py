"""Cost of auditing the ward view: one audit row naming every patient shown vs a count only.

The ward view is the hub's hot path (`bench_hub.py`); since issue 9 its audit row carries the
ids of all the patients it shows (`audit_log.patient_ids`, GIN-indexed). This times
`ward.hub.audit.record` on a throwaway migrated schema, each call its own committed
transaction as in a request, for: the old row (a count in `detail`), and the new row with
N patient ids (default 1,000, a full ward view). Prints per-call p50/p95 in ms for each, in
alternating rounds so load on the machine hits both alike.

Usage: python benchmarks/bench_audit.py [--patients 1000] [--calls 2000] [--no-gin]
Uses VW_DATABASE_URL (default: the local server); the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

import psycopg

from ward.db.connect import throwaway_schema
from ward.hub import audit
from ward.hub.auth import Role, create_user


def _pct(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered):6.3f} ms   p95 {p95:6.3f} ms   (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-gin", action="store_true",
                        help="drop the GIN index first, to see its share of the cost")
    args = parser.parse_args()
    base = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with throwaway_schema(base, "bench_audit_") as (_, url):
        with psycopg.connect(url) as conn:
            user = create_user(conn, "bench", "bench password", role=Role.HUB_NURSE)
            if args.no_gin:
                conn.execute("DROP INDEX audit_log_patient_ids")
            conn.commit()
            ids = list(range(1, args.patients + 1))
            now = dt.datetime.now(dt.UTC)
            counts: list[float] = []
            arrays: list[float] = []
            for i in range(args.calls):
                started = time.perf_counter()
                if i % 2:
                    audit.record(conn, user, "read", "ward", now=now,
                                 detail={"patients": len(ids), "subset": False})
                    conn.commit()
                    counts.append((time.perf_counter() - started) * 1000)
                else:
                    audit.record(conn, user, "read", "ward", now=now, patient_ids=ids,
                                 detail={"subset": False})
                    conn.commit()
                    arrays.append((time.perf_counter() - started) * 1000)
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('audit_log'))"
                                ).fetchone()
        print(f"audit row with a count only:        {_pct(counts)}")
        print(f"audit row with {args.patients:,} patient ids: {_pct(arrays)}")
        print(f"audit_log with indexes after {args.calls:,} rows: {size[0] if size else '?'}")


if __name__ == "__main__":
    main()
