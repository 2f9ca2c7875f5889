"""Log-in throttling on real hub processes: what a password guesser gets, and what it costs.

Starts two `python -m ward.cli hub` processes (uvicorn) on one throwaway schema with one user,
then: 300 wrong passwords for that account in sequence (alternating between the hubs), then
the right one; then 20 wrong passwords in parallel for a second account, spread over both
hubs. Prints the HTTP statuses as counts, the Retry-After given, and the median latency of
a checked failure (401, argon2) against a refused one (429, no password check).

Usage: python benchmarks/bench_login_throttle.py [--guesses 300] [--parallel 20]
Uses VW_DATABASE_URL (default: the local server); the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

from ward.db.connect import throwaway_schema
from ward.hub.auth import Role, create_user

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ward_setup import conninfo_url, start_hub

PASSWORD = "the right password"  # noqa: S105 - a throwaway user in a throwaway schema


def _try(base: str, username: str, password: str) -> tuple[int, str | None, float]:
    started = time.perf_counter()
    r = httpx.post(base + "/api/auth/token", json={"username": username, "password": password},
                   timeout=30)
    return r.status_code, r.headers.get("retry-after"), (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--guesses", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()
    base_url = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with throwaway_schema(base_url, "bench_throttle_") as (_, conninfo):
        url = conninfo_url(conninfo)
        hubs: list[subprocess.Popen[bytes]] = []
        try:
            with psycopg.connect(url) as conn:
                create_user(conn, "sister", PASSWORD, role=Role.HUB_NURSE)
                create_user(conn, "matron", PASSWORD, role=Role.HUB_NURSE)
                conn.commit()
            bases = []
            for _ in range(2):
                hub, base = start_hub(url)
                hubs.append(hub)
                bases.append(base)
            results = [_try(bases[i % 2], "sister", f"guess {i}") for i in range(args.guesses)]
            by_status = collections.Counter(status for status, _, _ in results)
            first_429 = next((i for i, r in enumerate(results) if r[0] == 429), None)
            print(f"{args.guesses} wrong passwords in sequence over 2 hubs: {dict(by_status)}; "
                  f"first 429 at attempt {None if first_429 is None else first_429 + 1}")
            for status in sorted(by_status):
                times = [ms for s, _, ms in results if s == status]
                print(f"  {status}: median {statistics.median(times):.1f} ms per attempt")
            status, retry, _ = _try(bases[0], "sister", PASSWORD)
            print(f"then the right password: {status}, Retry-After {retry} s")
            parallel: list[tuple[int, str | None, float]] = []

            def guess(i: int) -> None:
                parallel.append(_try(bases[i % 2], "matron", f"guess {i}"))

            threads = [threading.Thread(target=guess, args=(i,)) for i in range(args.parallel)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            counts = dict(collections.Counter(s for s, _, _ in parallel))
            print(f"{args.parallel} wrong passwords in parallel over 2 hubs: {counts}")
        finally:
            for hub in hubs:
                hub.terminate()
                hub.wait(30)


if __name__ == "__main__":
    main()
