"""What ending live streams with their sessions costs, and how soon a stream ends.

1. The session watcher's once-a-second check (`session_watch.check_once`: one query for the
   states of every session holding a stream, the pure decision, nothing ended) for 1, 50,
   200 and 1,000 open streams, each on its own session, over a `hub_sessions` table that also
   holds a month of finished sessions (`--history`). Prints the p50 / p95 of the whole check
   and of the query alone, in milliseconds, and beside it the p50 of the same query written
   with the hashes sent as text (`ANY(%s)`, not `ANY(%b)`) in the same run.
2. Logout → stream closed, on a real `vward hub` process (uvicorn): a stream is opened, the
   same token is revoked by another client (`DELETE /api/auth/token`), and the time from
   sending the logout to the stream's end is taken, `--rounds` times, with `--background`
   other streams open meanwhile. The logout comes at a random point of the watcher's
   one-second cycle (else each round would start just after a check), so this is ~uniform
   over 0–1 s plus the check's cost.

Usage: flock /tmp/vw-bench.lock python benchmarks/bench_session_check.py
       [--rounds 20] [--background 200] [--history 20000] [--repeats 100]
Uses VW_DATABASE_URL (default: the local server); the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg_pool import ConnectionPool

from ward.db.connect import throwaway_schema
from ward.hub import auth, events, session_watch
from ward.hub.auth import Role, User, create_user
from ward.hub.session_end import StreamOwner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ward_setup import conninfo_url, start_hub

# `auth.SESSION_STATES` with the hashes sent as text (psycopg's default), to compare against
# in the same run.
ANY_TEXT = ("SELECT s.token_hash, s.expires_at, s.revoked_at, u.active, u.role "
            "FROM hub_sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = ANY(%s)")
PASSWORD = "a throwaway password"  # noqa: S105 - a throwaway user in a throwaway schema
USERS = 10
SIZES = (1, 50, 200, 1000)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _setup(url: str, history: int) -> list[User]:
    with psycopg.connect(url) as conn:
        users = [create_user(conn, f"user{i}", PASSWORD, role=Role.HUB_NURSE)
                 for i in range(USERS)]
        # A month of finished sessions: the table is never pruned, the check must not care.
        conn.execute(
            "INSERT INTO hub_sessions (token_hash, user_id, kind, created_at, expires_at, "
            "revoked_at) SELECT sha256(('old' || g)::bytea), %s, 'cookie', "
            "now() - interval '40 days', now() - interval '39 days', "
            "CASE WHEN g %% 2 = 0 THEN now() - interval '39 days' END "
            "FROM generate_series(1, %s) g", (users[0].id, history))
        conn.commit()
    return users


def _issue(url: str, users: list[User], count: int) -> list[tuple[User, str]]:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url) as conn:
        out = [(users[i % len(users)],
                auth.issue_token(conn, users[i % len(users)], kind="bearer", now=now,
                                 ttl=dt.timedelta(hours=2))[0]) for i in range(count)]
        conn.commit()
    return out


async def _check_costs(url: str, users: list[User], repeats: int) -> None:
    pool: ConnectionPool[Any] = ConnectionPool(url, min_size=1, max_size=2, open=True)
    try:
        print(f"1. per-second check, {repeats} checks each (p50 / p95 ms):")
        for size in SIZES:
            sessions = _issue(url, users, size)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE hub_sessions")  # as autovacuum would have by now
            broadcaster = events.Broadcaster()
            with contextlib.ExitStack() as stack:
                for user, token in sessions:
                    stack.enter_context(broadcaster.subscribe(StreamOwner(
                        auth.token_digest(token), user.id, user.username, user.role.value)))
                hashes = {o.token_hash for o in broadcaster.owners()}
                checks, queries, any_text = [], [], []
                for _ in range(repeats):
                    started = time.perf_counter()
                    ended = await session_watch.check_once(
                        pool, broadcaster, lambda: dt.datetime.now(dt.UTC))
                    checks.append((time.perf_counter() - started) * 1000)
                    assert not ended  # noqa: S101 - every session is live
                    with pool.connection() as conn:
                        started = time.perf_counter()
                        auth.session_states(conn, hashes)
                        queries.append((time.perf_counter() - started) * 1000)
                        started = time.perf_counter()
                        conn.execute(ANY_TEXT, (list(hashes),)).fetchall()
                        any_text.append((time.perf_counter() - started) * 1000)
            print(f"   {size:>5} open streams: check {statistics.median(checks):6.2f} / "
                  f"{_pct(checks, 0.95):6.2f}   query alone {statistics.median(queries):6.2f}"
                  f" / {_pct(queries, 0.95):6.2f}   (as text: "
                  f"{statistics.median(any_text):6.2f})")
    finally:
        pool.close()


async def _hold(client: httpx.AsyncClient, token: str, opened: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("GET", "/api/events", headers=headers) as response:
        async for _ in response.aiter_lines():
            opened.set()


async def _closing_times(url: str, users: list[User], rounds: int, background: int) -> None:
    hub, base = start_hub(url)
    limits = httpx.Limits(max_connections=background + 10, max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits,
                                     timeout=httpx.Timeout(10, read=60)) as client:
            holders = []
            for _, token in _issue(url, users, background):
                opened = asyncio.Event()
                holders.append(asyncio.create_task(_hold(client, token, opened)))
                await asyncio.wait_for(opened.wait(), 30)
            times = []
            for _ in range(rounds):
                ((_, token),) = _issue(url, users, 1)
                opened = asyncio.Event()
                victim = asyncio.create_task(_hold(client, token, opened))
                await asyncio.wait_for(opened.wait(), 30)
                await asyncio.sleep(random.uniform(0, session_watch.CHECK_EVERY_S))
                started = time.perf_counter()
                response = await client.delete(
                    "/api/auth/token", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 204  # noqa: S101
                await asyncio.wait_for(victim, 30)
                times.append((time.perf_counter() - started) * 1000)
            for task in holders:
                task.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
        print(f"2. logout -> stream closed, {rounds} rounds with {background} other streams "
              f"open (ms): p50 {statistics.median(times):.0f}, p95 {_pct(times, 0.95):.0f}, "
              f"min {min(times):.0f}, max {max(times):.0f}")
    finally:
        hub.terminate()
        hub.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--background", type=int, default=200)
    parser.add_argument("--history", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    base_url = os.environ.get("VW_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with throwaway_schema(base_url, "bench_sessions_") as (_, conninfo):
        url = conninfo_url(conninfo)
        users = _setup(url, args.history)
        print(f"hub_sessions also holds {args.history} finished sessions; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        asyncio.run(_check_costs(url, users, args.repeats))
        asyncio.run(_closing_times(url, users, args.rounds, args.background))


if __name__ == "__main__":
    main()
